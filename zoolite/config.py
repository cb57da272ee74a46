"""Every option of zoolite, declared once: defaults, help, the command-line flag and the constraint.

The option classes (:class:`RunConfig` and the groups it holds: :class:`TrainConfig`,
:class:`LatencyConfig`, :class:`Budget`) are plain dataclasses. Each field declares its
constraint, and one engine (:func:`zoolite.constraints.check`) enforces them all, so every
message reads the same way: ``--epochs 0: must be above 0``. The CLI builds its flags from the
same declarations (:mod:`zoolite.cli`), so defaults and checks live here only. This module
imports no TensorFlow: ``zoolite --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from zoolite.constraints import Check, Range, check, fields_with_flags, flag_of, one_of, option
from zoolite.errors import ZooliteError

SAMPLE_DATA = Path(__file__).parent / "sample" / "animals10"
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
PATH_OPTIONS = ("data", "labels", "unlabelled", "other")  # folders and files a run reads
# config.json's own version (the results have theirs). A run is resumed only from files of this version:
# bump it with any change to the options or to a stage's files (history.json, rejection.json, the
# measurements). config.json files before it carried the results' schema_version instead.
CONFIG_VERSION = 4  # 2: rejection.json per class (results schema 6); --keep-duplicates, --group-by; 3: --head;
# 4: --max-warmup-seconds
AUGMENTATIONS = ("none", "flip", "standard")  # zoolite.model.augmentation builds them


# --- the option groups -----------------------------------------------------------------------

ABOVE_0 = Range(0, None, "neither")
AT_LEAST_0 = Range(0, None)
AT_LEAST_1 = Range(1, None)


def _renamed(cls, options: dict, warn: bool) -> dict:
    """``options`` with the old names of renamed options (``renamed_from``) under their new ones."""
    for f in fields_with_flags(cls):
        old = (f.metadata.get("renamed_from") or "")[2:].replace("-", "_")
        if old in options:
            if warn:
                warnings.warn(f"{old} is deprecated; use {f.name}", DeprecationWarning, stacklevel=3)
            options[f.name] = options.pop(old)
    return options


@dataclass
class ModelOptions:
    """How ``zoolite evaluate`` runs a model file."""

    threads: int | None = option(None, "threads of the model's runtime (default: every core this process may use)",
                                 AT_LEAST_1, optional=True)

    def __post_init__(self):
        check(self)


@dataclass
class PredictOptions(ModelOptions):
    """How ``zoolite predict`` runs a model file and what it shows."""

    top: int = option(3, "classes shown per photo, best first", AT_LEAST_1)


# The options only training by epochs reads: a head by the recipe (--head recipe), fine-tuning, a network from
# scratch.
EPOCH_OPTIONS = ("epochs", "batch_size", "learning_rate", "validation_freq", "patience", "start_from_epoch",
                 "lr_decay", "dropout")


@dataclass
class TrainConfig:
    """The training recipe: the reference project's, with a learning rate tuned for small data, and by default
    the head on a frozen base fitted as a regularised logistic regression instead of by epochs (``head``).

    ``start_from_epoch`` has Keras's meaning: that many epochs pass before early
    stopping watches ``val_loss``. The learning rate is kept for the first epoch and
    multiplied by ``exp(-lr_decay)`` every epoch after.
    """

    # benchmarks/head_fit.py: on unit-length features, at scikit-learn's default C, +2.2 pp balanced accuracy on
    # photos kept out of training and +2.9 on sources never trained on, the lowest class +11 and +13.
    head: str = option("logistic", "how the head is fitted on the frozen base's features: 'logistic' (an "
                                   "L2-regularised logistic regression on the features scaled to unit length, "
                                   "fitted to convergence) or 'recipe' (the reference project's: a dense layer "
                                   "trained by Adam with --epochs, --learning-rate, --dropout and early stopping)",
                       one_of("logistic", "recipe"))
    head_c: float = option(1.0, "with --head logistic: the inverse strength of its L2 regularisation "
                                "(scikit-learn's C; smaller is stronger)", ABOVE_0)
    epochs: int = option(40, "most training epochs (of --head recipe, fine-tuning and a network from scratch)",
                         ABOVE_0)
    batch_size: int = option(32, "images per training batch", ABOVE_0)
    # measured: lower test loss than 1e-3 on small sets, same accuracy (benchmarks/learning_rate.py)
    learning_rate: float = option(3e-3, "Adam learning rate of the head with --head recipe (and of a network "
                                        "from scratch)", ABOVE_0)
    validation_freq: int = option(3, "validate every N epochs", ABOVE_0)
    patience: int = option(2, "validations without val_loss improvement before stopping", AT_LEAST_0)
    start_from_epoch: int = option(3, "epochs before early stopping starts watching", AT_LEAST_0)
    lr_decay: float = option(0.15, "the learning rate is multiplied by e^-DECAY every epoch", AT_LEAST_0)
    dropout: float = option(0.2, "dropout before the dense head with --head recipe (and from scratch)",
                            Range(0, 1, "left"))
    fine_tune_layers: int = option(0, "after the head, also train the top N layers of the base (counted as in "
                                      "the base model's layer list) on images; 0: no fine-tuning", AT_LEAST_0)
    fine_tune_learning_rate: float = option(1e-5, "learning rate of fine-tuning", ABOVE_0)
    class_weights: str = option("auto", "'auto': weigh each class's photos in the loss inversely to its count "
                                        "(scikit-learn's 'balanced'; all 1 on balanced data), in both training "
                                        "stages; 'none': every photo weighs 1", one_of("auto", "none"))
    # benchmarks/augmentation.py (10 splits of animals10-large, the head trained by the recipe): class weights
    # +2.7 pp balanced accuracy; augmentation on top of them -0.4 to +0.4 pp, within noise, for 8-9 s a view: off
    # by default.
    augment: str = option("none", "random changes to the training photos before the backbone: 'flip' "
                                  "(horizontal), 'standard' (flip, small rotation, zoom, contrast) or 'none'",
                          one_of(*AUGMENTATIONS))
    augment_views: int = option(1, "with --augment: augmented views of each training photo whose features are "
                                   "computed once, for the logistic head to fit beside the photo (each of them "
                                   "weighing 1 / (1 + N)) or for the recipe to draw from every epoch "
                                   "(fine-tuning augments on the fly instead)", AT_LEAST_1)

    def __post_init__(self):
        check(self)

    def unused_epoch_options(self, pretrained: bool) -> list[str]:
        """The flags of the options of training by epochs set away from their defaults in a run that trains
        nothing by epochs: a logistic head on a ``pretrained`` base, no fine-tuning."""
        if self.head != "logistic" or self.fine_tune_layers or not pretrained:
            return []
        default = TrainConfig()
        return [flag_of(f) for f in fields_with_flags(TrainConfig)
                if f.name in EPOCH_OPTIONS and getattr(self, f.name) != getattr(default, f.name)]


@dataclass
class LatencyConfig:
    """``warmup`` untimed single-image calls, then up to ``runs`` timed ones (cycling the images).

    Like LiteRT's benchmark tool, timing also stops once ``max_seconds`` have been spent,
    provided ``min_runs`` calls are in, so a slow model does not stall the run. Warm-up stops likewise once
    ``max_warmup_seconds`` have been spent, after one call: a call slow enough for that (Keras called eagerly)
    is already steady by then, and ten of them would cost seconds a variant.
    """

    warmup: int = option(10, "untimed single-image calls before timing (at most)", AT_LEAST_0)
    # None: no limit (the runs of zoolite 0.8 and older)
    max_warmup_seconds: float | None = option(1.0, "stop warming up after this long, once one warm-up call is in",
                                              AT_LEAST_0, optional=True)
    runs: int = option(100, "timed single-image calls (at most)", AT_LEAST_1)
    max_seconds: float = option(2.0, "stop timing a variant after this long, once --min-runs calls are in",
                                ABOVE_0, flag="--max-latency-seconds")
    min_runs: int = option(20, "timed calls made even past --max-latency-seconds", AT_LEAST_1)

    def __post_init__(self):
        check(self)


@dataclass(frozen=True)
class Budget:
    """What the recommendation may accept: an accuracy drop in percentage points below the run's
    most accurate float model, and optional limits on mean latency and file size."""

    max_accuracy_drop_pp: float = option(1.0, "recommend only variants at most PP percentage points less "
                                              "accurate than the run's best float model", AT_LEAST_0,
                                         flag="--max-accuracy-drop")
    max_latency_ms: float | None = option(None, "recommend only variants with a mean latency per image of at "
                                                "most MS (default: no limit)", ABOVE_0, optional=True)
    max_size_mb: float | None = option(None, "recommend only files of at most MB megabytes (default: no limit)",
                                       ABOVE_0, optional=True)
    max_rejection_drop_pp: float = option(2.0, "recommend only variants that reject at most PP percentage points "
                                               "fewer held-out --other photos than their float model",
                                          AT_LEAST_0, flag="--max-rejection-drop")

    def __post_init__(self):
        check(self)

    def accuracy_floor(self, best_reference_accuracy: float) -> float:
        """The lowest accuracy (a fraction) the budget accepts. The one place the rule lives: the
        recommendation and the report's plot both use it."""
        return best_reference_accuracy - self.max_accuracy_drop_pp / 100

    def describe(self, rejection_measured: bool = False, accuracy: str = "accuracy") -> str:
        """The limits in words (``accuracy`` names what the drop is judged on); the rejection drop only
        where rejection was measured (``--other``)."""
        parts = [f"{accuracy} drop ≤ {self.max_accuracy_drop_pp:g} pp, no class lost"]
        if rejection_measured:
            parts.append(f"rejection drop ≤ {self.max_rejection_drop_pp:g} pp")
        if self.max_latency_ms is not None:
            parts.append(f"mean latency ≤ {self.max_latency_ms:g} ms")
        if self.max_size_mb is not None:
            parts.append(f"size ≤ {self.max_size_mb:g} MB")
        return ", ".join(parts)

    def to_json(self) -> dict:
        return asdict(self)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def _split_ok(fractions) -> bool:  # validation photos fit the gate and stop training: none is not an option
    return len(fractions) == 3 and all(f > 0 for f in fractions) and abs(sum(fractions) - 1) < 1e-6


