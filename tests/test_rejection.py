""""None of these": the --other photos are split and saved, the rejection is computed inside the model
file and its threshold travels in the metadata, the fitting pieces do what they say, each class's share
of photos kept is measured for every variant, a variant that loses rejection power or a class's kept
photos is flagged and not recommended, and class photos inside --other are warned about."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKBONE
from conftest import FLOAT_RIGHT, made_run, paired_variant
from zoolite.model import rejection
from zoolite.model.calibration import scrambled
from zoolite.model.gated_head import IMAGENET_VIEW
from zoolite.model.logistic import softmax
from zoolite.model.training import top_of
from zoolite.report import reporting, tables
from zoolite.measure import intervals, stats
from zoolite.cli import main
from zoolite.measure.evaluation import per_class_report
from zoolite.measure.rejection import auroc, expected_calibration_error, measure
from zoolite.runs.layout import RunLayout
from zoolite.targets.metadata import read_metadata
from zoolite.results.recommend import recommend
from zoolite.results import OtherPhotos, Rejection, RejectionMeasure
from zoolite.report.tables import rejection_cells
from zoolite.targets import TARGETS, open_model


def test_other_photos_are_split_in_seeded_halves_and_saved(small_run):
    other = json.loads((Path(small_run.run_dir) / "split.json").read_text())["other"]
    photos = sorted(p.relative_to(other["root"]).as_posix() for p in Path(other["root"]).rglob("*.jpg"))
    assert sorted(other["calibration"] + other["test"]) == photos and len(other["calibration"]) == len(photos) // 2
    assert not set(other["calibration"]) & set(other["test"])
    assert small_run.other == OtherPhotos(other["root"], calibration=8, test=8)
    assert small_run.backbones[BACKBONE].rejection.other_photos == 8
    for variant in small_run.backbones[BACKBONE].variants:
        assert variant.rejection.other_photos == 8 and variant.rejection.photos == small_run.split.test


def test_the_rejection_is_computed_inside_the_model_as_numpy_says(small_run):
    """The model's output is softmax(logits / T) x gate: refitting the rejection in NumPy on the run's cached
    features (compared by what the backbone's ImageNet classifier sees too) gives the same fit, the file
    gives the scores NumPy computes from it, and a photo the model rejects gets scores that sum to well
    below 1."""
    from zoolite.model.backbones import get_backbone
    from zoolite.targets.keras import load_keras_model

    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    model, classifier = load_keras_model(layout.model(TARGETS["keras"])), load_keras_model(layout.classifier)
    fitted = small_run.backbones[BACKBONE].rejection
    train, val, other = (np.load(layout.features(name)) for name in ("train", "val", "other_calibration"))
    split = json.loads((Path(small_run.run_dir) / "split.json").read_text())
    labels = {name: np.array([label for _, label in split[name]]) for name in ("train", "val")}
    scored = rejection.score_class_photos(classifier, np.concatenate([train, val]),
                                          np.concatenate([labels["train"], labels["val"]]), val, labels["val"],
                                          small_run.config.seed,
                                          rejection.ImageNetView(*get_backbone(BACKBONE).imagenet_classifier()))
    prototypes, refitted = scored.prototypes, rejection.calibrate(scored, other, fitted.keep_rate)
    assert refitted.threshold == fitted.threshold and refitted.classes == fitted.classes
    assert top_of(model).get_layer(IMAGENET_VIEW).output.shape == (None, 1000)
    images = np.concatenate([np.load(layout.images("test")), np.load(layout.images("other_test")),
                             np.full((1, 224, 224, 3), 128, np.uint8)]).astype(np.float32)
    features = model.get_layer(f"{BACKBONE}_features").predict(images, verbose=0)
    expected = rejection.scores(classifier, features, prototypes, fitted)
    in_file = open_model(layout.model(TARGETS["float32"]))[0].predict(images)
    np.testing.assert_allclose(in_file, expected, atol=1e-4)
    rejected = in_file.max(1) < fitted.threshold
    assert rejected.any() and (in_file[rejected].sum(1) < 0.9).all()


def test_the_reference_predicts_from_the_backbones_fast_features_what_the_whole_model_does(small_run):
    """The reference's probabilities (test photos, --unlabelled and held-out --other) are its gated head on the
    features of the backbone's LiteRT file, bit for bit, which are the whole Keras model's within float32
    rounding."""
    from zoolite.model.features import backbone_file, open_backbone
    from zoolite.model.training import extractor_of
    from zoolite.storage import cache_dir
    from zoolite.targets.keras import KerasRuntime, load_keras_model

    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    model = load_keras_model(layout.model(TARGETS["keras"]))
    classifier = load_keras_model(layout.classifier)
    backbone = open_backbone(backbone_file(extractor_of(classifier), cache_dir() / "backbones"))
    saved = {"test": layout.probabilities("keras"), "unlabelled": layout.unlabelled_probabilities("keras"),
             "other_test": layout.other_probabilities("keras")}
    for name, probabilities in saved.items():
        images = np.load(layout.images(name))
        # computed apart from KerasRuntime, so that a fault there cannot give both sides
        fast = top_of(model).predict(backbone.predict(images), verbose=0)
        np.testing.assert_array_equal(np.load(probabilities), fast, err_msg=name)
        np.testing.assert_allclose(fast, KerasRuntime(model).predict(images), atol=1e-5, err_msg=name)


def test_the_threshold_travels_in_every_file(small_run):
    threshold = small_run.backbones[BACKBONE].rejection.threshold
    assert threshold == float(np.float32(threshold))  # what the metadata can hold, exactly
    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    for name, target in TARGETS.items():
        if target.family.name == "litert":
            assert read_metadata(layout.model(target)).score_threshold == threshold, name


def test_predict_says_none_of_the_classes_below_the_threshold(small_run, tmp_path, capsys):
    """A .keras model reads its threshold from the rejection.json beside it: raised above any score, every
    photo is rejected, and predict says so with the top class."""
    models = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE).models
    for name in ("model.keras", "labels.txt"):
        shutil.copy(models / name, tmp_path / name)
    photo = next(Path(small_run.dataset.root).rglob("*.jpg"))
    assert main(["predict", str(tmp_path / "model.keras"), str(photo)]) == 0
    assert "none of the" not in capsys.readouterr().out  # no rejection.json: it never rejects
    (tmp_path / "rejection.json").write_text(json.dumps({"threshold": 1.01}))
    assert main(["predict", str(tmp_path / "model.keras"), str(photo)]) == 0
    answer = capsys.readouterr().out.strip().split(": ", 1)[1]
    assert re.fullmatch(r"none of the 3 classes \(top: (dog|cat|spider) [01]\.\d\d\)", answer), answer


def test_integer_files_keep_the_gate(small_run):
    """Made photos of other things (finely scrambled test photos, plain colours, noise): every file of the
    run, the integer ones of every runtime included, decides on at least 90% of them as its float model
    does, with no loss beyond chance (the recommendation's rule); and on the held-out --other photos none
    rejects fewer than its float model by more than one photo. Expected to miss the first rule: OpenVINO's int8
    file on a CPU without VNNI, whose 8-bit dot products saturate (an issue OpenVINO documents)."""
    from zoolite.results.recommend import rejection_lost

    backbone = small_run.backbones[BACKBONE]
    test = np.load(RunLayout(Path(small_run.run_dir)).backbone(BACKBONE).images("test"))
    rng = np.random.default_rng(7)
    made = np.concatenate([scrambled(np.resize(test, (20, *test.shape[1:])), 3, tiles=8),
                           np.broadcast_to(rng.integers(0, 256, (10, 1, 1, 3)), (10, *test.shape[1:])),
                           rng.integers(0, 256, (10, *test.shape[1:]))]).astype(np.uint8)
    threshold = backbone.rejection.threshold

    def rejected(variant) -> np.ndarray:
        return open_model(Path(small_run.run_dir) / variant.file)[0].predict(made).max(1) < threshold

    reference = rejected(backbone.reference)
    assert reference.mean() >= 0.5
    integer = [v for v in backbone.shippable if v.input_dtype in ("int8", "uint8") or "int8" in v.mode]
    assert len(integer) >= 4  # LiteRT's int8, uint8 and int8_fallback, ONNX Runtime's and OpenVINO's int8
    saturating = []  # OpenVINO's int8 file on a CPU whose 8-bit dot products saturate
    for variant in backbone.shippable:
        decisions = rejected(variant)
        paired = stats.compare_paired(decisions, reference)  # a right decision: rejecting the made photo
        lost = paired.only_reference_right > paired.only_variant_right and paired.mcnemar_p / 2 < 0.05
        assert variant.rejection.rejected >= backbone.reference.rejection.rejected - 1, variant.target
        assert not rejection_lost(variant, backbone), variant.target
        if variant.target == "openvino_int8" and not _has_vnni() and (np.mean(decisions != reference) > 0.1 or lost):
            saturating.append(paired)
            continue
        assert np.mean(decisions == reference) >= 0.9 and not lost, (variant.target, paired)
    if saturating:  # every other file held to the rule above
        pytest.xfail(f"OpenVINO int8 on a CPU without VNNI (its documented saturation issue): {saturating}")


def _has_vnni() -> bool:
    """Whether this CPU sums 8-bit products without saturating (VNNI or AMX), as OpenVINO's int8 kernels need."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def test_classes_too_small_for_a_gate_of_their_own_are_said_to_share_the_pooled_one(small_run):
    """3 classes x 10 photos: 8 training and validation photos a class, below the minimum, so every class
    takes the pooled figures, and the report says so; each class's estimate comes with its interval."""
    fitted = small_run.backbones[BACKBONE].rejection
    assert fitted.pooled_classes == [0, 1, 2] and [gate.photos for gate in fitted.classes] == [8, 8, 8]
    assert all(gate.kept_interval.low <= gate.kept / gate.photos <= gate.kept_interval.high for gate in fitted.classes)
    assert all(gate.kept_estimate >= fitted.keep_rate for gate in fitted.classes)
    note = tables.rejection_note(small_run, BACKBONE)
    assert "Too few photos to fit the gate per class for dog, cat, spider" in note, note
    # The interval printed is that of the share printed beside it (the class's own), not of the pooled estimate.
    for label, gate in zip(small_run.labels, fitted.classes):
        own = intervals.share(gate.kept / gate.photos, gate.kept_interval)
        assert f"{label} {gate.kept_estimate:.0%} (its own {gate.kept} of {gate.photos}: {own})" in note, note
    assert "Too few photos to fit the gate per class" in reporting.text_summary(small_run)


def test_the_report_says_how_many_other_photos_look_like_a_class(small_run):
    """The warning a run prints about photos of its classes in --other is in its report too."""
    import copy
    from dataclasses import replace

    results = copy.deepcopy(small_run)
    backbone = results.backbones[BACKBONE]
    assert " of the --other photos look" not in tables.rejection_note(results, BACKBONE)
    backbone.rejection = replace(backbone.rejection, other_class_photos=5)
    assert (" 5 of the --other photos look to the float model like one of the classes (score >= 0.8): any that do "
            "show one taught the gate to reject its class") in tables.rejection_note(results, BACKBONE)


def test_temperature_and_calibration_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    true_temperature = 2.0
    p = softmax(logits / true_temperature)
    labels = np.array([rng.choice(5, p=row) for row in p])
    fitted = rejection.fit_temperature(logits, labels)
    assert abs(fitted - true_temperature) < 0.15
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits / fitted), labels)
    assert after < 0.03 < before


