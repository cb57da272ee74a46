"""LiteRT, ONNX Runtime and OpenVINO side by side in one run: one table, one evaluation routine,
paired evidence for every family, a recommendation per runtime, and export / predict / evaluate
for every family's files."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKBONE, RUNTIMES, error_line
from zoolite.cli import main
from zoolite.runs.layout import RunLayout
from zoolite.results.recommend import recommend
from zoolite.report.reporting import text_summary
from zoolite.results import load
from zoolite.targets import FAMILIES, TARGETS, Runtime, open_model


def _variants(small_run, family: str) -> list:
    return [v for v in small_run.backbones[BACKBONE].shippable if v.family == family]


def test_one_table_holds_every_runtime_with_its_label(small_run):
    table = text_summary(small_run)
    for family in RUNTIMES:
        assert _variants(small_run, family), f"no {family} variant in the run"
        assert FAMILIES[family].label in table
    threads = {v.threads for v in small_run.backbones[BACKBONE].shippable}
    assert len(threads) == 1, f"every runtime must be timed with the same threads, got {threads}"


def test_every_familys_runtime_has_what_evaluation_and_export_ask_of_it(small_run):
    for v in small_run.backbones[BACKBONE].variants:
        runtime, _ = open_model(Path(small_run.run_dir) / v.file)
        assert isinstance(runtime, Runtime), v.target
        model_input, model_output = runtime.tensors()
        assert model_input.shape == [1, runtime.input_size, runtime.input_size, 3] and model_input.dtype == v.input_dtype
        assert model_output.shape == [1, runtime.n_classes] and (runtime.threads, runtime.backend) == (v.threads, v.backend)


def test_every_float_variant_follows_the_keras_model(small_run):
    for family in RUNTIMES:
        float32 = next(v for v in _variants(small_run, family) if v.mode == "float32")
        assert float32.agreement.top1_agreement >= 0.99, (float32.target, float32.agreement)
        assert float32.agreement.mean_abs_prob_diff < 1e-3, (float32.target, float32.agreement)


def test_every_integer_variant_carries_paired_and_per_class_evidence(small_run):
    """Each runtime's int8 file carries its paired evidence against the float Keras model, and it is what the
    saved test probabilities say: the photos only it or only the float model got right, overall and per class."""
    run_dir = Path(small_run.run_dir)
    layout = RunLayout(run_dir).backbone(BACKBONE)
    labels = np.array([label for _, label in json.loads((run_dir / "split.json").read_text())["test"]])
    reference = small_run.backbones[BACKBONE].reference
    float_right = np.load(layout.probabilities(reference.target)).argmax(1) == labels
    for family in RUNTIMES:
        int8 = next(v for v in _variants(small_run, family) if v.mode == "int8")
        right = np.load(layout.probabilities(int8.target)).argmax(1) == labels
        paired = int8.paired
        assert (paired.n, paired.only_variant_right, paired.only_reference_right) == \
            (len(labels), int(np.sum(right & ~float_right)), int(np.sum(~right & float_right))), int8.target
        assert int8.balanced_paired.difference == pytest.approx(
            int8.balanced_accuracy - reference.balanced_accuracy), int8.target
        for c, (name, measure) in enumerate(int8.per_class.items()):
            mine = labels == c
            assert (measure.won, measure.lost) == (int(np.sum(right[mine] & ~float_right[mine])),
                                                   int(np.sum(~right[mine] & float_right[mine]))), (int8.target, name)
            assert 0 < measure.loss_p <= measure.loss_p_holm <= 1


def test_openvino_size_counts_the_weights_file_too(small_run):
    variant = _variants(small_run, "openvino")[0]
    xml = Path(small_run.run_dir) / variant.file
    assert variant.size_bytes == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size


def _results_only(small_run, tmp_path) -> Path:
    """A copy of the run without its models and caches: what `zoolite report` needs."""
    return Path(shutil.copytree(small_run.run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("models", "cache")))


def test_the_recommendation_can_be_asked_per_runtime(small_run, tmp_path, capsys):
    budget = dataclasses.replace(small_run.config.budget, max_accuracy_drop_pp=100)
    for family in RUNTIMES:
        recommendation = recommend(small_run, budget, family)
        assert recommendation.runtime == family and TARGETS[recommendation.variant].family.name == family
        assert recommendation.reason.startswith(f"{recommendation.variant} ({FAMILIES[family].label}): ")
    run_dir = _results_only(small_run, tmp_path)  # the command, and what it stores
    assert main(["report", str(run_dir), "--runtime", "openvino", "--max-accuracy-drop", "100"]) == 0
    assert load(run_dir).recommendation == recommend(small_run, budget, "openvino")
    assert "(OpenVINO)" in capsys.readouterr().out


def test_an_unknown_runtime_for_the_recommendation_lists_the_measured_ones(small_run, tmp_path, capsys):
    run_dir = _results_only(small_run, tmp_path)
    line = error_line(capsys, ["report", str(run_dir), "--runtime", "tensorrt"])
    assert line == f"zoolite: error: --runtime tensorrt: no variant of it in this run; choose from: " \
                   f"{', '.join(sorted(RUNTIMES))}"


@pytest.mark.parametrize("variant", ["onnxruntime_int8", "openvino_int8"])
def test_export_bundles_any_family_and_predict_reads_its_labels_from_the_file(small_run, tmp_path, capsys,
                                                                              variant, test_photos):
    bundle = tmp_path / "bundle"
    assert main(["export", small_run.run_dir, "--variant", variant, "--to", str(bundle)]) == 0
    capsys.readouterr()
    target = TARGETS[variant]
    model = bundle / target.file_name
    card = json.loads((bundle / "model.json").read_text())
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [*(p.name for p in target.family.files(model)), "labels.txt", "model.json"])
    assert card["runtime"] == target.family.label and card["web"] is False
    assert card["input"]["dtype"] == "float32" and card["input"]["shape"][1:] == [small_run.backbones[BACKBONE]
                                                                                 .input_size] * 2 + [3]
    (bundle / "labels.txt").unlink()  # the labels come from the file itself
    assert main(["predict", str(model), *map(str, test_photos)]) == 0
    answers = [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    run_scores = np.load(RunLayout(Path(small_run.run_dir)).backbone(BACKBONE).probabilities(variant))
    threshold = small_run.backbones[BACKBONE].rejection.threshold
    for answer, scores in zip(answers, run_scores, strict=True):  # the run's answer for the same pixels
        best = small_run.labels[int(scores.argmax())]
        assert answer.startswith("none of the") if scores.max() < threshold else answer.startswith(f"{best} ")


def test_the_web_page_refuses_a_family_it_cannot_run_before_writing(small_run, tmp_path, capsys):
    line = error_line(capsys, ["export", small_run.run_dir, "--variant", "openvino_float32", "--web",
                               "--to", str(tmp_path / "site")])
    assert "--variant openvino_float32: LiteRT.js cannot run this OpenVINO file (float32 input)" in line
    assert "choose from: float32, dynamic, float16, int8_fallback, uint8" in line
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("variant", ["onnxruntime_float32", "openvino_native"])
def test_evaluate_measures_any_family_on_a_folder_as_text_and_as_json(small_run, small_dataset, capsys, variant):
    model = Path(small_run.run_dir) / small_run.backbones[BACKBONE].variant(variant).file
    assert main(["evaluate", str(model), str(small_dataset), "--runs", "3", "--warmup", "1"]) == 0
    text = capsys.readouterr().out
    assert main(["evaluate", str(model), str(small_dataset), "--runs", "3", "--warmup", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    scores = figures["scores"]
    assert figures["images"] == 24 and figures["classes"] == small_run.labels
    assert f"accuracy {scores['accuracy'] * 100:.1f}%" in text and figures["latency"]["runs"] == 3
    assert f"balanced accuracy {scores['balanced_accuracy'] * 100:.1f}%" in text
    assert set(figures["per_class"]) == set(small_run.labels) and f"threads: {figures['threads']})" in text
    kept = figures["rejection"]  # "none of these" at the file's own threshold, per class
    assert list(kept["per_class"]) == small_run.labels and kept["photos"] == 24
    assert sum(c["photos"] for c in kept["per_class"].values()) == 24 and kept["rejected"] is None
    for name, c in kept["per_class"].items():
        assert c["interval"]["low"] <= c["kept"] / c["photos"] <= c["interval"]["high"]
        assert f"{name} {c['kept'] / c['photos'] * 100:.0f}% [" in text.split("kept per class")[1]
    assert 0 <= kept["balanced_answered_right"] <= kept["balanced_kept"] <= 1
    assert f"balanced kept {kept['balanced_kept'] * 100:.0f}% [" in text
    assert f"balanced answered right (a photo said to be none of the classes counts as a miss) " \
           f"{kept['balanced_answered_right'] * 100:.0f}% [" in text


def test_a_runtime_left_without_modes_is_refused_before_any_work(tmp_path, capsys):
    line = error_line(capsys, ["run", "--out", tmp_path / "runs", "--runtimes", "litert,openvino",
                               "--modes", "native"])
    assert line == ("zoolite: error: --modes native: the runtime litert has none of these modes; add one of: "
                    "float32, dynamic, float16, int8_fallback, int8, uint8 (or leave litert out of --runtimes)")
    assert not (tmp_path / "runs").exists()
