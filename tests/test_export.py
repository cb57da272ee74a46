"""``zoolite export``: the bundle loads in LiteRT, model.json matches the model's own tensors, and
an app following model.json gets the run's predictions."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from conftest import BACKBONE, error_line
from zoolite.cli import main
from zoolite.report import reporting
from zoolite.results import Recommendation
from zoolite.runs.layout import RunLayout
from zoolite.targets import TARGETS


def _interpreter(path: Path) -> Interpreter:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _matches(card: dict, details: dict) -> None:
    assert card["name"] == details["name"]
    assert card["shape"] == details["shape"].tolist()
    assert card["dtype"] == np.dtype(details["dtype"]).name
    scale, zero_point = details["quantization"]
    if card["quantization"] is None:
        assert not np.issubdtype(details["dtype"], np.integer)
    else:
        assert card["quantization"] == {"scale": pytest.approx(scale), "zero_point": zero_point}


def test_int8_bundle_loads_and_model_json_matches_the_model(small_run, tmp_path, capsys):
    run_dir = Path(small_run.run_dir)
    target = tmp_path / "app" / "model"
    assert main(["export", str(run_dir), "--variant", "int8", "--to", str(target)]) == 0
    assert capsys.readouterr().out.strip() == f"{target}: int8.tflite, labels.txt, model.json"
    card = json.loads((target / "model.json").read_text())
    interpreter = _interpreter(target / card["model_file"])
    model_input, model_output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    _matches(card["input"], model_input)
    _matches(card["output"], model_output)
    assert card["input"]["dtype"] == card["output"]["dtype"] == "int8"
    assert (card["variant"], card["runtime"], card["mode"]) == ("int8", "LiteRT", "int8")
    assert card["mode_description"] == TARGETS["int8"].description and "quantization" not in card
    assert card["input_size"] == model_input["shape"][1] == 224 and card["input"]["pixel_range"] == [0, 255]
    assert card["input"]["normalisation_inside_model"] == {"scale": 1 / 128, "offset": -127 / 128,
                                                           "formula": "pixel * scale + offset"}
    labels = (target / "labels.txt").read_text().splitlines()
    assert labels == card["classes"] == small_run.labels
    assert len(labels) == model_output["shape"][-1]
    int8 = small_run.backbones[BACKBONE].variant("int8")
    assert card["measured"]["accuracy"] == int8.accuracy
    assert card["measured"]["latency_ms"]["mean"] == int8.latency.mean_ms
    assert card["measured"]["size_bytes"] == (target / "int8.tflite").stat().st_size == int8.size_bytes
    assert (card["source"]["run_dir"], card["source"]["file"]) == (str(run_dir.resolve()), int8.file)
    gate = card["none_of_these"]["measured"]
    assert gate["kept_per_class"] == {name: c.rate for name, c in int8.rejection.per_class.items()}
    assert sorted(gate["kept_per_class"]) == sorted(small_run.labels)
    assert gate["balanced_kept"] == pytest.approx(np.mean(list(gate["kept_per_class"].values())))

    # An app that follows model.json alone gets the probabilities the run measured.
    layout = RunLayout(run_dir).backbone(BACKBONE)
    images = np.load(layout.images("test"))
    expected = np.load(layout.probabilities("int8"))
    q_in, q_out = card["input"]["quantization"], card["output"]["quantization"]
    for image, probabilities in zip(images[:4], expected):
        pixels = np.clip(np.round(image / q_in["scale"]) + q_in["zero_point"], -128, 127).astype(np.int8)
        interpreter.set_tensor(model_input["index"], pixels[None])
        interpreter.invoke()
        value = interpreter.get_tensor(model_output["index"])[0]
        np.testing.assert_allclose((value.astype(np.float32) - q_out["zero_point"]) * q_out["scale"],
                                   probabilities, atol=1e-6)


def _recommending(run, variant: str, folder: Path, without: tuple[str, ...] = ()) -> Path:
    """A copy of ``run``'s folder in ``folder`` whose results recommend ``variant`` (made up), as if it had
    not made the variants ``without``."""
    results = copy.deepcopy(run)
    results.run_dir = str(shutil.copytree(run.run_dir, folder))
    backbone = results.backbones[BACKBONE]
    backbone.variants = [v for v in backbone.variants if v.target not in without]
    results.recommendation = Recommendation(results.config.budget, f"{variant} won (made up)", BACKBONE, variant)
    reporting.write_reports(results)
    return folder


def test_float_bundle_has_no_quantization_and_the_default_is_the_recommendation(small_run, tmp_path):
    run_dir = Path(small_run.run_dir)
    assert main(["export", str(run_dir), "--variant", "float16", "--to", str(tmp_path / "f16")]) == 0
    card = json.loads((tmp_path / "f16" / "model.json").read_text())
    interpreter = _interpreter(tmp_path / "f16" / "float16.tflite")
    _matches(card["input"], interpreter.get_input_details()[0])
    assert card["input"]["dtype"] == "float32" and card["input"]["quantization"] is None
    assert card["input"]["feed"] is None and card["output"]["read"] is None

    # Without --variant: the run's recommendation (or the twin apps take), byte for byte.
    recommended = small_run.recommendation.variant
    expected = TARGETS[recommended].app_twin or recommended
    assert main(["export", str(run_dir), "--to", str(tmp_path / "default")]) == 0
    shipped = next(v for v in small_run.backbones[BACKBONE].variants if v.target == expected)
    for file in TARGETS[expected].family.files(run_dir / shipped.file):
        assert (tmp_path / "default" / file.name).read_bytes() == file.read_bytes()

    # A recommendation no other rule would pick (the float16 file: neither the fastest nor the smallest).
    run_dir = _recommending(small_run, "float16", tmp_path / "run")
    assert main(["export", str(run_dir), "--to", str(tmp_path / "made-up")]) == 0
    assert sorted(p.name for p in (tmp_path / "made-up").iterdir()) == ["float16.tflite", "labels.txt", "model.json"]
    assert (tmp_path / "made-up" / "float16.tflite").read_bytes() == \
        (run_dir / BACKBONE / "models" / "float16.tflite").read_bytes()


def test_export_refuses_bad_requests_and_overwrites_nothing(small_run, tmp_path, capsys):
    run = str(small_run.run_dir)
    target = tmp_path / "bundle"
    line = error_line(capsys, ["export", run, "--variant", "int4", "--to", str(target)])
    assert "--variant int4" in line and "choose from: float32, dynamic, float16, int8_fallback, int8, uint8" in line
    assert "not a shippable model" in error_line(capsys, ["export", run, "--variant", "keras", "--to", str(target)])
    line = error_line(capsys, ["export", run, "--variant", "int8", "--backbone", "lenet", "--to", str(target)])
    assert "--backbone lenet" in line and f"choose from: {BACKBONE}" in line
    assert not target.exists()

    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert "not empty" in error_line(capsys, ["export", run, "--variant", "int8", "--to", str(target)])
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".tmp-*"))

    assert "run folder not found" in error_line(capsys, ["export", str(tmp_path / "nope"), "--to", str(target)])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text("{}")
    assert "did not finish" in error_line(capsys, ["export", str(unfinished), "--to", str(tmp_path / "x")])


def test_export_into_an_empty_folder(small_run, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    assert main(["export", str(small_run.run_dir), "--variant", "dynamic", "--to", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["dynamic.tflite", "labels.txt", "model.json"]


def test_an_integer_only_recommendation_is_exported_as_its_uint8_twin(small_run, tmp_path, capsys):
    """Whichever integer model won, apps get the one whose input they accept; int8 asked for by name
    is exported, with one line naming the clients that refuse it."""
    run_dir = _recommending(small_run, "int8", tmp_path / "run")
    assert main(["export", str(run_dir), "--to", str(tmp_path / "app")]) == 0
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["labels.txt", "model.json", "uint8.tflite"]
    capsys.readouterr()
    assert main(["export", str(run_dir), "--variant", "int8", "--to", str(tmp_path / "int8")]) == 0
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning and "int8.tflite takes int8 input" in warning and "--variant uint8" in warning


def test_without_its_uint8_twin_int8_is_exported_to_apps_and_the_page_gets_a_file_it_runs(
        small_run, tmp_path, capsys):
    """A run made with --modes float32,int8 (as the docs show) that recommends int8."""
    run_dir = _recommending(small_run, "int8", tmp_path / "run", without=("uint8",))
    capsys.readouterr()
    assert main(["export", str(run_dir), "--to", str(tmp_path / "app")]) == 0
    assert (tmp_path / "app" / "int8.tflite").exists()
    assert "for those apps add uint8 to the run's --modes" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--web", "--to", str(tmp_path / "page")]) == 0
    card = json.loads((tmp_path / "page" / "model.json").read_text())
    assert TARGETS[card["variant"]].web and (tmp_path / "page" / card["model_file"]).exists()


def test_export_where_nothing_can_be_written_is_one_line(small_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for to, message in ((tmp_path / "a-file" / "bundle", "cannot write there"),
                        ("/proc/zoolite-bundle", "cannot write there"), (tmp_path / "dangling", "a broken symbolic link")):
        line = error_line(capsys, ["export", str(small_run.run_dir), "--variant", "float32", "--to", str(to)])
        assert f"--to {to}: {message}" in line


def test_the_model_card_is_typed_versioned_and_carries_the_runs_normalisation(small_run, tmp_path):
    """model.json reads back as the card export wrote, names its version and the zoolite versions, and gives
    the normalisation the run recorded, not today's registry's; a card of a newer version is refused."""
    from zoolite.apps.model_card import CARD_VERSION, read_card
    from zoolite.errors import ZooliteError
    from zoolite.results import Normalisation

    run_dir = _recommending(small_run, "float16", tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text())
    results["backbones"][BACKBONE]["normalisation"] = {"scale": 0.5, "offset": [-1.0, -2.0, -3.0]}  # not the registry's
    (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["export", str(run_dir), "--to", str(tmp_path / "app")]) == 0
    written = json.loads((tmp_path / "app" / "model.json").read_text())
    card = read_card(tmp_path / "app" / "model.json")
    assert card.to_json() == written and written["card_version"] == CARD_VERSION
    assert card.source.zoolite == small_run.machine.zoolite and card.source.exported_by
    assert card.input.normalisation_inside_model == {"scale": 0.5, "offset": [-1.0, -2.0, -3.0],
                                                     "formula": "pixel * scale + offset"}
    assert small_run.backbones[BACKBONE].normalisation == Normalisation(1 / 128, -127 / 128)

    (tmp_path / "app" / "model.json").write_text(json.dumps({**written, "card_version": CARD_VERSION + 1}))
    with pytest.raises(ZooliteError, match="written by a newer zoolite"):
        read_card(tmp_path / "app" / "model.json")


@pytest.mark.parametrize("name, mode, runtime, web", [("zoolite-0.2-int8", "int8", "LiteRT", True),
                                                      ("zoolite-0.3-openvino_float32", "float32", "OpenVINO", False),
                                                      ("zoolite-0.3-uint8", "uint8", "LiteRT", True)])
def test_model_cards_of_earlier_versions_still_read(name, mode, runtime, web):
    """model.json as zoolite 0.2 and 0.3 wrote them (tests/data/model-cards) reads as a typed card."""
    from zoolite.apps.model_card import Quantization, read_card

    path = Path(__file__).parent / "data" / "model-cards" / f"{name}.json"
    card, written = read_card(path), json.loads(path.read_text())
    assert (card.mode, card.runtime, card.web, card.variant) == (mode, runtime, web, written["variant"])
    assert card.mode_description == written["quantization"] and card.model_files[0] == written["model_file"]
    assert (card.measured.top_k, card.measured.top_k_accuracy) == (3, written["measured"]["top3_accuracy"])
    assert card.input.quantization == (written["input"]["quantization"] and
                                       Quantization(**written["input"]["quantization"]))
    gate = card.none_of_these
    assert (gate is None) == ("none_of_these" not in written)
    if gate is not None:
        assert gate.threshold == written["none_of_these"]["threshold"] and gate.measured.kept_per_class == {}
