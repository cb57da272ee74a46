"""The OpenVINO family: ``openvino.convert_model`` from the SavedModel, NNCF post-training
quantization for int8, and the OpenVINO Runtime CPU plugin to run the files as apps do.

The SavedModel is converted once; every mode saves that float32 model (never compressed to
float16) or NNCF's int8 quantization of it. The float32 and native targets hold the same
weights and differ only in the precision the CPU plugin infers with: the float32 file records
``INFERENCE_PRECISION_HINT`` f32 in its rt_info ``runtime_options``, the native file records
nothing, so the plugin picks its default (bf16 on a CPU with AVX-512 BF16 or AMX). OpenVINO
2026.4's ``compile_model`` does not apply that recorded hint by itself (it applies only a few
runtime options, such as the KV-cache precision), so :class:`OpenVINORuntime` passes it when it
compiles, and says in ``backend`` the precision the compiled model reports. Every file carries
its labels and "none of these" threshold in the rt_info section ``zoolite``. Opening a file
imports neither TensorFlow nor NNCF.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov

from zoolite.errors import ZooliteError
from zoolite.targets.base import (Tensor, about_fields, check_image_classifier, labels_from_text,
                                  threshold_from_text, usable_cores)

ABOUT_SECTION = "zoolite"  # rt_info section: name, description, version, labels (JSON), score_threshold
PRECISION_HINT = ["runtime_options", "INFERENCE_PRECISION_HINT"]
RECORDED_PRECISION = {"float32": "f32"}  # mode -> the inference precision its file records; others: the CPU's
DEVICE = "CPU"


@functools.cache
def core() -> ov.Core:
    """One Core per process: it loads the device plugins, which is slow the first time."""
    return ov.Core()


# --- conversion (TensorFlow, NNCF) -----------------------------------------------------------

def quantize_int8(model: ov.Model, representative: np.ndarray, progress=None) -> ov.Model:
    """NNCF post-training int8 quantization of ``model``, calibrated on every ``representative``
    image (raw pixels, fed as the model takes them); the input and output stay float32.

    Activation ranges are the min and max over all the images (MINMAX), as LiteRT calibrates,
    not NNCF's default mean of per-image extremes, which clips the wide activations of the few
    unusual photos in the calibration set (such as the scrambled ones, there so the rejection
    gate keeps working). On two trained efficientnet_lite0 models (160 sample photos) the
    default left the scores 0.06 from the float model's on average (up to 0.9), MINMAX 0.011
    (up to 0.16). Measured there too: the PERFORMANCE preset (symmetric; activations after
    ReLU6 are quantized unsigned anyway) scored as close as MIXED and ran ~15% faster; NNCF's
    fast bias correction came within 0.002 of the full one (0.013 against 0.011, both closer
    than LiteRT's int8 at 0.014) in a third of the time (the full one added ~10 s). The CPU's
    quantization rules, since the CPU plugin runs the file; ``model_type`` stays unset (its
    transformer rules are for attention models). ``progress`` is called once per image as NNCF
    collects statistics; bias correction then works from those statistics.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    def feed(image):
        if progress:
            progress(1)
        return np.asarray(image, np.float32)[None]

    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's own progress bars: the stage shows one
        return nncf.quantize(
            model, nncf.Dataset(representative, feed), preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU, subset_size=len(representative), fast_bias_correction=True,
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX))


