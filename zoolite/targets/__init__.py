"""The variants stage: a registry of targets, each a runtime family x a quantization mode.

A :class:`Family` is one runtime (Keras, LiteRT, ONNX Runtime, OpenVINO): its model file
(suffix, and any files beside it), the Python module that opens and converts such files,
and the packages whose versions a run records. A :class:`Target` is one entry the
pipeline produces and measures: a family, a mode (e.g. LiteRT ``int8``), what it is, and
what can use the file: which app clients take it, which twin to hand an app instead, and
whether the exported web page can run it (the Keras model is the float *reference* every
other variant is compared with). The registry plays the part of timm's model registry and
pretrained configs, and of zoolite's own backbones.

Adding a runtime is one module here plus a :class:`Family` and its :class:`Target`
entries. The module implements :class:`FamilyModule`: ``open(path, threads)`` returning a
:class:`Runtime` (which also says what labels and "none of these" threshold the opened file carries), and a
``Converter(source)`` that writes the family's targets from a :class:`ConversionSource`.
Family modules are imported only when used, so opening a ``.tflite`` file never imports
TensorFlow, nor ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from zoolite.errors import ZooliteError
from zoolite.targets.base import (About, ConversionSource, FamilyModule, Runtime, Tensor,  # noqa: F401 (the API)
                                  check_image_classifier)


@dataclass(frozen=True)
class Family:
    """A runtime family: its files and the module (a :class:`FamilyModule`) that runs and makes them."""

    name: str  # in results and --runtimes
    label: str  # in tables: "LiteRT"
    suffix: str
    module: str
    description: str
    packages: tuple[str, ...] = ()  # distributions whose versions a run records
    companions: tuple[str, ...] = ()  # suffixes of files that belong beside the model file (OpenVINO's .bin)
    # True: every mode starts from one float conversion, so one converter makes them all. False: each mode
    # converts from the SavedModel on its own, only the calibrated ones sharing their calibration.
    modes_share_conversion: bool = True

    def implementation(self) -> FamilyModule:
        return importlib.import_module(self.module)

    def open(self, path: Path, threads: int | None = None) -> Runtime:
        return self.implementation().open(path, threads)

    def files(self, path: Path) -> list[Path]:
        """The model file and the files that belong beside it."""
        return [path, *(path.with_suffix(suffix) for suffix in self.companions)]

    def size_bytes(self, path: Path) -> int:
        return sum(file.stat().st_size for file in self.files(path))


class Role(str, Enum):
    """What a variant is for: the float model every other variant is compared with, or a file to hand to apps.
    A ``str``, so results.json holds its value as it always did."""

    __str__ = str.__str__

    REFERENCE = "reference"
    SHIPPABLE = "shippable"


@dataclass(frozen=True)
class Target:
    """One variant a run produces: ``family`` x ``mode``, written as ``file_name``."""

    name: str  # what users call it: results, export --variant
    family: Family
    mode: str  # what --modes chooses
    description: str
    shippable: bool = True  # False: the float reference, measured but not handed to apps
    input_dtype: str = "float32"  # what an app feeds it
    clients: tuple[str, ...] = ()  # the apps that take the file as it is
    app_twin: str | None = None  # the same model with an input app clients take, exported in its place
    web: bool = False  # the exported web page (LiteRT.js) can run it
    calibrated: bool = False  # quantized with ranges recorded on the representative images

    @property
    def role(self) -> Role:
        return Role.SHIPPABLE if self.shippable else Role.REFERENCE

    @property
    def file_name(self) -> str:
        return f"{'model' if not self.shippable else self.name}{self.family.suffix}"


KERAS = Family("keras", "Keras", ".keras", "zoolite.targets.keras", "Keras 3 on TensorFlow",
               packages=("tensorflow-cpu", "keras"))
LITERT = Family("litert", "LiteRT", ".tflite", "zoolite.targets.litert",
                "LiteRT (TFLite) interpreter, XNNPACK delegate", packages=("ai-edge-litert",),
                modes_share_conversion=False)
ONNXRUNTIME = Family("onnxruntime", "ONNX Runtime", ".onnx", "zoolite.targets.onnx_runtime",
                     "ONNX Runtime, CPU execution provider", packages=("onnxruntime", "tf2onnx"))
OPENVINO = Family("openvino", "OpenVINO", ".xml", "zoolite.targets.openvino_runtime",
                  "OpenVINO Runtime, CPU plugin", packages=("openvino", "nncf"), companions=(".bin",))
FAMILIES = {family.name: family for family in (KERAS, LITERT, ONNXRUNTIME, OPENVINO)}
SUFFIXES = {family.suffix: family for family in FAMILIES.values()}

# Apps that take a file as it is. MediaPipe Tasks, the Android Task Library and LiteRT.js read
# float32 or uint8 input (and the labels and threshold in the TFLite metadata).
_LITERT_APPS = ("MediaPipe Tasks", "Android Task Library", "LiteRT.js", "LiteRT interpreter")
_ONNX_APPS = ("ONNX Runtime (Python, C/C++, C#, Java, JavaScript)",)
_OPENVINO_APPS = ("OpenVINO Runtime (Python, C/C++)",)

def _family_targets(family: Family, clients: tuple[str, ...], modes: dict[str, str]) -> list[Target]:
    """A family's targets named "<family>_<mode>", all taken by the same apps; ``modes``: mode -> what it is
    (the int8 mode calibrated)."""
    return [Target(f"{family.name}_{mode}", family, mode, description, clients=clients, calibrated=mode == "int8")
            for mode, description in modes.items()]


# The order is the report's: the reference first, then each runtime from least to most quantized.
TARGETS: dict[str, Target] = {target.name: target for target in [
    Target("keras", KERAS, "float32", "the trained Keras model, float32: the reference", shippable=False),
    Target("float32", LITERT, "float32", "no quantization (float32 weights and activations)",
           clients=_LITERT_APPS, web=True),
    Target("dynamic", LITERT, "dynamic", "dynamic range: int8 weights, float activations",
           clients=_LITERT_APPS, web=True),
    Target("float16", LITERT, "float16", "float16 weights, float32 compute on CPU", clients=_LITERT_APPS, web=True),
    Target("int8_fallback", LITERT, "int8_fallback",
           "int8 weights and activations, float ops where int8 is missing, float input/output",
           clients=_LITERT_APPS, web=True, calibrated=True),
    Target("int8", LITERT, "int8", "integer only: int8 weights, activations, input and output", input_dtype="int8",
           clients=("LiteRT interpreter",), app_twin="uint8", calibrated=True),
    Target("uint8", LITERT, "uint8", "integer only, uint8 input and output: raw pixels go in as they are "
           "(scale 1, zero point 0)", input_dtype="uint8", clients=_LITERT_APPS, web=True, calibrated=True),
    *_family_targets(ONNXRUNTIME, _ONNX_APPS, {
        "float32": "no quantization (tf2onnx from the same SavedModel)",
        "dynamic": "dynamic quantization: int8 weights, activations quantized at run time",
        "int8": "static int8 quantization (QDQ), calibrated on the representative images; float input/output"}),
    *_family_targets(OPENVINO, _OPENVINO_APPS, {
        "float32": "no quantization, run in float32 (INFERENCE_PRECISION_HINT f32)",
        "native": "float32 weights, run in the CPU's default inference precision (bf16 where the CPU has it, else f32)",
        "int8": "int8 by NNCF post-training quantization, calibrated on the representative images; float "
                "input/output"}),
]}
REFERENCE = TARGETS["keras"]
# What --runtimes and --modes choose from: every converted target's family and mode.
CONVERTED = {name: target for name, target in TARGETS.items() if target.shippable}
RUNTIMES = {target.family.name: target.family for target in CONVERTED.values()}
MODES = tuple(dict.fromkeys(target.mode for target in CONVERTED.values()))  # in the registry's order
# LiteRT alone keeps `make run` near a minute on 2 cores; --runtimes adds the others.
DEFAULT_RUNTIMES = (LITERT.name,)


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ZooliteError(f"unknown variant {name!r}; choose from: {', '.join(TARGETS)}") from None


def chosen_targets(runtimes, modes) -> list[Target]:
    """The converted targets of these runtimes in these modes, in the registry's order."""
    return [t for t in CONVERTED.values() if t.family.name in runtimes and t.mode in modes]


