"""The statistics behind honest comparisons: intervals, paired tests, latency spread.

zoolite scores every variant on the same few test images (often 20-200), so a raw
accuracy difference of a point or two is usually noise. This module gives the numbers a
comparison needs to be trustworthy:

* :func:`proportion_interval`: a 95 % interval on one accuracy (Wilson, or exact
  Clopper-Pearson);
* :func:`mcnemar_exact`, :func:`paired_difference_interval`, :func:`compare_paired`:
  a variant against the float reference model *on the same images* (paired), which is far
  more sensitive than comparing two unpaired accuracies;
* :func:`median_interval`, :func:`mean_interval`,
  :func:`median_ratio_interval`, :func:`is_clearly_faster`: bootstrap spreads of latency;
* :func:`detectable_drop_pp`: what a test set of ``n`` images can resolve at all;
* :func:`balanced_accuracy_interval`, :func:`sign_test_loss_p`, :func:`holm`,
  :func:`class_losses`, :func:`balanced_loss_p`: imbalanced test sets, where a rare class's
  losses hide in the overall accuracy;
* :func:`agreement_by_confidence`: label-free fidelity of a variant to the reference on
  unlabelled photos.

Only numpy and the standard library are used: every quantity here is either closed-form
(Wilson, Newcombe) or an exact finite binomial sum, and ``statistics.NormalDist`` supplies
the normal quantile, so SciPy (a 35 MB wheel) is not needed. Functions take plain numbers
or arrays and return floats or small frozen dataclasses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Interval", "PairedComparison", "proportion_interval", "mcnemar_exact",
    "paired_difference_interval", "compare_paired", "median_interval", "mean_interval",
    "median_ratio_interval", "is_clearly_faster",
    "detectable_drop_pp", "agreement_by_confidence", "balanced_accuracy_interval", "sign_test_loss_p",
    "holm", "ClassLoss", "class_losses", "balanced_loss_p",
]


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` around ``estimate`` (NaN when there is none,
    e.g. an accuracy on zero images)."""

    low: float
    high: float
    estimate: float = math.nan
    confidence: float = 0.95



def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}: must be strictly between 0 and 1 (e.g. 0.95)")
    return float(confidence)


