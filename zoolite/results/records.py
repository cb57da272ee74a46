"""The records of a run: what it learned from, how each backbone was trained and says "none of these",
its variants (:mod:`zoolite.results.variant`) and its recommendation, up to :class:`Run`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from zoolite.config import Budget, RunConfig
from zoolite.measure.intervals import Interval
from zoolite.results.training import Training
from zoolite.results.variant import Variant, interval_from_json
from zoolite.targets import Role

# 5: typed leaves (machine, dataset, split, training, fidelity rows); a variant's target under "target".
# 6: "none of these" per class: each class's kept share, balanced kept and answered-and-right shares,
# and the gate as fitted per class (Rejection.classes); the duplicate groups kept within one split and the
# label-conflict photos left out (SplitSizes.duplicate_groups, duplicate_photos, conflicts); with --group-by,
# its pattern and the user groups in each split (SplitSizes.group_by, user_groups, user_group_photos, test_groups).
# 7: each backbone's normalisation as the run used it (Backbone.normalisation), which model.json carries.
# 8: a head fitted as a logistic regression (Training.head a LogisticFit, config.train.head).
# 9: warm-up's time limit (config.latency.max_warmup_seconds; older runs had none).
SCHEMA_VERSION = 9
# The test split counts as imbalanced, and the budget is judged on balanced accuracy, when its
# largest class has this many times the photos of its smallest.
IMBALANCE_RATIO = 1.5


@dataclass
class Skipped:
    """A file a folder option held that zoolite could not use, and why."""

    file: str  # relative to the folder
    reason: str


def _skipped(rows: list[dict]) -> list[Skipped]:
    return [Skipped(**row) for row in rows]


@dataclass
class Machine:
    """What the figures were measured on."""

    cpu: str
    cores: int | None  # the cores the run could use (its CPU affinity; before 0.8: the host's)
    os: str
    python: str
    packages: dict[str, str | None]  # the version of each package the run's runtimes need (None: not installed)
    zoolite: str | None
    command: str

    @classmethod
    def from_json(cls, obj: dict) -> "Machine":
        if "packages" not in obj:  # zoolite 0.2 and earlier: TensorFlow's, Keras's and LiteRT's own keys
            old = {"tensorflow": "tensorflow-cpu", "keras": "keras", "ai_edge_litert": "ai-edge-litert"}
            obj = {**{k: v for k, v in obj.items() if k not in old},
                   "packages": {package: obj.get(key) for key, package in old.items()}}
        return cls(**obj)


@dataclass
class Dataset:
    """The labelled folder a run learned from (also the run folder's dataset.json)."""

    root: str
    class_dirs: list[str]
    labels: list[str]  # in the models' output order
    counts: dict[str, int]  # usable photos per class folder
    images: int
    skipped: list[Skipped] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict) -> "Dataset":
        return cls(**{**obj, "skipped": _skipped(obj["skipped"])})


@dataclass
class SplitSizes:
    """The photos of each part of the dataset's split, and the seed that drew it."""

    seed: int
    train: int
    val: int
    test: int
    # Groups of copies of one photo, each kept within one split, and the photos in them (None: not looked
    # for: --keep-duplicates, or results before schema 6); the label-conflict photos (copies in several
    # class folders), left out of every split.
    duplicate_groups: int | None = None
    duplicate_photos: int | None = None
    conflicts: list[str] | None = None
    # --group-by: its pattern, the groups it named in train/val/test, their photos there (photos it did not
    # match, each their own group, not counted), and the names of the test split's groups (None: not asked for).
    group_by: str | None = None
    user_groups: list[int] | None = None
    user_group_photos: list[int] | None = None
    test_groups: list[str] | None = None


@dataclass
class SuspectLabel:
    """A photo whose class folder its backbone features confidently disagree with (:mod:`zoolite.model.suspects`)."""

    file: str  # relative to the dataset folder
    label: str  # its class folder
    suggested: str  # the class folder it more probably belongs to
    score: float  # p_suggested - p_label (0..1, higher: more suspect)
    p_label: float
    p_suggested: float


@dataclass
class SuspectLabels:
    """The train and validation photos a run looked at for suspect labels (confident learning on the frozen
    features of ``backbone``, as ``zoolite check`` does), how many it found and the most suspect of them."""

    backbone: str
    checked: int
    found: int
    named: list[SuspectLabel]

    @classmethod
    def from_json(cls, obj: dict) -> "SuspectLabels":
        return cls(obj["backbone"], obj["checked"], obj["found"], [SuspectLabel(**s) for s in obj["named"]])


