"""The reporting stage: results.json, results.csv, report.md, report.html and the table the CLI prints.

Everything here reads the results dict only, so ``zoolite report`` can re-render a run
without recomputing anything.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from pathlib import Path

from zoolite import storage
from zoolite.errors import ZooliteError

MB = 1e6


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def machine_info(command: str | None = None) -> dict:
    """What the figures were measured on, written beside them."""
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "keras": _version("keras"), "ai_edge_litert": _version("ai-edge-litert"),
        "zoolite": _version("zoolite"),
        "command": command or " ".join(sys.argv),
    }


def variant_rows(backbone: dict) -> list[dict]:
    """The table rows of one backbone: each variant's figures and its ratios to the Keras model."""
    rows = backbone["variants"]
    keras_row = rows[0]
    out = []
    for row in rows:
        latency = row["latency"]
        out.append({
            "variant": row["variant"],
            "loss": row["loss"],
            "accuracy": row["accuracy"],
            "accuracy_delta_pp": (row["accuracy"] - keras_row["accuracy"]) * 100,
            "mean_ms": latency["mean_ms"],
            "p90_ms": latency["p90_ms"],
            "speedup": keras_row["latency"]["mean_ms"] / latency["mean_ms"],
            "size_mb": row["size_bytes"] / MB,
            "size_ratio": row["size_bytes"] / keras_row["size_bytes"],
            "top1_agreement": row.get("agreement_with_keras", {}).get("top1_agreement"),
        })
    return out


_COLUMNS = ["Variant", "Loss", "Accuracy", "Δ acc", "Mean ms", "p90 ms", "Speed-up", "Size MB", "Size"]


def _cells(r: dict) -> list[str]:
    return [r["variant"], f"{r['loss']:.4f}", f"{r['accuracy'] * 100:.1f}%",
            f"{r['accuracy_delta_pp']:+.1f} pp", f"{r['mean_ms']:.2f}", f"{r['p90_ms']:.2f}",
            f"{r['speedup']:.1f}x", f"{r['size_mb']:.2f}", f"{r['size_ratio'] * 100:.0f}%"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*row) for row in [header, *rows])


def caption(results: dict, backbone: str) -> str:
    b = results["backbones"][backbone]
    threads = b["variants"][-1].get("threads", "?")
    m = results["machine"]
    latency = results["config"]["latency"]
    return (f"{backbone}, {b['input_size']}px, weights: {b['weights']}; test split {results['split']['test']} "
            f"images; latency: 1 image per call, {latency['warmup']} warm-up + up to {latency['runs']} timed "
            f"calls, LiteRT threads {threads}; {m['cpu']}, {m['cores']} cores. Ratios vs the Keras "
            f"float model.")


