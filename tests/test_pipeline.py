"""One real run of the whole pipeline on a small slice of real photos."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKBONE
from zoolite import storage
from zoolite.results import SCHEMA_VERSION, LogisticFit
from zoolite.runs.layout import RunLayout
from zoolite.targets import TARGETS, open_model

VARIANTS = list(TARGETS)


def test_run_writes_every_variant_and_report(small_run):
    layout = RunLayout(Path(small_run.run_dir))
    backbone = small_run.backbones[BACKBONE]
    assert [v.target for v in backbone.variants] == VARIANTS  # the run has every runtime
    assert VARIANTS[:7] == ["keras", "float32", "dynamic", "float16", "int8_fallback", "int8", "uint8"]
    assert [(v.family, v.role) for v in backbone.variants] == \
        [("keras", "reference")] + [(TARGETS[name].family.name, "shippable") for name in VARIANTS[1:]]
    models = layout.backbone(BACKBONE).models
    files = [file for target in TARGETS.values() for file in target.family.files(models / target.file_name)]
    assert [f.name for f in files[:7]] == ["model.keras", *(f"{v}.tflite" for v in VARIANTS[1:7])]
    for file in [*files, models / "labels.txt"]:
        assert file.stat().st_size > 0, file
    assert (models / "labels.txt").read_text().split() == ["dog", "cat", "spider"]
    for v in backbone.variants:
        assert v.size_bytes == TARGETS[v.target].family.size_bytes(layout.root / v.file)
        assert v.loss > 0 and v.latency.p90_ms >= v.latency.median_ms > 0
    sizes = {v.target: v.size_bytes for v in backbone.variants}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    assert layout.is_complete()
    saved = json.loads(layout.results.read_text())
    assert saved["schema_version"] == SCHEMA_VERSION
    assert [v["target"] for v in saved["backbones"][BACKBONE]["variants"]] == VARIANTS
    rows = list(csv.DictReader(layout.results_csv.open()))
    assert [r["target"] for r in rows] == VARIANTS
    report = layout.report_md.read_text()
    assert all(f"| {v} |" in report for v in VARIANTS)


def test_the_split_is_saved_and_stratified(small_run):
    split = json.loads(RunLayout(Path(small_run.run_dir)).split.read_text())
    assert split["seed"] == 0
    for subset in ("train", "val", "test"):
        labels = [label for _, label in split[subset]]
        assert len(set(np.bincount(labels))) == 1  # the same count for each class
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 30


def test_head_learns_from_real_photos(small_run):
    """By default the head is a logistic regression fitted to convergence, better than chance on photos it was
    not fitted on."""
    reference = small_run.backbones[BACKBONE].reference
    assert reference.accuracy >= 2 / 3  # chance is 1/3 for three classes
    head = small_run.backbones[BACKBONE].training.head
    assert isinstance(head, LogisticFit) and head.converged and head.c == small_run.config.train.head_c == 1.0
    assert head.loss < np.log(3) and head.val_accuracy > 1 / 3 and head.class_weights == [1.0, 1.0, 1.0]


def test_the_stored_probabilities_are_what_each_file_predicts(small_run):
    """The measurements are of the files on disk: each file, opened again and run one image at a
    time, gives the probabilities the run stored for it, and its accuracy."""
    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    images = np.load(layout.images("test"))
    labels = np.array([label for _, label in json.loads(RunLayout(Path(small_run.run_dir)).split.read_text())["test"]])
    for variant in small_run.backbones[BACKBONE].variants:
        runtime, _ = open_model(layout.model(TARGETS[variant.target]))
        predicted = np.stack([runtime.predict_one(image) for image in images])
        stored = np.load(layout.probabilities(variant.target))
        np.testing.assert_allclose(predicted, stored, atol=1e-5, err_msg=variant.target)
        assert variant.accuracy == pytest.approx(np.mean(predicted.argmax(1) == labels)), variant.target


def test_quantized_variants_agree_with_the_float_model(small_run):
    for v in small_run.backbones[BACKBONE].variants:
        assert v.agreement.top1_agreement >= 0.8, v.target
    assert small_run.backbones[BACKBONE].variant("float32").agreement.mean_abs_prob_diff < 1e-4


def test_new_run_dirs_never_reuse_a_folder(tmp_path):
    first = storage.new_run_dir(tmp_path, "x")
    (first / "keep.txt").write_text("earlier run")
    second = storage.new_run_dir(tmp_path, "x")
    assert first != second and (first / "keep.txt").read_text() == "earlier run"


def test_atomic_write_leaves_no_partial_file_on_error(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_agreement_with_itself_and_with_a_perturbed_copy(small_run):
    from zoolite.measure.evaluation import agreement
    from zoolite.model.training import top_of
    from zoolite.targets.keras import KerasRuntime, load_keras_model

    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    model = load_keras_model(layout.model(TARGETS["keras"]))
    images = np.load(layout.images("test"))
    reference = KerasRuntime(model).predict(images)
    assert agreement(KerasRuntime(model).predict(images), reference).top1_agreement == 1.0
    # Swap the dog and cat outputs: those predictions flip, the spider ones stay.
    dense = top_of(model).get_layer("calibrated_probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel[:, [1, 0, 2]], bias[[1, 0, 2]]])
    result = agreement(KerasRuntime(model).predict(images), reference)
    assert 0.0 < result.top1_agreement < 1.0 and result.mean_abs_prob_diff > 0.01


def test_every_figure_carries_its_uncertainty(small_run):
    backbone = small_run.backbones[BACKBONE]
    for v in backbone.variants:
        assert v.accuracy_interval.low <= v.accuracy <= v.accuracy_interval.high, v.target
        assert v.accuracy_interval.high - v.accuracy_interval.low > 0.3  # 6 test images say little
        assert v.top_k_interval.low <= v.top_k_accuracy <= v.top_k_interval.high
        latency = v.latency
        assert len(latency.samples_ms) == latency.runs
        assert latency.median_interval.low <= latency.median_ms <= latency.median_interval.high
        assert v.paired.n == small_run.split.test == 6
        assert v.paired.variant_accuracy == pytest.approx(v.accuracy)
    reference = backbone.reference.paired
    assert (reference.only_variant_right, reference.only_reference_right, reference.mcnemar_p) == (0, 0, 1.0)
    printed = (Path(small_run.run_dir) / "report.md").read_text()
    assert "Accuracy [95% CI]" in printed and "Won/lost (p)" in printed


def test_six_test_images_cannot_decide_on_accuracy_and_the_recommendation_says_so(small_run):
    assert "accuracy cannot be decided: only 6 test images (at least 10 are needed for any conclusion)" \
        in small_run.recommendation.reason


def test_fidelity_on_the_unlabelled_photos(small_run):
    """12 photos of none of the classes (the text file among them skipped), split by the float
    model's confidence; the float32 file follows the float model on every one of them."""
    assert small_run.unlabelled.photos == 12
    assert [s.file for s in small_run.unlabelled.skipped] == ["notes.jpg"]
    backbone = small_run.backbones[BACKBONE]
    for v in backbone.variants:
        rows = v.fidelity.unlabelled
        assert rows[0].group == "all" and rows[0].n == 12
        assert sum(r.n for r in rows[1:]) == 12
    assert backbone.variant("float32").fidelity.unlabelled[0].agreement == 1.0
    html = (Path(small_run.run_dir) / "report.html").read_text()
    assert "Fidelity to the float model on the unlabelled photos" in html and "flip easily and mean little" in html
    markdown = (Path(small_run.run_dir) / "report.md").read_text()
    assert "### Fidelity to the float model on the unlabelled photos" in markdown
    assert "| float32 | 100.0% [" in markdown


