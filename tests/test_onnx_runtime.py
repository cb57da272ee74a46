"""The ONNX Runtime family: tf2onnx conversion, both quantization modes, the labels and threshold
each file carries, and opening files (good, damaged, another tool's) without TensorFlow."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from conftest import TINY_CLASSES as CLASSES, TINY_SIZE as SIZE
from zoolite.errors import ZooliteError
from zoolite.targets import TARGETS, About, ConversionSource, open_classifier, open_model
from zoolite.targets import onnx_runtime

LABELS = ["cat", "dog", "hen", "spider"]
THRESHOLD = 0.4
ONNX_TARGETS = [name for name, target in TARGETS.items() if target.family.name == "onnxruntime"]


@pytest.fixture(scope="module")
def conversion(tiny_model, coloured_images, tmp_path_factory):
    """Every ONNX Runtime target of the tiny model (target name -> file), with the steps the
    converter timed (name -> [total, units advanced]) and its work folder. The int8 model is
    calibrated on the images it is tested on, as the pipeline's representative photos span
    the range of the photos it meets (on images outside the calibrated ranges it errs by 0.05)."""
    directory = tmp_path_factory.mktemp("onnx")
    steps = {}

    @contextlib.contextmanager
    def stage(name, total=0, unit="img"):
        steps[name] = [total, 0]

        def advance(n=1):
            steps[name][1] += n

        yield advance

    about = About("zoolite tiny classifier", "Classifies tiny photos.", LABELS, "0.0-test", THRESHOLD)
    workdir = directory / "work"
    with ConversionSource(tiny_model, workdir, lambda: coloured_images, stage, about) as source:
        converter = onnx_runtime.Converter(source)
        files = {}
        for name in ONNX_TARGETS:
            files[name] = directory / TARGETS[name].file_name
            converter.convert(TARGETS[name], files[name])
    return files, steps, workdir


@pytest.fixture(scope="module")
def files(conversion):
    return conversion[0]


def test_each_target_is_one_timed_step_and_calibration_advances_per_image(conversion):
    """tf2onnx's one conversion is a step of its own, so no target's step holds it."""
    _, steps, workdir = conversion
    assert steps == {"export_saved_model": [1, 0], "convert_onnxruntime": [1, 1], "convert_onnxruntime_float32": [1, 1],
                     "convert_onnxruntime_dynamic": [1, 1], "calibrate_onnxruntime_int8": [24, 24],
                     "convert_onnxruntime_int8": [1, 1]}
    assert list(workdir.iterdir()) == []  # the intermediate files and the SavedModel are gone


# Measured: float32 6e-8, dynamic 0.002, int8 0.005 (about one step of the uint8 softmax output,
# 1/255); the outputs themselves differ between images by up to 0.22.
@pytest.mark.parametrize("name, tolerance", [("onnxruntime_float32", 1e-5), ("onnxruntime_dynamic", 0.01),
                                             ("onnxruntime_int8", 0.01)])
def test_variants_follow_the_keras_model(tiny_model, files, coloured_images, name, tolerance):
    expected = np.asarray(tiny_model(coloured_images.astype(np.float32)))
    assert np.abs(expected - expected.mean(0)).max() > 10 * tolerance  # a constant answer would fail
    runtime = onnx_runtime.open(files[name])
    got = runtime.predict(coloured_images)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= tolerance
    np.testing.assert_array_equal(runtime.predict_one(coloured_images[3]), got[3])


def _op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(path).graph.node}


def test_quantized_files_hold_quantized_operators(files):
    assert not _op_types(files["onnxruntime_float32"]) & {"QuantizeLinear", "DequantizeLinear", "ConvInteger"}
    assert {"DynamicQuantizeLinear", "ConvInteger"} <= _op_types(files["onnxruntime_dynamic"])
    assert {"QuantizeLinear", "DequantizeLinear"} <= _op_types(files["onnxruntime_int8"])


def test_int8_input_takes_raw_pixels_exactly(files, coloured_images, tmp_path):
    """Calibrated on images without a pixel below 20 or above 230, the input is still quantized
    over 0..255 with one step per pixel value."""
    prepared = onnx_runtime.prepare(files["onnxruntime_float32"].read_bytes(), tmp_path)
    ranges = onnx_runtime.calibrate(prepared, np.clip(coloured_images, 20, 230), tmp_path)
    model = onnx.ModelProto.FromString(onnx_runtime.quantize(prepared, "int8", tmp_path, ranges))
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    (quantize_input,) = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "pixels"]
    assert constants[quantize_input.input[1]] == pytest.approx(1.0)
    assert constants[quantize_input.input[2]] == 0 and constants[quantize_input.input[2]].dtype == np.uint8


def test_files_carry_their_labels_threshold_and_description(files):
    model = onnx.load(files["onnxruntime_int8"])
    props = {p.key: p.value for p in model.metadata_props}
    assert props["name"] == "zoolite tiny classifier" and props["zoolite_version"] == "0.0-test"
    assert props["description"].startswith("Classifies tiny photos. Variant onnxruntime_int8: static int8")
    assert (model.producer_name, model.doc_string) == ("zoolite", props["description"])
    for path in files.values():
        assert not (path.parent / "labels.txt").exists()
        classifier = open_classifier(path)
        assert (classifier.labels, classifier.threshold) == (LABELS, THRESHOLD)
        assert str(classifier.labels_source).endswith("(its metadata)")


def test_file_without_zoolite_metadata_has_no_labels_or_threshold(files, tmp_path):
    model = onnx.load(files["onnxruntime_float32"])
    del model.metadata_props[:]
    other = tmp_path / "other.onnx"
    onnx.save(model, other)
    runtime = onnx_runtime.open(other)
    assert runtime.embedded_labels() is None and runtime.score_threshold() is None
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    assert open_classifier(other).labels == LABELS  # the labels.txt beside it


@pytest.mark.parametrize("key, value", [("labels", "cat, dog"), ("labels", '{"cat": 0}'),
                                        ("score_threshold", "high")])
def test_damaged_metadata_is_one_line_error(files, tmp_path, key, value):
    model = onnx.load(files["onnxruntime_float32"])
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, key: value})
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    with pytest.raises(ZooliteError, match=f"damaged '{key}' in its ONNX metadata.*--labels-file"):
        open_classifier(path)


def test_tensors_and_runtime_description(files):
    runtime, _ = open_model(files["onnxruntime_int8"])
    pixels, probabilities = runtime.tensors()
    assert (pixels.name, pixels.shape, pixels.dtype, pixels.scale) == ("pixels", [1, SIZE, SIZE, 3], "float32", None)
    assert (probabilities.name, probabilities.shape, probabilities.dtype) == ("probabilities", [1, CLASSES],
                                                                              "float32")
    assert (runtime.input_size, runtime.n_classes, runtime.input_dtype) == (SIZE, CLASSES, "float32")
    assert runtime.backend.startswith("ONNX Runtime 1.") and runtime.params() is None and runtime.other_calls() == {}


def test_threads_are_honoured(files, monkeypatch):
    """Asked for, or by default one a core this process may run on (a container's CPU set, not the host's)."""
    assert onnx_runtime.open(files["onnxruntime_float32"], threads=1).threads == "1"
    runtime = onnx_runtime.open(files["onnxruntime_float32"])
    assert runtime.threads == str(len(os.sched_getaffinity(0)))
    assert runtime.session.get_session_options().intra_op_num_threads == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a large host
    assert onnx_runtime.open(files["onnxruntime_float32"]).session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_damaged_file_is_one_line_error_naming_it(files, tmp_path, damage):
    path = tmp_path / "broken.onnx"
    good = files["onnxruntime_float32"].read_bytes()
    path.write_bytes(good[:len(good) // 2] if damage == "truncated" else b"not a model, just text\n")
    for read in (open_classifier, onnx_runtime.open):
        with pytest.raises(ZooliteError) as error:
            read(path)
        message = str(error.value)
        assert message.startswith(f"{path}: not a valid ONNX model (") and "\n" not in message
        assert message.endswith("re-create it with `zoolite run`")


def test_opening_and_predicting_imports_no_tensorflow(files):
    code = ("import sys, numpy as np\n"
            "from zoolite.targets import open_classifier\n"
            f"classifier = open_classifier({str(files['onnxruntime_int8'])!r})\n"
            "classifier.runtime.predict(np.zeros((2, 32, 32, 3), np.uint8))\n"
            "assert 'tensorflow' not in sys.modules and 'tf2onnx' not in sys.modules, 'TensorFlow imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
