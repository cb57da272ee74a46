"""Imbalanced data: class weights, balanced accuracy, per-class evidence after quantization and a
calibration sample that covers every class."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FLOAT_RIGHT, flip, made_run, paired_variant
from zoolite.measure import intervals, stats
from zoolite.report import tables
from zoolite.config import Budget, TrainConfig
from zoolite.dataset.split import even_sample
from zoolite.measure.evaluation import classification_metrics, per_class_report
from zoolite.results.recommend import lost_classes, recommend
from zoolite.model.training import build_head, class_weights, fit, one_hot, sample_weights

COUNTS = [60, 30, 6, 4]  # photos per class, as in a real folder


def _labels(counts) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def test_auto_class_weights_are_inverse_frequency_and_all_one_on_balanced_data():
    weights = class_weights(_labels(COUNTS), 4)
    assert weights == pytest.approx({c: 100 / (4 * n) for c, n in enumerate(COUNTS)})
    # Every class weighs as much as any other in total.
    assert {round(weights[c] * n, 9) for c, n in enumerate(COUNTS)} == {25.0}
    assert class_weights(_labels([5, 5, 5]), 3) == {0: 1.0, 1: 1.0, 2: 1.0}
    assert class_weights(_labels(COUNTS), 4, "none") is None


def test_class_weights_change_the_loss_as_documented():
    """The weighted loss is the mean over the photos of each photo's cross-entropy times its class's
    weight, and training on it no longer sacrifices the rare classes."""
    import keras

    keras.utils.set_random_seed(0)
    labels = _labels(COUNTS)
    y = one_hot(labels, 4)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((len(labels), 8)) + 0.9 * y @ rng.standard_normal((4, 8))).astype(np.float32)
    weights = class_weights(labels, 4)
    head = build_head(8, 4, dropout=0)
    head.compile(loss=keras.losses.CategoricalCrossentropy())
    p = head.predict(x, verbose=0)
    cross_entropy = -np.log(p[np.arange(len(labels)), labels])
    assert head.evaluate(x, y, sample_weight=sample_weights(y, weights), verbose=0) == \
        pytest.approx(np.mean(cross_entropy * [weights[c] for c in labels]), rel=1e-5)

    config = TrainConfig(epochs=30, validation_freq=30, start_from_epoch=30)
    recalls = {}
    for how in ("none", "auto"):
        keras.utils.set_random_seed(0)
        model = build_head(8, 4, dropout=0)
        history = fit(model, (x, y), (x, y), config, verbose=0, weights=class_weights(labels, 4, how))
        predicted = model.predict(x, verbose=0).argmax(1)
        recalls[how] = [np.mean(predicted[labels == c] == c) for c in range(4)]
        assert (history.class_weights is not None) == (how == "auto")
    assert np.mean(recalls["auto"]) > np.mean(recalls["none"])  # balanced accuracy
    assert min(recalls["auto"][2:]) > min(recalls["none"][2:])  # the rare classes


def test_the_recipe_runs_many_steps_a_call_with_the_weights_of_one_step_a_call(monkeypatch):
    """fit compiles a head trained on feature arrays to run STEPS_PER_EXECUTION steps in one call (an epoch of 70
    steps ends in a part call): with class weights, dropout, the learning-rate decay and early stopping (which
    stops the run and restores its best epoch), it ends with the same history and weights, bit for bit, as one
    step a call."""
    import math

    import keras

    from zoolite.model import training

    rng = np.random.default_rng(0)
    labels = _labels([1500, 500, 200, 40])
    y = one_hot(labels, 4)
    x = (rng.standard_normal((len(labels), 16)) + 0.5 * y @ rng.standard_normal((4, 16))).astype(np.float32)
    val = (rng.standard_normal((200, 16)).astype(np.float32), y[rng.permutation(len(labels))[:200]])  # noise
    config = TrainConfig(epochs=30, validation_freq=1, start_from_epoch=1, patience=1)
    steps_per_epoch, default = math.ceil(len(labels) / config.batch_size), training.STEPS_PER_EXECUTION
    assert steps_per_epoch > default and steps_per_epoch % default  # whole calls, then a part one
    runs = {}
    for steps in (default, 1):
        monkeypatch.setattr(training, "STEPS_PER_EXECUTION", steps)
        keras.utils.set_random_seed(0)
        head = build_head(16, 4)
        history = fit(head, (x, y), val, config, verbose=0, weights=class_weights(labels, 4))
        runs[steps] = (history, head.get_weights(), head.steps_per_execution)
    (many, many_weights, many_steps), (one, one_weights, one_steps) = runs.values()
    assert (many_steps, one_steps) == (default, 1) and default > 1
    assert many == one and many.stopped_epoch is not None and many.epochs_run < config.epochs
    for mine, theirs in zip(many_weights, one_weights):
        np.testing.assert_array_equal(mine, theirs)


def test_balanced_accuracy_is_the_mean_recall_with_an_interval_around_it():
    labels = _labels(COUNTS)
    probabilities = one_hot(labels, 4)
    probabilities[labels == 3] = one_hot([0], 4)  # every photo of the rarest class called class 0
    m = classification_metrics(probabilities, labels, 4)
    assert m.accuracy == pytest.approx(96 / 100)
    assert m.balanced_accuracy == pytest.approx(0.75)
    interval = m.balanced_accuracy_interval
    assert interval.low < 0.75 < interval.high < 0.9 and interval.estimate == m.balanced_accuracy
    # Perfect tiny classes still leave room below; an estimate outside its interval would be a bug.
    perfect = intervals.balanced_accuracy_interval([2, 2, 2], [2, 2, 2])
    assert perfect.high == 1.0 and perfect.low < 0.9 and perfect.estimate == 1.0


def _losing_one_class(lost: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, float-model probabilities right on every photo, and a variant's that get ``lost`` of
    class 1's photos wrong."""
    labels = _labels([40, 12, 40])
    reference = one_hot(labels, 3)
    variant = reference.copy()
    variant[np.flatnonzero(labels == 1)[:lost]] = one_hot([0], 3)
    return labels, reference, variant