def _regex_ok(pattern) -> bool:
    import re

    try:
        re.compile(pattern)
    except (re.error, TypeError, RecursionError):
        return False
    return True


def _known(registry: Callable[[], dict], what: str) -> Check:
    """Each name must be in ``registry()``, a dict or tuple of names (looked up when checked, so importing
    this module stays light)."""
    return Check(lambda names: bool(names) and all(n in registry() for n in names),
                 lambda: f"known {what}; choose from: {', '.join(registry())}")


def _backbones() -> dict:
    from zoolite.model.backbones import BACKBONES

    return BACKBONES


def _runtimes() -> dict:
    from zoolite.targets import RUNTIMES

    return RUNTIMES


def _modes() -> tuple:
    from zoolite.targets import MODES

    return MODES


@dataclass
class RunConfig:
    """Everything a run depends on; saved as ``config.json`` so a run can be resumed."""

    data: str = option(str(SAMPLE_DATA), "folder with one sub-folder of images per class (default: bundled sample)")
    backbones: tuple[str, ...] = option((DEFAULT_BACKBONE,), "comma-separated backbone names, compared side by "
                                        "side (docs/usage.md lists them)", _known(_backbones, "backbones"),
                                        parse=_names)
    weights: str | None = option(None, "'imagenet' (default), 'none' (random init, said so in the report) or a "
                                       "local no-top .h5 weights file of a keras.applications backbone")
    runs_dir: str = option("runs", "folder for run directories", flag="--out")
    seed: int = option(0, "seed of the split, training and calibration sample")
    split: tuple[float, float, float] = option(
        DEFAULT_FRACTIONS, "train,val,test fractions",
        Check(_split_ok, lambda: "three train,val,test fractions that sum to 1, each above 0 "
                                 "(e.g. 0.7,0.15,0.15)"), parse=_numbers)
    labels: str | None = option(None, "JSON map from folder names to labels (default: Animals-10's)")
    keep_duplicates: bool = option(False, "split as if every photo were distinct: copies of one photo (identical, "
                                          "re-encoded, scaled, cropped, mirrored) may land in train and test alike, "
                                          "and photos in two class folders stay in (default: each group of copies "
                                          "in one split, label conflicts left out)")
    group_by: str | None = option(
        None, "a regular expression searched in each photo's path relative to --data; its match (group 1 if it has "
              "one) names the photo's group, and each group lands whole in train, val or test, so the test figures "
              "estimate photos of a new group: e.g. '(video\\d+)_frame' for frames of one video, '^[^/]+/(pyis|c101)-' "
              "for a source prefix. Photos it does not match are each their own group; a group spanning several "
              "classes is split as a unit of its majority class (default: no groups)",
        Check(_regex_ok, lambda: "a valid Python regular expression, e.g. '(video\\d+)_frame'"), optional=True)
    unlabelled: str | None = option(None, "a folder of photos without labels (any layout, any subject): adds "
                                          "each variant's agreement with the float model on them to the report "
                                          "and to the recommendation's evidence")
    other: str | None = option(None, "a folder of photos of none of the classes (any layout, any subject): half "
                                     "fits the model's \"none of these\" rejection, half measures it (seeded split)")
    # benchmarks/rejection.py: on photos of sources left out of training, 0.90 keeps 94.9% (balanced) and rejects
    # 95.3% / 89.6% of two collections of other things; 0.95 rejects 78.8% / 70.6%.
    keep_rate: float = option(0.90, "share of its photos every class is estimated (out of sample) to keep at the "
                                    "\"none of these\" threshold; what scores lower is rejected",
                              Range(0, 1, "neither"))
    # benchmarks/calibration.py: 10 to 300 photos agree with the float model alike; calibration costs
    # ~0.05 s a photo
    representative_images: int = option(50, "training photos (drawn evenly over the classes) that calibrate the "
                                             "integer quantization modes", AT_LEAST_1)
    threads: int | None = option(None, "threads of every runtime measured (default: every core this process may "
                                       "use)", AT_LEAST_1, optional=True)
    runtimes: tuple[str, ...] = option(tuple(), "comma-separated runtimes whose files are made and measured "
                                       "side by side, e.g. litert,onnxruntime,openvino (default: litert)",
                                       _known(_runtimes, "runtimes"), parse=_names)
    modes: tuple[str, ...] = option(tuple(), "comma-separated modes (how the weights and activations are stored: "
                                    "float32, float16, int8 ...), each made for every runtime that has it (default: "
                                    "all)", _known(_modes, "modes"), parse=_names, renamed_from="--quantizations")
    tensorboard: bool = option(True, "write TensorBoard logs of training")
    train: TrainConfig = option(TrainConfig(), "", cli=False)
    latency: LatencyConfig = option(LatencyConfig(), "", cli=False)
    budget: Budget = option(Budget(), "", cli=False)

    def __post_init__(self):
        from zoolite.targets import DEFAULT_RUNTIMES

        for f in fields_with_flags(type(self)):  # the command line's text form, from Python too
            if f.metadata["parse"] and isinstance(getattr(self, f.name), str):
                try:
                    setattr(self, f.name, f.metadata["parse"](getattr(self, f.name)))
                except ValueError as e:
                    raise ZooliteError(f"{flag_of(f)}: {e}") from None
        self.backbones, self.split = tuple(self.backbones), tuple(float(f) for f in self.split)
        self.runtimes = tuple(self.runtimes) or DEFAULT_RUNTIMES
        self.modes = tuple(self.modes) or tuple(_modes())
        check(self)
        self._check_variants()

    def _check_variants(self) -> None:
        """Every runtime asked for makes at least one file: a mode list it has none of is refused."""
        from zoolite.targets import MODES, chosen_targets

        for runtime in self.runtimes:
            if not chosen_targets((runtime,), self.modes):
                modes = [t.mode for t in chosen_targets((runtime,), MODES)]
                raise ZooliteError(f"--modes {','.join(self.modes)}: the runtime {runtime} has none "
                                   f"of these modes; add one of: {', '.join(modes)} (or leave {runtime} out of "
                                   "--runtimes)")

    def to_json(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the options as the run folder's config.json, with the file's own version."""
        from zoolite import storage

        storage.write_json(path, {"config_version": CONFIG_VERSION, **self.to_json()})

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        """The options a run folder's config.json holds; one line if it is damaged or of another version."""
        import json

        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            version = saved.pop("config_version", None)
            if version != CONFIG_VERSION:
                written = (f"config version {version}" if version is not None else
                           f"results schema {saved['schema_version']}" if "schema_version" in saved else "no version")
                raise ZooliteError(f"{path}: written by another zoolite version, which this one cannot resume "
                                   f"({written}; this one resumes config version {CONFIG_VERSION}); start a new run")
            return cls.from_json(saved)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ZooliteError(f"{path}: damaged run config ({e}); start a new run") from None

    @classmethod
    def from_json(cls, obj: dict) -> "RunConfig":
        obj = _renamed(cls, dict(obj), warn=False)  # files keep the names they were written with
        obj["train"] = TrainConfig(**obj["train"])
        obj["latency"] = LatencyConfig(**obj["latency"])
        obj["budget"] = Budget(**obj.get("budget", {}))
        return cls(**obj)

    @classmethod
    def from_options(cls, **options) -> "RunConfig":
        """A config from flat option names (as the CLI has them): recipe, latency and budget
        options go to their groups; anything not given keeps its default."""
        options = _renamed(cls, options, warn=True)
        for name in PATH_OPTIONS:  # saved whole, so that a run resumes from any working folder
            if options.get(name):
                options[name] = os.path.abspath(options[name])
        groups = {name: {f.name: options.pop(f.name) for f in dataclasses.fields(group) if f.name in options}
                  for name, group in (("train", TrainConfig), ("latency", LatencyConfig), ("budget", Budget))}
        return cls(**options, train=TrainConfig(**groups["train"]), latency=LatencyConfig(**groups["latency"]),
                   budget=Budget(**groups["budget"]))
