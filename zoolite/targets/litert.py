"""The LiteRT (TFLite) family: ``TFLiteConverter`` in every post-training quantization mode, and
``ai_edge_litert``'s Interpreter to run the files as apps do.

The Keras model is exported once as a SavedModel with its batch fixed at 1 (static
shapes, as apps and LiteRT.js need), and every mode converts from that export. The
integer modes are calibrated on a representative set of training images, fed as raw
pixels exactly as at inference; they share one calibration (:func:`calibrate`), which is
the slow part, and differ only in the final quantization step (:func:`quantize_calibrated`).
Every file gets its TFLite metadata (labels, normalisation) when it is written, so the
file that is measured is the file that ships. Opening a file imports no TensorFlow.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError
from zoolite.targets.base import Tensor, check_image_classifier, usable_cores


# --- conversion (TensorFlow) -----------------------------------------------------------------

def _converter(saved_model: Path):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model))


def convert(saved_model: Path, mode: str, representative: np.ndarray | None = None) -> bytes:
    """Convert a SavedModel to a LiteRT flatbuffer with the quantization ``mode``.

    ``representative`` (N, H, W, 3) raw pixels calibrate the int8 modes.
    """
    import tensorflow as tf

    if mode in INTEGER_MODES:
        return quantize_calibrated(calibrate(saved_model, representative), mode)
    converter = _converter(saved_model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


# mode -> the type of its input and output; all three share one calibration.
INTEGER_MODES = {"int8_fallback": "float32", "int8": "int8", "uint8": "uint8"}


def calibrate(saved_model: Path, representative: np.ndarray, progress=None) -> bytes:
    """The float model with activation ranges recorded on ``representative`` images.

    This is the first half of what ``TFLiteConverter`` does for int8 quantization; it
    stops there (its ``_experimental_calibrate_only`` switch) so that every integer mode
    can be quantized from one calibration. A test checks the result is identical to
    the converter's own int8 output. ``progress`` is called once per image.

    The input's range is the pixel range 0..255 by definition, not by what the sample
    happens to contain: when no image has a 0 and a 255, one pixel of the first image is
    set to each, so the uint8 input takes raw pixels as they are (scale 1, zero point 0).
    """
    import tensorflow as tf

    if representative is None or len(representative) == 0:
        raise ValueError("int8 quantization needs representative images")
    images = [np.asarray(image, np.float32) for image in representative]
    if min(i.min() for i in images) > 0 or max(i.max() for i in images) < 255:
        images[0] = images[0].copy()
        images[0][0, 0], images[0][-1, -1] = 0.0, 255.0

    def calibration_data():
        for image in images:
            if progress:
                progress(1)
            yield [image[None]]

    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration_data
    converter._experimental_calibrate_only = True
    return converter.convert()


def quantize_calibrated(calibrated: bytes, mode: str) -> bytes:
    """Quantize a calibrated model, with float input/output (int8_fallback), int8 ones (int8) or
    uint8 ones (uint8).

    Integer-only is then checked, not assumed: a model with any float tensor left is refused,
    and so is a uint8 input that is not the raw pixels (scale 1, zero point 0).
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    io_type = getattr(tf, INTEGER_MODES[mode])
    model = bytes(tflite_convert.mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type))
    if mode != "int8_fallback":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=model)
        float_tensors = [t["name"] for t in interpreter.get_tensor_details()
                         if t["dtype"] not in (np.int8, np.uint8, np.int32)]
        if float_tensors:
            raise RuntimeError(f"integer-only quantization left non-integer tensors ({float_tensors[0]}, ...); "
                               "this model needs the int8_fallback mode")
        if mode == "uint8" and interpreter.get_input_details()[0]["quantization"] != (1.0, 0):
            raise RuntimeError(f"the uint8 input is quantized as {interpreter.get_input_details()[0]['quantization']}, "
                               "not as raw pixels (scale 1, zero point 0)")
    return model


class Converter:
    """Every LiteRT target of one trained model, from the source's one SavedModel export and one
    calibration shared by the integer modes."""

    def __init__(self, source):
        self.source = source
        self._calibrated: bytes | None = None

    def convert(self, target, out: Path) -> None:
        """Write ``target``'s file to ``out`` (atomically), with its TFLite metadata."""
        from zoolite import storage
        from zoolite.targets.metadata import add_metadata

        source, about = self.source, self.source.about
        saved_model = source.saved_model()
        if target.calibrated and self._calibrated is None:  # one calibration serves them all
            images = source.representative()
            with source.stage("calibrate_int8", len(images), "img") as step:
                self._calibrated = calibrate(saved_model, images, step)
        with source.stage(f"convert_{target.name}", 1, "model") as step:
            model = quantize_calibrated(self._calibrated, target.mode) if target.calibrated \
                else convert(saved_model, target.mode)
            storage.write_bytes(out, add_metadata(model, replace(about, description=source.description(target))))
            step(1)


# --- inference (ai_edge_litert, NumPy) -------------------------------------------------------