def test_threshold_keeps_the_asked_share_of_every_class():
    """Each class keeps at least the keep rate (shrunk toward the pooled share); the highest such threshold."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [300, 100])
    top = np.concatenate([rng.uniform(0.5, 1.0, 300), rng.uniform(0.0, 1.0, 100)])  # class 1 scores lower
    threshold = rejection.choose_threshold(top, labels, 2, 0.97)
    estimates = rejection.class_keep_estimates(top, labels, 2, threshold)
    assert estimates.min() >= 0.97 and threshold == float(np.float32(threshold))
    lowest_kept = np.min(top[top >= threshold])
    above = np.min(top[top > lowest_kept])
    assert rejection.class_keep_estimates(top, labels, 2, above).min() < 0.97  # no higher threshold would do
    assert np.mean(top[labels == 1] >= threshold) >= 0.96  # the class that scores lower is not sacrificed


def test_classes_with_few_photos_take_the_pooled_figures():
    photos = np.array([200, rejection.MIN_CLASS_PHOTOS - 1, rejection.MIN_CLASS_PHOTOS])
    shrunk = rejection.shrunk(np.array([0.5, 0.9, 0.9]), 0.6, photos)
    assert shrunk[1] == 0.6  # too few photos: the pooled figure alone
    assert 0.6 < shrunk[2] < 0.9 and abs(shrunk[0] - 0.5) < 0.03  # weighed by photos


def test_every_class_keeps_its_share_out_of_sample_whatever_its_spread():
    """Classes whose photos sit at different distances from their prototypes (a tight class, a varied one,
    a rare one): fitted on one draw, every class keeps close to the keep rate of a new draw, where one
    threshold on raw similarity keeps the tight class and drops the varied and the rare one."""
    import keras

    rng = np.random.default_rng(0)
    dim, keep_rate = 64, 0.95
    centres = np.eye(dim)[:3] * 10 + 1

    def draw(counts):
        labels = np.repeat(np.arange(3), counts)
        noise = rng.normal(size=(len(labels), dim)) * np.array([1.0, 4.0, 2.5])[labels, None]
        return centres[labels] + noise, labels

    (x, y), (new_x, new_y) = draw([300, 300, 24]), draw([2000, 2000, 2000])
    inputs = keras.Input((dim,))
    head = keras.Sequential([keras.layers.Dense(3, activation="softmax", name="probabilities")], name="head")
    classifier = keras.Model(inputs, head(inputs))
    head.get_layer("probabilities").set_weights([centres.T * 2, np.zeros(3)])
    scored = rejection.score_class_photos(classifier, x, y, x, y, seed=0)
    prototypes, fitted = scored.prototypes, rejection.calibrate(scored, None, keep_rate)
    kept = rejection.scores(classifier, new_x, prototypes, fitted).max(1) >= fitted.threshold
    per_class = [np.mean(kept[new_y == c]) for c in range(3)]
    assert min(per_class) >= keep_rate - 0.04, per_class
    raw = prototypes.similarity(new_x).max(1)
    one_threshold = np.quantile(prototypes.similarity(x).max(1), 1 - keep_rate)
    assert min(np.mean(raw[new_y == c] >= one_threshold) for c in (1, 2)) < keep_rate - 0.1


def test_gate_fitted_on_other_photos_separates_them():
    rng = np.random.default_rng(2)
    classes, others = rng.normal(0.7, 0.05, 300), rng.normal(0.45, 0.05, 300)
    slope, centre = rejection.fit_gate(classes, others)
    assert 0.5 < centre < 0.65 and slope > 10
    assert rejection.gate(classes, slope, centre).mean() > 0.95 > 0.05 > rejection.gate(others, slope, centre).mean()


def test_auroc_matches_its_definition():
    positive, negative = np.array([0.9, 0.8, 0.3]), np.array([0.2, 0.3, 0.85])
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    assert auroc(positive, negative) == np.mean(pairs)


def _with_rejection(variant, rejected: np.ndarray, reference_rejected: np.ndarray):
    variant.rejection = RejectionMeasure(
        kept=40, photos=40, kept_interval=intervals.proportion_interval(40, 40), rejected=int(rejected.sum()),
        other_photos=len(rejected), rejected_interval=intervals.proportion_interval(int(rejected.sum()), len(rejected)),
        auroc=0.9, paired=stats.compare_paired(rejected, reference_rejected))
    return variant


def test_a_variant_that_loses_rejection_is_flagged_and_not_recommended():
    """int8 is the fastest and as accurate as the float model, but rejects 70 of 100 other photos where the
    float model rejects 90: flagged in the table, left out of the recommendation, named in its sentence."""
    reference_rejected = np.arange(100) < 90
    variants = [_with_rejection(paired_variant("keras", FLOAT_RIGHT, FLOAT_RIGHT, 60, 14, role="reference"),
                                reference_rejected, reference_rejected),
                _with_rejection(paired_variant("float32", FLOAT_RIGHT, FLOAT_RIGHT, 6, 14), reference_rejected, reference_rejected),
                _with_rejection(paired_variant("int8", FLOAT_RIGHT, FLOAT_RIGHT, 2, 4), np.arange(100) < 70, reference_rejected)]
    run = made_run({"b": variants}, 40)
    run.backbones["b"].rejection = Rejection("test", 1.0, 10, 1.0, 0.5, 0.3, 0.97, "test", 50)
    run.other = {"root": "other", "calibration": 50, "test": 100}
    run.recommendation = recommend(run)
    assert run.recommendation.variant == "float32"
    assert "int8 (rejection)" in run.recommendation.reason and "rejects 90.0% of the held-out other photos" \
        in run.recommendation.reason
    header, rows = rejection_cells(run, "b")
    flags = {row[0]: row[header.index("Flag")] for row in rows}
    assert flags == {"keras": "", "float32": "", "int8": "loses rejection"}


def _scores(top, answer, classes: int = 3) -> np.ndarray:
    """Scores whose top score and top class for each photo are as given, the other scores 0."""
    out = np.zeros((len(top), classes))
    out[np.arange(len(top)), answer] = top
    return out


def test_each_classs_kept_share_and_the_balanced_shares_are_what_the_photos_say():
    """At a threshold of 0.5: class a keeps 3 of its 4 photos (one of them answered wrong), b loses both of its
    photos to "none of these", c keeps and answers all 3; the float model keeps every photo."""
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    scores = _scores([0.9, 0.8, 0.6, 0.3, 0.2, 0.4, 0.7, 0.5, 0.95], [0, 0, 1, 0, 1, 1, 2, 2, 2])
    measured = measure(scores, labels, ["a", "b", "c"], None, 0.5, (_scores([0.9] * 9, labels), None))
    a, b, c = measured.per_class.values()
    assert (measured.kept, measured.photos, measured.rejected) == (6, 9, None)
    assert [(k.kept, k.photos, k.won, k.lost) for k in (a, b, c)] == [(3, 4, 0, 1), (0, 2, 0, 2), (3, 3, 0, 0)]
    assert a.interval == intervals.proportion_interval(3, 4) and b.rate == 0.0 and b.interval.high < 0.7
    assert [k.loss_p for k in (a, b, c)] == [0.5, 0.25, 1.0] and [k.loss_p_holm for k in (a, b, c)] == [1.0, 0.75, 1.0]
    assert measured.balanced_kept == pytest.approx((3 / 4 + 0 + 1) / 3)
    assert measured.balanced_answered_right == pytest.approx((2 / 4 + 0 + 1) / 3)  # kept but wrong is a miss
    for value, interval in ((measured.balanced_kept, measured.balanced_kept_interval),
                            (measured.balanced_answered_right, measured.balanced_answered_right_interval)):
        assert interval.estimate == value and interval.low < value < interval.high
    assert measured.fewest_kept() == ("b", b)
    alone = measure(scores, labels, ["a", "b", "c"], None, 0.5)  # no float model to compare with
    assert alone.per_class["a"].won is None and alone.balanced_kept == measured.balanced_kept


def _gate_variant(name: str, kept_of_a: int, median_ms: float, mb: float, role: str = "shippable"):
    """A variant right on all 40 test photos (20 of class a, 20 of b) whose gate keeps ``kept_of_a`` of a's
    photos and all of b's, measured against a float model that keeps every photo."""
    labels = np.repeat([0, 1], 20)
    scores = _scores(np.where((labels == 0) & (np.arange(40) >= kept_of_a), 0.1, 0.9), labels, 2)
    reference = _scores(np.full(40, 0.9), labels, 2)
    variant = paired_variant(name, np.ones(40, bool), np.ones(40, bool), median_ms, mb, role=role)
    variant.per_class = per_class_report(scores, labels, ["a", "b"], reference)[1]
    variant.rejection = measure(scores, labels, ["a", "b"], None, 0.5, (reference, None))
    return variant


