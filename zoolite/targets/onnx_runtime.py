"""The ONNX Runtime family: tf2onnx converts the trained model, ONNX Runtime's own quantization
tools quantize it, and an ``InferenceSession`` on the CPU execution provider runs the files.

tf2onnx converts the source's batch-1 SavedModel once per trained model; both quantized modes
start from that float model after ONNX Runtime's pre-processing (shape inference and graph
fusions, which the quantizers expect). Every file carries its labels and "none of these"
threshold in the ONNX model's ``metadata_props`` (:func:`metadata_props`), so the file that is
measured is the file that ships. Opening a file imports neither TensorFlow nor tf2onnx.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from zoolite import storage
from zoolite.errors import ZooliteError
from zoolite.targets.base import (About, Tensor, about_fields, check_image_classifier, labels_from_text,
                                  threshold_from_text, usable_cores)

INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
# The int8 input's range, as ONNX Runtime's quantizer takes an override (NumPy scalars: it reads their dtype).
PIXEL_RANGE = {INPUT_NAME: [{"rmin": np.float32(0), "rmax": np.float32(255)}]}


# --- conversion (TensorFlow, tf2onnx, onnxruntime.quantization) ---------------------------------

def to_onnx(saved_model: Path) -> bytes:
    """The SavedModel's serving signature as a float32 ONNX model, by tf2onnx: input "pixels"
    [1, H, W, 3] of raw pixels, output "probabilities" [1, classes], both static."""
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model))  # kept referenced while the signature is used
    serving = loaded.signatures["serving_default"]
    ((argument, pixels),) = serving.structured_input_signature[1].items()  # named INPUT_NAME by the export
    (output,) = serving.structured_outputs

    # A function returning a dict names the ONNX output after its key instead of "Identity:0".
    @tf.function(input_signature=[pixels])
    def classify(image):
        return {OUTPUT_NAME: serving(**{argument: image})[output]}

    model, _ = tf2onnx.convert.from_function(classify, input_signature=[pixels])
    return model.SerializeToString()


def prepare(model: bytes, folder: Path) -> Path:
    """``model`` pre-processed for quantization (written to ``folder``): ONNX shape inference and
    ONNX Runtime's fusions. tf2onnx leaves BatchNorm as a Mul and an Add after the convolution
    (16 times in EfficientNet-Lite0); folded into the convolution they are not quantized on
    their own, which cut the int8 model's largest error against Keras from 0.56 to 0.05."""
    from onnxruntime.quantization import quant_pre_process

    float32, prepared = folder / "float32.onnx", folder / "prepared.onnx"
    float32.write_bytes(model)
    # The shapes are static, so ONNX's shape inference suffices (symbolic inference needs sympy).
    quant_pre_process(float32, prepared, skip_symbolic_shape=True)
    return prepared


class _CalibrationImages:
    """The representative images one at a time, as ONNX Runtime's calibrator reads them
    (a ``CalibrationDataReader``): float32 [1, H, W, 3] raw pixels, as at inference."""

    def __init__(self, images: np.ndarray, progress=None):
        self._images, self._progress = iter(images), progress

    def get_next(self) -> dict | None:
        image = next(self._images, None)
        if image is None:
            return None
        if self._progress:
            self._progress(1)
        return {INPUT_NAME: np.asarray(image, np.float32)[None]}