@pytest.mark.slow
def test_the_stages_run_one_by_one_as_the_docs_show(tmp_path, caplog, monkeypatch):
    """docs/usage.md's notebook flow: prepare, then each stage with typed inputs and outputs; a stage called
    again loads what it saved rather than running again. With photos of the run's own classes in --other,
    the gate stage says so in one warning, and one more for the classes too small for a gate of their own;
    it scores the class photos out of sample once, though it calibrates the gate without --other and with it."""
    from conftest import copy_sample
    from zoolite.config import RunConfig
    from zoolite.model import rejection
    from zoolite.runs import pipeline, stages
    from zoolite.targets import REFERENCE

    data = copy_sample(tmp_path / "data", per_class=10)
    other = copy_sample(tmp_path / "other", classes=("cane", "gatto"), per_class=16)  # the run's own classes
    config = RunConfig.from_options(data=str(data), other=str(other), runs_dir=str(tmp_path / "runs"),
                                    modes=("float32",), head="recipe", epochs=4, validation_freq=1,
                                    start_from_epoch=0, representative_images=4, warmup=1, runs=2)
    prepared = pipeline.prepare(config)
    steps = []
    run = prepared.backbone_run(BACKBONE, after_step=steps.append)
    assert (run.photos.train.labels.tolist(), run.photos.test.paths) == \
        ([label for _, label in prepared.split.train], [data / path for path, _ in prepared.split.test])
    assert len(run.photos.other_calibration) == len(run.photos.other_test) == 16
    trained = stages.train(run)
    assert trained.training.head.epochs_run == 4 and not trained.base_learned
    assert list(run.layout.tensorboard("head").glob("train/events.out.tfevents.*"))  # its epochs, logged
    cross_fitted = []
    monkeypatch.setattr(rejection, "out_of_fold_similarity",
                        lambda *args, real=rejection.out_of_fold_similarity: cross_fitted.append(1) or real(*args))
    with caplog.at_level(logging.WARNING, logger="zoolite"):
        gated = stages.gate(run, trained)
    assert len(cross_fitted) == 1
    warnings = [r.getMessage() for r in caplog.records if "--other" in r.getMessage()]
    assert len(warnings) == 1 and f"--other {other}: the float model is confident" in warnings[0]
    confident = int(warnings[0].split("that ")[1].split(" of ")[0])
    assert confident >= 3 and "of its 32 photos show one of the classes" in warnings[0]
    assert gated.rejection.other_class_photos == confident  # for the report to say too
    assert json.loads(run.layout.rejection.read_text())["other_class_photos"] == confident
    pooled = [r.getMessage() for r in caplog.records if "too few photos" in r.getMessage()]
    assert len(pooled) == 1 and "per class for dog, cat, spider (fewer than 10 training" in pooled[0], pooled

    files = stages.convert(run, gated)
    assert list(files) == [REFERENCE, TARGETS["float32"]] and all(path.is_file() for path in files.values())
    measured = stages.measure(run, trained, files)
    labels = run.photos.test.labels
    assert measured[0].target is REFERENCE
    for file in measured:
        assert file.variant.target == file.target.name and file.variant.role == file.target.role
        assert file.variant.accuracy == np.mean(file.outputs.test.argmax(1) == labels)
        assert file.outputs.unlabelled is None and len(file.outputs.other) == 16

    assert "training" in steps and "rejection" in steps
    ran = len(steps)
    again = stages.train(run)  # loaded from the run folder, not trained again
    assert again.training == trained.training
    for a, b in zip(again.classifier.get_weights(), trained.classifier.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert stages.gate(run, again).rejection == gated.rejection and len(steps) == ran
