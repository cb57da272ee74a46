"""The statistics behind honest comparisons: paired tests, per-class losses, label-free fidelity.

zoolite scores every variant on the same few test images (often 20-200), so a raw
accuracy difference of a point or two is usually noise. This module gives the numbers a
comparison needs to be trustworthy (the intervals they rest on are in
:mod:`zoolite.measure.intervals`):

* :func:`mcnemar_exact`, :func:`paired_difference_interval`, :func:`compare_paired`:
  a variant against the float reference model *on the same images* (paired), which is far
  more sensitive than comparing two unpaired accuracies;
* :func:`detectable_drop_pp`: what a test set of ``n`` images can resolve at all;
* :func:`sign_test_loss_p`, :func:`holm`, :func:`class_losses`, :func:`balanced_loss_p`:
  imbalanced test sets, where a rare class's losses hide in the overall accuracy;
* :func:`agreement_by_confidence`: label-free fidelity of a variant to the reference on
  unlabelled photos.

Only numpy and the standard library are used: the paired interval is closed-form (Newcombe),
the tests are exact finite binomial sums or a seeded sign-flip draw, so SciPy (a 35 MB wheel)
is not needed. Functions take plain numbers or arrays and return floats or small dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from zoolite.measure.intervals import (Interval, check_confidence, check_counts, proportion_interval, wilson_bounds,
                                       z_score)

__all__ = [
    "PairedComparison", "mcnemar_exact", "paired_difference_interval", "compare_paired",
    "detectable_drop_pp", "agreement_by_confidence", "sign_test_loss_p",
    "holm", "ClassLoss", "class_losses", "balanced_loss_p",
]


# --------------------------------------------------------------------------- paired accuracy



NO_CLASS = -1


def answers(probabilities) -> np.ndarray:
    """The class each row of a file's output answers: its top score's, or ``NO_CLASS`` for a row of zeros (an
    integer file's output for a photo its gate rejects outright: every score rounded to 0, no class to read)."""
    p = np.asarray(probabilities)
    return np.where(p.max(axis=1) > 0, p.argmax(axis=1), NO_CLASS)

def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under "both models are equally accurate" each of the ``b + c`` discordant images is
    equally likely to favour either model, so ``b ~ Binomial(b + c, 1/2)``; the two-sided
    p-value is ``min(1, 2·P(X <= min(b, c)))``, computed exactly with integer arithmetic.
    Concordant images (both right, both wrong) carry no information about the difference.
    ``b + c == 0`` gives 1.0.
    """
    check_counts(b=b, c=c)
    m, k = int(b) + int(c), min(int(b), int(c))
    if m == 0:
        return 1.0
    term, total = 1, 0  # term = comb(m, i), updated in place to stay O(k) big-int steps
    for i in range(k + 1):
        total += term
        term = term * (m - i) // (i + 1)
    return min(1.0, 2 * total / (1 << m))  # int / int: correctly rounded, underflows to 0.0


def paired_difference_interval(n_both_right: int, n_only_variant_right: int,
                               n_only_reference_right: int, n_both_wrong: int,
                               confidence: float = 0.95) -> Interval:
    """Interval for accuracy(variant) − accuracy(reference) on the same ``n`` images.

    Newcombe's hybrid score method for paired data (Newcombe 1998, "Improved confidence
    intervals for the difference between binomial proportions based on paired data", Stat
    Med 17:2635, method 10). With a, b, c, d = both right, only variant right, only
    reference right, both wrong, the two accuracies are p1 = (a+b)/n and p2 = (a+c)/n with
    Wilson intervals (l1, u1), (l2, u2), and

        low  = (p1 − p2) − sqrt((p1−l1)² − 2φ(p1−l1)(u2−p2) + (u2−p2)²)
        high = (p1 − p2) + sqrt((u1−p1)² − 2φ(u1−p1)(p2−l2) + (p2−l2)²)

    where φ estimates the correlation of the two accuracies: (ad − bc)/sqrt(product of the
    four margins), with Newcombe's adjustment that a positive ad − bc is first reduced by
    n/2 (floored at 0), and φ = 0 when a margin is empty. Unlike the Wald interval it stays
    inside [-1, 1] and keeps a sensible width with few (or zero) discordant pairs.
    ``n == 0`` gives (-1, 1) with a NaN estimate.
    """
    check_counts(n_both_right=n_both_right, n_only_variant_right=n_only_variant_right,
                  n_only_reference_right=n_only_reference_right, n_both_wrong=n_both_wrong)
    confidence = check_confidence(confidence)
    a, b, c, d = (int(x) for x in (n_both_right, n_only_variant_right, n_only_reference_right, n_both_wrong))
    n = a + b + c + d
    if n == 0:
        return Interval(-1.0, 1.0, math.nan, confidence)
    z = z_score(confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_bounds(a + b, n, z)
    l2, u2 = wilson_bounds(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if margins == 0:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(margins)
    elif cross >= 0:
        phi = 0.0
    else:
        phi = cross / math.sqrt(margins)
    down = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    up = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    estimate = (b - c) / n
    return Interval(max(-1.0, estimate - down), min(1.0, estimate + up), estimate, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """A variant against the reference model on the same images.

    ``difference`` is accuracy(variant) − accuracy(reference) (negative: the variant lost
    accuracy); ``difference_interval`` is its Newcombe paired interval and ``mcnemar_p`` the
    exact McNemar p-value for "no difference". Accuracies and ``difference`` are NaN for n = 0.
    """

    n: int
    both_right: int
    only_variant_right: int
    only_reference_right: int
    both_wrong: int
    variant_accuracy: float
    reference_accuracy: float
    difference: float
    difference_interval: Interval
    mcnemar_p: float


def _as_correct(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of per-image correctness, got shape {array.shape}")
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name}: expected booleans (or 0/1), got values other than 0 and 1")
        array = array.astype(bool)
    return array


def compare_paired(variant_correct: ArrayLike, reference_correct: ArrayLike,
                   confidence: float = 0.95) -> PairedComparison:
    """Compare per-image correctness of a variant and the reference on the same images
    (element i of both arrays must be the same image)."""
    variant = _as_correct(variant_correct, "variant_correct")
    reference = _as_correct(reference_correct, "reference_correct")
    if variant.shape != reference.shape:
        raise ValueError(f"variant_correct has {variant.size} images, reference_correct "
                         f"{reference.size}: a paired comparison needs the same images")
    a = int(np.sum(variant & reference))
    b = int(np.sum(variant & ~reference))
    c = int(np.sum(~variant & reference))
    d = int(np.sum(~variant & ~reference))
    n = a + b + c + d
    interval = paired_difference_interval(a, b, c, d, confidence)
    return PairedComparison(
        n=n, both_right=a, only_variant_right=b, only_reference_right=c, both_wrong=d,
        variant_accuracy=(a + b) / n if n else math.nan,
        reference_accuracy=(a + c) / n if n else math.nan,
        difference=interval.estimate, difference_interval=interval, mcnemar_p=mcnemar_exact(b, c))


def detectable_drop_pp(n: int, confidence: float = 0.95) -> float:
    """The smallest accuracy drop (percentage points) that ``n`` paired test images could
    ever show to be significant: a drop below it cannot be detected, whatever the models.

    Definition: a drop is "detected" when the exact two-sided McNemar test rejects at level
    alpha = 1 − confidence (p <= alpha). The most favourable case for detection is that
    every discordant image goes against the variant (b = 0, c = k); then p = min(1, 2·2^-k),
    so at least k = the smallest k with 2^(1−k) <= alpha discordant images are needed
    (k = 6 at 0.95: 2^-5 = 0.031, while k = 5 gives 0.0625). Those k images make an
    observed drop of k/n, hence the result 100·k/n; 40 images give 6/40 = 15 pp.

    This is a lower bound on the resolution, not the drop that will be detected: real
    models also disagree the other way (b > 0), which needs more discordant images and a
    larger drop. When n < k not even losing every image would be significant: ``math.inf``.
    """
    check_counts(n=n)
    alpha = 1.0 - check_confidence(confidence)
    k = 1
    while mcnemar_exact(0, k) > alpha:
        k += 1
    return math.inf if k > n else 100.0 * k / n


# --------------------------------------------------------------------------- classes


def sign_test_loss_p(won: int, lost: int) -> float:
    """One-sided exact p that a variant loses images against the reference: P(X >= lost) for
    X ~ Binomial(won + lost, 1/2), the discordant images split at random (McNemar, one-sided)."""
    check_counts(won=won, lost=lost)
    m = int(won) + int(lost)
    return sum(math.comb(m, i) for i in range(int(lost), m + 1)) / (1 << m)  # exact integers, then one division


def holm(p_values: ArrayLike) -> list[float]:
    """Holm's step-down adjustment of p-values tested together (family-wise error at the level
    they are compared with): the i-th smallest is multiplied by (m - i), kept monotone, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class ClassLoss:
    """One class's images that only the variant / only the reference got (``won`` / ``lost``), the
    one-sided exact test that the class is lost (:func:`sign_test_loss_p`), and that p Holm-corrected
    for the number of classes."""

    won: int
    lost: int
    loss_p: float
    loss_p_holm: float