def backbone_cells(results: dict, backbone: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of one backbone's table, one row per variant."""
    return _COLUMNS, [_cells(r) for r in variant_rows(results["backbones"][backbone])]


def backbone_table(results: dict, backbone: str, markdown: bool = False) -> str:
    return (markdown_table if markdown else plain_table)(*backbone_cells(results, backbone))


def combined_cells(results: dict) -> tuple[list[str], list[list[str]]]:
    """Variants as rows, one column group per backbone: accuracy (loss), mean latency, size."""
    names = list(results["backbones"])
    header = ["Variant"] + [f"{n} {c}" for n in names for c in ("acc (loss)", "ms", "MB")]
    per_backbone = {n: {r["variant"]: r for r in variant_rows(results["backbones"][n])} for n in names}
    variants = list(dict.fromkeys(v for n in names for v in per_backbone[n]))
    rows = []
    for variant in variants:
        row = [variant]
        for n in names:
            r = per_backbone[n].get(variant)
            row += ([f"{r['accuracy'] * 100:.1f}% ({r['loss']:.3f})", f"{r['mean_ms']:.1f}", f"{r['size_mb']:.1f}"]
                    if r else ["-", "-", "-"])
        rows.append(row)
    return header, rows


def combined_table(results: dict, markdown: bool = False) -> str:
    return (markdown_table if markdown else plain_table)(*combined_cells(results))


def text_summary(results: dict) -> str:
    """What the CLI prints at the end of a run."""
    parts = []
    for name in results["backbones"]:
        parts += [f"\n{caption(results, name)}", backbone_table(results, name)]
    if len(results["backbones"]) > 1:
        parts += ["\nAll backbones:", combined_table(results)]
    if "recommendation" in results:
        parts.append(f"\nRecommendation: {results['recommendation']['reason']}")
    skipped = results["dataset"]["skipped"]
    if skipped:
        parts.append(f"\n{len(skipped)} file(s) skipped (listed in dataset.json).")
    parts.append(f"\nRun folder: {results['run_dir']} (report.html has the plots)")
    return "\n".join(parts)


def markdown_report(results: dict) -> str:
    d = results["dataset"]
    lines = [f"# zoolite run: {', '.join(results['backbones'])}", "",
             f"Dataset `{d['root']}`: {d['images']} images in {len(d['labels'])} classes "
             f"({', '.join(d['labels'])}); split {results['split']['train']}/{results['split']['val']}/"
             f"{results['split']['test']} (train/val/test, seed {results['split']['seed']}); "
             f"{len(d['skipped'])} file(s) skipped. Plots: `report.html`.", ""]
    if "recommendation" in results:
        r = results["recommendation"]
        lines += ["## Recommendation", "", (f"**Ship `{r['file']}`.** " if r["variant"] else "") + r["reason"], ""]
    for name in results["backbones"]:
        lines += [f"## {name}", "", f"*{caption(results, name)}*", "", backbone_table(results, name, True), ""]
    if len(results["backbones"]) > 1:
        lines += ["## All backbones", "", combined_table(results, True), ""]
    if d["skipped"]:
        lines += ["## Skipped files", ""] + [f"- `{s['file']}`: {s['reason']}" for s in d["skipped"]] + [""]
    m = results["machine"]
    lines += ["## Machine", "", f"{m['cpu']}, {m['cores']} cores, {m['os']}; Python {m['python']}, "
              f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, LiteRT {m['ai_edge_litert']}.", "",
              f"Command: `{m['command']}`", ""]
    return "\n".join(lines)


def results_csv(results: dict) -> str:
    fields = ["backbone", "variant", "loss", "accuracy", "top3_accuracy", "mean_ms", "median_ms", "p90_ms",
              "p99_ms", "std_ms", "first_inference_ms", "load_ms", "size_bytes", "size_vs_float32_tflite",
              "top1_agreement", "mean_abs_prob_diff", "threads"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name, backbone in results["backbones"].items():
        for row in backbone["variants"]:
            writer.writerow({"backbone": name, **row, **row["latency"], **row.get("agreement_with_keras", {})})
    return buffer.getvalue()


def load_results(run_dir: str | Path) -> dict:
    """The results dict of a finished run folder; a one-line error for anything else."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ZooliteError(f"{run_dir}: run folder not found; pass a folder under runs/")
    path = run_dir / "results.json"
    if not storage.is_complete(run_dir) or not path.is_file():
        if (run_dir / "config.json").is_file() or (run_dir / storage.INCOMPLETE_MARKER).exists():
            raise ZooliteError(f"{run_dir}: this run did not finish; finish it with "
                               f"`zoolite run --resume {run_dir}`")
        raise ZooliteError(f"{run_dir}: not a zoolite run folder (no results.json); pass a folder under runs/")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{path}: damaged results file ({e}); re-run with `zoolite run`") from None
    if not isinstance(results, dict) or not results.get("backbones"):
        raise ZooliteError(f"{path}: not zoolite results (no backbones); pass a folder under runs/")
    return results


def write_reports(run_dir: Path, results: dict) -> None:
    """results.json, results.csv, report.md and report.html; all rendered before any is written."""
    from zoolite.html_report import html_report  # matplotlib is imported only when a report is drawn

    texts = {"results.csv": results_csv(results), "report.md": markdown_report(results),
             "report.html": html_report(results, run_dir)}
    storage.write_json(run_dir / "results.json", results)
    for name, text in texts.items():
        storage.write_text(run_dir / name, text)