def test_a_variant_that_loses_one_class_is_flagged_even_within_the_accuracy_budget():
    labels, reference, variant = _losing_one_class(lost=10)
    _, per_class = per_class_report(variant, labels, ["a", "b", "c"], reference)
    assert (per_class["b"].won, per_class["b"].lost) == (0, 10)
    assert per_class["b"].loss_p == pytest.approx(2 ** -10)
    assert per_class["b"].loss_p_holm == pytest.approx(3 * 2 ** -10)
    assert per_class["a"].loss_p_holm == 1.0

    correct, float_correct = variant.argmax(1) == labels, reference.argmax(1) == labels
    losing = paired_variant("int8", correct, float_correct, 1.0, 4.0)
    losing.per_class = per_class
    assert lost_classes(losing) == ["b"]
    variants = [paired_variant("keras", float_correct, float_correct, 60.0, 14.0, role="reference"),
                paired_variant("float16", float_correct, float_correct, 5.0, 6.8), losing]
    r = recommend(made_run({"b": variants}, len(labels)), Budget(max_accuracy_drop_pp=15))  # -10.9 pp: within it
    assert r.variant == "float16" and "Faster but outside the budget: int8 (loses b)." in r.reason
    losing.latency = paired_variant("slow", correct, float_correct, 9.0, 4.0).latency  # slower: still named
    r = recommend(made_run({"b": variants}, len(labels)), Budget(max_accuracy_drop_pp=15))
    assert r.variant == "float16" and "Also losing a class: int8 (loses b)." in r.reason

    # A few photos lost are not evidence: 3 of 12, Holm-corrected over 3 classes, p = 0.375.
    labels, reference, variant = _losing_one_class(lost=3)
    _, per_class = per_class_report(variant, labels, ["a", "b", "c"], reference)
    losing.per_class = per_class
    assert lost_classes(losing) == []


def test_tables_show_balanced_accuracy_per_class_recall_and_the_flag():
    labels, reference, variant = _losing_one_class(lost=10)
    correct, float_correct = variant.argmax(1) == labels, reference.argmax(1) == labels
    variants = [paired_variant("keras", float_correct, float_correct, 60.0, 14.0, role="reference"),
                paired_variant("int8", correct, float_correct, 1.0, 4.0)]
    for v, probabilities in zip(variants, (reference, variant)):
        metrics = classification_metrics(probabilities, labels, 3)
        v.balanced_accuracy, v.balanced_accuracy_interval = metrics.balanced_accuracy, \
            metrics.balanced_accuracy_interval
        _, v.per_class = per_class_report(probabilities, labels, ["a", "b", "c"],
                                          None if v.role == "reference" else reference)
    results = made_run({"b": variants}, len(labels))
    header, rows = tables.backbone_cells(results, "b")
    assert rows[1][header.index("Balanced [95% CI]")].startswith("72.2% [")
    assert rows[1][header.index("Flag")] == "loses b" and rows[0][header.index("Flag")] == ""
    header, rows = tables.class_cells(results, "b")  # 3 classes, 2 variants: a row per class
    assert header == ["Class", "keras", "int8"] and [row[0] for row in rows] == ["a (40)", "b (12)", "c (40)"]
    assert rows[1][1].startswith("100% [") and rows[1][2].startswith("17% [") and rows[1][2].endswith("LOST 0/10")
    assert [cell for row in rows for cell in row if "LOST" in cell] == [rows[1][2]]
    results.backbones["b"].variants += [paired_variant(name, correct, float_correct, 1.0, 4.0) for name in ("x", "y")]
    for v in results.backbones["b"].variants[2:]:
        v.per_class = variants[1].per_class
    header, rows = tables.class_cells(results, "b")  # 4 variants, 3 classes: a row per variant
    assert header == ["Variant", "a (40)", "b (12)", "c (40)"] and [row[0] for row in rows] == ["keras", "int8", "x", "y"]
    assert rows[3][2] == rows[1][2] and rows[3][2].endswith("LOST 0/10")