@dataclass
class UnlabelledPhotos:
    """The ``--unlabelled`` folder: photos fidelity is measured on without labels."""

    root: str
    photos: int
    skipped: list[Skipped] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict) -> "UnlabelledPhotos":
        return cls(**{**obj, "skipped": _skipped(obj.get("skipped", []))})


@dataclass
class OtherPhotos:
    """The ``--other`` folder (photos of none of the classes), split in two halves."""

    root: str
    calibration: int  # photos that fitted the rejection
    test: int  # held-out photos it is measured on


@dataclass
class ClassGate:
    """How one class's photos pass the gate, as fitted: the normalisation of its similarity and its share
    of photos kept at the threshold, estimated out of sample on its training and validation photos."""

    photos: int  # training and validation photos of the class
    mean: float  # of their out-of-sample similarity to the class (shrunk toward the pooled mean)
    spread: float
    pooled: bool  # too few photos for figures of its own: the pooled ones stand in
    kept: int  # of those photos, kept out of sample at the threshold
    kept_estimate: float  # the kept share, shrunk toward the pooled share (what the threshold guarantees)
    kept_interval: Interval  # 95% Wilson, of kept / photos: how sure the estimate is

    @classmethod
    def from_json(cls, obj: dict) -> "ClassGate":
        return cls(**{**obj, "kept_interval": interval_from_json(obj["kept_interval"])})


@dataclass
class Rejection:
    """How a backbone's model rejects photos of none of its classes (stored in results.json)."""

    method: str  # what the file computes, in words
    temperature: float
    centroids: int
    gate_slope: float
    gate_centre: float
    threshold: float  # on the top score of the file's output
    keep_rate: float  # what every class is estimated to keep at the threshold (before schema 6: of the val photos)
    calibrated_on: str  # where the gate and threshold come from, in words
    other_photos: int  # --other photos that fitted the gate (0: none given)
    ece_before: float | None = None  # expected calibration error on the test photos, T = 1
    ece_after: float | None = None  # with the temperature folded in
    classes: list[ClassGate] | None = None  # per class, in the labels' order (None: before schema 6)
    other_class_photos: int | None = None  # --other photos the float model confidently calls one of the classes

    @property
    def chosen(self) -> str:
        """How the threshold was chosen, in words."""
        if self.classes is None:
            return f"the threshold keeps {self.keep_rate:.0%} of the validation photos"
        return f"every class is estimated, out of sample, to keep at least {self.keep_rate:.0%} of its photos"

    @property
    def pooled_classes(self) -> list[int]:
        """The classes with too few photos to fit their own part of the gate."""
        return [c for c, gate in enumerate(self.classes or []) if gate.pooled]

    @classmethod
    def from_json(cls, obj: dict) -> "Rejection":
        classes = obj.get("classes")
        return cls(**{**obj, "classes": None if classes is None else [ClassGate.from_json(c) for c in classes]})


@dataclass
class Normalisation:
    """What a model does to its 0-255 pixels first, inside the file: ``pixel * scale + offset``."""

    scale: float
    offset: float | list[float]  # one per RGB channel, or one for all

    @classmethod
    def of(cls, scale: float, offset: float | tuple[float, ...]) -> "Normalisation":
        return cls(float(scale), [float(o) for o in offset] if isinstance(offset, (tuple, list)) else float(offset))


@dataclass
class Backbone:
    """One backbone's training and its variants, the reference first."""

    name: str
    input_size: int
    feature_dim: int
    weights: str  # what it started from, as reports say it
    weights_source: str
    pretrained: bool
    training: Training
    timings: dict[str, float]
    variants: list[Variant]
    rejection: Rejection | None = None  # how its files say "none of these" (None: zoolite 0.2 results)
    features_per_second: float | None = None  # photos through the frozen backbone per second (None: not run)
    normalisation: Normalisation | None = None  # as the run used it (None: results before schema 7)

    @property
    def reference(self) -> Variant:
        return next(v for v in self.variants if v.role is Role.REFERENCE)

    @property
    def shippable(self) -> list[Variant]:
        return [v for v in self.variants if v.shippable]

    def find(self, name: str) -> Variant | None:
        """The variant measured as target ``name``, or None."""
        return next((v for v in self.variants if v.target == name), None)

    def variant(self, name: str) -> Variant:
        """The variant measured as target ``name``; a KeyError that names the measured ones otherwise."""
        found = self.find(name)
        if found is None:
            raise KeyError(f"{name!r} was not measured; these were: {', '.join(v.target for v in self.variants)}")
        return found

    @classmethod
    def from_json(cls, obj: dict) -> "Backbone":
        return cls(**{**obj, "variants": [Variant.from_json(v) for v in obj["variants"]],
                      "training": Training.from_json(obj["training"]),
                      "rejection": Rejection.from_json(obj["rejection"]) if obj.get("rejection") else None,
                      "normalisation": Normalisation(**obj["normalisation"]) if obj.get("normalisation") else None})