def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Real values to a quantized integer tensor: round(x / scale) + zero_point, saturated."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class LiteRTRuntime:
    """A ``.tflite`` model in ``ai_edge_litert``'s Interpreter, with its default XNNPACK delegate
    unless ``xnnpack`` is False (then LiteRT's builtin kernels only).

    The interpreter stays at batch 1. Resizing its input to a batch of 32 was measured
    slower per image than batch-1 calls under XNNPACK on a 2-core x86 CPU (0.5-0.7x, see
    ``benchmarks/floor.py``), and every resize re-plans the delegate; so :meth:`predict`
    runs the images one by one, shared among copies of the interpreter with one thread each,
    while :meth:`predict_one` calls the one interpreter with every thread, as an app does.
    """

    batched = False  # one call per image

    def __init__(self, path: str | Path, num_threads: int | None = None, xnnpack: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = Path(path)
        self.num_threads = num_threads or usable_cores()
        self.xnnpack = xnnpack
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ZooliteError(f"{path}: not a valid LiteRT model ({str(e).splitlines()[0][:120]}); "
                               "re-create it with `zoolite run`") from None
        check_image_classifier(path, [d["shape"] for d in self.interpreter.get_input_details()],
                               [d["shape"] for d in self.interpreter.get_output_details()])
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.input_size = int(self._input["shape"][1])
        self.n_classes = int(self._output["shape"][-1])
        self.input_dtype = np.dtype(self._input["dtype"]).name
        self._pixel_table = None

    @property
    def threads(self) -> str:
        return str(self.num_threads)

    @property
    def backend(self) -> str:
        return "LiteRT + XNNPACK delegate" if self.xnnpack else "LiteRT builtin kernels"

    def params(self) -> None:
        return None

    def other_calls(self) -> dict:
        return {}

    @functools.cached_property
    def _about(self):
        from zoolite.targets.metadata import read_metadata

        return read_metadata(self.path)  # None for a file without metadata (another tool's)

    def embedded_labels(self) -> list[str] | None:
        return self._about.labels if self._about else None

    def score_threshold(self) -> float | None:
        return self._about.score_threshold if self._about else None

    def tensors(self) -> tuple[Tensor, Tensor]:
        return _tensor(self._input), _tensor(self._output)

    def _quantize_input(self, images: np.ndarray) -> np.ndarray:
        scale, zero_point = self._input["quantization"]
        dtype = self._input["dtype"]
        if images.dtype == np.uint8:  # pixels: a 256-entry table is exact and ~10x faster than arithmetic
            if self._pixel_table is None:
                self._pixel_table = quantize(np.arange(256, dtype=np.float32), scale, zero_point, dtype)
            return self._pixel_table[images]
        return quantize(np.asarray(images, np.float32), scale, zero_point, dtype)

    def _run(self, images: np.ndarray) -> np.ndarray:
        if np.issubdtype(self._input["dtype"], np.integer):
            x = self._quantize_input(np.asarray(images))
        else:
            x = np.asarray(images, self._input["dtype"])
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._output["index"])
        scale, zero_point = self._output["quantization"]
        return dequantize(y, scale, zero_point) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Every image's output, one call per image. With more than one thread, the images are shared among
        copies of the interpreter with one thread each, called at once (the interpreter lets go of the GIL
        while it runs): the outputs are the same bit for bit, and the dynamic-range file, whose kernels use a
        second thread poorly, gets through a run's test photos faster (``benchmarks/evaluation_cost.py``)."""
        copies = self._single_threaded[:len(images)] if self.num_threads > 1 else []
        if len(copies) < 2:
            return np.stack([self.predict_one(image) for image in images])
        shares = [np.arange(i, len(images), len(copies)) for i in range(len(copies))]
        out = np.empty((len(images), self.n_classes), np.float32)
        with ThreadPoolExecutor(len(copies)) as pool:
            for share, outputs in zip(shares, pool.map(lambda one, rows: one.predict(images[rows]), copies, shares)):
                out[share] = outputs
        return out

    @functools.cached_property
    def _single_threaded(self) -> list[LiteRTRuntime]:
        """A copy of the interpreter with one thread for each of this one's threads, at most one a core this
        process may use (each copy holds the model's weights)."""
        return [LiteRTRuntime(self.path, 1, self.xnnpack) for _ in range(min(self.num_threads, usable_cores()))]

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        return self._run(image[None])[0]


def _tensor(details: dict) -> Tensor:
    scale, zero_point = details["quantization"]
    integer = np.issubdtype(details["dtype"], np.integer)
    return Tensor(details["name"], [int(n) for n in details["shape"]], np.dtype(details["dtype"]).name,
                  float(scale) if integer else None, int(zero_point) if integer else None)


def open(path: Path, threads: int | None = None) -> LiteRTRuntime:  # noqa: A001 (the family interface)
    return LiteRTRuntime(path, threads)


__all__ = ["Converter", "LiteRTRuntime", "calibrate", "convert", "quantize_calibrated",
           "quantize", "dequantize", "open"]
