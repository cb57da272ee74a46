"""Confidence intervals: on one accuracy, on a balanced accuracy, and on latency.

zoolite scores every variant on the same few test images (often 20-200), so every figure it reports
comes with its 95 % interval (:class:`Interval`):

* :func:`proportion_interval`: one accuracy (Wilson, or exact Clopper-Pearson);
* :func:`balanced_accuracy_interval`: the mean recall over the classes, for imbalanced test sets,
  where a rare class's recall hides in the overall accuracy;
* :func:`median_interval`, :func:`mean_interval`,
  :func:`median_ratio_interval`, :func:`is_clearly_faster`: bootstrap spreads of latency;
* :func:`share`: a share with its interval, as the tables and the command line print it.

The comparisons built on them (paired tests, per-class losses, label-free fidelity) are in
:mod:`zoolite.measure.stats`, which shares this module's argument checks and Wilson bounds.

Only numpy and the standard library are used: an interval here is closed-form (Wilson), an exact
finite binomial sum (Clopper-Pearson) or drawn with a fixed seed (bootstrap, Monte Carlo), and
``statistics.NormalDist`` supplies the normal quantile, so SciPy (a 35 MB wheel) is not needed.
Functions take plain numbers or arrays and return an :class:`Interval`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Interval", "proportion_interval", "balanced_accuracy_interval", "median_interval", "mean_interval",
    "median_ratio_interval", "is_clearly_faster", "share",
]


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` around ``estimate`` (NaN when there is none,
    e.g. an accuracy on zero images)."""

    low: float
    high: float
    estimate: float = math.nan
    confidence: float = 0.95


def check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}: must be strictly between 0 and 1 (e.g. 0.95)")
    return float(confidence)


def z_score(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{name}={value!r}: must be a whole number, 0 or more")


# --------------------------------------------------------------------------- proportions


def wilson_bounds(successes: int, n: int, z: float) -> tuple[float, float]:
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
    check_counts(successes=successes, n=n)
    confidence = check_confidence(confidence)
    if successes > n:
        raise ValueError(f"successes={successes} > n={n}")
    if method not in ("wilson", "exact"):
        raise ValueError(f"method={method!r}: must be 'wilson' or 'exact'")
    if n == 0:
        return Interval(0.0, 1.0, math.nan, confidence)
    if method == "wilson":
        low, high = wilson_bounds(successes, n, z_score(confidence))
    else:
        low, high = _clopper_pearson(successes, n, 1.0 - confidence)
    return Interval(low, high, successes / n, confidence)


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
    confidence = check_confidence(confidence)
    right, n = np.asarray(right, dtype=np.float64), np.asarray(n, dtype=np.float64)
    present = n > 0
    if not present.any():
        return Interval(0.0, 1.0, math.nan, confidence)
    right, n = right[present], n[present]
    means = np.random.default_rng(seed).beta(right + 0.5, n - right + 0.5, size=(draws, len(n))).mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]) - means.mean()
    estimate = float(np.mean(right / n))
    return Interval(max(0.0, estimate + float(low)), min(1.0, estimate + float(high)), estimate, confidence)



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
    confidence = check_confidence(confidence)
    samples = _as_samples(samples_ms, "samples_ms")
    values = _bootstrap(samples, np.median, resamples, np.random.default_rng(seed))
    return _percentile_interval(values, float(np.median(samples)), confidence)


def mean_interval(samples_ms: ArrayLike, confidence: float = 0.95, resamples: int = 2000,
                  seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of the mean latency; see :func:`median_interval`. The
    mean is pulled by rare slow runs (GC, scheduling), so prefer the median for comparisons."""
    confidence = check_confidence(confidence)
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
    confidence = check_confidence(confidence)
    a, b, a_medians, b_medians = _two_sample_medians(a_ms, b_ms, resamples, seed)
    return _percentile_interval(a_medians / b_medians, float(np.median(a) / np.median(b)), confidence)


def is_clearly_faster(a_ms: ArrayLike, b_ms: ArrayLike, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> bool:
    """True when A's median latency is below B's with the whole
    :func:`median_ratio_interval` under 1; False means "not shown", not "slower"."""
    return median_ratio_interval(a_ms, b_ms, confidence, resamples, seed).high < 1.0


# --------------------------------------------------------------------------- as text


def percent(value: float, interval) -> str:
    return f"{value * 100:.1f}%" + ("" if interval is None else f" [{interval.low * 100:.1f}, {interval.high * 100:.1f}]")


def share(value: float, interval: Interval | None) -> str:
    """A class's share (recall, photos kept) with its 95% interval, in whole percents."""
    return percent(value, None) if interval is None else \
        f"{value * 100:.0f}% [{interval.low * 100:.0f}, {interval.high * 100:.0f}]"