def calibrate(prepared: Path, images: np.ndarray, folder: Path, progress=None) -> Path:
    """Record every activation's range on ``images``; return the ranges as ONNX Runtime's
    calibration cache (JSON in ``folder``) for :func:`quantize`. ``progress`` is called per image.

    Min-max, as LiteRT's converter calibrates, so the two families' int8 files differ by their
    runtimes and not by their ranges; with ReLU6 (EfficientNet-Lite, MobileNets) no outlier can
    stretch a range. Min-max keeps two numbers per tensor and image; entropy and percentile
    calibration keep every activation of every image for their histograms: slower, and far
    more memory.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    if images is None or len(images) == 0:
        raise ValueError("int8 quantization needs representative images")
    calibrator = create_calibrator(prepared, augmented_model_path=str(folder / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.MinMax)
    calibrator.collect_data(_CalibrationImages(images, progress))
    ranges = folder / "ranges.json"
    save_tensors_data(calibrator.compute_data(), ranges)
    return ranges


def quantize(prepared: Path, mode: str, folder: Path, ranges: Path | None = None) -> bytes:
    """The pre-processed float model quantized in ``mode``: "dynamic" (int8 weights, activations
    quantized at run time) or "int8" (static QDQ, from the calibration ``ranges``).

    Both follow ONNX Runtime's advice for x86 CPUs: uint8 activations with int8 weights (its
    fastest x86 kernels). Static int8 quantizes weights per channel, as the channels of
    depthwise convolutions have very different ranges (per-tensor weights tripled the int8
    error on EfficientNet-Lite0), and in 7 bits (``reduce_range``), so that on a CPU without
    VNNI the AVX2 u8 x s8 multiply-add cannot saturate and the file gives the same answers on
    every x86 CPU; per channel, the 8th bit is not missed (the same top-1 answers). Its input
    keeps the full pixel range 0..255 whatever the calibration images contain, so raw pixels
    are quantized exactly (scale 1, zero point 0). Dynamic mode keeps 8-bit weights: its
    ConvInteger takes one scale per tensor, and 7 bits there dropped EfficientNet-Lite0's top-1
    agreement with Keras from 100% to 88%. (ConvInteger has no fast CPU kernel: on CNNs the
    dynamic file is smaller than float but several times slower.) Input and output stay float32.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    quantized = folder / f"{mode}.onnx"
    if mode == "dynamic":
        quantize_dynamic(prepared, quantized, weight_type=QuantType.QInt8)
    elif mode == "int8":
        quantize_static(prepared, quantized, calibration_cache_path=ranges, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options={"TensorQuantOverrides": PIXEL_RANGE})
    else:
        raise ValueError(f"unknown ONNX Runtime quantization mode {mode!r}")
    return quantized.read_bytes()


def metadata_props(about: About, description: str) -> dict[str, str]:
    """What a zoolite ``.onnx`` file says about itself in its ``metadata_props`` (:func:`about_fields`; the
    version under ``zoolite_version``)."""
    return about_fields(about, description, version_key="zoolite_version")


def describe(model: bytes, about: About, description: str) -> bytes:
    """``model`` with zoolite as its producer and :func:`metadata_props`; the graph is unchanged."""
    import onnx

    proto = onnx.ModelProto.FromString(model)
    classes = proto.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if classes != len(about.labels):
        raise ValueError(f"{len(about.labels)} labels for a model with {classes} classes")
    proto.producer_name, proto.producer_version, proto.doc_string = "zoolite", about.version, description
    onnx.helper.set_model_props(proto, metadata_props(about, description))
    return proto.SerializeToString()


class Converter:
    """Every ONNX Runtime target of one trained model, from one tf2onnx conversion of the
    source's SavedModel (timed as ``convert_onnxruntime``), pre-processed once for both quantized
    modes. Intermediate files live in a temporary folder under ``source.workdir`` for the length
    of one :meth:`convert`."""

    def __init__(self, source):
        self.source = source
        self._float32: bytes | None = None
        self._prepared: bytes | None = None

    def _float32_model(self) -> bytes:
        if self._float32 is None:
            saved_model = self.source.saved_model()
            with self.source.stage("convert_onnxruntime", 1, "model") as step:
                self._float32 = to_onnx(saved_model)
                step(1)
        return self._float32

    def _prepared_model(self, folder: Path) -> Path:
        """The pre-processed float model, written into ``folder`` for the quantizers."""
        if self._prepared is None:
            self._prepared = prepare(self._float32_model(), folder).read_bytes()
        path = folder / "prepared.onnx"
        path.write_bytes(self._prepared)
        return path

    def convert(self, target, out: Path) -> None:
        """Write ``target``'s file to ``out`` (atomically), with its metadata."""
        source = self.source
        float32 = self._float32_model()  # converted (in its own timed step) before the steps below start
        source.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=storage.TEMPORARY_PREFIX, dir=source.workdir) as folder:
            folder = Path(folder)
            prepared = None if target.mode == "float32" else self._prepared_model(folder)
            ranges = None
            if target.calibrated:
                images = source.representative()
                with source.stage("calibrate_onnxruntime_int8", len(images), "img") as step:
                    ranges = calibrate(prepared, images, folder, step)
            with source.stage(f"convert_{target.name}", 1, "model") as step:
                model = float32 if prepared is None else quantize(prepared, target.mode, folder, ranges)
                storage.write_bytes(out, describe(model, source.about, source.description(target)))
                step(1)