class Recommended(NamedTuple):
    backbone: Backbone
    variant: Variant


@dataclass
class Recommendation:
    """Which variant to ship under ``budget`` (``backbone``'s variant of the target ``variant``); ``variant``
    is None when nothing satisfies it, and ``reason`` (one sentence) says why, either way."""

    budget: Budget
    reason: str
    backbone: str | None = None
    variant: str | None = None
    runtime: str | None = None  # the runtime family the choice was limited to (None: every runtime of the run)

    @classmethod
    def from_json(cls, obj: dict) -> "Recommendation":
        return cls(Budget(**obj["budget"]), obj["reason"], obj.get("backbone"), obj.get("variant"), obj.get("runtime"))


@dataclass
class Run:
    """Everything one run measured, with the machine and options it was measured with."""

    run_dir: str
    machine: Machine
    config: RunConfig
    dataset: Dataset
    split: SplitSizes
    timings: dict[str, float]  # seconds per step
    backbones: dict[str, Backbone]
    recommendation: Recommendation | None = None
    unlabelled: UnlabelledPhotos | None = None
    other: OtherPhotos | None = None
    suspect_labels: SuspectLabels | None = None  # None: not looked for (no pretrained backbone, or before)
    schema_version: int = SCHEMA_VERSION

    @property
    def labels(self) -> list[str]:
        return self.dataset.labels

    @property
    def balanced(self) -> bool:
        """Whether the budget judges balanced accuracy: the test split is imbalanced."""
        reference = next(iter(self.backbones.values())).reference
        return is_imbalanced([c.support for c in reference.per_class.values()])

    @property
    def accuracy_name(self) -> str:
        return "balanced accuracy" if self.balanced else "accuracy"

    @property
    def best_reference_accuracy(self) -> float:
        """The accuracy the budget is measured from: the run's most accurate float model, so a
        weak backbone cannot win by staying close to its own float model."""
        return best_float_backbone(self.backbones, self.balanced).reference.judged_accuracy(self.balanced)

    def test_photos(self) -> list[tuple[Path, int]] | None:
        """The test split's photos (under the dataset's root) and labels, from the run folder's split.json;
        None when the file is gone."""
        from zoolite.runs.layout import RunLayout

        path = RunLayout(Path(self.run_dir)).split
        if not path.is_file():
            return None
        test = json.loads(path.read_text(encoding="utf-8"))["test"]
        return [(Path(self.dataset.root) / photo, int(label)) for photo, label in test]

    def recommended(self) -> Recommended | None:
        """The recommended backbone and variant (None: nothing is recommended)."""
        r = self.recommendation
        if r is None or r.variant is None:
            return None
        backbone = self.backbones[r.backbone]
        return Recommended(backbone, backbone.variant(r.variant))

    def to_json(self) -> dict:
        return {"schema_version": self.schema_version, **{k: v for k, v in asdict(self).items()
                                                          if k != "schema_version"}}

    @classmethod
    def from_json(cls, obj: dict) -> "Run":
        return cls(
            run_dir=obj["run_dir"], machine=Machine.from_json(obj["machine"]),
            config=RunConfig.from_json(obj["config"]), dataset=Dataset.from_json(obj["dataset"]),
            split=SplitSizes(**obj["split"]), timings=obj["timings"],
            backbones={name: Backbone.from_json(b) for name, b in obj["backbones"].items()},
            recommendation=Recommendation.from_json(obj["recommendation"]) if obj.get("recommendation") else None,
            unlabelled=UnlabelledPhotos.from_json(obj["unlabelled"]) if obj.get("unlabelled") else None,
            other=OtherPhotos(**obj["other"]) if obj.get("other") else None,
            suspect_labels=SuspectLabels.from_json(obj["suspect_labels"]) if obj.get("suspect_labels") else None)


def is_imbalanced(class_counts: list[int]) -> bool:
    counts = [c for c in class_counts if c]
    return bool(counts) and max(counts) >= IMBALANCE_RATIO * min(counts)


def best_float_backbone(backbones: dict[str, Backbone], balanced: bool = False) -> Backbone:
    """The backbone whose float model is the most accurate (balanced accuracy on an imbalanced test
    split): the budget's and the paired evidence's reference."""
    return max(backbones.values(), key=lambda b: b.reference.judged_accuracy(balanced))
