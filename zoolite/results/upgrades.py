"""Reading results.json: files of every earlier schema upgraded to the current one, anything else refused
in one line. The same rule reads the model card (:mod:`zoolite.apps.model_card`): :func:`upgraded`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from zoolite.errors import ZooliteError
from zoolite.results.records import SCHEMA_VERSION, Normalisation, Run


def _upgrade_v1(obj: dict) -> dict:
    """zoolite 0.1's results.json (no schema_version): untyped rows, the Keras model first."""
    for name, backbone in obj["backbones"].items():
        backbone["name"] = name
        rows = backbone["variants"]
        params = rows[0].get("params")
        for row in rows:
            keras = row["variant"] == "keras"
            top_k = next(key for key in row if key.startswith("top") and key.endswith("_accuracy"))
            row.update({
                "family": "keras" if keras else "litert", "mode": "float32" if keras else row["variant"],
                "role": "reference" if keras else "shippable", "top_k": int(top_k[3:-9]),
                "top_k_accuracy": row.pop(top_k), "input_dtype": row.get("input_dtype", "float32"),
                "params": params, "agreement": row.pop("agreement_with_keras", None),
                "other_latency": {"tf_function": row.pop("latency_tf_function")} if "latency_tf_function" in row else {},
            })
            row.pop("size_vs_float32_tflite", None)
    budget = (obj.get("recommendation") or {}).get("budget") or obj["config"].get("budget", {})
    obj["recommendation"] = {"budget": budget, **{k: (obj.get("recommendation") or {}).get(k)
                                                  for k in ("reason", "backbone", "variant")}}
    obj["config"].setdefault("budget", budget)
    return obj


def _target_under_target(obj: dict) -> dict:
    """Before schema 5 a variant's target was under "variant"."""
    for backbone in obj["backbones"].values():
        for row in backbone["variants"]:
            row["target"] = row.pop("variant")
    return obj


def _normalisation_from_the_registry(obj: dict) -> dict:
    """Before schema 7 a run did not record its backbones' normalisation: the backbone registry's stands in
    (None for a backbone it no longer has)."""
    from zoolite.model.backbones import BACKBONES

    for name, backbone in obj["backbones"].items():
        spec = BACKBONES.get(name)
        backbone["normalisation"] = spec and asdict(Normalisation.of(spec.scale, spec.offset))
    return obj


def _heads_by_the_recipe(obj: dict) -> dict:
    """Before schema 8 every head on a frozen base was trained by the recipe's epochs (there was no --head)."""
    obj["config"]["train"]["head"] = "recipe"
    return obj


def _warmup_without_a_limit(obj: dict) -> dict:
    """Before schema 9 warm-up made every one of its calls, however long they took."""
    obj["config"]["latency"]["max_warmup_seconds"] = None
    return obj


# An upgrade: the last version whose files need it, and what it does to their JSON object, oldest first.
Upgrades = list[tuple[int, Callable[[dict], dict]]]
RESULTS_UPGRADES: Upgrades = [(1, _upgrade_v1), (4, _target_under_target), (6, _normalisation_from_the_registry),
                               (7, _heads_by_the_recipe),
                               (8, _warmup_without_a_limit)]


def upgraded(obj: dict, version, current: int, upgrades: Upgrades, path: Path, what: str) -> dict:
    """``obj``, read from ``path`` as ``what`` of ``version``, in the shape of the ``current`` version: every
    upgrade its version needs applied in order. A version this zoolite does not know is refused in one line."""
    if not isinstance(version, int) or version > current:
        raise ZooliteError(f"{path}: written by a newer zoolite ({what} {version}, this one reads up to "
                           f"{current}); upgrade zoolite to read it")
    for last, upgrade in upgrades:
        if version <= last:
            obj = upgrade(obj)
    return obj


def load(run_dir: str | Path) -> Run:
    """The results of a finished run folder (any schema version this zoolite reads); a one-line
    error for anything else."""
    from zoolite.runs.layout import RunLayout

    layout = RunLayout(Path(run_dir))
    path = layout.results
    if not layout.root.is_dir():
        raise ZooliteError(f"{layout.root}: run folder not found; pass a folder under runs/")
    if not layout.is_complete() or not path.is_file():
        if layout.config.is_file() or layout.incomplete_marker.exists():
            raise ZooliteError(f"{layout.root}: this run did not finish; finish it with "
                               f"`zoolite run --resume {layout.root}`")
        raise ZooliteError(f"{layout.root}: not a zoolite run folder (no results.json); pass a folder under runs/")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{path}: damaged results file ({e}); re-run with `zoolite run`") from None
    if not isinstance(obj, dict) or not obj.get("backbones"):
        raise ZooliteError(f"{path}: not zoolite results (no backbones); pass a folder under runs/")
    version = obj.get("schema_version", 1)
    try:
        run = Run.from_json(upgraded(obj, version, SCHEMA_VERSION, RESULTS_UPGRADES, path, "results schema"))
    except (KeyError, TypeError, ValueError, StopIteration) as e:
        raise ZooliteError(f"{path}: damaged results file (schema {version}: {type(e).__name__} {e}); "
                           "re-run with `zoolite run`") from None
    run.run_dir = str(layout.root)  # the folder may have moved since the run
    return run
