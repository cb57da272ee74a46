"""``zoolite export``: one model of a run, of any runtime, bundled with what an app needs to use it.

The bundle is the model's file(s) (a ``.tflite`` with the TFLite metadata it got at
conversion, so MediaPipe Tasks and the Android Task Library need no glue; an ``.onnx``
with its metadata_props; an OpenVINO ``.xml`` and ``.bin`` with their rt_info),
``labels.txt`` (one class per line, in output order, for scripts) and ``model.json``:
the runtime and the apps that take the file, input size, dtype, pixel range and layout,
the normalisation the model does itself, the quantization scale/zero point of input and
output (read from the file itself), the class names, and the accuracy and latency measured.
With ``web=True`` (``--web``) the bundle also gets the static web page that runs the
model in a browser with LiteRT.js (:mod:`zoolite.apps.web`; served by ``zoolite serve``).
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
from zoolite.targets import CONVERTED, Tensor, get_target

log = logging.getLogger(__name__)


def _tensor(tensor: Tensor) -> dict:
    """Shape, dtype and (for an integer tensor) the scale and zero point of one tensor."""
    quantized = tensor.scale is not None
    return {"name": tensor.name, "shape": tensor.shape, "dtype": tensor.dtype,
            "quantization": {"scale": tensor.scale, "zero_point": tensor.zero_point} if quantized else None}


def chosen_variant(results: Run, backbone: str | None = None, variant: str | None = None) -> tuple[Backbone, Variant]:
    """The backbone and variant ``zoolite export`` writes: the ones asked for, else the recommendation, as its
    app twin when app clients refuse its input (LiteRT int8 -> uint8); one-line errors list the valid choices."""
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
    shippable = [v.target for v in chosen.shippable]
    if variant is None:
        if recommended != backbone:
            raise ZooliteError(f"no recommended variant for {backbone} under the run's budget; pass --variant, "
                               f"one of: {', '.join(shippable)}")
        variant = recommendation.variant
        twin = get_target(variant).app_twin
        if twin in shippable:  # the same model with the input type app clients take
            log.info("the recommended %s model takes %s input, which app clients refuse; exporting its twin %s",
                     variant, get_target(variant).input_dtype, twin)
            variant = twin
    if variant not in shippable:
        raise ZooliteError(f"--variant {variant}: not a shippable model of {backbone} in this run; choose from: "
                           f"{', '.join(shippable)}")
    return chosen, chosen.variant(variant)


def _recommend_for_the_page(results: Run) -> None:
    """When the run recommends a file of a runtime the web page cannot run, recommend again among
    the files of the runtime it runs (LiteRT, for LiteRT.js), under the same budget."""
    from zoolite.results.recommend import recommend

    recommendation = results.recommendation
    (page_runtime,) = {t.family.name for t in CONVERTED.values() if t.web}  # the page runs one runtime's files
    if recommendation and recommendation.variant and get_target(recommendation.variant).family.name != page_runtime:
        results.recommendation = recommend(results, recommendation.budget, page_runtime)
        log.info("the recommended %s cannot run in the web page; exporting the recommendation among its runtime's "
                 "files: %s", recommendation.variant, results.recommendation.variant or "none")


def _check_web(backbone: Backbone, variant: Variant) -> None:
    """Refuse, before anything is written, a variant the web page (LiteRT.js) cannot run."""
    target = get_target(variant.target)
    if not target.web:
        working = [v.target for v in backbone.shippable if get_target(v.target).web]
        raise ZooliteError(f"--variant {variant.target}: LiteRT.js cannot run this {target.family.label} file "
                           f"({target.input_dtype} input) in the web page; for --web choose from: "
                           f"{', '.join(working) or 'none in this run'}")


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ZooliteError(f"--to {target}: is a file; pass a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise ZooliteError(f"--to {target}: folder is not empty; pass a new or empty folder "
                           "(nothing is overwritten)")


def model_card(results: Run, backbone: Backbone, variant: Variant, runtime) -> dict:
    """The contents of model.json for ``variant``'s model, opened as ``runtime``."""
    from zoolite.model.backbones import get_backbone

    spec = get_backbone(backbone.name)
    target = get_target(variant.target)
    model_input, model_output = (_tensor(tensor) for tensor in runtime.tensors())
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
        "model_file": Path(variant.file).name,
        "model_files": [path.name for path in target.family.files(Path(variant.file))], "labels_file": "labels.txt",
        "classes": results.labels, "backbone": backbone.name, "input_size": size,
        "runtime": target.family.label, "clients": list(target.clients), "web": target.web,
        "variant": variant.target, "mode": target.mode, "mode_description": target.description,
        "input": model_input, "output": model_output,
        "none_of_these": _none_of_these(backbone, variant),
        "measured": {
            "test_images": results.split.test, "accuracy": variant.accuracy, "loss": variant.loss,
            "balanced_accuracy": variant.balanced_accuracy,
            "recall": {name: c.recall for name, c in variant.per_class.items()},
            f"top{variant.top_k}_accuracy": variant.top_k_accuracy,
            "latency_ms": {key.removesuffix("_ms"): value for key, value in asdict(variant.latency).items()
                           if key.endswith("_ms") and value is not None},
            "latency_method": "1 image per call after warm-up, wall clock (time.perf_counter)",
            "threads": variant.threads, "cpu": m.cpu, "cores": m.cores, "size_bytes": variant.size_bytes,
        },
        "source": {"run_dir": str(Path(results.run_dir).resolve()), "file": variant.file,
                   "zoolite": m.zoolite, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }


def _none_of_these(backbone: Backbone, variant: Variant) -> dict | None:
    """How the model says "none of these classes", and how well it did so in the run."""
    rejection, measured = backbone.rejection, variant.rejection
    if rejection is None:
        return None
    mediapipe = "MediaPipe Tasks" in get_target(variant.target).clients
    card = {"threshold": rejection.threshold,
            "rule": "a photo shows none of the classes when its top score is below the threshold (also in the "
                    + ("file's metadata as ScoreThresholdingOptions, which MediaPipe Tasks applies by default)"
                       if mediapipe else "file's own metadata, as score_threshold)"),
            "chosen": f"{rejection.chosen}; fitted on {rejection.calibrated_on}",
            "method": rejection.method}
    if measured is not None:
        card["measured"] = {"class_photos_kept": measured.kept_rate, "class_photos": measured.photos,
                            "other_photos_rejected": measured.rejected_rate, "other_photos": measured.other_photos,
                            # what the gate costs each class: its test photos kept, and the mean over the classes
                            "kept_per_class": {name: c.rate for name, c in (measured.per_class or {}).items()},
                            "balanced_kept": measured.balanced_kept,
                            "balanced_answered_right": measured.balanced_answered_right}
    return card


def export(run_dir: str | Path, to: str | Path, variant: str | None = None,
           backbone: str | None = None, web: bool = False) -> Path:
    """Copy one model of a finished run into the new folder ``to``, with labels.txt and model.json.

    ``variant`` and ``backbone`` default to the run's recommendation; a recommendation whose
    input app clients refuse is exported as its app twin (LiteRT int8 as uint8).
    ``web`` adds the web page and the LiteRT.js runtime (:func:`zoolite.apps.web.write_site`);
    without ``variant`` it takes the recommendation among the files the page can run; a
    variant the page cannot run is refused before anything is written.
    """
    from zoolite.targets import open_model

    results, target = load(run_dir), Path(to)
    if web and variant is None:
        _recommend_for_the_page(results)
    backbone, variant = chosen_variant(results, backbone, variant)
    if web:
        _check_web(backbone, variant)
    _check_target(target)
    model_path = Path(results.run_dir) / variant.file
    runtime, _ = open_model(model_path)
    card = model_card(results, backbone, variant, runtime)
    twin = get_target(variant.target).app_twin
    if twin:
        log.warning("%s takes %s input, which %s refuse; for those apps export --variant %s (the same model, with "
                    "an input they take)", card["model_file"], card["input"]["dtype"],
                    ", ".join(client for client in get_target(twin).clients
                              if client not in get_target(variant.target).clients), twin)
    with storage.atomic_dir(target) as staging:  # replaces an empty folder; a non-empty one was refused
        for file in get_target(variant.target).family.files(model_path):
            shutil.copyfile(file, staging / file.name)
        storage.write_text(staging / "labels.txt", "\n".join(card["classes"]) + "\n")
        storage.write_json(staging / "model.json", card)
        if web:
            from zoolite.apps.web import write_site

            write_site(staging)
    return target
