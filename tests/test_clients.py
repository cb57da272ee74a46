"""The files a run writes work unchanged where apps run them: MediaPipe Tasks' ImageClassifier takes
every float-input and uint8 model as it is and agrees with ``zoolite predict``, on the classes and on
which photos show none of them; every file has a
static batch of 1; ``zoolite predict`` and ``evaluate`` on a .tflite import no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from conftest import BACKBONE, predict_top1
from zoolite.cli import main
from zoolite.runs.layout import RunLayout
from zoolite.targets.metadata import read_metadata
from zoolite.targets import LITERT, MODES, TARGETS, chosen_targets, top_classes


def _models(small_run) -> dict[str, Path]:
    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    return {target.name: layout.model(target) for target in chosen_targets([LITERT.name], MODES)}


def test_every_file_has_batch_1_and_its_labels_in_its_metadata(small_run):
    for name, path in _models(small_run).items():
        interpreter = Interpreter(model_path=str(path))
        for tensor in interpreter.get_input_details() + interpreter.get_output_details():
            assert tensor["shape_signature"][0] == 1 and (tensor["shape_signature"] > 0).all(), name
        info = read_metadata(path)
        assert list(info.labels) == small_run.labels and BACKBONE in info.name and name in info.description


def test_the_uint8_model_takes_raw_pixels(small_run):
    interpreter = Interpreter(model_path=str(_models(small_run)["uint8"]))
    model_input, model_output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert model_input["dtype"] == model_output["dtype"] == np.uint8
    assert model_input["quantization"] == (1.0, 0)
    assert {t["dtype"] for t in interpreter.get_tensor_details()} <= {np.uint8, np.int8, np.int32}


@pytest.fixture(scope="module")
def other_test_photos(small_run, tmp_path_factory) -> list[Path]:
    """The held-out --other photos of the run, at the model's size, and two made ones: flat grey and noise."""
    from zoolite.dataset.images import load_image

    split = json.loads((Path(small_run.run_dir) / "split.json").read_text())["other"]
    folder = tmp_path_factory.mktemp("other-photos")
    images = [load_image(Path(split["root"]) / p, 224) for p in split["test"]]
    images += [np.full((224, 224, 3), 128, np.uint8),
               np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)]
    paths = [folder / f"other-{i:02d}.png" for i in range(len(images))]
    for image, path in zip(images, paths):
        Image.fromarray(image).save(path)
    return paths


def test_mediapipe_with_default_options_rejects_what_predict_rejects(small_run, test_photos, other_test_photos,
                                                                    capsys):
    """MediaPipe knows nothing of zoolite: with default options it applies the threshold in the file's
    metadata to the file's own output, so agreeing with ``zoolite predict`` on which photos show none of
    the classes means the rejection is decided in the file."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    import mediapipe as mp

    photos = test_photos + other_test_photos
    checked, rejected = [], 0
    for name, path in _models(small_run).items():
        if "MediaPipe Tasks" not in TARGETS[name].clients:
            continue
        options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
        with vision.ImageClassifier.create_from_options(options) as classifier:
            categories = [classifier.classify(mp.Image.create_from_file(str(photo))).classifications[0].categories
                          for photo in photos]
        theirs = [c[0].category_name if c else None for c in categories]
        ours = predict_top1(capsys, path, photos)
        assert np.mean([(a is None) == (b is None) for a, b in zip(theirs, ours)]) >= 0.98, (name, theirs, ours)
        both_kept = [(a, b) for a, b in zip(theirs, ours) if a and b]
        assert all(a == b for a, b in both_kept), name
        assert both_kept, name
        rejected += ours.count(None)
        checked.append(name)
    assert rejected  # the check means something: photos rejected as well as kept
    assert checked == ["float32", "dynamic", "float16", "int8_fallback", "uint8"]


def test_ties_go_to_the_first_class_as_argmax_does():
    probabilities = np.array([0.1, 0.4, 0.1, 0.4], np.float32)
    assert top_classes(probabilities, 3).tolist() == [1, 3, 0] and top_classes(probabilities, 1)[0] == 1


PREDICT_WITHOUT_TF = """
import sys
from zoolite.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("tensorflow", "keras", "mediapipe", "matplotlib") if m in sys.modules)
print("IMPORTED", ",".join(heavy))
sys.exit(code)
"""


def test_predict_and_evaluate_on_a_tflite_import_no_tensorflow(small_run, tmp_path):
    model = _models(small_run)["uint8"]
    photo = next(Path(small_run.dataset.root).rglob("*.jpg"))
    for argv in (["predict", str(model), str(photo)],
                 ["evaluate", str(model), small_run.dataset.root, "--warmup", "0", "--runs", "2"]):
        result = subprocess.run([sys.executable, "-c", PREDICT_WITHOUT_TF, *argv], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "IMPORTED", result.stdout
        assert result.stderr == ""  # no C++ log lines either


def test_a_model_without_metadata_needs_its_labels_file(small_run, tmp_path, capsys):
    """Another tool's .tflite (no metadata) works given --labels-file; without one it is one line."""
    plain = tmp_path / "other.tflite"
    source = _models(small_run)["float32"]
    _strip_metadata(source, plain)
    assert read_metadata(plain) is None
    photo = next(Path(small_run.dataset.root).rglob("*.jpg"))
    assert main(["predict", str(plain), str(photo)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "carries no labels of its own" in err and "--labels-file" in err
    labels = tmp_path / "classes.txt"
    labels.write_text("\n".join(small_run.labels) + "\n")
    assert main(["predict", str(plain), str(photo), "--labels-file", str(labels)]) == 0
    assert capsys.readouterr().out.startswith(f"{photo}: ")


def _strip_metadata(source: Path, target: Path) -> None:
    """Write ``source`` without its TFLite metadata entry (as a converter without a writer leaves it)."""
    from ai_edge_litert import schema_py_generated as tfl
    import flatbuffers

    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(source.read_bytes(), 0))
    model.metadata = [m for m in model.metadata or [] if m.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
