"""What every runtime family shares, and what the registry (:mod:`zoolite.targets`) asks of it.

Family modules import this module, never the registry, so imports run one way:
registry -> family module -> base.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:  # NumPy only in annotations: `zoolite --help` reads the registry without it
    import numpy as np

from zoolite.errors import ZooliteError


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system has one), not the host's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class About:
    """What a model is, as its files describe it (TFLite metadata, ONNX metadata_props, OpenVINO rt_info)."""

    name: str
    description: str
    labels: list[str]
    version: str  # zoolite's
    score_threshold: float | None = None  # the top score below which the model means "none of these"
    author: str = "zoolite"


@dataclass(frozen=True)
class Tensor:
    """One input or output of a model file as an app feeds or reads it."""

    name: str
    shape: list[int]
    dtype: str  # NumPy's name: float32, uint8, int8
    scale: float | None = None  # for an integer tensor: real value = (q - zero_point) * scale
    zero_point: int | None = None


@runtime_checkable
class Runtime(Protocol):
    """A model file opened for inference, whatever its family: what evaluation, predict and
    export ask of it. Images go in as raw RGB pixels (0..255, NHWC), probabilities come out
    as float32; a runtime quantizes and dequantizes its own tensors."""

    input_size: int
    n_classes: int
    input_dtype: str  # what the file takes (NumPy dtype name)
    threads: str  # the thread count it runs with, as reported
    backend: str  # what runs it, e.g. "LiteRT + XNNPACK delegate" or "OpenVINO CPU, bf16"
    batched: bool  # whether predict runs a batch in one call (False: one call per image, as apps feed files)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) pixels -> (N, classes) probabilities."""

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """One (size, size, 3) image -> (classes,) probabilities, called as an app calls the file."""

    def params(self) -> int | None:
        """The model's weights count, when the runtime can tell (None: it cannot)."""

    def other_calls(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Other ways to call the same model whose single-image latency is worth knowing."""

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The file's input and output."""

    def embedded_labels(self) -> list[str] | None:
        """The labels the opened file carries (None: it carries none, e.g. another tool's file)."""

    def score_threshold(self) -> float | None:
        """The "none of these" threshold the opened file carries (None: it has none)."""


class Converter(Protocol):
    """Writes a family's targets (:class:`zoolite.targets.Target`) of one trained model; made as
    ``Converter(source)`` from a :class:`ConversionSource`."""

    def convert(self, target, out: Path) -> None:
        """Write ``target``'s file(s) to ``out`` (atomically), with the labels and threshold of ``source.about``."""


class FamilyModule(Protocol):
    """The module a :class:`Family` names."""

    def open(self, path: Path, threads: int | None = None) -> Runtime: ...

    Converter: Callable[["ConversionSource"], Converter]


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


def _damaged(path, key: str, where: str) -> ZooliteError:
    return ZooliteError(f"{path}: damaged {key!r} in its {where}; re-create the model with `zoolite run`, or pass "
                        "--labels-file to use it without its metadata")


def about_fields(about: About, description: str, version_key: str = "version") -> dict[str, str]:
    """What a file's text metadata says of its model: ``name``, ``description``, ``labels`` (a JSON list, in
    output order), the zoolite version (under ``version_key``) and, if the model has one, ``score_threshold``
    (the top score below which it means "none of these"); read back by :func:`labels_from_text` and
    :func:`threshold_from_text`."""
    fields = {"name": about.name, "description": description, "labels": json.dumps(about.labels, ensure_ascii=False),
              version_key: about.version}
    if about.score_threshold is not None:
        fields["score_threshold"] = repr(float(about.score_threshold))
    return fields


def labels_from_text(path, text: str | None, where: str) -> list[str] | None:
    """Labels a file carries as a JSON list of strings (ONNX metadata_props, OpenVINO rt_info); None
    for a file without them, a one-line error naming ``where`` for a damaged value."""
    if text is None:
        return None
    try:
        labels = json.loads(text)
    except ValueError:
        raise _damaged(path, "labels", where) from None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise _damaged(path, "labels", where)
    return labels


def threshold_from_text(path, text: str | None, where: str) -> float | None:
    """A "none of these" threshold a file carries as text; None for a file without one."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise _damaged(path, "score_threshold", where) from None


EXPORT_FORM = "frozen weights"  # what export_saved_model writes; files converted from another form differ


def export_saved_model(model, directory: Path) -> Path:
    """Export ``model``'s inference function for one image at a time (batch 1) as a SavedModel,
    the converters' common source: static shapes, as apps, LiteRT.js and the quantizers need.

    The weights are frozen into the graph as constants. A SavedModel of variables carries
    checkpoint functions as large as the model, which the export builds and every conversion
    loads twice in Python; frozen, a run's export and conversions take half the time
    (benchmarks/scale.py), and the converted files compute the same outputs bit for bit (a
    test compares them with Keras's export).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    pixels = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32, name="pixels")
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda x: model(x, training=False)).get_concrete_function(pixels))
    module = tf.Module()
    module.serve = tf.function(lambda pixels: frozen(pixels), input_signature=[pixels])
    # Gradients are not converted; saving them fails on frozen custom-gradient ops (EfficientNetB0's swish).
    tf.saved_model.save(module, str(directory), signatures=module.serve,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    return directory


class ConversionSource:
    """What every family's converter starts from, made once per trained model: the model exported
    as a batch-1 SavedModel (on first use; removed on exit), the calibration images (asked for
    once, only if a calibrated target is converted), the pipeline's timed progress step
    ``stage(name, total, unit)``, and what the model is (``about``, for the files' metadata)."""

    def __init__(self, model, workdir: Path, representative: Callable[[], np.ndarray], stage, about: About):
        self.model, self.workdir, self.stage, self.about = model, workdir, stage, about
        self._representative, self._images = representative, None
        self._saved_model: Path | None = None

    @classmethod
    def exported(cls, saved_model: Path, workdir: Path, images: np.ndarray | None, stage,
                 about: About) -> "ConversionSource":
        """A source whose model another process has exported already (and decoded the calibration images
        of), for a converter in a spare process (:mod:`zoolite.targets.parallel`)."""
        source = cls(None, workdir, lambda: images, stage, about)
        source._saved_model = saved_model
        return source

    def __enter__(self) -> "ConversionSource":
        return self

    def __exit__(self, *exc):
        if self._saved_model is not None:
            shutil.rmtree(self._saved_model, ignore_errors=True)

    def saved_model(self) -> Path:
        if self._saved_model is None:
            directory = self.workdir / "saved_model"
            shutil.rmtree(directory, ignore_errors=True)  # a partial export from an interrupted run
            with self.stage("export_saved_model", 1, "model"):
                self._saved_model = export_saved_model(self.model, directory)
        return self._saved_model

    def representative(self) -> np.ndarray:
        if self._images is None:
            self._images = self._representative()
        return self._images

    def description(self, target) -> str:
        """The model's description with the variant's, for a file's metadata."""
        return f"{self.about.description} Variant {target.name}: {target.description}."