# --- inference (onnxruntime, NumPy) ----------------------------------------------------------

def _session(path: Path, options=None):
    """An ``InferenceSession`` of ``path`` on the CPU, or a one-line ZooliteError if the file is
    not a loadable ONNX model."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as errors

    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # ONNX Runtime's errors share no base class of their own: these are what a damaged file raises.
    except (errors.InvalidProtobuf, errors.InvalidGraph, errors.Fail, errors.NotImplemented,
            errors.InvalidArgument) as e:
        message = (str(e).splitlines() or [type(e).__name__])[0]
        raise ZooliteError(f"{path}: not a valid ONNX model ({message[:120]}); "
                           "re-create it with `zoolite run`") from None


class OnnxRuntimeRuntime:
    """A ``.onnx`` model in an ONNX Runtime ``InferenceSession`` on the CPU execution provider.

    One call runs on ``threads`` cores (intra-op), one operator at a time (inter-op 1,
    sequential), with every graph optimization: what a batch-1 app wants from a small CNN.
    The model is batch 1, so :meth:`predict` runs the images one by one.
    """

    batched = False  # one call per image

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.num_threads = threads or usable_cores()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = _session(self.path, options)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_image_classifier(path, [_static(i.shape) for i in inputs], [_static(o.shape) for o in outputs])
        self._input, self._output = inputs[0], outputs[0]
        if self._input.type != "tensor(float)":
            raise ZooliteError(f"{path}: takes {self._input.type} input, not float32 pixels; pass an image "
                               "classifier made by `zoolite run`")
        self.input_size = int(self._input.shape[1])
        self.n_classes = int(self._output.shape[-1])
        self.input_dtype = "float32"
        self.backend = f"ONNX Runtime {ort.__version__}, CPU execution provider"

    @property
    def threads(self) -> str:
        return str(self.num_threads)

    def params(self) -> None:
        return None

    def other_calls(self) -> dict:
        return {}

    @functools.cached_property
    def _metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def embedded_labels(self) -> list[str] | None:
        return labels_from_text(self.path, self._metadata.get("labels"), "ONNX metadata")

    def score_threshold(self) -> float | None:
        return threshold_from_text(self.path, self._metadata.get("score_threshold"), "ONNX metadata")

    def tensors(self) -> tuple[Tensor, Tensor]:
        return (Tensor(self._input.name, [1, self.input_size, self.input_size, 3], "float32"),
                Tensor(self._output.name, [1, self.n_classes], "float32"))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.predict_one(image) for image in images])

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        x = np.asarray(image, np.float32)[None]
        return self.session.run([self._output.name], {self._input.name: x})[0][0]


def _static(shape: list) -> list:
    """An ONNX Runtime shape with its named (symbolic) dimensions as None."""
    return [d if isinstance(d, int) else None for d in shape]


def open(path: Path, threads: int | None = None) -> OnnxRuntimeRuntime:  # noqa: A001 (the family interface)
    return OnnxRuntimeRuntime(path, threads)


__all__ = ["Converter", "OnnxRuntimeRuntime", "to_onnx", "prepare", "calibrate", "quantize", "metadata_props",
           "describe", "open"]
