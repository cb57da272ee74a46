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
import tempfile
from pathlib import Path

from zoolite import storage
from zoolite.apps.model_card import model_card
from zoolite.errors import ZooliteError
from zoolite.results import Backbone, Run, Variant, load
from zoolite.targets import CONVERTED, get_target

log = logging.getLogger(__name__)


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
        variant = _exported_as(chosen, recommendation.variant)
        if variant != recommendation.variant:
            log.info("the recommended %s model takes %s input, which app clients refuse; exporting its twin %s",
                     recommendation.variant, chosen.variant(recommendation.variant).input_dtype, variant)
    if variant not in shippable:
        raise ZooliteError(f"--variant {variant}: not a shippable model of {backbone} in this run; choose from: "
                           f"{', '.join(shippable)}")
    return chosen, chosen.variant(variant)


def _exported_as(backbone: Backbone, variant: str) -> str:
    """``variant``, or its app twin (the same model with the input app clients take) when the run has it."""
    twin = backbone.variant(variant).target_spec.app_twin
    return twin if twin in [v.target for v in backbone.shippable] else variant


def _recommend_for_the_page(results: Run) -> None:
    """When the file the run's recommendation exports is one the web page cannot run (another runtime's, or a
    LiteRT int8 file without its uint8 twin), recommend again under the same budget: among the files of the
    runtime the page runs, else among the files it runs itself."""
    from zoolite.results.recommend import recommend

    recommendation = results.recommendation
    page_runs = {name for name, target in CONVERTED.items() if target.web}
    (page_runtime,) = {CONVERTED[name].family.name for name in page_runs}

    def runs_in_page(recommended) -> bool:
        return recommended is None or _exported_as(recommended.backbone, recommended.variant.target) in page_runs

    if runs_in_page(results.recommended()) or not any(
            v.target in page_runs for backbone in results.backbones.values() for v in backbone.shippable):
        return
    for among in ({"runtime": page_runtime}, {"targets": page_runs}):
        results.recommendation = recommend(results, recommendation.budget, **among)
        if runs_in_page(results.recommended()):
            break
    log.info("the recommended %s cannot run in the web page; exporting the recommendation among the files it "
             "runs: %s", recommendation.variant, results.recommendation.variant or "none")


def _check_web(backbone: Backbone, variant: Variant) -> None:
    """Refuse, before anything is written, a variant the web page (LiteRT.js) cannot run."""
    target = variant.target_spec
    if not target.web:
        working = [v.target for v in backbone.shippable if v.target_spec.web]
        raise ZooliteError(f"--variant {variant.target}: LiteRT.js cannot run this {target.family.label} file "
                           f"({target.input_dtype} input) in the web page; for --web choose from: "
                           f"{', '.join(working) or 'none in this run'}")


def _check_target(target: Path) -> None:
    if target.is_symlink() and not target.exists():
        raise ZooliteError(f"--to {target}: a broken symbolic link; pass a new folder")
    if target.exists() and not target.is_dir():
        raise ZooliteError(f"--to {target}: is a file; pass a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise ZooliteError(f"--to {target}: folder is not empty; pass a new or empty folder "
                           "(nothing is overwritten)")
    try:  # the bundle is assembled beside it
        target.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(dir=target.parent).cleanup()
    except OSError as e:
        raise ZooliteError(f"--to {target}: cannot write there ({e.strerror or e}); pass a folder you can "
                           "write to") from None


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
    made_as = variant.target_spec
    if made_as.app_twin:
        twin = made_as.app_twin
        how = f"export --variant {twin}" if _exported_as(backbone, variant.target) == twin else \
            f"add {twin} to the run's --modes"
        log.warning("%s takes %s input, which %s refuse; for those apps %s (the same model, with an input they "
                    "take)", card.model_file, card.input.dtype,
                    ", ".join(client for client in get_target(twin).clients if client not in made_as.clients), how)
    with storage.atomic_dir(target) as staging:  # replaces an empty folder; a non-empty one was refused
        for file in made_as.family.files(model_path):
            shutil.copyfile(file, staging / file.name)
        storage.write_text(staging / "labels.txt", "\n".join(card.classes) + "\n")
        storage.write_json(staging / "model.json", card.to_json())
        if web:
            from zoolite.apps.web import write_site

            write_site(staging)
    return target
