"""zoolite.measure.intervals and zoolite.measure.stats against published values and exact hand calculations.

Published values: Wilson intervals from Newcombe (1998), "Two-sided confidence intervals for
the single proportion: comparison of seven methods", Stat Med 17:857, Table I; the paired
Newcombe interval for the Cavo et al. (2012) table from Fagerland, Lydersen & Laake (2017),
"Statistical Analysis of Contingency Tables", chapter 8. Everything else is checked against
a closed form, an independent formula written out here, or an exact sum with math.comb.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import numpy as np
import pytest

from zoolite.measure import intervals, stats
from zoolite.measure.intervals import Interval

Z95 = 1.959963984540054  # the 0.975 normal quantile


def wilson_by_roots(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's interval as the roots in p of (p̂ − p)² = z²·p(1 − p)/n, i.e. of
    (n + z²)p² − (2x + z²)p + x²/n = 0: different algebra from the module's centre ± half."""
    a, b, c = n + z * z, -(2 * x + z * z), x * x / n
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))


# --------------------------------------------------------------------------- proportion_interval


@pytest.mark.parametrize("x, n, low, high", [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998_table(x, n, low, high):
    ci = intervals.proportion_interval(x, n)
    assert ci.low == pytest.approx(low, abs=5e-5)
    assert ci.high == pytest.approx(high, abs=5e-5)
    assert ci.estimate == x / n and ci.confidence == 0.95


def _width(interval) -> float:
    return interval.high - interval.low


def test_wilson_at_the_extremes_has_a_closed_form():
    # p̂ = 0: the upper root is z²/(n + z²); p̂ = 1: the lower root is n/(n + z²).
    zero, full = intervals.proportion_interval(0, 10), intervals.proportion_interval(10, 10)
    assert (zero.low, full.high) == (0.0, 1.0)
    assert zero.high == pytest.approx(Z95 ** 2 / (10 + Z95 ** 2), abs=1e-12)  # 0.2775
    assert full.low == pytest.approx(10 / (10 + Z95 ** 2), abs=1e-12)


@pytest.mark.parametrize("x, n, confidence", [(3, 7, 0.95), (17, 40, 0.9), (199, 200, 0.99), (50, 1000, 0.8)])
def test_wilson_agrees_with_the_quadratic_roots(x, n, confidence):
    z = {0.95: Z95, 0.9: 1.6448536269514722, 0.99: 2.5758293035489004, 0.8: 1.2815515655446004}[confidence]
    ci = intervals.proportion_interval(x, n, confidence)
    assert (ci.low, ci.high) == pytest.approx(wilson_by_roots(x, n, z), abs=1e-12)


def test_clopper_pearson_all_or_nothing():
    zero, full = intervals.proportion_interval(0, 10, method="exact"), intervals.proportion_interval(10, 10, method="exact")
    assert zero.low == 0.0 and zero.high == pytest.approx(1 - 0.025 ** 0.1, abs=1e-12)  # 0.3085
    assert zero.high == pytest.approx(0.3085, abs=5e-5)
    assert full.high == 1.0 and full.low == pytest.approx(0.025 ** 0.1, abs=1e-12)


@pytest.mark.parametrize("x, n", [(3, 10), (1, 2), (81, 263), (19, 20)])
def test_clopper_pearson_solves_its_defining_tail_equations(x, n):
    """Upper bound: P(X <= x | p_high) = 2.5 %; lower bound: P(X >= x | p_low) = 2.5 %."""
    ci = intervals.proportion_interval(x, n, method="exact")
    assert binomial_cdf(x, n, ci.high) == pytest.approx(0.025, abs=1e-9)
    assert 1 - binomial_cdf(x - 1, n, ci.low) == pytest.approx(0.025, abs=1e-9)
    wilson = intervals.proportion_interval(x, n)
    assert ci.low < wilson.low and ci.high > wilson.high  # exact is the conservative one here


def test_no_images_is_no_information_and_bad_input_is_refused():
    for method in ("wilson", "exact"):
        ci = intervals.proportion_interval(0, 0, method=method)
        assert (ci.low, ci.high) == (0.0, 1.0) and math.isnan(ci.estimate)
    for args, kwargs in [((5, 4), {}), ((-1, 4), {}), ((1, 4), {"method": "wald"}),
                         ((1, 4), {"confidence": 1.0}), ((1.5, 4), {})]:
        with pytest.raises(ValueError):
            intervals.proportion_interval(*args, **kwargs)


# --------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize("b, c, expected", [
    (0, 6, 2 / 64),                                                # 0.03125
    (6, 0, 2 / 64),
    (0, 5, 2 / 32),                                                # 0.0625: five is not enough
    (1, 0, 1.0),                                                   # 2 * P(X <= 0) = 1
    (0, 0, 1.0),
    (4, 4, 1.0),
    (3, 10, 2 * sum(math.comb(13, i) for i in range(4)) / 2 ** 13),  # 756/8192 = 0.0923
    (12, 30, float(2 * Fraction(sum(math.comb(42, i) for i in range(13)), 2 ** 42))),
])
def test_mcnemar_exact(b, c, expected):
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-14)


