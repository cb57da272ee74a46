"""Each quantization mode, the runtimes, and the one evaluate routine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import TINY_CLASSES as CLASSES, TINY_SIZE as SIZE
from zoolite.measure import intervals
from zoolite.config import LatencyConfig
from zoolite.measure.evaluation import agreement, latency_stats, measure_latency, measure_variant, per_class_report
from zoolite.model.training import assemble, build_head, top_of
from zoolite.results import Agreement
from zoolite.targets import CONVERTED, LITERT, MODES, REFERENCE, TARGETS, Family, Target, chosen_targets
from zoolite.targets.base import About, ConversionSource, export_saved_model
from zoolite.targets.keras import KerasRuntime, load_keras_model
from zoolite.targets.parallel import PARALLEL, WAITING, SpareLost, SpareProcess, Spares, conversion_groups, \
    convert_targets
from zoolite.targets.litert import INTEGER_MODES, LiteRTRuntime, calibrate, convert, dequantize, quantize, \
    quantize_calibrated


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (24, SIZE, SIZE, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def variants(tiny_model, coloured_images, tmp_path_factory):
    directory = tmp_path_factory.mktemp("variants")
    saved = export_saved_model(tiny_model, directory / "saved_model")
    calibrated = calibrate(saved, coloured_images[:16])  # once for every integer mode, as the pipeline does
    paths = {}
    for mode in [target.mode for target in chosen_targets([LITERT.name], MODES)]:
        paths[mode] = directory / f"{mode}.tflite"
        paths[mode].write_bytes(quantize_calibrated(calibrated, mode) if mode in INTEGER_MODES else convert(saved, mode))
    return paths


@pytest.mark.parametrize("mode, io_dtype", [("float32", np.float32), ("dynamic", np.float32),
                                            ("float16", np.float32), ("int8_fallback", np.float32),
                                            ("int8", np.int8), ("uint8", np.uint8)])
def test_every_litert_mode_has_the_promised_input_and_output_types(variants, mode, io_dtype):
    runtime = LiteRTRuntime(variants[mode])
    assert runtime.interpreter.get_input_details()[0]["dtype"] == io_dtype
    assert runtime.interpreter.get_output_details()[0]["dtype"] == io_dtype
    if mode in ("int8", "uint8"):  # integer only: no float tensor anywhere
        assert {t["dtype"] for t in runtime.interpreter.get_tensor_details()} <= {np.int8, np.uint8, np.int32}


@pytest.mark.parametrize("mode, tolerance", [("float32", 1e-5), ("dynamic", 0.05), ("float16", 0.01),
                                             ("int8_fallback", 0.06), ("int8", 0.06), ("uint8", 0.06)])
def test_variants_follow_the_keras_model(tiny_model, variants, coloured_images, mode, tolerance):
    """On photos the model tells apart (on noise its outputs sit within 0.01 of one another, so a file that
    ignored its input would pass), each mode's file gives the Keras model's probabilities."""
    expected = np.asarray(tiny_model(coloured_images.astype(np.float32)))
    assert (expected.max(0) - expected.min(0)).max() / 2 > tolerance  # no constant answer is within it
    got = LiteRTRuntime(variants[mode]).predict(coloured_images)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= tolerance


def test_integer_only_model_quantizes_input_and_dequantizes_output(variants, images):
    runtime = LiteRTRuntime(variants["int8"])
    scale, zero_point = runtime.interpreter.get_input_details()[0]["quantization"]
    # Calibrated on raw pixels 0..255: one step per pixel value, so the int8 input is exact.
    assert scale == pytest.approx(1.0, rel=0.01) and zero_point == -128
    q = quantize(np.array([0.0, 127.0, 255.0, 400.0]), scale, zero_point, np.int8)
    assert q.tolist() == [-128, -1, 127, 127]  # saturates above the range
    assert dequantize(np.array([-128, 0, 127], np.int8), 0.5, -128).tolist() == [0.0, 64.0, 127.5]


def _constant_model(probabilities):
    """A model whose output is ``probabilities`` whatever the image: known loss and accuracy."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(len(probabilities), activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.zeros((3, len(probabilities)), np.float32), np.log(probabilities).astype(np.float32)])
    return model


