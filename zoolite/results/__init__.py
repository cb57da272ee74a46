"""The results model: what a run measured, as typed data with a schema version.

Every consumer (the recommendation, tables, plots, report.html, export, the CLI and
notebooks) reads these classes, never dicts by position. ``results.json`` is their JSON
form; :func:`load` is the one place that reads it: it upgrades files of older schema
versions and refuses anything else in one line.

    Run ── machine: Machine, dataset: Dataset, split: SplitSizes, unlabelled, other
        ├─ backbones: {name: Backbone} ── training: Training, rejection: Rejection
        │                              └─ variants: [Variant]  (the reference first)
        │                                   └─ latency, per_class, fidelity, rejection, paired ...
        └─ recommendation: Recommendation
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoolite.config import Budget, RunConfig
from zoolite.errors import ZooliteError
from zoolite.measure.stats import FidelityRow, Interval, PairedComparison

# 5: typed leaves (machine, dataset, split, training, fidelity rows); a variant's target under "target".
# 6: "none of these" per class: each class's kept share, balanced kept and answered-and-right shares,
# and the gate as fitted per class (Rejection.classes); the duplicate groups kept within one split and the
# label-conflict photos left out (SplitSizes.duplicate_groups, duplicate_photos, conflicts); with --group-by,
# its pattern and the user groups in each split (SplitSizes.group_by, user_groups, user_group_photos, test_groups).
SCHEMA_VERSION = 6
MB = 1e6
# The test split counts as imbalanced, and the budget is judged on balanced accuracy, when its
# largest class has this many times the photos of its smallest.
IMBALANCE_RATIO = 1.5


def _interval(obj: dict | None) -> Interval | None:
    if obj is None:
        return None
    return Interval(**{**obj, "estimate": math.nan if obj.get("estimate") is None else obj["estimate"]})


def _paired(obj: dict | None) -> PairedComparison | None:
    if not obj:
        return None
    return PairedComparison(**{**obj, "difference_interval": _interval(obj["difference_interval"]),
                               **{k: math.nan if obj[k] is None else obj[k]
                                  for k in ("variant_accuracy", "reference_accuracy", "difference")}})


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
    cores: int | None
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
    """A photo whose class folder its backbone features confidently disagree with (:mod:`zoolite.apps.check`)."""

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
class TrainingStage:
    """One training stage as Keras ran it: per-epoch figures and where early stopping left it."""

    # Per epoch; the validation figures once per validation_freq epochs (none if no epoch was validated).
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    epochs_run: int = 0
    best_epoch: int | None = None  # 1-based: the epoch whose weights were kept (None: the last)
    stopped_epoch: int | None = None  # 1-based: where early stopping ended it (None: ran every epoch)
    validation_freq: int = 1
    class_weights: list[float] | None = None  # per class, when the loss was weighted


@dataclass
class Training:
    """How a backbone's classifier was trained: the head (or the whole network from scratch), then
    optional fine-tuning of the base's top layers."""

    head: TrainingStage
    fine_tune: TrainingStage | None = None

    @property
    def stages(self) -> list[tuple[str, TrainingStage]]:
        """(name, stage) of the stages that ran, in order."""
        return [(name, stage) for name, stage in (("head", self.head), ("fine_tune", self.fine_tune)) if stage]

    @classmethod
    def from_json(cls, obj: dict) -> "Training":
        return cls(TrainingStage(**obj["head"]), TrainingStage(**obj["fine_tune"]) if obj.get("fine_tune") else None)


