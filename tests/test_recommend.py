"""The recommendation decides on evidence: one flipped test image or timing noise cannot change it,
a variant that really loses accuracy is still rejected, and the sentence says what the test set can
resolve. Hand-made results with known paired outcomes and latency samples."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT_RIGHT, flip, made_run, paired_variant
from zoolite.config import Budget
from zoolite.results.recommend import recommend


def test_one_flipped_test_image_does_not_send_the_user_to_a_model_three_times_slower():
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8),
                paired_variant("int8", flip(FLOAT_RIGHT, 1), FLOAT_RIGHT, 1.7, 4.0, input_dtype="int8"),
                paired_variant("uint8", flip(FLOAT_RIGHT, 1), FLOAT_RIGHT, 1.7, 4.0, input_dtype="uint8")]
    r = recommend(made_run({"b": variants}, 40))
    assert r.variant in ("int8", "uint8")  # tied within noise, the same size (export ships uint8 either way)
    assert "won 0 and lost 1 against the float model (McNemar p = 1)" in r.reason
    assert "with 40 test images a drop below 12.5 pp cannot be detected" in r.reason
    # The point-estimate rule of zoolite 0.1 would have rejected it: -2.5 pp is beyond the 1 pp budget.
    assert variants[2].accuracy < FLOAT_RIGHT.mean() - 0.01


def test_a_variant_looked_up_by_its_target_or_a_key_error_naming_those_measured():
    backbone = made_run({"b": [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                               paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8)]}, 40).backbones["b"]
    assert backbone.variant("float16") is backbone.variants[1]
    with pytest.raises(KeyError, match="'int8' was not measured; these were: keras, float16"):
        backbone.variant("int8")


def test_five_images_lost_and_none_won_of_40_is_a_real_loss():
    """One-sided: only a loss rejects, so 5 of 5 discordant images against the variant (p = 1/32) count."""
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8),
                paired_variant("int8", flip(FLOAT_RIGHT, 5), FLOAT_RIGHT, 1.7, 4.0)]
    assert recommend(made_run({"b": variants}, 40)).variant == "float16"
    variants[2] = paired_variant("int8", flip(FLOAT_RIGHT, 4), FLOAT_RIGHT, 1.7, 4.0)  # p = 1/16: not enough
    assert recommend(made_run({"b": variants}, 40)).variant == "int8"


def test_a_variant_that_really_loses_accuracy_is_still_rejected():
    damaged = flip(FLOAT_RIGHT, 9, won=1)  # lost 9, won 1 of 40: McNemar p = 0.021
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8),
                paired_variant("int8", damaged, FLOAT_RIGHT, 1.7, 4.0)]
    assert variants[2].paired.mcnemar_p < 0.05
    r = recommend(made_run({"b": variants}, 40))
    assert r.variant == "float16"
    assert recommend(made_run({"b": variants}, 40), Budget(max_accuracy_drop_pp=30)).variant == "int8"  # within a loose budget


def test_a_large_test_set_rejects_a_small_real_loss_beyond_the_budget():
    reference = np.array([True] * 1800 + [False] * 200)
    lossy = flip(reference, 60, won=10)  # -2.5 pp on 2,000 images: clearly real
    variants = [paired_variant("keras", reference, reference, 60.0, 14.0, role="reference"),
                paired_variant("float16", reference, reference, 5.1, 6.8),
                paired_variant("int8", lossy, reference, 1.7, 4.0)]
    r = recommend(made_run({"b": variants}, 2000))
    assert r.variant == "float16" and "with 2000 test images a drop below 0.25 pp cannot be detected" in r.reason
    assert "Faster but outside the budget: int8 (accuracy)." in r.reason
    assert recommend(made_run({"b": variants}, 2000), Budget(max_accuracy_drop_pp=3)).variant == "int8"


def test_changed_confident_answers_reject_a_damaged_variant_that_accuracy_alone_cannot():
    """On 40 images, losing 3 is not significant; but changing 12 of 30 confident answers is."""
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8, confident_agreement=(30, 30)),
                paired_variant("int8", flip(FLOAT_RIGHT, 3), FLOAT_RIGHT, 1.7, 4.0, confident_agreement=(18, 30))]
    assert variants[2].paired.mcnemar_p > 0.05
    assert recommend(made_run({"b": variants}, 40)).variant == "float16"
    variants[2] = paired_variant("int8", flip(FLOAT_RIGHT, 3), FLOAT_RIGHT, 1.7, 4.0, confident_agreement=(30, 30))
    assert recommend(made_run({"b": variants}, 40)).variant == "int8"


def test_one_or_two_changed_confident_answers_are_not_evidence_of_damage():
    for changed, n in ((1, 11), (2, 27), (2, 38)):
        variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                    paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.1, 6.8, confident_agreement=(n, n)),
                    paired_variant("int8", FLOAT_RIGHT, FLOAT_RIGHT, 1.7, 4.0, confident_agreement=(n - changed, n))]
        assert recommend(made_run({"b": variants}, 40)).variant == "int8", (changed, n)


def test_latency_differences_within_noise_go_to_the_smaller_file():
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("float32", FLOAT_RIGHT, FLOAT_RIGHT, 5.00, 13.5, spread=0.15),
                paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 5.05, 6.8, spread=0.15)]
    r = recommend(made_run({"b": variants}, 40))
    assert r.variant == "float16" and "as fast as float32 within timing noise, and the smallest of them" in r.reason
    variants[2] = paired_variant("float16", FLOAT_RIGHT, FLOAT_RIGHT, 7.5, 6.8, spread=0.02)  # clearly slower now
    assert recommend(made_run({"b": variants}, 40)).variant == "float32"


def test_too_few_test_images_says_accuracy_cannot_be_decided():
    few = np.array([True] * 5 + [False] * 3)
    variants = [paired_variant("keras", few, few, 60.0, 14.0, role="reference"),
                paired_variant("int8", flip(few, 2), few, 1.7, 4.0)]
    r = recommend(made_run({"b": variants}, 8))
    assert r.variant == "int8"
    assert "accuracy cannot be decided: only 8 test images (at least 10 are needed for any conclusion)" in r.reason
