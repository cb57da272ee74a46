""""None of these": the --other photos are split and saved, the rejection is computed inside the model
file and its threshold travels in the metadata, the fitting pieces do what they say, a variant that
loses rejection power is flagged and not recommended, and class photos inside --other are warned about."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from conftest import BACKBONE, copy_sample
from conftest import FLOAT_RIGHT, made_run, paired_variant
from zoolite import rejection, stats
from zoolite.cli import main
from zoolite.layout import RunLayout
from zoolite.metadata import read_metadata
from zoolite.recommend import recommend
from zoolite.results import OtherPhotos, Rejection
from zoolite.tables import rejection_cells
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
    """The model's output is softmax(logits / T) x gate: NumPy's reading of the same weights gives the
    same scores, and a photo the model rejects gets scores that sum to well below 1."""
    from zoolite.targets.keras import load_keras_model

    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    model, classifier = load_keras_model(layout.model(TARGETS["keras"])), load_keras_model(layout.classifier)
    fitted = small_run.backbones[BACKBONE].rejection
    images = np.concatenate([np.load(layout.images("test")), np.load(layout.images("other_test")),
                             np.full((1, 224, 224, 3), 128, np.uint8)]).astype(np.float32)
    features = model.get_layer(f"{BACKBONE}_features").predict(images, verbose=0)
    centroids = model.get_layer("centroid_similarity").get_weights()[0].T
    expected = rejection.scores(classifier, features, centroids, fitted)
    in_file = open_model(layout.model(TARGETS["float32"]))[0].predict(images)
    np.testing.assert_allclose(in_file, expected, atol=1e-4)
    rejected = in_file.max(1) < fitted.threshold
    assert rejected.any() and (in_file[rejected].sum(1) < 0.9).all()


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


def test_temperature_and_calibration_error():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    true_temperature = 2.0
    p = rejection.softmax(logits / true_temperature)
    labels = np.array([rng.choice(5, p=row) for row in p])
    fitted = rejection.fit_temperature(logits, labels)
    assert abs(fitted - true_temperature) < 0.15
    before = rejection.expected_calibration_error(rejection.softmax(logits), labels)
    after = rejection.expected_calibration_error(rejection.softmax(logits / fitted), labels)
    assert after < 0.03 < before


def test_threshold_keeps_the_asked_share_and_no_more():
    top = np.random.default_rng(1).uniform(size=200)
    threshold = rejection.choose_threshold(top, 0.97)
    assert np.mean(top >= threshold) == 0.97  # 194 of 200 kept: the highest threshold that keeps 97%


def test_gate_fitted_on_other_photos_separates_them():
    rng = np.random.default_rng(2)
    classes, others = rng.normal(0.7, 0.05, 300), rng.normal(0.45, 0.05, 300)
    slope, centre = rejection.fit_gate(classes, others)
    assert 0.5 < centre < 0.65 and slope > 10
    assert rejection.gate(classes, slope, centre).mean() > 0.95 > 0.05 > rejection.gate(others, slope, centre).mean()


def test_auroc_matches_its_definition():
    positive, negative = np.array([0.9, 0.8, 0.3]), np.array([0.2, 0.3, 0.85])
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    assert rejection.auroc(positive, negative) == np.mean(pairs)


def _with_rejection(variant, rejected: np.ndarray, reference_rejected: np.ndarray):
    variant.rejection = rejection.RejectionMeasure(
        kept=40, photos=40, kept_interval=stats.proportion_interval(40, 40), rejected=int(rejected.sum()),
        other_photos=len(rejected), rejected_interval=stats.proportion_interval(int(rejected.sum()), len(rejected)),
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


def test_class_photos_in_other_are_warned_about(tmp_path, caplog):
    from zoolite.config import RunConfig
    from zoolite.pipeline import run
    from zoolite.progress import Progress

    data = copy_sample(tmp_path / "data", per_class=10)
    other = copy_sample(tmp_path / "other", classes=("cane", "gatto"), per_class=16)  # the run's own classes
    config = RunConfig.from_options(data=str(data), other=str(other), runs_dir=str(tmp_path / "runs"),
                                    modes=("float32",), epochs=4, validation_freq=1, start_from_epoch=0,
                                    warmup=1, runs=3, tensorboard=False)
    with caplog.at_level(logging.WARNING, logger="zoolite"):
        run(config, progress=Progress(False))
    warnings = [r.getMessage() for r in caplog.records if "--other" in r.getMessage()]
    assert len(warnings) == 1 and f"--other {other}: the float model is confident" in warnings[0]
    confident = int(warnings[0].split("that ")[1].split(" of ")[0])
    assert confident >= 3 and "of its 32 photos show one of the classes" in warnings[0]