def _gate_run(int8_keeps_of_a: int):
    variants = [_gate_variant("keras", 20, 60, 14, role="reference"), _gate_variant("float16", 20, 5, 6.8),
                _gate_variant("int8", int8_keeps_of_a, 1.7, 4)]
    run = made_run({"b": variants}, 40, labels=("a", "b"))
    run.recommendation = recommend(run)
    return run


def test_a_variant_whose_gate_drops_a_class_is_flagged_and_not_recommended():
    """int8 is the fastest and answers every photo right, but says "none of these" to 15 of class a's 20 photos,
    which the float model keeps: flagged in the tables, left out of the recommendation, named in its sentence."""
    run = _gate_run(int8_keeps_of_a=5)
    assert run.recommendation.variant == "float16"
    assert "Faster but outside the budget: int8 (keeps fewer of a)." in run.recommendation.reason
    assert "; the gate keeps every test photo of every class" in run.recommendation.reason
    header, rows = tables.backbone_cells(run, "b")
    flags = {row[0]: row[header.index("Flag")] for row in rows}
    assert flags == {"keras": "", "float16": "", "int8": "keeps fewer of a"}
    header, rows = tables.class_cells(run, "b")  # 3 variants, 2 classes: a row per variant
    assert header == ["Variant", "a (20)", "b (20)"]
    assert rows[2][1].startswith("100% [") and "; kept 25% [" in rows[2][1] and rows[2][1].endswith(" LOST 0/15")
    assert [cell for row in rows for cell in row if "LOST" in cell] == [rows[2][1]]
    csv_rows = {row["target"]: row for row in csv.DictReader(io.StringIO(reporting.results_csv(run)))}
    assert csv_rows["int8"]["fewer_kept_classes"] == "a" and csv_rows["int8"]["balanced_kept"] == "0.625"