def test_mcnemar_exact_handles_many_pairs():
    assert stats.mcnemar_exact(0, 5000) == 0.0  # underflows quietly
    assert stats.mcnemar_exact(3000, 3000) == 1.0
    assert 0.0 < stats.mcnemar_exact(900, 1000) < 0.05


# --------------------------------------------------------------------------- paired difference


def newcombe_by_hand(a: int, b: int, c: int, d: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe (1998) method 10 written out from the paper's formulas, on Wilson-by-roots."""
    n = a + b + c + d
    p1, p2 = Fraction(a + b, n), Fraction(a + c, n)
    l1, u1 = wilson_by_roots(a + b, n, z)
    l2, u2 = wilson_by_roots(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    if margins == 0:
        phi = 0.0
    else:
        numerator = ad_bc if ad_bc < 0 else max(ad_bc - n / 2, 0)
        phi = numerator / math.sqrt(margins)
    e1, e2, e3, e4 = float(p1) - l1, u2 - float(p2), u1 - float(p1), float(p2) - l2
    theta = float(p1 - p2)
    return theta - math.sqrt(e1 ** 2 + e2 ** 2 - 2 * phi * e1 * e2), theta + math.sqrt(e3 ** 2 + e4 ** 2 - 2 * phi * e3 * e4)


def test_newcombe_paired_matches_the_published_cavo_example():
    # Fagerland, Lydersen & Laake (2017), ch. 8: table (59, 6 / 16, 80), estimate -0.0621,
    # Newcombe square-and-add 95 % CI -0.1186 to -0.0046.
    ci = stats.paired_difference_interval(59, 6, 16, 80)
    assert ci.estimate == pytest.approx(-10 / 161)
    assert ci.low == pytest.approx(-0.1186, abs=5e-5)
    assert ci.high == pytest.approx(-0.0046, abs=5e-5)


@pytest.mark.parametrize("table", [
    (59, 6, 16, 80),   # ad - bc > n/2: phi reduced by n/2
    (14, 5, 0, 22),    # ad - bc > n/2, one discordant cell empty
    (1, 1, 7, 12),     # ad - bc = 5 < n/2 = 10.5: phi = 0
    (2, 9, 8, 1),      # ad - bc < 0: negative phi
    (20, 0, 0, 0),     # empty margins: phi = 0
    (30, 3, 5, 2),
])
def test_newcombe_paired_agrees_with_the_formula_by_hand(table):
    ci = stats.paired_difference_interval(*table)
    assert (ci.low, ci.high) == pytest.approx(newcombe_by_hand(*table), abs=1e-12)


@pytest.mark.parametrize("table", [(59, 6, 16, 80), (1, 1, 7, 12), (0, 3, 0, 0), (0, 0, 4, 1), (10, 0, 10, 0)])
def test_newcombe_paired_properties(table):
    a, b, c, d = table
    ci = stats.paired_difference_interval(a, b, c, d)
    assert -1.0 <= ci.low <= ci.estimate <= ci.high <= 1.0
    swapped = stats.paired_difference_interval(a, c, b, d)  # variant and reference exchanged
    assert (swapped.low, swapped.high) == pytest.approx((-ci.high, -ci.low), abs=1e-12)


def test_newcombe_paired_width_follows_the_evidence():
    nothing = stats.paired_difference_interval(0, 0, 0, 0)
    assert (nothing.low, nothing.high) == (-1.0, 1.0) and math.isnan(nothing.estimate)
    tiny = stats.paired_difference_interval(2, 1, 1, 1)
    assert (tiny.high - tiny.low) > 0.9  # five images say little
    widths = [_width(stats.paired_difference_interval(30 * k, 3 * k, 5 * k, 2 * k)) for k in (1, 4, 16)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4, rel=0.25)  # ~1/sqrt(n)
    agree = stats.paired_difference_interval(20, 0, 0, 0)  # identical answers on 20 images
    assert agree.low < 0 < agree.high and 0.1 < agree.high < 0.25
    clear = stats.paired_difference_interval(80, 0, 20, 0)  # 20 of 100 lost, none won
    assert clear.high < 0 and stats.mcnemar_exact(0, 20) < 0.05


# --------------------------------------------------------------------------- compare_paired


def test_compare_paired_counts_and_json():
    variant = np.array([1, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    reference = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    result = stats.compare_paired(variant, reference)
    assert (result.n, result.both_right, result.only_variant_right,
            result.only_reference_right, result.both_wrong) == (10, 5, 2, 3, 0)
    assert result.variant_accuracy == 0.7 and result.reference_accuracy == 0.8
    assert result.difference == pytest.approx(-0.1)
    assert result.difference_interval == stats.paired_difference_interval(5, 2, 3, 0)
    assert result.mcnemar_p == stats.mcnemar_exact(2, 3) == 1.0
    # 0/1 integers are accepted and give the same answer.
    assert stats.compare_paired(variant.astype(int), reference.astype(int)) == result


def test_compare_paired_edge_cases():
    empty = stats.compare_paired(np.array([], bool), np.array([], bool))
    assert empty.n == 0 and empty.mcnemar_p == 1.0
    assert (empty.difference_interval.low, empty.difference_interval.high) == (-1.0, 1.0)
    assert math.isnan(empty.variant_accuracy)
    with pytest.raises(ValueError):
        stats.compare_paired([True, False], [True])
    with pytest.raises(ValueError):
        stats.compare_paired([2, 0], [1, 0])


# --------------------------------------------------------------------------- detectable drop


@pytest.mark.parametrize("n, confidence, expected", [
    (40, 0.95, 15.0),      # k = 6: 2·2^-6 = 0.031 <= 0.05 < 2·2^-5
    (100, 0.95, 6.0),
    (6, 0.95, 100.0),
    (5, 0.95, math.inf),   # losing all five images is still p = 0.0625
    (0, 0.95, math.inf),
    (100, 0.99, 8.0),      # 2·2^-8 = 0.0078 <= 0.01 < 2·2^-7
    (20, 0.9, 25.0),       # 2·2^-5 = 0.0625 <= 0.1 < 2·2^-4
])
def test_detectable_drop_pp(n, confidence, expected):
    assert stats.detectable_drop_pp(n, confidence) == expected


def test_detectable_drop_is_exactly_the_mcnemar_threshold():
    for n in (40, 173):
        k = round(stats.detectable_drop_pp(n) * n / 100)
        assert stats.mcnemar_exact(0, k) <= 0.05 < stats.mcnemar_exact(0, k - 1)


# --------------------------------------------------------------------------- latency


def test_median_interval_is_deterministic_and_sensible():
    samples = np.random.default_rng(5).normal(20.0, 1.0, size=200)
    ci = intervals.median_interval(samples, seed=3)
    assert ci == intervals.median_interval(samples, seed=3)
    assert ci.estimate == float(np.median(samples)) and ci.low < ci.estimate < ci.high
    # Asymptotic standard error of a normal median: 1.2533·σ/√n = 0.0886, 95 % width ≈ 0.35.
    assert 0.2 < ci.high - ci.low < 0.5
    assert intervals.median_interval([7.0] * 30) == Interval(7.0, 7.0, 7.0, 0.95)


def test_median_resists_outliers_and_the_mean_does_not():
    samples = [10.0] * 50 + [1000.0]  # one garbage-collection pause
    median = intervals.median_interval(samples)
    mean = intervals.mean_interval(samples)
    assert (median.low, median.high) == (10.0, 10.0)
    assert mean.estimate == pytest.approx(1500 / 51) and mean.high > 50


def test_median_difference_and_ratio_of_two_latency_sets():
    rng = np.random.default_rng(1)
    fast = rng.normal(10.0, 0.5, size=100)
    slow = rng.normal(15.0, 0.5, size=100)
    ratio = intervals.median_ratio_interval(fast, slow)
    assert ratio.low < 10 / 15 < ratio.high < 1
    assert intervals.is_clearly_faster(fast, slow) and not intervals.is_clearly_faster(slow, fast)
    same = rng.normal(10.0, 0.5, size=100)
    assert not intervals.is_clearly_faster(fast, same)
    with pytest.raises(ValueError):
        intervals.median_ratio_interval([1.0, -1.0], [1.0])
    with pytest.raises(ValueError):
        intervals.median_interval([])


# --------------------------------------------------------------------------- agreement_by_confidence


def test_agreement_by_confidence():
    reference = np.array([
        [0.40, 0.35, 0.25],  # unsure (< 0.5)
        [0.45, 0.10, 0.45],  # unsure; tie -> class 0
        [0.50, 0.30, 0.20],  # exactly 0.5: middle bin
        [0.10, 0.70, 0.20],  # middle
        [0.80, 0.10, 0.10],  # exactly 0.8: confident bin
        [0.00, 0.00, 1.00],  # confident
    ])
    variant = np.array([
        [0.30, 0.40, 0.30],  # disagrees, TV = 0.1
        [0.50, 0.10, 0.40],  # agrees, TV = 0.05
        [0.50, 0.30, 0.20],  # identical, TV = 0
        [0.30, 0.60, 0.10],  # agrees, TV = 0.2
        [0.20, 0.70, 0.10],  # disagrees, TV = 0.6
        [0.00, 0.00, 1.00],  # identical
    ])
    rows = stats.agreement_by_confidence(variant, reference)
    assert [row.group for row in rows] == [
        "all", "reference max prob < 0.5", "0.5 <= reference max prob < 0.8", "reference max prob >= 0.8"]
    assert [row.n for row in rows] == [6, 2, 2, 2]
    assert [row.agreement for row in rows] == [4 / 6, 0.5, 1.0, 0.5]
    assert [row.mean_total_variation for row in rows] == pytest.approx([0.95 / 6, 0.075, 0.1, 0.3])
    for row in rows:
        ci = intervals.proportion_interval(round(row.agreement * row.n), row.n)
        assert (row.agreement_low, row.agreement_high) == (ci.low, ci.high)
    assert (rows[1].reference_max_prob_from, rows[1].reference_max_prob_below) == (None, 0.5)
    json.dumps([dataclasses.asdict(row) for row in rows])
    assert [row.changed for row in rows] == [2, 1, 0, 1] and [row.confident for row in rows] == [False] * 3 + [True]


def test_agreement_by_confidence_edge_cases():
    confident = np.array([[0.9, 0.1], [0.05, 0.95]])
    rows = stats.agreement_by_confidence(confident, confident)
    assert rows[0].agreement == 1.0 and rows[0].mean_total_variation == 0.0
    assert rows[1].n == 0 and rows[1].agreement is None and rows[1].mean_total_variation is None
    assert (rows[1].agreement_low, rows[1].agreement_high) == (0.0, 1.0)
    assert [row.group for row in stats.agreement_by_confidence(confident, confident, bins=())] == ["all"]
    with pytest.raises(ValueError):
        stats.agreement_by_confidence(confident, confident[:, :1])
    with pytest.raises(ValueError):
        stats.agreement_by_confidence(confident, confident, bins=(0.8, 0.5))


def test_holm_steps_down_where_bonferroni_would_not():
    """Holm multiplies the i-th smallest of m p-values by m - i (kept monotone, capped at 1): with several
    informative p-values it rejects more than Bonferroni's m x p, which would give 0.04, 0.08, 0.12, 1."""
    assert stats.holm([0.01, 0.02, 0.03, 0.5]) == pytest.approx([0.04, 0.06, 0.06, 0.5])
    assert stats.holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])  # order kept; monotone
    assert stats.holm([0.3, 0.9]) == pytest.approx([0.6, 0.9])
