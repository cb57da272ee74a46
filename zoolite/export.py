"""``zoolite export``: one LiteRT model of a run, bundled with what an app needs to use it.

The bundle is the ``.tflite`` file (with the TFLite metadata it got at conversion: labels
and normalisation, so MediaPipe Tasks and the Android Task Library need no glue),
``labels.txt`` (one class per line, in output order, for scripts) and ``model.json``: input size, dtype, pixel range and layout, the normalisation the
model does itself, the quantization scale/zero point of input and output (read from
the ``.tflite`` file itself), the class names, and the accuracy and latency measured.
With ``web=True`` (``--web``) the bundle also gets the static web page that runs the
model in a browser with LiteRT.js (:mod:`zoolite.web`; served by ``zoolite serve``).
The bundle is assembled in a temporary folder and renamed into place, so the target
is either complete or absent.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from zoolite import storage
from zoolite.errors import ZooliteError
from zoolite.results import Backbone, Run, Variant, load
from zoolite.targets import APP_INPUT_DTYPES, get_target

log = logging.getLogger(__name__)


def _tensor(details: dict) -> dict:
    """Shape, dtype and (for an integer tensor) the scale and zero point of one tensor."""
    scale, zero_point = details["quantization"]
    integer = np.issubdtype(details["dtype"], np.integer)
    return {"name": details["name"], "shape": [int(n) for n in details["shape"]],
            "dtype": np.dtype(details["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if integer else None}


def _choose(results: Run, backbone: str | None, variant: str | None) -> tuple[Backbone, Variant]:
    """The backbone and variant to export; one-line errors list the valid choices."""
    recommendation = results.recommendation
    recommended = recommendation.backbone if recommendation else None
    names = list(results.backbones)
    if backbone is None:
        if variant is None and recommended:
            backbone = recommended
        elif len(names) == 1:
            backbone = names[0]
        else:
            raise ZooliteError(f"this run has several backbones; pass --backbone, one of: {', '.join(names)}")
    if backbone not in results.backbones:
        raise ZooliteError(f"--backbone {backbone}: not in this run; choose from: {', '.join(names)}")
    chosen = results.backbones[backbone]
    shippable = [v.variant for v in chosen.shippable]
    if variant is None:
        if recommended != backbone:
            raise ZooliteError(f"no recommended variant for {backbone} under the run's budget; pass --variant, "
                               f"one of: {', '.join(shippable)}")
        variant = recommendation.variant
        if get_target(variant).input_dtype not in APP_INPUT_DTYPES and "uint8" in shippable:
            # The same integer-only model with the input type app clients take (raw pixels).
            log.info("the recommended %s model takes %s input, which app clients refuse; exporting its uint8 twin",
                     variant, get_target(variant).input_dtype)
            variant = "uint8"
    if variant not in shippable:
        raise ZooliteError(f"--variant {variant}: not a shippable model of {backbone} in this run; choose from: "
                           f"{', '.join(shippable)}")
    return chosen, chosen.variant(variant)


def _check_web(backbone: Backbone, variant: Variant) -> None:
    """Refuse, before anything is written, a variant whose input type LiteRT.js cannot feed."""
    from zoolite.web import WEB_INPUT_DTYPES

    dtype = get_target(variant.variant).input_dtype
    if dtype not in WEB_INPUT_DTYPES:
        working = [v.variant for v in backbone.shippable if get_target(v.variant).input_dtype in WEB_INPUT_DTYPES]
        raise ZooliteError(f"--variant {variant.variant}: takes {dtype} input, which LiteRT.js cannot run in the "
                           f"web page; for --web choose from: {', '.join(working) or 'none in this run'}")


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ZooliteError(f"--to {target}: is a file; pass a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise ZooliteError(f"--to {target}: folder is not empty; pass a new or empty folder "
                           "(nothing is overwritten)")


def model_card(results: Run, backbone: Backbone, variant: Variant, runtime) -> dict:
    """The contents of model.json for ``variant``'s model, opened as the LiteRT ``runtime``."""
    from zoolite.backbones import get_backbone

    spec = get_backbone(backbone.name)
    model_input = _tensor(runtime.interpreter.get_input_details()[0])
    model_output = _tensor(runtime.interpreter.get_output_details()[0])
    size = model_input["shape"][1]
    model_input.update({
        "layout": "NHWC (batch, height, width, channels)", "channels": "RGB", "pixel_range": [0, 255],
        "preprocessing": f"decode as upright RGB (EXIF orientation applied), resize to {size}x{size} "
                         "(bilinear), no cropping, no normalisation",
        "normalisation_inside_model": {"scale": spec.scale, "offset": np.asarray(spec.offset).tolist(),
                                       "formula": "pixel * scale + offset"},
    })
    if model_input["quantization"]:
        limits = np.iinfo(model_input["dtype"])
        model_input["feed"] = f"value = clip(round(pixel / scale) + zero_point, {limits.min}, {limits.max})"
    model_output["meaning"] = ("class scores in the order of labels.txt: the calibrated class probabilities times the "
                               "probability that the photo shows one of the classes at all")
    if model_output["quantization"]:
        model_output["read"] = "probability = (value - zero_point) * scale"
    m = results.machine
    return {
        "model_file": Path(variant.file).name, "labels_file": "labels.txt",
        "classes": results.labels, "backbone": backbone.name, "input_size": size,
        "variant": variant.variant, "quantization": get_target(variant.variant).description,
        "input": model_input, "output": model_output,
        "none_of_these": _none_of_these(backbone, variant),
        "measured": {
            "test_images": results.split["test"], "accuracy": variant.accuracy, "loss": variant.loss,
            "balanced_accuracy": variant.balanced_accuracy,
            "recall": {name: c.recall for name, c in variant.per_class.items()},
            f"top{variant.top_k}_accuracy": variant.top_k_accuracy,
            "latency_ms": {key.removesuffix("_ms"): value for key, value in asdict(variant.latency).items()
                           if key.endswith("_ms") and value is not None},
            "latency_method": "1 image per call after warm-up, wall clock (time.perf_counter)",
            "threads": variant.threads, "cpu": m["cpu"], "cores": m["cores"], "size_bytes": variant.size_bytes,
        },
        "source": {"run_dir": str(Path(results.run_dir).resolve()), "file": variant.file,
                   "zoolite": m["zoolite"], "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def _none_of_these(backbone: Backbone, variant: Variant) -> dict | None:
    """How the model says "none of these classes", and how well it did so in the run."""
    rejection, measured = backbone.rejection, variant.rejection
    if rejection is None:
        return None
    card = {"threshold": rejection.threshold,
            "rule": "a photo shows none of the classes when its top score is below the threshold (also in the "
                    "file's metadata as ScoreThresholdingOptions, which MediaPipe Tasks applies by default)",
            "chosen": f"keeps {rejection.keep_rate:.0%} of the validation photos; fitted on {rejection.calibrated_on}",
            "method": rejection.method}
    if measured is not None:
        card["measured"] = {"class_photos_kept": measured.kept_rate, "class_photos": measured.photos,
                            "other_photos_rejected": measured.rejected_rate, "other_photos": measured.other_photos}
    return card


def export(run_dir: str | Path, to: str | Path, variant: str | None = None,
           backbone: str | None = None, web: bool = False) -> Path:
    """Copy one LiteRT model of a finished run into the new folder ``to``, with labels.txt and model.json.

    ``variant`` and ``backbone`` default to the run's recommendation; an integer-only
    recommendation is exported as its ``uint8`` twin, whose input app clients accept.
    ``web`` adds the web page and the LiteRT.js runtime (:func:`zoolite.web.write_site`);
    a variant the page cannot run is refused before anything is written.
    """
    from zoolite.targets import open_model

    results, target = load(run_dir), Path(to)
    backbone, variant = _choose(results, backbone, variant)
    if web:
        _check_web(backbone, variant)
    _check_target(target)
    model_path = Path(results.run_dir) / variant.file
    runtime, _ = open_model(model_path)
    card = model_card(results, backbone, variant, runtime)
    if card["input"]["dtype"] not in APP_INPUT_DTYPES:
        log.warning("%s takes %s input: MediaPipe Tasks, the Android Task Library and LiteRT.js refuse it; for "
                    "those apps export --variant uint8 (the same integer-only model, taking raw uint8 pixels)",
                    card["model_file"], card["input"]["dtype"])
    with storage.atomic_dir(target) as staging:  # replaces an empty folder; a non-empty one was refused
        shutil.copyfile(model_path, staging / card["model_file"])
        storage.write_text(staging / "labels.txt", "\n".join(card["classes"]) + "\n")
        storage.write_json(staging / "model.json", card)
        if web:
            from zoolite.web import write_site

            write_site(staging)
    return target