def test_a_chance_difference_in_a_classs_kept_share_is_not_flagged():
    """2 of class a's 20 photos rejected where the float model keeps them: p = 0.25 before Holm, no evidence."""
    run = _gate_run(int8_keeps_of_a=18)
    assert run.recommendation.variant == "int8"
    assert "; the gate keeps 95% of test photos per class on average, fewest of a: 90% [70%, 97%]." \
        in run.recommendation.reason
    assert "LOST" not in str(tables.class_cells(run, "b"))


def test_a_run_measures_every_variants_gate_per_class_and_keeps_it_in_results_json(small_run):
    """What results.json holds for each variant, the Keras model included, is what the measurement gives on the
    run's saved scores, with the test labels in the class order; and every report shows it."""
    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    backbone = small_run.backbones[BACKBONE]
    labels = np.array([label for _, label in small_run.test_photos()])

    def saved(target: str) -> tuple[np.ndarray, np.ndarray]:
        return np.load(layout.probabilities(target)), np.load(layout.other_probabilities(target))

    for variant in backbone.variants:
        scores, other = saved(variant.target)
        assert variant.rejection == measure(scores, labels, small_run.labels, other,
                                            backbone.rejection.threshold, saved(backbone.reference.target))
        assert list(variant.rejection.per_class) == small_run.labels
        assert sum(c.photos for c in variant.rejection.per_class.values()) == small_run.split.test
    header, rows = rejection_cells(small_run, BACKBONE)
    assert "Balanced kept [95% CI]" in header and all(row[2] != "-" and row[3] != "-" for row in rows)
    assert all("; kept " in cell for row in tables.class_cells(small_run, BACKBONE)[1] for cell in row[1:])
    html = (Path(small_run.run_dir) / "report.html").read_text(encoding="utf-8")
    assert "Balanced answered right [95% CI]" in html and "Balanced kept [95% CI]" in reporting.text_summary(small_run)
