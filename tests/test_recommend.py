"""The recommendation decides on evidence: one flipped test image or timing noise cannot change it,
a variant that really loses accuracy is still rejected, and the sentence says what the test set can
resolve. Hand-made results with known paired outcomes and latency samples."""

from __future__ import annotations

import zlib

import numpy as np

from zoolite import stats
from zoolite.config import Budget, RunConfig
from zoolite.recommend import recommend
from zoolite.results import Backbone, Latency, Run, Variant


def _latency(median_ms: float, spread: float = 0.02, seed: int = 0) -> Latency:
    samples = median_ms * (1 + spread * np.random.default_rng(seed).standard_normal(100))
    return Latency(float(samples.mean()), float(np.median(samples)), float(np.percentile(samples, 90)),
                   float(np.percentile(samples, 99)), float(samples.std()), float(samples.min()), 100,
                   samples_ms=samples.tolist(), median_interval=stats.median_interval(samples))


def _variant(name: str, correct: np.ndarray, reference: np.ndarray, median_ms: float, mb: float,
             role: str = "shippable", spread: float = 0.02, confident_agreement: tuple[int, int] | None = None,
             input_dtype: str = "float32") -> Variant:
    right = int(correct.sum())
    fidelity = {}
    if confident_agreement is not None:
        agreed, n = confident_agreement
        interval = stats.proportion_interval(agreed, n)
        fidelity = {"test": [{"group": "reference max prob >= 0.8", "reference_max_prob_from": 0.8,
                              "reference_max_prob_below": None, "n": n, "agreement": agreed / n,
                              "agreement_low": interval.low, "agreement_high": interval.high,
                              "mean_total_variation": 0.0}]}
    return Variant(variant=name, family="litert" if role == "shippable" else "keras", mode=name, role=role,
                   file=f"b/models/{name}", size_bytes=int(mb * 1e6), load_ms=1.0, loss=0.3,
                   accuracy=right / len(correct), top_k=3, top_k_accuracy=1.0,
                   latency=_latency(median_ms, spread, seed=zlib.crc32(name.encode())), threads="2",
                   backend="test",
                   eval_seconds=1.0, input_dtype=input_dtype,
                   accuracy_interval=stats.proportion_interval(right, len(correct)),
                   paired=stats.compare_paired(correct, reference), fidelity=fidelity)


def _run(variants: list[Variant], n: int) -> Run:
    return Run(run_dir="run", machine={}, config=RunConfig(), dataset={}, split={"test": n}, timings={},
               backbones={"b": Backbone("b", 224, 1280, "ImageNet", "test", True, {}, {}, variants)})


def _flip(correct: np.ndarray, lost: int, won: int = 0) -> np.ndarray:
    """``correct`` with its first ``lost`` right answers made wrong and first ``won`` wrong ones right."""
    out = correct.copy()
    out[np.flatnonzero(correct)[:lost]] = False
    out[np.flatnonzero(~correct)[:won]] = True
    return out


# The dev-set case: 40 test images, float right on 35; int8 loses one of them.
FLOAT = np.array([True] * 35 + [False] * 5)


def test_one_flipped_test_image_does_not_send_the_user_to_a_model_three_times_slower():
    variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                _variant("float16", FLOAT, FLOAT, 5.1, 6.8),
                _variant("int8", _flip(FLOAT, 1), FLOAT, 1.7, 4.0, input_dtype="int8"),
                _variant("uint8", _flip(FLOAT, 1), FLOAT, 1.7, 4.0, input_dtype="uint8")]
    r = recommend(_run(variants, 40))
    assert r.variant in ("int8", "uint8")  # tied within noise, the same size (export ships uint8 either way)
    assert "won 0 and lost 1 against the float model (McNemar p = 1)" in r.reason
    assert "with 40 test images a drop below 12.5 pp cannot be detected" in r.reason
    # The point-estimate rule of zoolite 0.1 would have rejected it: -2.5 pp is beyond the 1 pp budget.
    assert variants[2].accuracy < FLOAT.mean() - 0.01


