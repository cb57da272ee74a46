"""``model.json``: what an app needs to use an exported model, as a typed record with a version.

:func:`model_card` makes it from a run's results and the model file's own tensors; :func:`read_card`
reads one back, upgrading cards of earlier versions by the rule that reads results.json
(:func:`zoolite.results.upgrades.upgraded`), and refusing newer ones in one line. The web page
(``app.js``) reads the same keys.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError
from zoolite.results import Backbone, Normalisation, Run, Variant
from zoolite.results.upgrades import Upgrades, upgraded
from zoolite.runs.provenance import package_version
from zoolite.targets import TARGETS, Tensor

# 1: zoolite 0.3 and earlier (no card_version). 2: card_version and the zoolite that wrote it; the
# normalisation is the one the run recorded; measured top-k accuracy under top_k and top_k_accuracy.
CARD_VERSION = 2


@dataclass
class Quantization:
    """An integer tensor's real value: (value - zero_point) * scale."""

    scale: float
    zero_point: int


@dataclass
class TensorCard:
    """One input or output as an app feeds or reads it, read from the model file itself."""

    name: str
    shape: list[int]
    dtype: str
    quantization: Quantization | None

    @staticmethod
    def fields(tensor: Tensor) -> dict:
        return {"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
                "quantization": None if tensor.scale is None else Quantization(tensor.scale, tensor.zero_point)}

    @classmethod
    def from_json(cls, obj: dict) -> "TensorCard":
        quantization = obj.get("quantization")
        return cls(**{**obj, "quantization": Quantization(**quantization) if quantization else None})


@dataclass
class InputCard(TensorCard):
    layout: str = "NHWC (batch, height, width, channels)"
    channels: str = "RGB"
    pixel_range: list[int] = field(default_factory=lambda: [0, 255])
    preprocessing: str = ""
    normalisation_inside_model: dict | None = None  # scale, offset, formula (None: the run did not record it)
    feed: str | None = None  # for an integer input: how a pixel becomes the value fed


@dataclass
class OutputCard(TensorCard):
    meaning: str = ""
    read: str | None = None  # for an integer output: how a value becomes a probability


@dataclass
class GateMeasured:
    """The gate as the run measured it, on its test photos and the held-out --other photos."""

    class_photos_kept: float
    class_photos: int
    other_photos_rejected: float | None
    other_photos: int | None
    kept_per_class: dict[str, float]  # what the gate costs each class
    balanced_kept: float | None
    balanced_answered_right: float | None


@dataclass
class GateCard:
    """How the model says "none of these classes"."""

    threshold: float
    rule: str
    chosen: str
    method: str
    measured: GateMeasured | None = None

    @classmethod
    def from_json(cls, obj: dict | None) -> "GateCard | None":
        if obj is None:
            return None
        return cls(**{**obj, "measured": GateMeasured(**obj["measured"]) if obj.get("measured") else None})


@dataclass
class MeasuredCard:
    """What the run measured of this file."""

    test_images: int
    accuracy: float
    loss: float
    balanced_accuracy: float | None
    recall: dict[str, float]
    top_k: int
    top_k_accuracy: float
    latency_ms: dict[str, float | list[float]]  # mean, median, p90 ... and the timed calls' samples
    latency_method: str
    threads: str
    cpu: str
    cores: int | None
    size_bytes: int


@dataclass
class SourceCard:
    run_dir: str
    file: str  # in the run folder
    zoolite: str | None  # the zoolite that made the run
    exported: str  # when, ISO 8601
    exported_by: str | None = None  # the zoolite that wrote the card (None: cards before version 2)


@dataclass
class ModelCard:
    """model.json."""

    model_file: str
    model_files: list[str]
    labels_file: str
    classes: list[str]
    backbone: str
    input_size: int
    runtime: str
    clients: list[str]
    web: bool
    variant: str
    mode: str
    mode_description: str
    input: InputCard
    output: OutputCard
    none_of_these: GateCard | None
    measured: MeasuredCard
    source: SourceCard
    card_version: int = CARD_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "ModelCard":
        return cls(**{**obj, "input": InputCard.from_json(obj["input"]), "output": OutputCard.from_json(obj["output"]),
                      "none_of_these": GateCard.from_json(obj.get("none_of_these")),
                      "measured": MeasuredCard(**obj["measured"]), "source": SourceCard(**obj["source"])})


