"""Measuring "none of these" on any variant's output: the photos each file keeps at the threshold.

The gate is fitted and folded into the model by :mod:`zoolite.model.rejection`; what is measured
here reads only the scores a file outputs, so every runtime's file is measured alike: the class
photos kept, overall and per class, the held-out ``--other`` photos rejected, and both against the
float model on the same photos. :func:`expected_calibration_error` tells how well the temperature
calibrated the probabilities.
"""

from __future__ import annotations

import numpy as np

from zoolite.measure import intervals, stats
from zoolite.results import ClassKept, RejectionMeasure


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by their photos."""
    p = np.asarray(probabilities, np.float64)
    right = stats.answers(p) == np.asarray(labels)
    p = p / np.maximum(p.sum(1, keepdims=True), np.finfo(np.float64).tiny)  # a row of zeros: confidence 0
    confidence = p.max(1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(confidence[which == b].mean() - right[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def kept(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which photos a file's output keeps: the rule MediaPipe applies (top score >= threshold)."""
    return np.asarray(scores).max(1) >= threshold


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a class photo scores above another photo (ties count half)."""
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # average ranks of ties
        ties = values == value
        ranks[ties] = ranks[ties].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def curve(positive: np.ndarray, negative: np.ndarray, points: int = 101) -> list[list[float]]:
    """[threshold, share of class photos kept, share of other photos rejected] over thresholds."""
    top = np.concatenate([positive, negative])
    thresholds = np.unique(np.quantile(top, np.linspace(0, 1, points)))
    return [[float(t), float(np.mean(positive >= t)), float(np.mean(negative < t))] for t in thresholds]


def kept_per_class(scores: np.ndarray, keep: np.ndarray, labels: np.ndarray, class_names: list[str],
                   reference_keep: np.ndarray | None = None) -> dict:
    """What users of each class feel, as :class:`RejectionMeasure` fields: each class's share of photos
    kept (with, against the float model's ``reference_keep``, the photos kept only here / only there and
    the Holm-corrected test that the class loses them), the balanced kept share, and the balanced share
    answered and right (a rejected photo counts as a miss)."""
    labels, n = np.asarray(labels, dtype=int), len(class_names)
    photos = np.bincount(labels, minlength=n)
    kept_photos = np.bincount(labels[keep], minlength=n)
    answered_right = np.bincount(labels[keep & (np.asarray(scores).argmax(1) == labels)], minlength=n)
    losses = [{}] * n if reference_keep is None else \
        [vars(loss) for loss in stats.class_losses(keep, reference_keep, labels, n)]
    balanced_kept = intervals.balanced_accuracy_interval(kept_photos, photos)
    balanced_right = intervals.balanced_accuracy_interval(answered_right, photos)
    return {"per_class": {name: ClassKept(int(kept_photos[i]), int(photos[i]),
                                          intervals.proportion_interval(int(kept_photos[i]), int(photos[i])), **losses[i])
                          for i, name in enumerate(class_names)},
            "balanced_kept": balanced_kept.estimate, "balanced_kept_interval": balanced_kept,
            "balanced_answered_right": balanced_right.estimate, "balanced_answered_right_interval": balanced_right}


def measure(scores: np.ndarray, labels: np.ndarray, class_names: list[str], other_scores: np.ndarray | None,
            threshold: float, reference: tuple[np.ndarray, np.ndarray | None] | None = None) -> RejectionMeasure:
    """A variant's rejection at ``threshold``: ``scores`` on the class photos of the test split (of
    ``labels``, indices into ``class_names``), overall and per class (:func:`kept_per_class`);
    ``other_scores`` on the held-out ``--other`` photos (or None); ``reference`` the float model's
    two score arrays for the paired comparisons."""
    keep = kept(scores, threshold)
    measured = RejectionMeasure(kept=int(keep.sum()), photos=len(keep),
                                kept_interval=intervals.proportion_interval(int(keep.sum()), len(keep)),
                                **kept_per_class(scores, keep, labels, class_names,
                                                 None if reference is None else kept(reference[0], threshold)))
    if other_scores is None or len(other_scores) == 0:
        return measured
    reject = ~kept(other_scores, threshold)
    positive, negative = np.asarray(scores).max(1), np.asarray(other_scores).max(1)
    measured.rejected, measured.other_photos = int(reject.sum()), len(reject)
    measured.rejected_interval = intervals.proportion_interval(int(reject.sum()), len(reject))
    measured.auroc = auroc(positive, negative)
    measured.curve = curve(positive, negative)
    if reference is not None:
        measured.paired = stats.compare_paired(reject, ~kept(reference[1], threshold))
    return measured


def lost_rejection(variant: RejectionMeasure, reference: RejectionMeasure, max_drop_pp: float,
                   significance: float = 0.05) -> bool:
    """True when ``variant`` rejects fewer held-out other photos than ``reference`` by more than
    the budget, and the loss is real: more decisions lost than won with a one-sided exact
    McNemar p below ``significance`` (the accuracy rule, applied to rejection)."""
    if variant.rejected is None or reference.rejected is None or variant.paired is None:
        return False
    if variant.rejected_rate >= reference.rejected_rate - max_drop_pp / 100 - 1e-8:
        return False
    paired = variant.paired
    return paired.only_reference_right > paired.only_variant_right and paired.mcnemar_p / 2 < significance
