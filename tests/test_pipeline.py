"""One real run of the whole pipeline on a small slice of real photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from zoolite import storage
from zoolite.runtimes import open_runtime

VARIANTS = ["keras", "float32", "dynamic", "float16", "int8_fallback", "int8"]


def test_run_writes_every_variant_and_report(small_run):
    run_dir = Path(small_run["run_dir"])
    backbone = small_run["backbones"]["efficientnet_lite0"]
    assert [row["variant"] for row in backbone["variants"]] == VARIANTS
    models = run_dir / "efficientnet_lite0" / "models"
    for name in ["model.keras", *(f"{v}.tflite" for v in VARIANTS[1:]), "labels.txt"]:
        assert (models / name).stat().st_size > 0, name
    assert (models / "labels.txt").read_text().split() == ["dog", "cat", "spider"]
    for row in backbone["variants"]:
        assert row["size_bytes"] == (run_dir / row["file"]).stat().st_size
        assert 0 <= row["accuracy"] <= 1 and row["loss"] > 0
        assert row["latency"]["p90_ms"] >= row["latency"]["median_ms"] > 0
    sizes = {row["variant"]: row["size_bytes"] for row in backbone["variants"]}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    assert storage.is_complete(run_dir)
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["backbones"]["efficientnet_lite0"]["variants"][0]["variant"] == "keras"
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert [r["variant"] for r in rows] == VARIANTS
    report = (run_dir / "report.md").read_text()
    assert all(f"| {v} |" in report for v in VARIANTS)


def test_the_split_is_saved_and_stratified(small_run):
    split = json.loads((Path(small_run["run_dir"]) / "split.json").read_text())
    assert split["seed"] == 0
    for subset in ("train", "val", "test"):
        labels = [label for _, label in split[subset]]
        assert len(set(np.bincount(labels))) == 1  # the same count for each class
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 30


def test_head_learns_from_real_photos(small_run):
    keras_row = small_run["backbones"]["efficientnet_lite0"]["variants"][0]
    assert keras_row["accuracy"] >= 2 / 3  # chance is 1/3 for three classes
    history = small_run["backbones"]["efficientnet_lite0"]["training"]["head"]
    assert history["loss"][-1] < history["loss"][0]


def test_batched_and_single_image_predictions_agree_for_every_variant(small_run):
    run_dir = Path(small_run["run_dir"])
    images = np.load(run_dir / "efficientnet_lite0" / "cache" / "test_images.npy")
    for variant in VARIANTS:
        row = next(r for r in small_run["backbones"]["efficientnet_lite0"]["variants"] if r["variant"] == variant)
        runtime, _ = open_runtime(run_dir / row["file"])
        batched = runtime.predict(images)
        single = np.stack([runtime.predict_one(image) for image in images])
        assert (batched.argmax(1) == single.argmax(1)).all(), variant
        np.testing.assert_allclose(batched, single, atol=1e-4, err_msg=variant)


def test_quantized_variants_agree_with_the_float_model(small_run):
    for row in small_run["backbones"]["efficientnet_lite0"]["variants"]:
        assert row["agreement_with_keras"]["top1_agreement"] >= 0.8, row["variant"]
    float32 = small_run["backbones"]["efficientnet_lite0"]["variants"][1]
    assert float32["agreement_with_keras"]["mean_abs_prob_diff"] < 1e-4


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
    from zoolite.evaluation import agreement
    from zoolite.runtimes import KerasRuntime, load_keras_model

    run_dir = Path(small_run["run_dir"])
    model = load_keras_model(run_dir / "efficientnet_lite0" / "models" / "model.keras")
    images = np.load(run_dir / "efficientnet_lite0" / "cache" / "test_images.npy")
    reference = KerasRuntime(model).predict(images)
    assert agreement(KerasRuntime(model).predict(images), reference)["top1_agreement"] == 1.0
    # Swap the dog and cat outputs: those predictions flip, the spider ones stay.
    dense = model.get_layer("head").get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel[:, [1, 0, 2]], bias[[1, 0, 2]]])
    result = agreement(KerasRuntime(model).predict(images), reference)
    assert 0.0 < result["top1_agreement"] < 1.0 and result["mean_abs_prob_diff"] > 0.01
