"""The conversion stage: a trained Keras model to LiteRT (TFLite) in every post-training quantization mode.

The Keras model is exported once as a SavedModel, and every mode converts from that
export (cheaper than re-tracing the Keras model five times). The int8 modes are
calibrated on a representative set of training images, fed as raw pixels exactly as
at inference; both int8 modes share one calibration (:func:`calibrate`), which is the
slow part, and differ only in the final quantization step (:func:`quantize_calibrated`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# mode -> what it does; the order is the report's.
QUANTIZATIONS = {
    "float32": "no quantization (float32 weights and activations)",
    "dynamic": "dynamic range: int8 weights, float activations",
    "float16": "float16 weights, float32 compute on CPU",
    "int8_fallback": "int8 weights and activations, float ops where int8 is missing, float input/output",
    "int8": "integer only: int8 weights, activations, input and output",
}


INT8_MODES = ("int8_fallback", "int8")


def check_quantization(mode: str) -> str:
    from zoolite.errors import ZooliteError

    if mode not in QUANTIZATIONS:
        raise ZooliteError(f"unknown quantization {mode!r}; choose from: {', '.join(QUANTIZATIONS)}")
    return mode


def export_saved_model(model, directory: Path) -> Path:
    """Export ``model``'s inference function as a SavedModel (the converters' common source)."""
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def _converter(saved_model: Path):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model))


def convert(saved_model: Path, mode: str, representative: np.ndarray | None = None,
            progress=None) -> bytes:
    """Convert a SavedModel to a LiteRT flatbuffer with the quantization ``mode``.

    ``representative`` (N, H, W, 3) raw pixels calibrate the int8 modes; ``progress`` is
    called once per calibration image.
    """
    import tensorflow as tf

    check_quantization(mode)
    if mode in INT8_MODES:
        return quantize_calibrated(calibrate(saved_model, representative, progress), mode)
    converter = _converter(saved_model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def calibrate(saved_model: Path, representative: np.ndarray, progress=None) -> bytes:
    """The float model with activation ranges recorded on ``representative`` images.

    This is the first half of what ``TFLiteConverter`` does for int8 quantization; it
    stops there (its ``_experimental_calibrate_only`` switch) so that both int8 modes
    can be quantized from one calibration. A test checks the result is identical to
    the converter's own int8 output.
    """
    import tensorflow as tf

    if representative is None or len(representative) == 0:
        raise ValueError("int8 quantization needs representative images")

    def calibration_data():
        for image in representative:
            if progress:
                progress(1)
            yield [np.asarray(image, np.float32)[None]]

    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration_data
    converter._experimental_calibrate_only = True
    return converter.convert()


def quantize_calibrated(calibrated: bytes, mode: str) -> bytes:
    """Quantize a calibrated model: float input/output (int8_fallback) or int8 ones (int8).

    Integer-only is then checked, not assumed: a model with any float tensor left is refused.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    io_type = tf.int8 if mode == "int8" else tf.float32
    model = tflite_convert.mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type)
    if mode == "int8":
        from ai_edge_litert.interpreter import Interpreter

        float_tensors = [t["name"] for t in Interpreter(model_content=bytes(model)).get_tensor_details()
                         if t["dtype"] not in (np.int8, np.int32)]
        if float_tensors:
            raise RuntimeError(f"integer-only quantization left non-integer tensors ({float_tensors[0]}, ...); "
                               "this model needs the int8_fallback mode")
    return bytes(model)
