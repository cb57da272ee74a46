"""How a backbone's classifier was trained, as results.json records it: the head, fitted as a logistic regression
(:class:`LogisticFit`) or trained by epochs (:class:`TrainingStage`), then optional fine-tuning by epochs."""

from __future__ import annotations

from dataclasses import dataclass, field


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
class LogisticFit:
    """The head fitted as an L2-regularised multinomial logistic regression on the unit-length features of the
    training photos, to convergence (scikit-learn's L-BFGS): no epochs. Losses are cross-entropies, each photo
    weighing its class's weight (a weighted mean)."""

    c: float  # the inverse regularisation strength
    iterations: int
    converged: bool
    loss: float  # on the training photos (and their augmented views)
    accuracy: float
    val_loss: float | None  # None: no validation photos
    val_accuracy: float | None
    class_weights: list[float] | None = None  # per class, when the loss was weighted
    kind: str = "logistic"  # tells it from a TrainingStage in results.json


@dataclass
class Training:
    """How a backbone's classifier was trained: the head (or the whole network from scratch), then
    optional fine-tuning of the base's top layers."""

    head: TrainingStage | LogisticFit
    fine_tune: TrainingStage | None = None

    @property
    def epoch_stages(self) -> list[tuple[str, TrainingStage]]:
        """(name, stage) of the stages that ran epoch by epoch, in order (not a head fitted as a logistic
        regression)."""
        return [(name, stage) for name, stage in (("head", self.head), ("fine_tune", self.fine_tune))
                if isinstance(stage, TrainingStage)]

    @classmethod
    def from_json(cls, obj: dict) -> "Training":
        head = obj["head"]
        return cls(LogisticFit(**head) if head.get("kind") == "logistic" else TrainingStage(**head),
                   TrainingStage(**obj["fine_tune"]) if obj.get("fine_tune") else None)
