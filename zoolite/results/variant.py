"""What one model file measured: the :class:`Variant` record of the results, and its parts (latency,
agreement, per-class figures, fidelity, "none of these")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from zoolite.measure.intervals import Interval
from zoolite.measure.stats import FidelityRow, PairedComparison
from zoolite.targets import Role, Target, get_target

MB = 1e6


def interval_from_json(obj: dict | None) -> Interval | None:
    if obj is None:
        return None
    return Interval(**{**obj, "estimate": math.nan if obj.get("estimate") is None else obj["estimate"]})


def paired_from_json(obj: dict | None) -> PairedComparison | None:
    if not obj:
        return None
    return PairedComparison(**{**obj, "difference_interval": interval_from_json(obj["difference_interval"]),
                               **{k: math.nan if obj[k] is None else obj[k]
                                  for k in ("variant_accuracy", "reference_accuracy", "difference")}})


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
        return cls(**{**obj, "interval": interval_from_json(obj["interval"])})


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
    # with test photos, with the interval of balanced accuracy (intervals.balanced_accuracy_interval).
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
        return cls(**{**obj, "kept_interval": interval_from_json(obj["kept_interval"]),
                      "rejected_interval": interval_from_json(obj.get("rejected_interval")),
                      "paired": paired_from_json(obj.get("paired")),
                      "per_class": None if obj.get("per_class") is None else
                      {name: ClassKept.from_json(c) for name, c in obj["per_class"].items()},
                      "balanced_kept_interval": interval_from_json(obj.get("balanced_kept_interval")),
                      "balanced_answered_right_interval": interval_from_json(obj.get("balanced_answered_right_interval"))})


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
        return cls(**{**obj, "median_interval": interval_from_json(obj.get("median_interval")),
                      "mean_interval": interval_from_json(obj.get("mean_interval"))})


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
        return cls(**{**obj, "recall_interval": interval_from_json(obj.get("recall_interval"))})


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
    role: Role
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

    def __post_init__(self):
        self.role = Role(self.role)  # a name given as text ("reference") becomes its Role

    @property
    def shippable(self) -> bool:
        return self.role is Role.SHIPPABLE

    @property
    def target_spec(self) -> Target:
        """The registry's entry for this variant's target: its family, mode, clients and twin."""
        return get_target(self.target)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / MB

    @classmethod
    def from_json(cls, obj: dict) -> "Variant":
        obj = dict(obj)
        obj["role"] = Role(obj["role"])
        obj["latency"] = Latency.from_json(obj["latency"])
        obj["other_latency"] = {k: Latency.from_json(v) for k, v in obj.get("other_latency", {}).items()}
        obj["agreement"] = Agreement(**obj["agreement"]) if obj.get("agreement") else None
        obj["accuracy_interval"] = interval_from_json(obj.get("accuracy_interval"))
        obj["top_k_interval"] = interval_from_json(obj.get("top_k_interval"))
        obj["paired"] = paired_from_json(obj.get("paired"))
        obj["rejection"] = RejectionMeasure.from_json(obj["rejection"]) if obj.get("rejection") else None
        obj["per_class"] = {name: ClassMeasure.from_json(c) for name, c in obj.get("per_class", {}).items()}
        obj["balanced_accuracy_interval"] = interval_from_json(obj.get("balanced_accuracy_interval"))
        obj["balanced_paired"] = BalancedComparison(**obj["balanced_paired"]) if obj.get("balanced_paired") else None
        obj["fidelity"] = Fidelity.from_json(obj.get("fidelity"))
        return cls(**obj)

    def judged_accuracy(self, balanced: bool) -> float:
        """The accuracy the budget judges: balanced when the test split is imbalanced (and it was measured)."""
        return self.balanced_accuracy if balanced and self.balanced_accuracy is not None else self.accuracy
