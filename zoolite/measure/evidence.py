"""A variant's evidence: how it follows its backbone's float model, and how it compares with the run's most
accurate float model, on the same images. :func:`with_evidence` is the one place where a measured variant
becomes the complete :class:`~zoolite.results.Variant` that the results record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Generic, TypeVar

import numpy as np

from zoolite.measure import rejection, stats
from zoolite.measure.evaluation import agreement, per_class_report
from zoolite.results import BalancedComparison, Fidelity, Variant

T, U = TypeVar("T"), TypeVar("U")


@dataclass(frozen=True)
class ImageSets(Generic[T]):
    """One thing (photos, images, probabilities, files) for each image set a run measures on: the test
    split, the ``--unlabelled`` photos and the held-out half of ``--other`` (None: not given)."""

    test: T
    unlabelled: T | None = None
    other: T | None = None

    def given(self) -> list[T]:
        return [value for value in (self.test, self.unlabelled, self.other) if value is not None]

    def map(self, f: Callable[[T], U]) -> "ImageSets[U]":
        return ImageSets(*(None if value is None else f(value) for value in (self.test, self.unlabelled, self.other)))


@dataclass(frozen=True)
class BestFloat:
    """The run's most accurate float model (the budget's reference) on the test images."""

    correct: np.ndarray  # which test images it got right
    balanced_accuracy: float


def with_evidence(variant: Variant, outputs: ImageSets, reference: ImageSets, best: BestFloat, labels: np.ndarray,
                  class_names: list[str], threshold: float, params: int | None) -> Variant:
    """``variant`` as measured, with its evidence: against its backbone's float model (``reference``, its
    probabilities on the same image sets) its agreement, per-class evidence and fidelity, and its
    "none of these" at the shipped ``threshold``; against the run's ``best`` float model its paired
    evidence, overall and balanced over the classes. ``params``: the float model's (every variant holds
    the same weights, differently stored)."""
    n_classes = len(class_names)
    confusion, per_class = per_class_report(outputs.test, labels, class_names,
                                            None if outputs is reference else reference.test)
    correct = stats.answers(outputs.test) == labels
    won, lost = (np.bincount(labels[a & ~b], minlength=n_classes) for a, b in ((correct, best.correct),
                                                                               (best.correct, correct)))
    return replace(
        variant, params=params, agreement=agreement(outputs.test, reference.test), confusion_matrix=confusion,
        per_class=per_class,
        fidelity=Fidelity(stats.agreement_by_confidence(outputs.test, reference.test),
                          None if outputs.unlabelled is None else
                          stats.agreement_by_confidence(outputs.unlabelled, reference.unlabelled)),
        rejection=rejection.measure(outputs.test, labels, class_names, outputs.other, threshold,
                                    (reference.test, reference.other)),
        paired=stats.compare_paired(correct, best.correct),
        balanced_paired=BalancedComparison(difference=variant.balanced_accuracy - best.balanced_accuracy,
                                           loss_p=stats.balanced_loss_p(won, lost,
                                                                        np.bincount(labels, minlength=n_classes))))