def _z(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{name}={value!r}: must be a whole number, 0 or more")


# --------------------------------------------------------------------------- proportions


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927): the p whose score test does not reject at ``z``."""
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _log_comb(n: int) -> np.ndarray:
    """log C(n, k) for k = 0..n (log space: no overflow for large n)."""
    log_factorial = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    return log_factorial[n] - log_factorial - log_factorial[::-1]


def _binomial_tail(log_comb: np.ndarray, p: float, k_from: int, k_to: int) -> float:
    """P(k_from <= X <= k_to) for X ~ Binomial(n, p), 0 < p < 1, with ``log_comb = _log_comb(n)``."""
    n = log_comb.size - 1
    k = np.arange(k_from, k_to + 1)
    terms = log_comb[k_from:k_to + 1] + k * math.log(p) + (n - k) * math.log1p(-p)
    return float(np.exp(np.logaddexp.reduce(terms)))


def _solve_increasing(f: Callable[[float], float], target: float) -> float:
    """The p in (0, 1) with f(p) = target, for f increasing in p (bisection to float precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):  # 2**-80: far below float spacing near any p in (0, 1)
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _clopper_pearson(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson (1934) exact interval: the p not rejected by either one-sided exact
    binomial test at alpha/2, found by solving the exact tail equations."""
    half = alpha / 2.0
    log_comb = _log_comb(n)
    if successes == 0:
        low = 0.0
    elif successes == n:
        low = half ** (1.0 / n)
    else:  # P(X >= x | p_low) = alpha/2; the upper tail grows with p
        low = _solve_increasing(lambda p: _binomial_tail(log_comb, p, successes, n), half)
    if successes == n:
        high = 1.0
    elif successes == 0:
        high = 1.0 - half ** (1.0 / n)
    else:  # P(X <= x | p_high) = alpha/2; the lower tail shrinks with p
        high = _solve_increasing(lambda p: -_binomial_tail(log_comb, p, 0, successes), -half)
    return low, high


def proportion_interval(successes: int, n: int, confidence: float = 0.95,
                        method: str = "wilson") -> Interval:
    """Confidence interval for a proportion such as an accuracy (``successes`` right of ``n``).

    ``method="wilson"`` (default): the Wilson score interval, which keeps close to nominal
    coverage for small ``n`` and proportions near 0 or 1, where the textbook
    ``p ± z·sqrt(p(1-p)/n)`` collapses to zero width (Newcombe 1998, Stat Med 17:857).
    ``method="exact"``: Clopper-Pearson, which guarantees at least the nominal coverage and
    is therefore wider.

    ``n == 0`` gives the full interval (0, 1) with a NaN estimate: no images, no information.
    """
    _check_counts(successes=successes, n=n)
    confidence = _check_confidence(confidence)
    if successes > n:
        raise ValueError(f"successes={successes} > n={n}")
    if method not in ("wilson", "exact"):
        raise ValueError(f"method={method!r}: must be 'wilson' or 'exact'")
    if n == 0:
        return Interval(0.0, 1.0, math.nan, confidence)
    if method == "wilson":
        low, high = _wilson(successes, n, _z(confidence))
    else:
        low, high = _clopper_pearson(successes, n, 1.0 - confidence)
    return Interval(low, high, successes / n, confidence)


# --------------------------------------------------------------------------- paired accuracy


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under "both models are equally accurate" each of the ``b + c`` discordant images is
    equally likely to favour either model, so ``b ~ Binomial(b + c, 1/2)``; the two-sided
    p-value is ``min(1, 2·P(X <= min(b, c)))``, computed exactly with integer arithmetic.
    Concordant images (both right, both wrong) carry no information about the difference.
    ``b + c == 0`` gives 1.0.
    """
    _check_counts(b=b, c=c)
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
    _check_counts(n_both_right=n_both_right, n_only_variant_right=n_only_variant_right,
                  n_only_reference_right=n_only_reference_right, n_both_wrong=n_both_wrong)
    confidence = _check_confidence(confidence)
    a, b, c, d = (int(x) for x in (n_both_right, n_only_variant_right, n_only_reference_right, n_both_wrong))
    n = a + b + c + d
    if n == 0:
        return Interval(-1.0, 1.0, math.nan, confidence)
    z = _z(confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
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
    _check_counts(n=n)
    alpha = 1.0 - _check_confidence(confidence)
    k = 1
    while mcnemar_exact(0, k) > alpha:
        k += 1
    return math.inf if k > n else 100.0 * k / n


# --------------------------------------------------------------------------- classes


def balanced_accuracy_interval(right: ArrayLike, n: ArrayLike, confidence: float = 0.95, draws: int = 20000,
                               seed: int = 0) -> Interval:
    """The balanced accuracy (mean recall over the classes with test images) and its interval.

    Each class's recall gets its Jeffreys posterior, Beta(right + 1/2, wrong + 1/2) (the Jeffreys
    interval of one proportion covers about as well as Wilson's, Brown, Cai and DasGupta 2001), and
    the spread of their mean (Brodersen et al. 2010, "The balanced accuracy and its posterior
    distribution"), drawn by Monte Carlo with a fixed seed, gives the interval's reach below and above
    the observed balanced accuracy; so it always contains it, however few photos a class has (a
    posterior of a class of 2 photos both right is centred near 0.83, not at 1). Clipped to [0, 1].
    """
    confidence = _check_confidence(confidence)
    right, n = np.asarray(right, dtype=np.float64), np.asarray(n, dtype=np.float64)
    present = n > 0
    if not present.any():
        return Interval(0.0, 1.0, math.nan, confidence)
    right, n = right[present], n[present]
    means = np.random.default_rng(seed).beta(right + 0.5, n - right + 0.5, size=(draws, len(n))).mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]) - means.mean()
    estimate = float(np.mean(right / n))
    return Interval(max(0.0, estimate + float(low)), min(1.0, estimate + float(high)), estimate, confidence)