def test_five_images_lost_and_none_won_of_40_is_a_real_loss():
    """One-sided: only a loss rejects, so 5 of 5 discordant images against the variant (p = 1/32) count."""
    variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                _variant("float16", FLOAT, FLOAT, 5.1, 6.8),
                _variant("int8", _flip(FLOAT, 5), FLOAT, 1.7, 4.0)]
    assert recommend(_run(variants, 40)).variant == "float16"
    variants[2] = _variant("int8", _flip(FLOAT, 4), FLOAT, 1.7, 4.0)  # p = 1/16: not enough
    assert recommend(_run(variants, 40)).variant == "int8"


def test_a_variant_that_really_loses_accuracy_is_still_rejected():
    damaged = _flip(FLOAT, 9, won=1)  # lost 9, won 1 of 40: McNemar p = 0.021
    variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                _variant("float16", FLOAT, FLOAT, 5.1, 6.8),
                _variant("int8", damaged, FLOAT, 1.7, 4.0)]
    assert variants[2].paired.mcnemar_p < 0.05
    r = recommend(_run(variants, 40))
    assert r.variant == "float16"
    assert recommend(_run(variants, 40), Budget(max_accuracy_drop_pp=30)).variant == "int8"  # within a loose budget


def test_a_large_test_set_rejects_a_small_real_loss_beyond_the_budget():
    reference = np.array([True] * 1800 + [False] * 200)
    lossy = _flip(reference, 60, won=10)  # -2.5 pp on 2,000 images: clearly real
    variants = [_variant("keras", reference, reference, 60.0, 14.0, role="reference"),
                _variant("float16", reference, reference, 5.1, 6.8),
                _variant("int8", lossy, reference, 1.7, 4.0)]
    r = recommend(_run(variants, 2000))
    assert r.variant == "float16" and "with 2000 test images a drop below 0.25 pp cannot be detected" in r.reason
    assert "Faster but outside the budget: int8 (accuracy)." in r.reason
    assert recommend(_run(variants, 2000), Budget(max_accuracy_drop_pp=3)).variant == "int8"


def test_changed_confident_answers_reject_a_damaged_variant_that_accuracy_alone_cannot():
    """On 40 images, losing 3 is not significant; but changing 12 of 30 confident answers is."""
    variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                _variant("float16", FLOAT, FLOAT, 5.1, 6.8, confident_agreement=(30, 30)),
                _variant("int8", _flip(FLOAT, 3), FLOAT, 1.7, 4.0, confident_agreement=(18, 30))]
    assert variants[2].paired.mcnemar_p > 0.05
    assert recommend(_run(variants, 40)).variant == "float16"
    variants[2] = _variant("int8", _flip(FLOAT, 3), FLOAT, 1.7, 4.0, confident_agreement=(30, 30))
    assert recommend(_run(variants, 40)).variant == "int8"


def test_one_or_two_changed_confident_answers_are_not_evidence_of_damage():
    for changed, n in ((1, 11), (2, 27), (2, 38)):
        variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                    _variant("float16", FLOAT, FLOAT, 5.1, 6.8, confident_agreement=(n, n)),
                    _variant("int8", FLOAT, FLOAT, 1.7, 4.0, confident_agreement=(n - changed, n))]
        assert recommend(_run(variants, 40)).variant == "int8", (changed, n)


def test_latency_differences_within_noise_go_to_the_smaller_file():
    variants = [_variant("keras", FLOAT, FLOAT, 60.0, 14.0, role="reference"),
                _variant("float32", FLOAT, FLOAT, 5.00, 13.5, spread=0.15),
                _variant("float16", FLOAT, FLOAT, 5.05, 6.8, spread=0.15)]
    r = recommend(_run(variants, 40))
    assert r.variant == "float16" and "as fast as float32 within timing noise, and the smallest of them" in r.reason
    variants[2] = _variant("float16", FLOAT, FLOAT, 7.5, 6.8, spread=0.02)  # clearly slower now
    assert recommend(_run(variants, 40)).variant == "float32"


def test_too_few_test_images_says_accuracy_cannot_be_decided():
    few = np.array([True] * 5 + [False] * 3)
    variants = [_variant("keras", few, few, 60.0, 14.0, role="reference"),
                _variant("int8", _flip(few, 2), few, 1.7, 4.0)]
    r = recommend(_run(variants, 8))
    assert r.variant == "int8"
    assert "accuracy cannot be decided: only 8 test images (at least 10 are needed for any conclusion)" in r.reason