def class_losses(variant_ok: ArrayLike, reference_ok: ArrayLike, labels: ArrayLike, n_classes: int) -> list[ClassLoss]:
    """Per class (``labels`` of the same images), what a variant won and lost against the reference on
    one per-image success (right, kept, ...): one exact sign test per class, Holm over the classes."""
    mine, theirs = _as_correct(variant_ok, "variant_ok"), _as_correct(reference_ok, "reference_ok")
    labels = np.asarray(labels, dtype=int)
    won = np.bincount(labels[mine & ~theirs], minlength=n_classes)
    lost = np.bincount(labels[~mine & theirs], minlength=n_classes)
    p = [sign_test_loss_p(int(w), int(l)) for w, l in zip(won, lost)]
    return [ClassLoss(int(w), int(l), pi, adjusted) for w, l, pi, adjusted in zip(won, lost, p, holm(p))]


def balanced_loss_p(won: ArrayLike, lost: ArrayLike, n: ArrayLike, resamples: int = 20000, seed: int = 0) -> float:
    """One-sided p that a variant's balanced accuracy is below the reference's on the same images.

    ``won``/``lost`` count per class the images only the variant / only the reference got right,
    ``n`` the class's images. The balanced difference weighs each image by 1 / (k n_c); under
    "equally accurate" each discordant image favours either model with probability 1/2, so the
    null distribution is drawn by flipping those coins (a Monte-Carlo sign-flip test, seeded:
    the same results give the same p).
    """
    won, lost, n = (np.asarray(x, dtype=np.int64) for x in (won, lost, n))
    weights = np.where(n > 0, 1.0 / (np.count_nonzero(n) * np.maximum(n, 1)), 0.0)
    observed = float(np.dot(lost - won, weights))
    discordant = won + lost
    flips = np.random.default_rng(seed).binomial(discordant, 0.5, size=(resamples, len(n)))
    null = (2 * flips - discordant) @ weights
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (resamples + 1))


