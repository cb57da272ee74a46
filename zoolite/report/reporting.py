"""The reporting stage: results.json, results.csv, report.md, report.html and the table the CLI prints.

Everything here reads the results model (:mod:`zoolite.results`) only, so ``zoolite report``
can re-render a run without recomputing anything (:func:`rerender`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from zoolite import storage
from zoolite.config import Budget
from zoolite.runs.layout import RunLayout
from zoolite.results.recommend import fewer_kept_classes, lost_classes
from zoolite.results import Run, load
from zoolite.report.tables import CLASS_NOTE, FIDELITY_NOTE, backbone_table, caption, class_table, combined_table, \
    dataset_sentence, fidelity_cells, fidelity_titles, machine_sentence, markdown_table, rejection_note, rejection_table, \
    time_rows


def text_summary(results: Run) -> str:
    """What the CLI prints at the end of a run."""
    parts = []
    for name in results.backbones:
        parts += [f"\n{caption(results, name)}", backbone_table(results, name),
                  f"\n{CLASS_NOTE}", class_table(results, name)]
        if results.backbones[name].rejection:
            parts += [f"\n{rejection_note(results, name)}", rejection_table(results, name)]
    if len(results.backbones) > 1:
        parts += ["\nAll backbones:", combined_table(results)]
    if results.recommendation:
        parts.append(f"\nRecommendation: {results.recommendation.reason}")
    skipped = results.dataset.skipped
    if skipped:
        parts.append(f"\n{len(skipped)} file(s) skipped (listed in dataset.json).")
    parts.append(f"\nRun folder: {results.run_dir} (report.html has the plots)")
    return "\n".join(parts)


def markdown_report(results: Run) -> str:
    lines = [f"# zoolite run: {', '.join(results.backbones)}", "", f"{dataset_sentence(results, code=lambda root: f'`{root}`')} Plots: `report.html`.",
             ""]
    if results.recommendation:
        chosen = results.recommended()
        lines += ["## Recommendation", "", (f"**Ship `{chosen.variant.file}`.** " if chosen else "")
                  + results.recommendation.reason, ""]
    for name in results.backbones:
        lines += [f"## {name}", "", f"*{caption(results, name)}*", "", backbone_table(results, name, True), "",
                  "### Per class", "", f"*{CLASS_NOTE}*", "", class_table(results, name, True), ""]
        if results.backbones[name].rejection:
            lines += ["### None of these", "", rejection_note(results, name), "", rejection_table(results, name, True),
                      ""]
        for images, title in fidelity_titles(results):
            table = fidelity_cells(results.backbones[name], images)
            if table:
                lines += [f"### Fidelity to the float model on {title}", "", f"*{FIDELITY_NOTE}*", "",
                          markdown_table(*table), ""]
    if len(results.backbones) > 1:
        lines += ["## All backbones", "", combined_table(results, True), ""]
    if results.dataset.skipped:
        lines += ["## Skipped files", ""] + [f"- `{s.file}`: {s.reason}" for s in results.dataset.skipped] + [""]
    lines += ["## Machine", "", machine_sentence(results.machine), "", f"Command: `{results.machine.command}`", "",
              "## Time", "", markdown_table(["Stage", "Seconds", "Share"], time_rows(results)), ""]
    return "\n".join(lines)


def results_csv(results: Run) -> str:
    fields = ["backbone", "target", "family", "mode", "role", "loss", "accuracy", "accuracy_low", "accuracy_high",
              "balanced_accuracy", "balanced_low", "balanced_high", "lost_classes", "balanced_kept",
              "balanced_answered_right", "fewer_kept_classes", "top_k", "top_k_accuracy", "difference_vs_best_float",
              "difference_low", "difference_high",
              "images_won", "images_lost", "mcnemar_p", "mean_ms", "median_ms", "median_low", "median_high",
              "p90_ms", "p99_ms", "std_ms", "first_inference_ms", "load_ms", "size_bytes", "size_vs_reference",
              "top1_agreement", "mean_abs_prob_diff", "threads", "backend"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for name, backbone in results.backbones.items():
        for v in backbone.variants:
            row = {"backbone": name, **asdict(v), **asdict(v.latency), **(asdict(v.agreement) if v.agreement else {})}
            row["size_vs_reference"] = v.size_bytes / backbone.reference.size_bytes
            if v.accuracy_interval:
                row.update(accuracy_low=v.accuracy_interval.low, accuracy_high=v.accuracy_interval.high)
            if v.balanced_accuracy_interval:
                row.update(balanced_low=v.balanced_accuracy_interval.low, balanced_high=v.balanced_accuracy_interval.high)
            row["lost_classes"] = " ".join(lost_classes(v))
            row["fewer_kept_classes"] = " ".join(fewer_kept_classes(v))
            if v.rejection:
                row.update(balanced_kept=v.rejection.balanced_kept,
                           balanced_answered_right=v.rejection.balanced_answered_right)
            if v.latency.median_interval:
                row.update(median_low=v.latency.median_interval.low, median_high=v.latency.median_interval.high)
            if v.paired:
                row.update(difference_vs_best_float=v.paired.difference, difference_low=v.paired.difference_interval.low,
                           difference_high=v.paired.difference_interval.high, images_won=v.paired.only_variant_right,
                           images_lost=v.paired.only_reference_right, mcnemar_p=v.paired.mcnemar_p)
            writer.writerow(row)
    return buffer.getvalue()


def write_reports(results: Run) -> None:
    """results.json, results.csv, report.md and report.html; all rendered before any is written."""
    from zoolite.report.html_report import html_report  # matplotlib is imported only when a report is drawn

    layout = RunLayout(Path(results.run_dir))
    texts = {layout.results_csv: results_csv(results), layout.report_md: markdown_report(results),
             layout.report_html: html_report(results)}
    storage.write_json(layout.results, results.to_json())
    for path, text in texts.items():
        storage.write_text(path, text)


def rerender(run_dir: str | Path, budget: Budget | None = None, runtime: str | None = None) -> Run:
    """Re-render a finished run's reports and recommendation without recomputing anything:
    under ``budget``, or the budget of its last report, among the variants of ``runtime`` if given
    (a runtime family's name). Older results files are upgraded."""
    from zoolite.results.recommend import recommend

    results = load(run_dir)
    if budget is None:
        budget = results.recommendation.budget if results.recommendation else results.config.budget
    results.recommendation = recommend(results, budget, runtime)
    write_reports(results)
    return results