def test_measure_variant_on_a_model_with_known_outputs(images, tmp_path):
    p = np.array([0.5, 0.25, 0.15, 0.1], np.float32)
    labels = np.array([0] * 12 + [1] * 6 + [3] * 6)
    path = tmp_path / "constant.keras"
    _constant_model(p).save(path)
    variant, probs = measure_variant(KerasRuntime(load_keras_model(path)), REFERENCE, path, images, labels, CLASSES,
                                     LatencyConfig(warmup=2, runs=5))
    np.testing.assert_allclose(probs, np.tile(p, (24, 1)), atol=1e-6)
    assert (variant.target, variant.role, variant.file, variant.size_bytes) == \
        ("keras", "reference", str(path), path.stat().st_size)
    assert variant.accuracy == pytest.approx(0.5) and variant.accuracy_interval.estimate == pytest.approx(0.5)
    assert variant.loss == pytest.approx(-np.mean(np.log(p[labels])), rel=1e-5)
    assert (variant.top_k, variant.top_k_accuracy) == (3, pytest.approx(18 / 24))
    assert variant.balanced_accuracy == pytest.approx((1 + 0 + 0) / 3)  # classes 0, 1 and 3 have photos
    assert variant.latency.runs == 5 and variant.latency.mean_ms > 0
    assert variant.other_latency["tf_function"].runs == 5 and variant.params == 3 * 4 + 4


def test_latency_stats_on_known_timings():
    stats = latency_stats(np.arange(1, 101) / 1000.0)  # 1..100 ms
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.median_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101)))


def test_latency_warms_up_then_times_each_call(images):
    calls = []
    result = measure_latency(calls.append, images, LatencyConfig(warmup=3, runs=7))
    assert len(calls) == 1 + 3 + 7 and result.runs == 7


def test_warm_up_stops_at_its_time_limit_after_one_call(images, monkeypatch):
    from zoolite.measure import evaluation

    calls = []
    clock = iter(np.arange(0, 100, 0.05))  # each call takes 0.05 s by this clock
    monkeypatch.setattr(evaluation.time, "perf_counter", lambda: next(clock))

    def slow(image):
        calls.append(image)

    measure_latency(slow, images, LatencyConfig(warmup=10, runs=2, max_warmup_seconds=0.12))
    assert len(calls) == 1 + 3 + 2  # the first call, warm-up until past 0.12 s, the timed calls
    calls.clear()
    measure_latency(slow, images, LatencyConfig(warmup=10, runs=2, max_warmup_seconds=0))
    assert len(calls) == 1 + 1 + 2
    calls.clear()
    measure_latency(slow, images, LatencyConfig(warmup=3, runs=2, max_warmup_seconds=None))  # a run of zoolite 0.8
    assert len(calls) == 1 + 3 + 2


def test_latency_stops_at_its_time_limit_after_the_minimum_runs(images):
    import time

    result = measure_latency(lambda x: time.sleep(0.01), images,
                             LatencyConfig(warmup=0, runs=1000, max_seconds=0.05, min_runs=8))
    assert result.runs == 8


def test_agreement_and_per_class_report():
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert agreement(reference, reference) == Agreement(top1_agreement=1.0, mean_abs_prob_diff=0.0)
    perturbed = reference[:, ::-1]
    assert agreement(perturbed, reference).top1_agreement == 0.0
    confusion, per_class = per_class_report(reference, np.array([0, 1, 1, 1]), ["a", "b"])
    assert confusion == [[1, 0], [1, 2]]
    assert per_class["b"].recall == pytest.approx(2 / 3) and per_class["b"].support == 3
    assert per_class["b"].recall_interval == intervals.proportion_interval(2, 3)
    assert per_class["a"].precision == pytest.approx(0.5)
    assert per_class["a"].won is None  # no reference given, no paired evidence


def test_a_row_of_zeros_answers_no_class():
    """An integer file rounds every score of a photo its gate rejects outright to 0. That photo is answered with
    no class: a miss (not class 0, not in the top k), its loss that of knowing nothing, and no NaN anywhere."""
    from zoolite.measure import stats
    from zoolite.measure.evaluation import classification_metrics

    outputs = np.array([[0.0, 0.0, 0.0], [0.1, 0.7, 0.2], [0.0, 0.0, 0.0], [0.9, 0.05, 0.05]])
    labels = np.array([0, 1, 2, 0])
    scores = classification_metrics(outputs, labels, 3, top_k=3)
    assert (scores.accuracy, scores.top_k_accuracy) == (0.5, 0.5)
    assert scores.balanced_accuracy == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores.loss == pytest.approx(np.mean([np.log(3), -np.log(0.7), np.log(3), -np.log(0.9)]))
    reference = np.eye(3)[labels]  # the float model: right on every photo
    confusion, per_class = per_class_report(outputs, labels, ["a", "b", "c"], reference)
    assert confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert (per_class["a"].recall, per_class["a"].lost, per_class["c"].recall, per_class["c"].lost) == (0.5, 1, 0.0, 1)
    assert stats.agreement_by_confidence(outputs, reference, bins=())[0].agreement == 0.5