@dataclass
class Fidelity:
    """Label-free fidelity of a variant to its backbone's float model, by the float model's confidence
    (:func:`zoolite.measure.stats.agreement_by_confidence`): on the test images and the unlabelled photos."""

    test: list[FidelityRow]
    unlabelled: list[FidelityRow] | None = None

    def sets(self) -> dict[str, list[FidelityRow]]:
        """The image sets it was measured on ("test", "unlabelled") and their rows."""
        return {name: rows for name, rows in (("test", self.test), ("unlabelled", self.unlabelled)) if rows}

    @classmethod
    def from_json(cls, obj: dict) -> "Fidelity | None":
        if not obj:
            return None
        return cls(*([FidelityRow(**row) for row in obj[name]] if obj.get(name) else None
                     for name in ("test", "unlabelled")))


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
        return cls(**{**obj, "kept_interval": _interval(obj["kept_interval"])})


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
class ClassKept:
    """One class's test photos kept (answered as one of the classes, not "none of these") by one variant,
    and what it kept or rejected there against its backbone's float model."""

    kept: int
    photos: int  # test photos of the class
    interval: Interval  # 95% Wilson, of the kept share
    # Against the float model on the class's photos, as ClassMeasure's: kept only here / only there, the
    # one-sided exact test that the class's kept share is lost, and that p Holm-corrected over the classes.
    won: int | None = None
    lost: int | None = None
    loss_p: float | None = None
    loss_p_holm: float | None = None

    @property
    def rate(self) -> float:
        return self.kept / self.photos if self.photos else 0.0  # as ClassMeasure.recall

    @classmethod
    def from_json(cls, obj: dict) -> "ClassKept":
        return cls(**{**obj, "interval": _interval(obj["interval"])})


@dataclass
class RejectionMeasure:
    """One variant's "none of these" at the shipped threshold."""

    kept: int  # test photos of the classes it kept
    photos: int
    kept_interval: Interval
    rejected: int | None = None  # held-out --other photos it rejected
    other_photos: int | None = None
    rejected_interval: Interval | None = None
    auroc: float | None = None  # top score separating class photos from other photos
    # Against this backbone's float model, on the same other photos: rejected by one, kept by the other.
    paired: PairedComparison | None = None
    curve: list[list[float]] | None = None  # [threshold, kept, rejected] as the threshold moves
    # What users of each class feel (None: results before schema 6). Balanced: the mean over the classes
    # with test photos, with the interval of balanced accuracy (stats.balanced_accuracy_interval).
    per_class: dict[str, ClassKept] | None = None
    balanced_kept: float | None = None
    balanced_kept_interval: Interval | None = None
    # Balanced accuracy with a rejected class photo counted wrong: kept and its top-1 class right.
    balanced_answered_right: float | None = None
    balanced_answered_right_interval: Interval | None = None

    @property
    def kept_rate(self) -> float:
        return self.kept / self.photos

    @property
    def rejected_rate(self) -> float | None:
        return None if self.rejected is None else self.rejected / self.other_photos

    def fewest_kept(self) -> tuple[str, ClassKept] | None:
        """The class with test photos whose share kept is the lowest (the first in label order on a tie)."""
        present = [(name, c) for name, c in (self.per_class or {}).items() if c.photos]
        return min(present, key=lambda item: item[1].rate) if present else None

    @classmethod
    def from_json(cls, obj: dict) -> "RejectionMeasure":
        return cls(**{**obj, "kept_interval": _interval(obj["kept_interval"]),
                      "rejected_interval": _interval(obj.get("rejected_interval")),
                      "paired": _paired(obj.get("paired")),
                      "per_class": None if obj.get("per_class") is None else
                      {name: ClassKept.from_json(c) for name, c in obj["per_class"].items()},
                      "balanced_kept_interval": _interval(obj.get("balanced_kept_interval")),
                      "balanced_answered_right_interval": _interval(obj.get("balanced_answered_right_interval"))})


@dataclass
class Latency:
    """Single-image call times, in milliseconds, with 95% bootstrap intervals of the median and
    mean (their spread over the timed calls of this run; not across machines or sessions)."""

    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    min_ms: float
    runs: int
    first_inference_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    median_interval: Interval | None = None
    mean_interval: Interval | None = None

    @classmethod
    def from_json(cls, obj: dict) -> "Latency":
        return cls(**{**obj, "median_interval": _interval(obj.get("median_interval")),
                      "mean_interval": _interval(obj.get("mean_interval"))})


@dataclass
class Agreement:
    """How closely a variant follows the reference model on the same images."""

    top1_agreement: float
    mean_abs_prob_diff: float


