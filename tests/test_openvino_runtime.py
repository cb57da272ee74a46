"""The OpenVINO family: each mode's file against the Keras model, what the files carry, and how
damaged files are refused."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys

import numpy as np
import openvino as ov
import pytest

from conftest import TINY_CLASSES as CLASSES, TINY_SIZE as SIZE
from zoolite.errors import ZooliteError
from zoolite.targets import TARGETS, open_classifier
from zoolite.targets import openvino_runtime as openvino_family
from zoolite.targets.base import About, ConversionSource

ABOUT = About(name="tiny", description="A tiny test model.", labels=["cat", "dog, big", "bär", "bird"],
              version="0.0-test", score_threshold=0.3125)
OPENVINO_TARGETS = ["openvino_float32", "openvino_native", "openvino_int8"]
# Measured on the tiny model and images below (whose outputs spread over 0.38): bf16 within 0.0008 of
# Keras, int8 within 0.0022; about 5x margin.
TOLERANCE = {"openvino_float32": 1e-5, "openvino_native": 0.005, "openvino_int8": 0.01}


@pytest.fixture(scope="module")
def converted(tiny_model, coloured_images, tmp_path_factory):
    """Every OpenVINO target of the tiny model in one folder; the source, converter and the stages run."""
    workdir, models = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("models")
    stages = {}

    @contextlib.contextmanager
    def stage(name, total, unit):
        stages[name] = {"total": total, "steps": 0}
        yield lambda n=1: stages[name].update(steps=stages[name]["steps"] + n)

    with ConversionSource(tiny_model, workdir, lambda: coloured_images[:16], stage, ABOUT) as source:
        converter = openvino_family.Converter(source)
        paths = {}
        for name in OPENVINO_TARGETS:
            paths[name] = models / TARGETS[name].file_name
            converter.convert(TARGETS[name], paths[name])
        yield {"paths": paths, "stages": stages, "source": source, "converter": converter, "folder": models}


def test_conversion_writes_both_files_atomically_in_timed_stages(converted):
    names = sorted(path.name for path in converted["folder"].iterdir())
    assert names == sorted(f"{name}{suffix}" for name in OPENVINO_TARGETS for suffix in (".bin", ".xml"))
    stages = converted["stages"]
    assert stages["calibrate_openvino_int8"] == {"total": 16, "steps": 16}
    assert all(stages[f"convert_{name}"] == {"total": 1, "steps": 1} for name in [*OPENVINO_TARGETS, "openvino"])


def test_ctrl_c_during_the_conversion_is_an_interrupt(tmp_path, monkeypatch):
    """OpenVINO's TensorFlow frontend runs Python code: a Ctrl-C there comes back as a failed conversion (this
    message, seen with Ctrl-C in `zoolite run --runtimes openvino`), which is reported as the interrupt it is;
    any other failure stays what it is."""
    from types import SimpleNamespace

    from openvino._pyopenvino import OpConversionFailure

    @contextlib.contextmanager
    def stage(name, total, unit):
        yield lambda n=1: None

    seen = ("Check 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\n"
            "FrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted. Failed operations detailed "
            "log:\n-- PartitionedCall with a message:\nKeyboardInterrupt: <EMPTY MESSAGE>")
    for message, raised in ((seen, KeyboardInterrupt), ("Check 'false' failed: an unsupported op", OpConversionFailure)):
        def failing(*args, message=message, **kwargs):
            raise OpConversionFailure(message)

        monkeypatch.setattr(ov, "convert_model", failing)
        source = SimpleNamespace(saved_model=lambda: tmp_path, stage=stage, about=ABOUT)  # what conversion asks
        with pytest.raises(raised):
            openvino_family.Converter(source).convert(TARGETS["openvino_float32"], tmp_path / "m.xml")


@pytest.mark.parametrize("name", OPENVINO_TARGETS)
def test_each_mode_follows_the_keras_model(tiny_model, converted, coloured_images, name):
    expected = np.asarray(tiny_model(coloured_images.astype(np.float32)))
    runtime = openvino_family.open(converted["paths"][name])
    got = runtime.predict(coloured_images)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= TOLERANCE[name]
    np.testing.assert_array_equal(runtime.predict_one(coloured_images[3]), got[3])


def test_float32_records_and_runs_in_f32(converted):
    path = converted["paths"]["openvino_float32"]
    assert openvino_family.read_model(path).get_rt_info(openvino_family.PRECISION_HINT).astype(str) == "f32"
    runtime = openvino_family.open(path)
    assert runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert runtime.backend.endswith("CPU, f32")


def test_native_records_nothing_and_runs_the_cpus_default_precision(converted):
    path = converted["paths"]["openvino_native"]
    assert not openvino_family.read_model(path).has_rt_info(openvino_family.PRECISION_HINT)
    default = openvino_family.core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    runtime = openvino_family.open(path)
    assert runtime.compiled.get_property("INFERENCE_PRECISION_HINT") == default
    assert runtime.backend.endswith(f"CPU, {default.to_string()}")


def test_int8_is_quantized_with_float_input_and_output(converted):
    path = converted["paths"]["openvino_int8"]
    ops = openvino_family.read_model(path).get_ops()
    assert any(op.get_type_name() == "FakeQuantize" for op in ops)  # activations, quantized as the CPU runs them
    weights = [op for op in ops if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert len(weights) == 2  # the convolution's and the dense layer's, stored as int8
    runtime = openvino_family.open(path)
    assert "int8" in runtime.backend
    assert [t.dtype for t in runtime.tensors()] == ["float32", "float32"]


def test_files_carry_their_labels_and_threshold(converted):
    path = converted["paths"]["openvino_int8"]
    assert not (path.parent / "labels.txt").exists()
    classifier = open_classifier(path)
    assert classifier.labels == ABOUT.labels and classifier.threshold == ABOUT.score_threshold
    assert str(classifier.labels_source).endswith("(its metadata)")
    model = openvino_family.read_model(path)
    assert model.get_rt_info(["zoolite", "version"]).astype(str) == ABOUT.version
    assert "Variant openvino_int8" in model.get_rt_info(["zoolite", "description"]).astype(str)
    source_input, source_output = classifier.runtime.tensors()
    assert (source_input.shape, source_input.dtype) == ([1, SIZE, SIZE, 3], "float32")
    assert (source_output.shape, source_output.dtype) == ([1, CLASSES], "float32")
    assert (classifier.runtime.input_size, classifier.runtime.n_classes, classifier.runtime.input_dtype) == \
        (SIZE, CLASSES, "float32")


def test_a_model_without_threshold_leaves_it_out(converted, tmp_path):
    source = converted["source"]
    about, source.about = source.about, dataclasses.replace(ABOUT, score_threshold=None)
    try:
        converted["converter"].convert(TARGETS["openvino_native"], tmp_path / "native.xml")
    finally:
        source.about = about
    runtime = openvino_family.open(tmp_path / "native.xml")
    assert runtime.score_threshold() is None
    assert runtime.embedded_labels() == ABOUT.labels


@pytest.mark.parametrize("key, value", [("labels", "cat dog"), ("labels", '{"cat": 0}'),
                                        ("score_threshold", "high")])
def test_damaged_rt_info_is_one_line_error(converted, tmp_path, key, value):
    model = openvino_family.read_model(converted["paths"]["openvino_float32"])
    model.set_rt_info(value, [openvino_family.ABOUT_SECTION, key])
    ov.save_model(model, tmp_path / "model.xml", compress_to_fp16=False)
    with pytest.raises(ZooliteError, match=f"damaged '{key}' in its OpenVINO rt_info.*--labels-file"):
        open_classifier(tmp_path / "model.xml")


def _plain_model(input_shape) -> ov.Model:
    """Another tool's IR: no zoolite rt_info."""
    import openvino.opset13 as ops

    pixels = ops.parameter(input_shape, np.float32, name="pixels")
    pooled = ops.reduce_mean(pixels, [1, 2], keep_dims=False) if len(input_shape) == 4 else pixels
    weights = ops.constant(np.ones((input_shape[-1], CLASSES), np.float32))
    return ov.Model([ops.softmax(ops.matmul(pooled, weights, False, False), 1)], [pixels], "plain")


