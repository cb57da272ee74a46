"""Runtimes: one interface over a Keras model and a LiteRT interpreter.

Both take raw RGB pixels (0-255) and return class probabilities, batched
(:meth:`predict`) or one image at a time as an app calls them (:meth:`predict_one`).
An integer-only model's input is quantized and its output dequantized with the
tensors' own scale and zero point, so callers never see the difference.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError

MODEL_SUFFIXES = (".keras", ".tflite")


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Real values to a quantized integer tensor: round(x / scale) + zero_point, saturated."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


class KerasRuntime:
    """A Keras model called as ``model(x, training=False)``, or through a compiled ``tf.function``."""

    kind = "keras"

    def __init__(self, model, compiled: bool = False):
        self.model = model
        self.compiled = compiled
        self.input_size = int(model.input_shape[1])
        self.n_classes = int(model.output_shape[-1])
        if compiled:
            import tensorflow as tf

            self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        else:
            self._call = lambda x: model(x, training=False)

    @property
    def threads(self) -> str:
        return "TensorFlow default (all cores)"

    @property
    def backend(self) -> str:
        return f"Keras {'tf.function' if self.compiled else 'eager'} on TensorFlow (oneDNN)"

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Batched, through Keras's compiled batch inference."""
        return np.asarray(self.model.predict_on_batch(np.asarray(images, np.float32)), np.float32)

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """One image as an app calls it: ``model(x, training=False)``, or the tf.function."""
        return np.asarray(self._call(np.asarray(image, np.float32)[None]), np.float32)[0]


class LiteRTRuntime:
    """A ``.tflite`` model in ``ai_edge_litert``'s Interpreter, with its default XNNPACK delegate
    unless ``xnnpack`` is False (then LiteRT's builtin kernels only).

    The interpreter stays at batch 1. Resizing its input to a batch of 32 was measured
    slower per image than batch-1 calls under XNNPACK on a 2-core x86 CPU (0.5-0.7x, see
    ``benchmarks/floor.py``), and every resize re-plans the delegate; so :meth:`predict`
    runs the images one by one.
    """

    kind = "litert"

    def __init__(self, path: str | Path, num_threads: int | None = None, xnnpack: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = Path(path)
        self.num_threads = num_threads or os.cpu_count() or 1
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
        self._pixel_table = None

    @property
    def threads(self) -> str:
        return str(self.num_threads)

    @property
    def backend(self) -> str:
        return "LiteRT + XNNPACK delegate" if self.xnnpack else "LiteRT builtin kernels"

    @property
    def input_dtype(self):
        return self._input["dtype"]

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
        return np.stack([self.predict_one(image) for image in images])

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        return self._run(image[None])[0]


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file in Keras's safe mode: a file with code in it (Lambda) is refused."""
    import keras

    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except ValueError as e:
        if "lambda" in str(e).lower() or "safe_mode" in str(e):
            raise ZooliteError(f"{path}: refused: the model contains Python code (a Lambda layer) "
                               "that could run anything; rebuild it without Lambda layers") from None
        raise ZooliteError(f"{path}: not a loadable Keras model ({str(e).splitlines()[0][:120]}); "
                           "re-create it with `zoolite run`") from None
    except Exception as e:  # zip, HDF5 and deserialisation errors of a damaged file
        raise ZooliteError(f"{path}: not a loadable Keras model ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120] if str(e) else 'damaged file'}); "
                           "re-create it with `zoolite run`") from None


def check_image_classifier(path, input_shapes: list, output_shapes: list) -> None:
    """Refuse a model that does not take one batch of square RGB images and give one row of
    class probabilities per image."""
    inputs = [tuple(None if d is None else int(d) for d in shape) for shape in input_shapes]
    outputs = [tuple(None if d is None else int(d) for d in shape) for shape in output_shapes]
    if len(inputs) != 1 or len(inputs[0]) != 4 or inputs[0][3] != 3 or inputs[0][1] is None \
            or inputs[0][1] != inputs[0][2]:
        raise ZooliteError(f"{path}: takes input of shape {', '.join(map(str, inputs))}, not a batch of "
                           "square RGB images (batch, size, size, 3); pass an image classifier made by "
                           "`zoolite run`")
    if len(outputs) != 1 or len(outputs[0]) != 2:
        raise ZooliteError(f"{path}: gives output of shape {', '.join(map(str, outputs))}, not class "
                           "probabilities (batch, classes); pass an image classifier made by `zoolite run`")


def check_model_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ZooliteError(f"{path}: model file not found; pass a .keras or .tflite file from a run folder")
    if path.is_dir():
        raise ZooliteError(f"{path}: is a folder; pass a .keras or .tflite file from a run folder")
    if path.suffix not in MODEL_SUFFIXES:
        raise ZooliteError(f"{path}: not a model file (expected {' or '.join(MODEL_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise ZooliteError(f"{path}: empty file (0 bytes); re-create it with `zoolite run`")
    return path


def open_runtime(path: str | Path, num_threads: int | None = None, compiled: bool = False):
    """Open a ``.keras`` or ``.tflite`` file as a runtime; return it and its load time (s)."""
    path = check_model_file(path)
    start = time.perf_counter()
    if path.suffix == ".keras":
        model = load_keras_model(path)
        check_image_classifier(path, [t.shape for t in model.inputs], [t.shape for t in model.outputs])
        runtime = KerasRuntime(model, compiled=compiled)
    else:
        runtime = LiteRTRuntime(path, num_threads)
    return runtime, time.perf_counter() - start