def _card_v1(obj: dict) -> dict:
    """Cards without a version (zoolite 0.2 to 0.4.0's first exports). All give top-k accuracy under a key
    of its own. 0.2 and 0.3 describe the mode under "quantization", without its name. 0.2 names no runtime,
    clients or gate and gives neither balanced accuracy nor recall, and 0.3's gate has no per-class figures.
    What they lack comes from the target registry, or stays empty."""
    target = TARGETS.get(obj["variant"])
    measured = {"balanced_accuracy": None, "recall": {}, **obj["measured"]}
    top_k = next(key for key in measured if key.startswith("top") and key.endswith("_accuracy"))
    measured.update(top_k=int(top_k[3:-9]), top_k_accuracy=measured.pop(top_k))
    gate = obj.get("none_of_these")
    if gate and gate.get("measured"):
        gate = {**gate, "measured": {"kept_per_class": {}, "balanced_kept": None, "balanced_answered_right": None,
                                     **gate["measured"]}}
    known = {"runtime": target.family.label, "clients": list(target.clients), "mode": target.mode} if target else {}
    return {"model_files": [obj["model_file"]], "runtime": "LiteRT", "clients": [], "web": True,  # 0.2: LiteRT only
            "mode": obj["variant"], **known,
            "mode_description": obj.get("quantization", ""),
            **{key: value for key, value in obj.items() if key != "quantization"},
            "none_of_these": gate, "measured": measured}


CARD_UPGRADES: Upgrades = [(1, _card_v1)]


def read_card(path: Path) -> ModelCard:
    """The model card in ``path`` (any version this zoolite reads); a one-line error for anything else."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooliteError(f"{path.parent}: no model.json; pass a folder written by `zoolite export`") from None
    except (OSError, ValueError) as e:
        raise ZooliteError(f"{path}: cannot read it ({e}); export the model again") from None
    if not isinstance(obj, dict):
        raise ZooliteError(f"{path}: not a model card; export the model again")
    version = obj.get("card_version", 1)
    try:
        return ModelCard.from_json(upgraded(obj, version, CARD_VERSION, CARD_UPGRADES, path, "model card version"))
    except (KeyError, TypeError, ValueError, StopIteration) as e:
        raise ZooliteError(f"{path}: damaged model card ({type(e).__name__} {e}); export the model again") from None


def _input(tensor: Tensor, normalisation: Normalisation | None) -> InputCard:
    size = tensor.shape[1]
    card = InputCard(**TensorCard.fields(tensor),
                     preprocessing=f"decode as upright RGB (EXIF orientation applied), resize to {size}x{size} "
                                   "(bilinear), no cropping, no normalisation",
                     normalisation_inside_model=normalisation and {**asdict(normalisation),
                                                                   "formula": "pixel * scale + offset"})
    if card.quantization:
        limits = np.iinfo(card.dtype)
        card.feed = f"value = clip(round(pixel / scale) + zero_point, {limits.min}, {limits.max})"
    return card


def _output(tensor: Tensor) -> OutputCard:
    card = OutputCard(**TensorCard.fields(tensor),
                      meaning="class scores in the order of labels.txt: the calibrated class probabilities times the "
                              "probability that the photo shows one of the classes at all")
    if card.quantization:
        card.read = "probability = (value - zero_point) * scale"
    return card


def _gate(backbone: Backbone, variant: Variant) -> GateCard | None:
    """How the model says "none of these classes", and how well it did so in the run."""
    rejection, measured = backbone.rejection, variant.rejection
    if rejection is None:
        return None
    mediapipe = "MediaPipe Tasks" in variant.target_spec.clients
    card = GateCard(rejection.threshold,
                    "a photo shows none of the classes when its top score is below the threshold (also in the "
                    + ("file's metadata as ScoreThresholdingOptions, which MediaPipe Tasks applies by default)"
                       if mediapipe else "file's own metadata, as score_threshold)"),
                    f"{rejection.chosen}; fitted on {rejection.calibrated_on}", rejection.method)
    if measured is not None:
        card.measured = GateMeasured(measured.kept_rate, measured.photos, measured.rejected_rate,
                                     measured.other_photos,
                                     {name: c.rate for name, c in (measured.per_class or {}).items()},
                                     measured.balanced_kept, measured.balanced_answered_right)
    return card


def model_card(results: Run, backbone: Backbone, variant: Variant, runtime) -> ModelCard:
    """The model card of ``variant``'s model, opened as ``runtime``."""
    target, machine = variant.target_spec, results.machine
    model_input, model_output = runtime.tensors()
    return ModelCard(
        model_file=Path(variant.file).name, model_files=[path.name for path in target.family.files(Path(variant.file))],
        labels_file="labels.txt", classes=results.labels, backbone=backbone.name, input_size=model_input.shape[1],
        runtime=target.family.label, clients=list(target.clients), web=target.web, variant=variant.target,
        mode=target.mode, mode_description=target.description,
        input=_input(model_input, backbone.normalisation), output=_output(model_output),
        none_of_these=_gate(backbone, variant),
        measured=MeasuredCard(
            results.split.test, variant.accuracy, variant.loss, variant.balanced_accuracy,
            {name: c.recall for name, c in variant.per_class.items()}, variant.top_k, variant.top_k_accuracy,
            {key.removesuffix("_ms"): value for key, value in asdict(variant.latency).items()
             if key.endswith("_ms") and value is not None},
            "1 image per call after warm-up, wall clock (time.perf_counter)", variant.threads, machine.cpu,
            machine.cores, variant.size_bytes),
        source=SourceCard(str(Path(results.run_dir).resolve()), variant.file, machine.zoolite,
                          time.strftime("%Y-%m-%dT%H:%M:%S%z"), package_version("zoolite")))