def family_of(path: str | Path) -> Family:
    return SUFFIXES[Path(path).suffix]


def check_model_file(path: str | Path) -> Path:
    path = Path(path)
    *others, last = SUFFIXES
    expected = f"{', '.join(others)} or {last}"
    if not path.exists():
        raise ZooliteError(f"{path}: model file not found; pass a {expected} file from a run folder")
    if path.is_dir():
        raise ZooliteError(f"{path}: is a folder; pass a {expected} file from a run folder")
    if path.suffix not in SUFFIXES:
        raise ZooliteError(f"{path}: not a model file (expected {expected})")
    for file in family_of(path).files(path):
        if not file.is_file():
            raise ZooliteError(f"{file}: not found; it belongs beside {path.name}: copy both from the run folder")
        if file.stat().st_size == 0:
            raise ZooliteError(f"{file}: empty file (0 bytes); re-create it with `zoolite run`")
    return path


def open_model(path: str | Path, threads: int | None = None):
    """Open a model file of any family as a runtime; return it and its load time (s)."""
    path = check_model_file(path)
    start = time.perf_counter()
    runtime = family_of(path).open(path, threads)
    return runtime, time.perf_counter() - start


def read_labels(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{path}: not a readable labels file ({e}); pass the labels.txt of the "
                           "model's run") from None


if TYPE_CHECKING:  # imported where used: `zoolite --help` reads the registry without NumPy
    import numpy as np


def top_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` most probable classes, best first; ties go to the first class, as
    ``argmax`` and app clients break them."""
    import numpy as np

    return np.argsort(-np.asarray(probabilities), kind="stable")[:k]


@dataclass
class Classifier:
    """A model file opened for classifying photos: its runtime, its labels (and where they came
    from) and the top score below which it says "none of these classes" (None: it never does)."""

    runtime: Runtime
    labels: list[str]
    labels_source: str | Path
    threshold: float | None

    def rejects(self, scores: np.ndarray) -> np.ndarray | bool:
        """Whether the model says "none of these" for these scores (one row or many): MediaPipe's
        rule, a top score below the threshold."""
        import numpy as np

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
    labels, source = None, None
    if labels_file:
        source = Path(labels_file)
        if not source.is_file():
            raise ZooliteError(f"{source}: labels file not found; pass an existing labels.txt")
    else:
        labels = runtime.embedded_labels()
        source = f"{model} (its metadata)" if labels else model.parent / "labels.txt"
        if labels is None and not source.is_file():
            raise ZooliteError(f"{source}: labels file not found next to the model, and {model.name} carries no "
                               "labels of its own; keep labels.txt from the run folder beside it, or pass "
                               "--labels-file")
    labels = labels or read_labels(source)
    if runtime.n_classes != len(labels):
        raise ZooliteError(f"{model}: the model has {runtime.n_classes} outputs but {source} lists "
                           f"{len(labels)} labels; use the labels.txt of the same run")
    return Classifier(runtime, labels, source, runtime.score_threshold())