# --------------------------------------------------------------------------- label-free fidelity


CONFIDENT = 0.8  # the float model's top score from which its answer counts as confident


@dataclass
class FidelityRow:
    """A variant's top-1 agreement with the reference on one group of images (:func:`agreement_by_confidence`)."""

    group: str  # which images, in words
    reference_max_prob_from: float | None  # the group's range of the reference's max probability (None: open)
    reference_max_prob_below: float | None
    n: int
    agreement: float | None  # None for an empty group
    agreement_low: float
    agreement_high: float
    mean_total_variation: float | None

    @property
    def confident(self) -> bool:
        """Whether the group is every image whose reference max probability is CONFIDENT or more."""
        return self.reference_max_prob_from == CONFIDENT and self.reference_max_prob_below is None

    @property
    def changed(self) -> int:
        """Images whose top-1 answer differs from the reference's."""
        return self.n - round((self.agreement or 0.0) * self.n)


def _confidence_group(lower: float | None, upper: float | None) -> str:
    if lower is None:
        return f"reference max prob < {upper:g}"
    if upper is None:
        return f"reference max prob >= {lower:g}"
    return f"{lower:g} <= reference max prob < {upper:g}"


def agreement_by_confidence(variant_probs: ArrayLike, reference_probs: ArrayLike,
                            bins: tuple[float, ...] = (0.5, CONFIDENT),
                            confidence: float = 0.95) -> list[FidelityRow]:
    """How faithfully a variant reproduces the reference on (possibly unlabelled) images.

    ``variant_probs`` and ``reference_probs`` are (images, classes) output probabilities of
    the two models on the same images. For each group of images this reports ``n``, the
    top-1 ``agreement`` (same arg-max class; ties go to the lower class index) with a Wilson
    interval, and ``mean_total_variation``, the mean total-variation distance
    ½·Σ|p_variant − p_reference| between the two output distributions: 0 for identical
    outputs, 1 for disjoint ones, and the largest probability any set of classes gains or
    loses. Total variation rather than Jensen-Shannon because it needs no logarithms (the
    exact zeros of quantised outputs are harmless) and reads directly as a probability.

    Groups: "all", then the images split by the reference's max probability at ``bins``
    (default: below 0.5, 0.5 to below 0.8, 0.8 and above). Disagreement on images the
    reference itself is unsure about matters less than on confident ones. For an empty
    group ``agreement`` and ``mean_total_variation`` are None and the interval is (0, 1).
    """
    confidence = check_confidence(confidence)
    variant = np.asarray(variant_probs, dtype=np.float64)
    reference = np.asarray(reference_probs, dtype=np.float64)
    if variant.ndim != 2 or variant.shape != reference.shape or variant.shape[1] == 0:
        raise ValueError(f"variant_probs {variant.shape} and reference_probs {reference.shape}: "
                         "expected two (images, classes) arrays of the same shape")
    if not (np.isfinite(variant).all() and np.isfinite(reference).all()):
        raise ValueError("probabilities contain NaN or infinite values")
    edges = [float(edge) for edge in bins]
    if any(not 0.0 < edge <= 1.0 for edge in edges) or any(x >= y for x, y in zip(edges, edges[1:])):
        raise ValueError(f"bins={bins!r}: must be increasing values in (0, 1]")

    agree = answers(variant) == answers(reference)
    total_variation = 0.5 * np.abs(variant - reference).sum(axis=1)
    top = reference.max(axis=1)

    def row(group: str, lower: float | None, upper: float | None, mask: np.ndarray) -> FidelityRow:
        n = int(mask.sum())
        agreed = int(agree[mask].sum())
        interval = proportion_interval(agreed, n, confidence)
        return FidelityRow(group, lower, upper, n, agreed / n if n else None, interval.low, interval.high,
                           float(total_variation[mask].mean()) if n else None)

    rows = [row("all", None, None, np.ones(top.shape, dtype=bool))]
    if not edges:
        return rows
    bounds = [None, *edges, None]
    for lower, upper in zip(bounds, bounds[1:]):
        mask = np.ones(top.shape, dtype=bool)
        if lower is not None:
            mask &= top >= lower
        if upper is not None:
            mask &= top < upper
        rows.append(row(_confidence_group(lower, upper), lower, upper, mask))
    return rows