@dataclass
class ClassMeasure:
    """One class's test photos under one variant, and what it won or lost there against the float model."""

    precision: float
    recall: float
    f1: float
    support: int  # test photos of the class
    recall_interval: Interval | None = None  # 95% Wilson
    # Against this backbone's float model on the class's photos: right only here / only there, the
    # one-sided exact test that the class is lost, and that p corrected for the number of classes (Holm).
    won: int | None = None
    lost: int | None = None
    loss_p: float | None = None
    loss_p_holm: float | None = None

    @classmethod
    def from_json(cls, obj: dict) -> "ClassMeasure":
        return cls(**{**obj, "recall_interval": _interval(obj.get("recall_interval"))})


@dataclass
class BalancedComparison:
    """A variant's balanced accuracy against the run's most accurate float model on the same test images."""

    difference: float  # balanced accuracy of the variant minus the reference's
    loss_p: float  # one-sided sign-flip p that the variant is less accurate (stats.balanced_loss_p)


@dataclass
class Variant:
    """One backbone's model file of one target (a runtime family x a mode), measured. A run names its
    variants by their targets: within a backbone, one variant per target."""

    target: str  # the target's name, e.g. "int8", "onnxruntime_int8"
    family: str  # "keras", "litert"
    mode: str
    role: str  # "reference" (the float model others are compared with) or "shippable"
    file: str  # relative to the run folder
    size_bytes: int
    load_ms: float
    loss: float
    accuracy: float
    top_k: int
    top_k_accuracy: float
    latency: Latency
    threads: str
    backend: str
    eval_seconds: float
    input_dtype: str
    params: int | None = None
    other_latency: dict[str, Latency] = field(default_factory=dict)  # e.g. Keras as a tf.function
    agreement: Agreement | None = None  # with the backbone's reference
    confusion_matrix: list[list[int]] = field(default_factory=list)
    per_class: dict[str, ClassMeasure] = field(default_factory=dict)
    accuracy_interval: Interval | None = None  # 95% Wilson interval
    top_k_interval: Interval | None = None
    # Against the run's most accurate float model (the budget's reference), on the same test images.
    paired: PairedComparison | None = None
    fidelity: Fidelity | None = None  # to this backbone's float model (None: results of zoolite 0.1)
    rejection: RejectionMeasure | None = None  # "none of these" at the backbone's shipped threshold
    balanced_accuracy: float | None = None  # mean recall over the classes (None: results before schema 4)
    balanced_accuracy_interval: Interval | None = None
    balanced_paired: BalancedComparison | None = None  # against the run's most accurate float model

    @property
    def shippable(self) -> bool:
        return self.role == "shippable"

    @property
    def size_mb(self) -> float:
        return self.size_bytes / MB

    @classmethod
    def from_json(cls, obj: dict) -> "Variant":
        obj = dict(obj)
        obj["latency"] = Latency.from_json(obj["latency"])
        obj["other_latency"] = {k: Latency.from_json(v) for k, v in obj.get("other_latency", {}).items()}
        obj["agreement"] = Agreement(**obj["agreement"]) if obj.get("agreement") else None
        obj["accuracy_interval"] = _interval(obj.get("accuracy_interval"))
        obj["top_k_interval"] = _interval(obj.get("top_k_interval"))
        obj["paired"] = _paired(obj.get("paired"))
        obj["rejection"] = RejectionMeasure.from_json(obj["rejection"]) if obj.get("rejection") else None
        obj["per_class"] = {name: ClassMeasure.from_json(c) for name, c in obj.get("per_class", {}).items()}
        obj["balanced_accuracy_interval"] = _interval(obj.get("balanced_accuracy_interval"))
        obj["balanced_paired"] = BalancedComparison(**obj["balanced_paired"]) if obj.get("balanced_paired") else None
        obj["fidelity"] = Fidelity.from_json(obj.get("fidelity"))
        return cls(**obj)

    def judged_accuracy(self, balanced: bool) -> float:
        """The accuracy the budget judges: balanced when the test split is imbalanced (and it was measured)."""
        return self.balanced_accuracy if balanced and self.balanced_accuracy is not None else self.accuracy


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

    @property
    def reference(self) -> Variant:
        return next(v for v in self.variants if v.role == "reference")

    @property
    def shippable(self) -> list[Variant]:
        return [v for v in self.variants if v.shippable]

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.target == name), None)

    @classmethod
    def from_json(cls, obj: dict) -> "Backbone":
        return cls(**{**obj, "variants": [Variant.from_json(v) for v in obj["variants"]],
                      "training": Training.from_json(obj["training"]),
                      "rejection": Rejection.from_json(obj["rejection"]) if obj.get("rejection") else None})


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

    def recommended(self) -> tuple[Backbone, Variant] | None:
        r = self.recommendation
        if r is None or r.variant is None:
            return None
        backbone = self.backbones[r.backbone]
        return backbone, backbone.variant(r.variant)

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


