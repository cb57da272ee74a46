"""The variants stage: a registry of targets, each a runtime family x a mode.

A :class:`Family` is one runtime (Keras, LiteRT; later ONNX Runtime or OpenVINO): its file
suffix, how to open a file of it for inference, and how to convert a trained Keras model
to it. A :class:`Target` is one entry the pipeline produces and measures: a family, a
mode (e.g. LiteRT ``int8``), what it is, and whether an app can ship it (the Keras model
is the float *reference* every other variant is compared with). The registry plays the
part of timm's model registry and pretrained configs, and of zoolite's own backbones.

Adding a runtime is one module (with ``open(path, threads)`` and a ``Converter``) plus a
:class:`Family` and its :class:`Target` entries here. Family modules are imported only
when used, so opening a ``.tflite`` file never imports TensorFlow.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError


@dataclass(frozen=True)
class About:
    """What a model is, as its files describe it (TFLite metadata, model cards)."""

    name: str
    description: str
    labels: list[str]
    version: str  # zoolite's
    score_threshold: float | None = None  # the top score below which the model means "none of these"


@dataclass(frozen=True)
class Family:
    """A runtime family: ``module`` implements ``open(path, threads)``, ``embedded_labels(path)``
    (the labels a file carries itself, or None) and, for families with converted targets,
    ``Converter(model, workdir, representative, stage, about)``."""

    name: str
    suffix: str
    module: str
    description: str

    def implementation(self):
        return importlib.import_module(self.module)

    def open(self, path: Path, threads: int | None = None):
        return self.implementation().open(path, threads)


@dataclass(frozen=True)
class Target:
    """One variant a run produces: ``family`` x ``mode``, written as ``file_name``."""

    name: str  # what users call it: --quantizations, results, export --variant
    family: Family
    mode: str
    description: str
    shippable: bool = True  # False: the float reference, measured but not handed to apps
    input_dtype: str = "float32"  # what an app feeds it; MediaPipe and LiteRT.js take float32 or uint8

    @property
    def role(self) -> str:
        return "shippable" if self.shippable else "reference"

    @property
    def file_name(self) -> str:
        return f"{'model' if not self.shippable else self.name}{self.family.suffix}"


KERAS = Family("keras", ".keras", "zoolite.targets.keras", "Keras 3 on TensorFlow")
LITERT = Family("litert", ".tflite", "zoolite.targets.litert", "LiteRT (TFLite) interpreter, XNNPACK delegate")
FAMILIES = {family.suffix: family for family in (KERAS, LITERT)}

# The order is the report's: the reference first, then from least to most quantized.
TARGETS: dict[str, Target] = {target.name: target for target in [
    Target("keras", KERAS, "float32", "the trained Keras model, float32: the reference", shippable=False),
    Target("float32", LITERT, "float32", "no quantization (float32 weights and activations)"),
    Target("dynamic", LITERT, "dynamic", "dynamic range: int8 weights, float activations"),
    Target("float16", LITERT, "float16", "float16 weights, float32 compute on CPU"),
    Target("int8_fallback", LITERT, "int8_fallback",
           "int8 weights and activations, float ops where int8 is missing, float input/output"),
    Target("int8", LITERT, "int8", "integer only: int8 weights, activations, input and output", input_dtype="int8"),
    Target("uint8", LITERT, "uint8", "integer only, uint8 input and output: raw pixels go in as they are "
           "(scale 1, zero point 0)", input_dtype="uint8"),
]}
REFERENCE = TARGETS["keras"]
# What --quantizations chooses from: every converted target.
CONVERTED = {name: target for name, target in TARGETS.items() if target.shippable}
# The input types app clients accept (MediaPipe Tasks, the Android Task Library, LiteRT.js).
APP_INPUT_DTYPES = ("float32", "uint8")


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ZooliteError(f"unknown variant {name!r}; choose from: {', '.join(TARGETS)}") from None


def check_model_file(path: str | Path) -> Path:
    path = Path(path)
    expected = " or ".join(FAMILIES)
    if not path.exists():
        raise ZooliteError(f"{path}: model file not found; pass a {expected} file from a run folder")
    if path.is_dir():
        raise ZooliteError(f"{path}: is a folder; pass a {expected} file from a run folder")
    if path.suffix not in FAMILIES:
        raise ZooliteError(f"{path}: not a model file (expected {expected})")
    if path.stat().st_size == 0:
        raise ZooliteError(f"{path}: empty file (0 bytes); re-create it with `zoolite run`")
    return path


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


def open_model(path: str | Path, threads: int | None = None):
    """Open a model file of any family as a runtime; return it and its load time (s)."""
    path = check_model_file(path)
    start = time.perf_counter()
    runtime = FAMILIES[path.suffix].open(path, threads)
    return runtime, time.perf_counter() - start


def read_labels(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{path}: not a readable labels file ({e}); pass the labels.txt of the "
                           "model's run") from None


def top_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` most probable classes, best first; ties go to the first class, as
    ``argmax`` and app clients break them."""
    return np.argsort(-np.asarray(probabilities), kind="stable")[:k]


@dataclass
class Classifier:
    """A model file opened for classifying photos: its runtime, its labels (and where they came
    from) and the top score below which it says "none of these classes" (None: it never does)."""

    runtime: object
    labels: list[str]
    labels_source: str | Path
    threshold: float | None

    def rejects(self, scores: np.ndarray) -> np.ndarray | bool:
        """Whether the model says "none of these" for these scores (one row or many): MediaPipe's
        rule, a top score below the threshold."""
        return self.threshold is not None and np.asarray(scores).max(-1) < self.threshold

    def answer(self, scores: np.ndarray, top: int = 3) -> str:
        """One photo's answer: its ``top`` classes with their scores, or that it shows none of them."""
        best = top_classes(scores, top)
        if self.rejects(scores):
            return f"none of the {len(self.labels)} classes (top: {self.labels[best[0]]} {scores[best[0]]:.2f})"
        return ", ".join(f"{self.labels[i]} {scores[i]:.3f}" for i in best)


def open_classifier(model: str | Path, labels_file: str | Path | None = None,
                    threads: int | None = None) -> Classifier:
    """A model file's runtime, its labels checked against it, and its "none of these" threshold. The
    labels are ``labels_file`` if given, else those in the file's own metadata, else the
    labels.txt beside it."""
    runtime, _ = open_model(model, threads)
    model = Path(model)
    family = FAMILIES[model.suffix].implementation()
    labels, source = None, None
    if labels_file:
        source = Path(labels_file)
        if not source.is_file():
            raise ZooliteError(f"{source}: labels file not found; pass an existing labels.txt")
    else:
        labels = family.embedded_labels(model)
        source = f"{model} (its metadata)" if labels else model.parent / "labels.txt"
        if labels is None and not source.is_file():
            raise ZooliteError(f"{source}: labels file not found next to the model, and {model.name} carries no "
                               "labels of its own; keep labels.txt from the run folder beside it, or pass "
                               "--labels-file")
    labels = labels or read_labels(source)
    if runtime.n_classes != len(labels):
        raise ZooliteError(f"{model}: the model has {runtime.n_classes} outputs but {source} lists "
                           f"{len(labels)} labels; use the labels.txt of the same run")
    return Classifier(runtime, labels, source, family.score_threshold(model))
