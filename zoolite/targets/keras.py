"""The Keras family: the trained model itself, the float reference every variant is compared with."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError
from zoolite.targets.base import Tensor, check_image_classifier


class KerasRuntime:
    """A Keras model called as an app calls it, ``model(x, training=False)``, and through one compiled
    ``tf.function``."""

    def __init__(self, model, path: Path | None = None):
        import tensorflow as tf

        self.model = model
        self.path = path  # the .keras file it came from, if any
        self.input_size = int(model.input_shape[1])
        self.n_classes = int(model.output_shape[-1])
        self.input_dtype = "float32"
        # One graph for every batch size, traced once, serves batches and the compiled single-image call
        # (predict_on_batch traces twice, the first batch size then any, and a second function one image).
        self._graph = tf.function(lambda x: model(x, training=False),
                                  input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
        self._from_features = None  # predicting_from: the extractor's fast runtime, and the graph of the part after it

    threads = "TensorFlow default (all cores)"
    batched = True
    backend = "Keras eager on TensorFlow (oneDNN)"

    def params(self) -> int:
        return int(self.model.count_params())

    def other_calls(self) -> dict:
        """Other ways to call the same model whose latency is worth knowing: what a careful
        Python user would call, the model compiled as a ``tf.function``."""
        return {"tf_function": lambda image: np.asarray(self._graph(np.asarray(image, np.float32)[None]))[0]}

    def embedded_labels(self) -> None:
        """A .keras file carries no labels: they are in the labels.txt beside it."""
        return None

    def score_threshold(self) -> float | None:
        return _rejection_threshold(self.path) if self.path else None

    def tensors(self) -> tuple[Tensor, Tensor]:
        return (Tensor(self.model.inputs[0].name, [1, *self.model.input_shape[1:]], "float32"),
                Tensor(self.model.outputs[0].name, [1, self.n_classes], "float32"))

    def predicting_from(self, backbone, top) -> KerasRuntime:
        """This runtime, but predicting batches as ``top`` (the part of the model after its feature extractor) on
        the features of ``backbone`` (a runtime of that extractor: :mod:`zoolite.model.features`'s LiteRT file,
        which the head was trained on). A batch then costs what its features cost, and its probabilities equal the
        whole graph's within the features' float32 rounding (tests/test_rejection.py, test_zoo.py). The single-image
        calls, which time the latency, still call the whole model."""
        import tensorflow as tf

        runtime = copy.copy(self)
        runtime._from_features = backbone, tf.function(lambda features: top(features, training=False), input_signature=[
            tf.TensorSpec([None, *top.input_shape[1:]], tf.float32)])
        return runtime

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Batched, through the compiled graph (or the features and the graph of the part after them)."""
        if self._from_features is None:
            return np.asarray(self._graph(np.asarray(images, np.float32)), np.float32)
        backbone, top = self._from_features
        return np.asarray(top(backbone.predict(images)), np.float32)

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """One image as an app calls it: ``model(x, training=False)``, eagerly."""
        return np.asarray(self.model(np.asarray(image, np.float32)[None], training=False), np.float32)[0]


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file in Keras's safe mode: a file with code in it (Lambda) is refused."""
    import keras

    import zoolite.model.layers  # noqa: F401 (registers zoolite's layers for loading)

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


def _rejection_threshold(path: Path) -> float | None:
    """The "none of these" threshold of a run's model.keras, from the rejection.json beside it."""
    import json

    rejection = path.parent / "rejection.json"  # zoolite.results.Rejection, as the pipeline saved it
    try:
        return float(json.loads(rejection.read_text())["threshold"]) if rejection.is_file() else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ZooliteError(f"{rejection}: damaged ({e}); re-create it with `zoolite run`") from None


def open(path: Path, threads: int | None = None) -> KerasRuntime:  # noqa: A001 (the family interface)
    model = load_keras_model(path)
    check_image_classifier(path, [t.shape for t in model.inputs], [t.shape for t in model.outputs])
    return KerasRuntime(model, path=path)