def test_one_calibration_shared_by_the_integer_modes_gives_the_converters_own_models(tiny_model, coloured_images,
                                                                                     variants, tmp_path):
    """The integer modes are quantized from one calibration (the ``variants`` fixture, as the pipeline
    does); each must equal what TFLiteConverter makes calibrating on its own."""
    import tensorflow as tf

    def data():
        for image in coloured_images[:16]:
            yield [image[None].astype(np.float32)]

    for mode in ("int8_fallback", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(tiny_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = data
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        reference = tmp_path / f"{mode}.tflite"
        reference.write_bytes(converter.convert())
        theirs, ours = LiteRTRuntime(reference), LiteRTRuntime(variants[mode])
        assert theirs.interpreter.get_input_details()[0]["quantization"] == \
            ours.interpreter.get_input_details()[0]["quantization"]
        np.testing.assert_array_equal(theirs.predict(coloured_images), ours.predict(coloured_images))


def test_the_keras_reference_predicts_as_keras_does_from_one_trace(tiny_model, coloured_images):
    """Batches of any size and the timed tf.function call go through one graph, traced once, and give what
    Keras's own ``predict_on_batch`` does, bit for bit."""
    runtime = KerasRuntime(tiny_model)
    for size in (len(coloured_images), 5, 1):
        batch = coloured_images[:size]
        np.testing.assert_array_equal(runtime.predict(batch), tiny_model.predict_on_batch(batch.astype(np.float32)))
    np.testing.assert_array_equal(runtime.other_calls()["tf_function"](coloured_images[0]),
                                  tiny_model.predict_on_batch(coloured_images[:1].astype(np.float32))[0])
    assert runtime._graph.experimental_get_tracing_count() == 1


def test_the_keras_reference_predicts_batches_from_given_features_and_times_the_whole_model(tiny_model,
                                                                                           coloured_images):
    """predicting_from: batches go through the backbone given and the part after the extractor; the single-image
    calls, which are timed, still call the whole model; the runtime it came from is left as it was."""
    extractor = keras.Model(tiny_model.inputs, tiny_model.layers[-2].output, name="tiny_features")
    model = assemble(extractor, build_head(extractor.output_shape[-1], CLASSES, 0.0))
    seen = []

    class Backbone:
        def predict(self, images):
            seen.append(len(images))
            return extractor.predict_on_batch(images.astype(np.float32))

    whole = KerasRuntime(model)
    fast = whole.predicting_from(Backbone(), top_of(model))
    np.testing.assert_allclose(fast.predict(coloured_images), whole.predict(coloured_images), atol=1e-6)
    assert seen == [len(coloured_images)]
    image = coloured_images[3]
    np.testing.assert_array_equal(fast.predict_one(image), whole.predict_one(image))
    np.testing.assert_array_equal(fast.other_calls()["tf_function"](image), whole.other_calls()["tf_function"](image))
    np.testing.assert_array_equal(whole.predict(coloured_images), model.predict_on_batch(
        coloured_images.astype(np.float32)))
    assert seen == [len(coloured_images)]  # neither the timed calls nor the first runtime's batches read features


def _converted_from(saved_model, folder, calibration) -> dict:
    """The files every family converts from ``saved_model`` (LiteRT in each mode, ONNX Runtime and OpenVINO
    float32), opened: file name -> runtime."""
    import openvino as ov

    from zoolite.targets import onnx_runtime, openvino_runtime

    folder.mkdir()
    runtimes = {}
    for mode in ("float32", "dynamic", "float16", "int8"):
        (folder / f"{mode}.tflite").write_bytes(convert(saved_model, mode, calibration))
        runtimes[f"{mode}.tflite"] = LiteRTRuntime(folder / f"{mode}.tflite")
    (folder / "float32.onnx").write_bytes(onnx_runtime.to_onnx(saved_model))
    openvino_runtime.save_atomically(ov.convert_model(str(saved_model)), folder / "float32.xml")
    return {**runtimes, "float32.onnx": onnx_runtime.open(folder / "float32.onnx"),
            "float32.xml": openvino_runtime.open(folder / "float32.xml")}


def test_the_frozen_export_converts_to_what_kerass_own_export_does(coloured_images, tmp_path):
    """zoolite freezes the weights into the SavedModel it converts from (half the time); every
    family's file computes bit for bit what the one converted from Keras's own export does, with the same
    input and signature names, on a model whose batch normalisation and dropout act differently in training."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 128, -1),
                              keras.layers.Conv2D(8, 3), keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES, activation="softmax")])
    norm = model.layers[2]
    norm.set_weights([np.random.default_rng(i).uniform(0.5, 2, 8).astype(np.float32) for i in range(4)])
    kerass = tmp_path / "kerass"
    model.export(str(kerass), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="pixels")])
    theirs = _converted_from(kerass, tmp_path / "from-kerass", coloured_images[:16])
    ours = _converted_from(export_saved_model(model, tmp_path / "ours"), tmp_path / "from-ours", coloured_images[:16])
    assert sorted(ours) == sorted(theirs) and len(ours) == 6
    for name, runtime in ours.items():
        expected = theirs[name].predict(coloured_images)
        np.testing.assert_array_equal(runtime.predict(coloured_images), expected, err_msg=name)
        assert np.ptp(expected, axis=0).max() > 0.05  # the photos are told apart: an ignored input would fail
        assert runtime.tensors()[0].name == theirs[name].tensors()[0].name, name
        if name.endswith(".tflite"):
            assert runtime.interpreter.get_signature_list() == theirs[name].interpreter.get_signature_list()


def test_pixels_and_floats_are_quantized_alike(variants, images):
    """uint8 pixels go through a 256-entry lookup table, floats through the arithmetic: same answer."""
    for mode in ("int8", "uint8"):
        runtime = LiteRTRuntime(variants[mode])
        for image in images[:5]:
            np.testing.assert_array_equal(runtime.predict_one(image), runtime.predict_one(image.astype(np.float32)))


class _CountingRuntime:
    """A model file's runtime stand-in: one call per image, each image's output its own."""

    batched, n_classes = False, 3

    def __init__(self):
        self.calls = 0

    def predict_one(self, image):
        self.calls += 1
        return np.array([image.mean(), image.std(), image.max()], np.float32)

    def predict(self, images):
        return np.stack([self.predict_one(image) for image in images])


@pytest.mark.parametrize("photos, runs, calls", [(30, 7, 30), (5, 20, 1 + 3 + 20)])
def test_a_files_predictions_and_latency_come_from_the_same_single_image_calls(photos, runs, calls):
    from zoolite.measure.evaluation import predict_and_time

    images = np.random.default_rng(0).integers(0, 256, (photos, 8, 8, 3)).astype(np.uint8)
    runtime = _CountingRuntime()
    probabilities, latency = predict_and_time(runtime, images, LatencyConfig(warmup=3, runs=runs))
    assert runtime.calls == calls and latency.runs == runs  # each image once, unless timing needs more calls
    expected = _CountingRuntime().predict(images)
    assert probabilities.tobytes() == expected.tobytes()


def test_targets_are_grouped_by_the_work_they_share_the_calibrated_first():
    """LiteRT's float modes and its calibrated modes are two groups (one calibration); ONNX Runtime's and OpenVINO's
    modes share their family's float conversion, one group each."""
    groups = conversion_groups(CONVERTED.values())
    assert [[target.name for target in group] for group in groups] == [
        ["int8_fallback", "int8", "uint8"], ["onnxruntime_float32", "onnxruntime_dynamic", "onnxruntime_int8"],
        ["openvino_float32", "openvino_native", "openvino_int8"], ["float32", "dynamic", "float16"]]
    assert conversion_groups(chosen_targets([LITERT.name], ["float32", "float16"])) == \
        [[TARGETS["float32"], TARGETS["float16"]]]


def _convert_all(model, images, folder, workers) -> tuple[dict, dict, dict]:
    """Every LiteRT target of ``model`` converted with ``workers`` spare processes: the files' bytes, the steps
    timed here and those recorded from the spare processes."""
    here, elsewhere = {}, {}

    @contextlib.contextmanager
    def stage(name, total=0, unit="", title=None):
        yield lambda n=1: None
        here[name] = here.get(name, 0) + 1

    files = {target: folder / target.file_name for target in chosen_targets([LITERT.name], MODES)}
    about = About("t", "t", [f"class {i}" for i in range(CLASSES)], "0")
    with ConversionSource(model, folder / "work", lambda: images, stage, about) as source:
        convert_targets(source, files, elsewhere.update, Spares(files, workers))
    return {target.name: path.read_bytes() for target, path in files.items()}, here, elsewhere


def test_a_spare_process_converts_to_the_same_bytes_and_nothing_twice(tiny_model, coloured_images, tmp_path):
    """The calibrated modes in a spare process, the float modes here: the files are those one process writes, every
    step runs once (the export here, the calibration there), and the spare process's steps are recorded as such."""
    alone, steps_alone, none = _convert_all(tiny_model, coloured_images[:16], tmp_path / "alone", 0)
    shared, steps_here, recorded = _convert_all(tiny_model, coloured_images[:16], tmp_path / "shared", 1)
    assert shared == alone and len(alone) == 6
    assert none == {} and set(steps_alone) == {"export_saved_model", "calibrate_int8",
                                                *(f"convert_{name}" for name in alone)}
    assert set(recorded) == {f"{PARALLEL}calibrate_int8", *(f"{PARALLEL}convert_{name}" for name in INTEGER_MODES)}
    assert {name for name in steps_here if name != WAITING} | {name.removeprefix(PARALLEL) for name in recorded} \
        == set(steps_alone)
    assert all(count == 1 for count in [*steps_here.values(), *steps_alone.values()])


def _made_up(name: str, mode: str = "float32", calibrated: bool = False, shares: bool = True) -> Target:
    """A target of a family of tests/made_up_family.py (``shares``: its modes share one conversion)."""
    family = Family(f"made_up_{name[0]}", "Made up", f".{name[0]}", "made_up_family", "made up for tests",
                    modes_share_conversion=shares)
    return Target(name, family, mode, "made up", calibrated=calibrated)


def _made_up_source(folder: Path, stages: list | None = None) -> ConversionSource:
    """A source of made-up models; ``stages`` gets the name of every stage entered."""
    def stage(name, *args, **kwargs):
        if stages is not None:
            stages.append(name)
        return contextlib.nullcontext(lambda n=1: None)

    images = np.zeros((3, 4, 4, 3), np.uint8)
    return ConversionSource.exported(folder, folder, images, stage, About("t", "t", ["a"], "0"))


def test_the_spare_process_takes_the_first_calibrated_group_and_this_process_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [*sys.path, tmp_path / "a Path, as notebooks add them"])  # passed on too
    a_calibrated, a_float = _made_up("a_int", calibrated=True, shares=False), _made_up("a_float", shares=False)
    b_float, b_calibrated = _made_up("b_float"), _made_up("b_int", calibrated=True)
    c = _made_up("c")
    files = {target: tmp_path / target.file_name for target in (a_float, a_calibrated, b_float, b_calibrated, c)}
    assert conversion_groups(files) == [[a_calibrated], [b_float, b_calibrated], [a_float], [c]]
    meanwhile, stages = [], []  # what this process had written when it turned to other work; the stages entered
    with Spares(files, 1) as spares:
        [spare] = spares.idle
        convert_targets(_made_up_source(tmp_path, stages), files, {}.update, spares,
                        lambda: meanwhile.append({target.name for target, path in files.items() if path.exists()})
                        or stages.append("meanwhile"))
    written = {target.name: path.read_text() for target, path in files.items()}
    # the spare imports TensorFlow before it takes its group, and the made-up groups take no time: this process
    # converts the other three meanwhile
    assert written == {"a_int": f"{spare.process.pid} 3", "a_float": f"{os.getpid()} 0", "c": f"{os.getpid()} 0",
                       "b_float": f"{os.getpid()} 0", "b_int": f"{os.getpid()} 3"}
    assert len(meanwhile) == 1 and {"a_float", "c", "b_float", "b_int"} <= meanwhile[0]
    assert stages[-2:] == ["meanwhile", WAITING]  # the other work done before waiting for the spare, not after
    assert spare.process.returncode == 0 and not list(tmp_path.glob(".tmp-*"))  # ended, its task and result gone


def test_without_a_spare_process_the_other_work_follows_every_conversion(tmp_path):
    files = {target: tmp_path / target.file_name for target in (_made_up("a_float", shares=False), _made_up("c"))}
    meanwhile = []
    with Spares(files, 0) as spares:
        convert_targets(_made_up_source(tmp_path), files, {}.update, spares,
                        lambda: meanwhile.append(all(path.exists() for path in files.values())))
    assert meanwhile == [True]


def test_an_error_in_the_spare_process_is_raised_here_with_its_traceback(tmp_path):
    failing, other = _made_up("failing", "failing", calibrated=True), _made_up("other")
    files = {target: tmp_path / target.file_name for target in (failing, other)}
    with pytest.raises(RuntimeError, match="converting failing in a spare process: ValueError: made up failure") \
            as raised, Spares(files, 1) as spares:
        convert_targets(_made_up_source(tmp_path), files, {}.update, spares)
    assert "made_up_family.py" in str(raised.value.__cause__)
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_spare_process_lost_leaves_its_group_to_the_run(tmp_path, caplog):
    """Killed (out of memory, say) before or while it converts: the run converts its group, and says so."""
    calibrated, other = _made_up("a_int", calibrated=True, shares=False), _made_up("a_float", shares=False)
    files = {target: tmp_path / target.file_name for target in (calibrated, other)}
    with Spares(files, 1) as spares:
        [spare] = spares.idle
        spare.process.kill()
        convert_targets(_made_up_source(tmp_path), files, {}.update, spares)
    assert {target.name: path.read_text() for target, path in files.items()} == \
        {"a_int": f"{os.getpid()} 3", "a_float": f"{os.getpid()} 0"}
    assert "the spare process converting a_int ended with code -9 and no result; converting them in the run's " \
           "process instead" in caplog.text
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(SpareLost, match="ended with code -9 and no result"):
        spare.timings()


SPARE_PROCESS_AT_WORK = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from test_conversion_and_evaluation import _made_up\n"
    "from zoolite.targets.base import About\n"
    "from zoolite.targets.parallel import SpareProcess\n"
    "folder, sleepy = Path(sys.argv[1]), _made_up('sleepy', 'sleepy')\n"
    "spare = SpareProcess()\n"
    "spare.convert([sleepy], {sleepy: folder / 'x.s'}, folder, folder, None, About('t', 't', ['a'], '0'))\n"
    "print(spare.process.pid, flush=True)\n"
    "time.sleep(60)\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's PR_SET_PDEATHSIG ends it; elsewhere it "
                    "finishes its group")