def test_another_tools_file_uses_the_labels_beside_it(tmp_path):
    path = tmp_path / "plain.xml"
    ov.save_model(_plain_model([1, SIZE, SIZE, 3]), path)
    runtime = openvino_family.open(path)
    assert runtime.embedded_labels() is None and runtime.score_threshold() is None
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\n")
    classifier = open_classifier(path)
    assert classifier.labels == ["a", "b", "c", "d"] and classifier.threshold is None


def test_a_model_that_is_not_an_image_classifier_is_refused(tmp_path):
    path = tmp_path / "vector.xml"
    ov.save_model(_plain_model([1, 3]), path)
    with pytest.raises(ZooliteError, match="not a batch of square RGB images"):
        openvino_family.open(path)


def _damage(converted, tmp_path, how: str):
    source = converted["paths"]["openvino_float32"]
    xml, weights = source.read_bytes(), source.with_suffix(".bin").read_bytes()
    path = tmp_path / "damaged.xml"
    damaged = {"truncated xml": xml[:len(xml) // 2], "text file": b"just some notes\nnot a model\n"}
    path.write_bytes(damaged.get(how, xml))
    if how != "missing bin":
        path.with_suffix(".bin").write_bytes(weights[:100] if how == "truncated bin" else weights)
    return path


@pytest.mark.parametrize("how", ["truncated xml", "text file", "truncated bin", "missing bin"])
def test_damaged_files_are_refused_in_one_line_naming_the_file(converted, tmp_path, how):
    path = _damage(converted, tmp_path, how)
    with pytest.raises(ZooliteError) as refused:
        open_classifier(path)
    message = str(refused.value)
    assert "\n" not in message and str(path.with_suffix(".bin") if how == "missing bin" else path) in message
    with pytest.raises(ZooliteError) as refused:  # the family module itself, without the registry's check
        openvino_family.open(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: not a valid OpenVINO model (")
    assert message.endswith("; re-create it with `zoolite run`") and len(message) < len(str(path)) + 200


def test_opening_and_predicting_imports_neither_tensorflow_nor_nncf(converted):
    code = ("import sys, numpy as np\n"
            "from zoolite.targets import open_classifier\n"
            f"classifier = open_classifier({str(converted['paths']['openvino_int8'])!r})\n"
            f"classifier.runtime.predict(np.zeros((2, {SIZE}, {SIZE}, 3), np.uint8))\n"
            "print(sorted({'tensorflow', 'nncf', 'openvino'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "['openvino']"


def test_the_thread_count_is_honoured(converted, monkeypatch):
    """Asked for, or by default one a core this process may run on (a container's CPU set, not the host's)."""
    path = converted["paths"]["openvino_float32"]
    one = openvino_family.open(path, threads=1)
    assert one.threads == "1" and one.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert openvino_family.open(path).threads == str(len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a large host
    assert openvino_family.open(path).compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert one.compiled.get_property("NUM_STREAMS") == 1
    assert one.compiled.get_property("PERFORMANCE_HINT") == "LATENCY"