def save_atomically(model: ov.Model, out: Path) -> None:
    """Save ``model`` as ``out`` (.xml) and its .bin beside it, each renamed into place, the .bin
    first: the pipeline takes a target as written once both files exist."""
    from zoolite import storage

    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=storage.TEMPORARY_PREFIX) as tmp:
        xml = Path(tmp) / out.name
        ov.save_model(model, xml, compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(xml, out)


class Converter:
    """Every OpenVINO target of one trained model, from one conversion of the source's SavedModel
    (timed once, as ``convert_openvino``)."""

    def __init__(self, source):
        self.source = source
        self._float_model: ov.Model | None = None

    def _converted(self) -> ov.Model:
        if self._float_model is None:
            saved_model = self.source.saved_model()
            with self.source.stage("convert_openvino", 1, "model") as step:
                try:
                    self._float_model = ov.convert_model(str(saved_model))
                except Exception as e:  # Ctrl-C in the frontend's Python comes back as a failed conversion
                    if "KeyboardInterrupt" in str(e):
                        raise KeyboardInterrupt from None
                    raise
                step(1)
        return self._float_model

    def convert(self, target, out: Path) -> None:
        """Write ``target``'s .xml to ``out`` and its .bin beside it, with the labels and threshold in rt_info."""
        source, about = self.source, self.source.about
        model = self._converted().clone()  # each mode's rt_info stays in its own file
        if target.calibrated:
            images = source.representative()
            with source.stage("calibrate_openvino_int8", len(images), "img") as step:
                model = quantize_int8(model, images, step)
        with source.stage(f"convert_{target.name}", 1, "model") as step:
            if target.mode in RECORDED_PRECISION:
                model.set_rt_info(RECORDED_PRECISION[target.mode], PRECISION_HINT)
            for key, value in about_fields(about, source.description(target)).items():
                model.set_rt_info(value, [ABOUT_SECTION, key])
            save_atomically(model, out)
            step(1)


# --- inference (OpenVINO Runtime, NumPy) -----------------------------------------------------

def _invalid(path: Path, reason: str) -> ZooliteError:
    return ZooliteError(f"{path}: not a valid OpenVINO model ({reason[:120]}); re-create it with `zoolite run`")


def _reason(error: Exception) -> str:
    """The line of an OpenVINO error that says what is wrong: its messages start with lines of
    source locations ("Exception from src/inference/src/cpp/core.cpp:84:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return next((line for line in lines if not line.endswith(":")), lines[0] if lines else type(error).__name__)


def read_model(path: Path) -> ov.Model:
    """The model of an .xml file and the .bin beside it; a file that is not one is refused in one line."""
    with Path(path).open("rb") as file:  # else OpenVINO offers it to every frontend, and they print to stderr
        if not file.read(64).lstrip().startswith(b"<"):
            raise _invalid(path, "not an XML file")
    try:
        return core().read_model(str(path))
    except RuntimeError as e:
        raise _invalid(path, _reason(e)) from None


def _shape(port) -> list[int | None]:
    shape = port.get_partial_shape()
    return [None if d.is_dynamic else d.get_length() for d in shape] if shape.rank.is_static else []


class OpenVINORuntime:
    """An OpenVINO IR model compiled for the CPU as an app runs it one photo at a time: the
    LATENCY hint, one stream, ``num_threads`` inference threads (default: every core it may use), and the
    inference precision the file records (else the CPU's default)."""

    batched = False  # one call per image

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        model = read_model(self.path)
        check_image_classifier(path, [_shape(port) for port in model.inputs], [_shape(port) for port in model.outputs])
        config = {"INFERENCE_NUM_THREADS": num_threads or usable_cores(), "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1}
        if model.has_rt_info(PRECISION_HINT):
            config["INFERENCE_PRECISION_HINT"] = model.get_rt_info(PRECISION_HINT).astype(str)
        self._about = {key: model.get_rt_info([ABOUT_SECTION, key]).astype(str)  # the labels and threshold
                       for key in ("labels", "score_threshold") if model.has_rt_info([ABOUT_SECTION, key])}
        try:
            self.compiled = core().compile_model(model, DEVICE, config)
        except RuntimeError as e:
            raise _invalid(path, _reason(e)) from None
        self._request = self.compiled.create_infer_request()
        self._input, self._output = self.compiled.input(0), self.compiled.output(0)
        self.input_size = int(_shape(self._input)[1])
        self.n_classes = int(_shape(self._output)[-1])
        self.input_dtype = self._input.get_element_type().to_dtype().name
        self.threads = str(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())

    @property
    def backend(self) -> str:
        version = ".".join(ov.get_version().split("-")[0].split(".")[:2])
        precision = f"int8, {self.precision} elsewhere" if self.quantized else self.precision
        return f"OpenVINO {version} {DEVICE}, {precision}"

    def params(self) -> None:
        return None

    def other_calls(self) -> dict:
        return {}

    def embedded_labels(self) -> list[str] | None:
        return labels_from_text(self.path, self._about.get("labels"), "OpenVINO rt_info")

    def score_threshold(self) -> float | None:
        return threshold_from_text(self.path, self._about.get("score_threshold"), "OpenVINO rt_info")

    def tensors(self) -> tuple[Tensor, Tensor]:
        return tuple(Tensor(port.get_any_name(), [int(n) for n in _shape(port)],
                            port.get_element_type().to_dtype().name) for port in (self._input, self._output))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """One call per image: the files take a batch of one, as apps feed them."""
        return np.stack([self.predict_one(image) for image in images])

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(image, self.input_dtype)[None])
        return np.asarray(self._request.infer([x], share_inputs=True)[0][0], np.float32)


def open(path: Path, threads: int | None = None) -> OpenVINORuntime:  # noqa: A001 (the family interface)
    return OpenVINORuntime(path, threads)


__all__ = ["Converter", "OpenVINORuntime", "quantize_int8", "save_atomically", "read_model", "open"]