def sign_test_loss_p(won: int, lost: int) -> float:
    """One-sided exact p that a variant loses images against the reference: P(X >= lost) for
    X ~ Binomial(won + lost, 1/2), the discordant images split at random (McNemar, one-sided)."""
    _check_counts(won=won, lost=lost)
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


# --------------------------------------------------------------------------- latency


def _as_samples(samples: ArrayLike, name: str, positive: bool = False) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of samples, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if positive and not (array > 0).all():
        raise ValueError(f"{name}: a ratio of medians needs samples above 0")
    return array


def _bootstrap(samples: np.ndarray, statistic: Callable[..., np.ndarray], resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """``statistic`` (a numpy reduction taking ``axis``) of ``resamples`` resamples drawn
    with replacement, in chunks that keep memory to a few tens of MB."""
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: must be at least 1")
    n = samples.size
    per_chunk = max(1, 2_000_000 // n)
    out = []
    for start in range(0, resamples, per_chunk):
        rows = min(per_chunk, resamples - start)
        out.append(statistic(samples[rng.integers(0, n, size=(rows, n))], axis=1))
    return np.concatenate(out)


def _percentile_interval(values: np.ndarray, estimate: float, confidence: float) -> Interval:
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(low), float(high), float(estimate), confidence)


def median_interval(samples_ms: ArrayLike, confidence: float = 0.95, resamples: int = 2000,
                    seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of the median latency (deterministic given ``seed``).

    Caveat: the bootstrap treats the timed runs as independent draws. Consecutive runs
    share caches, clocks and background load, so this interval describes the spread
    within one measurement session, not between sessions or machines.
    """
    confidence = _check_confidence(confidence)
    samples = _as_samples(samples_ms, "samples_ms")
    values = _bootstrap(samples, np.median, resamples, np.random.default_rng(seed))
    return _percentile_interval(values, float(np.median(samples)), confidence)


def mean_interval(samples_ms: ArrayLike, confidence: float = 0.95, resamples: int = 2000,
                  seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of the mean latency; see :func:`median_interval`. The
    mean is pulled by rare slow runs (GC, scheduling), so prefer the median for comparisons."""
    confidence = _check_confidence(confidence)
    samples = _as_samples(samples_ms, "samples_ms")
    values = _bootstrap(samples, np.mean, resamples, np.random.default_rng(seed))
    return _percentile_interval(values, float(np.mean(samples)), confidence)


def _two_sample_medians(a_ms: ArrayLike, b_ms: ArrayLike, resamples: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = _as_samples(a_ms, "a_ms", positive=True)
    b = _as_samples(b_ms, "b_ms", positive=True)
    rng = np.random.default_rng(seed)
    return a, b, _bootstrap(a, np.median, resamples, rng), _bootstrap(b, np.median, resamples, rng)


def median_ratio_interval(a_ms: ArrayLike, b_ms: ArrayLike, confidence: float = 0.95,
                          resamples: int = 2000, seed: int = 0) -> Interval:
    """Bootstrap interval of median(a) / median(b) for two independent sets of positive
    latency samples: 0.8 means A takes 80 % of B's time. A is faster only when ``high < 1``."""
    confidence = _check_confidence(confidence)
    a, b, a_medians, b_medians = _two_sample_medians(a_ms, b_ms, resamples, seed)
    return _percentile_interval(a_medians / b_medians, float(np.median(a) / np.median(b)), confidence)


def is_clearly_faster(a_ms: ArrayLike, b_ms: ArrayLike, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> bool:
    """True when A's median latency is below B's with the whole
    :func:`median_ratio_interval` under 1; False means "not shown", not "slower"."""
    return median_ratio_interval(a_ms, b_ms, confidence, resamples, seed).high < 1.0


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
    confidence = _check_confidence(confidence)
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

    agree = variant.argmax(axis=1) == reference.argmax(axis=1)
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