def test_a_spare_process_ends_with_the_run_that_started_it(tmp_path):
    """A run killed while its spare process converts leaves nothing writing into its folder."""
    run = subprocess.Popen([sys.executable, "-c", SPARE_PROCESS_AT_WORK, str(tmp_path)], stdout=subprocess.PIPE,
                           text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    spare = None
    try:
        spare = int(run.stdout.readline())
        deadline = time.monotonic() + 120  # TensorFlow imported on a busy machine, then at work
        while not (tmp_path / "x.started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "x.started").exists()
        run.kill()
        run.wait()
        deadline = time.monotonic() + 10
        while _running(spare) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(spare), "the spare process outlived its run"
    finally:
        run.kill()
        run.wait()
        if spare and _running(spare) and b"zoolite.targets.parallel" in Path(f"/proc/{spare}/cmdline").read_bytes():
            os.kill(spare, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether the process runs: neither gone nor a zombie left for whoever adopted it to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_files_predictions_shared_among_single_threaded_copies_are_its_own_calls_bit_for_bit(small_run):
    """A run's LiteRT files (the real backbone, every mode) predict a batch on copies of the interpreter with
    one thread each, and give every image the output of a call on the interpreter with both threads."""
    from conftest import BACKBONE
    from zoolite.runs.layout import RunLayout

    layout = RunLayout(Path(small_run.run_dir)).backbone(BACKBONE)
    images = np.concatenate([np.load(layout.images("test"))] * 2)
    for target in chosen_targets([LITERT.name], MODES):
        runtime = LiteRTRuntime(layout.model(target), 2)
        invoke, calls = runtime.interpreter.invoke, []
        runtime.interpreter.invoke = lambda: calls.append(1) or invoke()
        batch = runtime.predict(images)
        assert not calls and [copy.num_threads for copy in runtime._single_threaded] == [1, 1]  # the copies ran it
        np.testing.assert_array_equal(batch, np.stack([runtime.predict_one(image) for image in images]),
                                      err_msg=target.name)


def test_a_litert_file_takes_by_default_one_thread_a_core_this_process_may_use(variants, monkeypatch):
    """Not one a core of the host: in a container given one of a large host's cores, one thread."""
    assert LiteRTRuntime(variants["float32"]).threads == str(len(os.sched_getaffinity(0)))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert LiteRTRuntime(variants["float32"]).threads == "1"