def test_the_budget_judges_balanced_accuracy_on_an_imbalanced_test_split():
    """A variant that trades rare-class photos for common ones keeps the overall accuracy (8 won, 8 lost: McNemar
    p = 1) and loses no class beyond chance (2 of 10 in each rare class), but its balanced accuracy falls 16 points:
    on an imbalanced split the budget judges the balanced accuracy, and the sign-flip test that weighs each photo
    by its class (stats.balanced_loss_p) shows the loss real, so the variant is not recommended."""
    from zoolite.results import BalancedComparison, ClassMeasure

    sizes = {"a": 90, "b": 10, "c": 10, "d": 10, "e": 10}
    labels = np.repeat(np.arange(len(sizes)), list(sizes.values()))
    float_correct = np.ones(len(labels), bool)
    float_correct[:8] = False  # the float model misses 8 common photos
    correct = np.ones(len(labels), bool)  # the variant gets them, and misses 2 photos of each rare class
    for c in range(1, len(sizes)):
        correct[np.flatnonzero(labels == c)[:2]] = False
    won = np.bincount(labels[correct & ~float_correct], minlength=len(sizes))
    lost = np.bincount(labels[~correct & float_correct], minlength=len(sizes))
    assert won.tolist() == [8, 0, 0, 0, 0] and lost.tolist() == [0, 2, 2, 2, 2]
    loss_p = stats.balanced_loss_p(won, lost, list(sizes.values()))
    assert loss_p < 0.05 and stats.compare_paired(correct, float_correct).mcnemar_p == 1.0
    assert stats.balanced_loss_p(lost, won, list(sizes.values())) > 0.95  # the other way round: a gain

    def balanced(right):
        return float(np.mean([right[labels == c].mean() for c in range(len(sizes))]))

    variants = [paired_variant("keras", float_correct, float_correct, 60.0, 14.0, role="reference"),
                paired_variant("float16", float_correct, float_correct, 5.0, 6.8),
                paired_variant("int8", correct, float_correct, 1.0, 4.0)]
    for v, right in zip(variants, (float_correct, float_correct, correct)):
        v.balanced_accuracy = balanced(right)
        v.per_class = {name: ClassMeasure(1.0, float(right[labels == c].mean()), 1.0, n)
                       for c, (name, n) in enumerate(sizes.items())}
    variants[2].balanced_paired = BalancedComparison(balanced(correct) - balanced(float_correct), loss_p)
    assert variants[2].accuracy == variants[0].accuracy and lost_classes(variants[2]) == []
    run = made_run({"b": variants}, len(labels), labels=tuple(sizes))
    assert run.balanced
    r = recommend(run, Budget(max_accuracy_drop_pp=5))
    assert r.variant == "float16" and "int8" in r.reason.split("Faster but outside the budget:")[1]


def test_a_drop_beyond_the_budget_that_is_not_shown_real_is_said_so():
    """The sentence does not call a -2.5 pp variant "within the budget (accuracy drop <= 1 pp)"."""
    variants = [paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60.0, 14.0, role="reference"),
                paired_variant("int8", flip(FLOAT_RIGHT, 1), FLOAT_RIGHT, 1.7, 4.0)]
    r = recommend(made_run({"b": variants}, 40))
    assert r.variant == "int8"
    assert "-2.5 pp vs the float model" in r.reason
    assert "that drop exceeds the budget's 1 pp, but the 40 test images do not show it to be real (one-sided " \
           "p = 0.5), so it is not ruled out" in r.reason
    assert "within the budget" not in r.reason


def test_the_calibration_sample_covers_every_class_evenly():
    labels = _labels(COUNTS)
    drawn = even_sample(labels, 10, seed=0)
    assert np.bincount(labels[drawn], minlength=4).tolist() == [3, 3, 2, 2]
    drawn = even_sample(labels, 20, seed=0)  # the rare classes give all they have, the others the rest
    assert np.bincount(labels[drawn], minlength=4).tolist() == [6, 5, 5, 4]
    assert len(set(drawn)) == 20 and even_sample(labels, 20, seed=0) == drawn != even_sample(labels, 20, seed=1)
    assert sorted(even_sample(labels, 500, seed=0)) == list(range(100))