def _upgrade_v1(obj: dict) -> dict:
    """zoolite 0.1's results.json (no schema_version): untyped rows, the Keras model first."""
    for name, backbone in obj["backbones"].items():
        backbone["name"] = name
        rows = backbone["variants"]
        params = rows[0].get("params")
        for row in rows:
            keras = row["variant"] == "keras"
            top_k = next(key for key in row if key.startswith("top") and key.endswith("_accuracy"))
            row.update({
                "family": "keras" if keras else "litert", "mode": "float32" if keras else row["variant"],
                "role": "reference" if keras else "shippable", "top_k": int(top_k[3:-9]),
                "top_k_accuracy": row.pop(top_k), "input_dtype": row.get("input_dtype", "float32"),
                "params": params, "agreement": row.pop("agreement_with_keras", None),
                "other_latency": {"tf_function": row.pop("latency_tf_function")} if "latency_tf_function" in row else {},
            })
            row.pop("size_vs_float32_tflite", None)
    budget = (obj.get("recommendation") or {}).get("budget") or obj["config"].get("budget", {})
    obj["recommendation"] = {"budget": budget, **{k: (obj.get("recommendation") or {}).get(k)
                                                  for k in ("reason", "backbone", "variant")}}
    obj["config"].setdefault("budget", budget)
    return obj


def _upgrade(obj: dict, version: int) -> dict:
    """Results of an older schema in the current one's shape."""
    if version == 1:
        obj = _upgrade_v1(obj)
    if version < 5:  # a variant's target was under "variant"
        for backbone in obj["backbones"].values():
            for row in backbone["variants"]:
                row["target"] = row.pop("variant")
    return obj


def load(run_dir: str | Path) -> Run:
    """The results of a finished run folder (any schema version this zoolite reads); a one-line
    error for anything else."""
    from zoolite.runs.layout import RunLayout

    layout = RunLayout(Path(run_dir))
    path = layout.results
    if not layout.root.is_dir():
        raise ZooliteError(f"{layout.root}: run folder not found; pass a folder under runs/")
    if not layout.is_complete() or not path.is_file():
        if layout.config.is_file() or layout.incomplete_marker.exists():
            raise ZooliteError(f"{layout.root}: this run did not finish; finish it with "
                               f"`zoolite run --resume {layout.root}`")
        raise ZooliteError(f"{layout.root}: not a zoolite run folder (no results.json); pass a folder under runs/")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{path}: damaged results file ({e}); re-run with `zoolite run`") from None
    if not isinstance(obj, dict) or not obj.get("backbones"):
        raise ZooliteError(f"{path}: not zoolite results (no backbones); pass a folder under runs/")
    version = obj.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ZooliteError(f"{path}: written by a newer zoolite (results schema {version}, this one reads up to "
                           f"{SCHEMA_VERSION}); upgrade zoolite to read it")
    try:
        run = Run.from_json(_upgrade(obj, version))
    except (KeyError, TypeError, ValueError, StopIteration) as e:
        raise ZooliteError(f"{path}: damaged results file (schema {version}: {type(e).__name__} {e}); "
                           "re-run with `zoolite run`") from None
    run.run_dir = str(layout.root)  # the folder may have moved since the run
    return run
