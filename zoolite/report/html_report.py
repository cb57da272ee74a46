"""report.html: one self-contained page per run (styles inline, plots embedded as base64 PNG).

Drawn from the results model plus files already in the run folder (test-set
probabilities, decoded test images), so it can be re-rendered without recomputing.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import numpy as np

from zoolite.report import plots

from zoolite.measure import stats
from zoolite.runs.layout import RunLayout
from zoolite.results import LogisticFit, Run, Training
from zoolite.report.tables import CLASS_NOTE, FIDELITY_NOTE, backbone_cells, caption, class_cells, combined_cells, \
    dataset_sentence, fidelity_cells, fidelity_titles, head_note, machine_sentence, rejection_cells, rejection_note

# Test images shown in the prediction grid of each backbone.
GRID_IMAGES = 24

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 24px 32px; color: #1d2327; line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #e3e6e8; padding-bottom: 4px; }
h3 { margin-top: 28px; }
.sub, .caption, .note { color: #58636b; font-size: 0.92em; }
.box { border-left: 6px solid #2e7d32; background: #edf7ee; padding: 12px 18px; margin: 18px 0; }
.box.none { border-color: #ef6c00; background: #fff3e0; }
.box strong { font-size: 1.1em; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.92em; }
th, td { border-bottom: 1px solid #dde1e3; padding: 5px 6px; text-align: right; min-width: 3.5em; }
th { background: #f3f5f6; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; }
.wide { overflow-x: auto; }
tr.recommended td { background: #e3f2e4; font-weight: 600; }
img { max-width: 100%; height: auto; display: block; margin: 10px 0; }
.pair { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.pair img { max-width: calc(50% - 6px); }
code { background: #f3f5f6; padding: 1px 4px; border-radius: 3px; }
code.command { display: block; white-space: nowrap; overflow-x: auto; margin-top: 4px; padding: 4px 8px; }
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _breakable(text: str) -> str:
    """``text`` escaped, with line breaks allowed after "_" and "/" (variant names, file paths) as well."""
    return escape(text).replace("_", "_<wbr>").replace("/", "/<wbr>")


def _table(header: list[str], rows: list[list[str]], highlight: int | None = None) -> str:
    """An HTML table whose cells break their text where they must, so that it fits a 1,200 px window."""
    head = "".join(f"<th>{_breakable(h)}</th>" for h in header)
    body = "".join(
        f"<tr{' class=recommended' if i == highlight else ''}>" + "".join(f"<td>{_breakable(c)}</td>" for c in row)
        + "</tr>" for i, row in enumerate(rows))
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _recommendation_box(results: Run) -> str:
    recommendation, chosen = results.recommendation, results.recommended()
    if not chosen:
        return f'<div class="box none"><strong>Nothing to recommend.</strong> {escape(recommendation.reason)}</div>'
    backbone = f" --backbone {recommendation.backbone}" if len(results.backbones) > 1 else ""
    command = f"zoolite export {results.run_dir}{backbone} --variant {recommendation.variant} --to DIR"
    return (f'<div class="box"><strong>Recommended: <code>{escape(chosen.variant.file)}</code></strong><br>'
            f'{escape(recommendation.reason)}<br><span class="note">To bundle it for an app with labels.txt '
            f'and model.json:</span><code class="command">{escape(command)}</code></div>')


def _test_images(layout: RunLayout, results: Run, backbone: str, test: list, indices) -> list | None:
    """The chosen ``test`` photos: decoded from the run's cache, else from the dataset; None if gone."""
    cache = layout.backbone(backbone).images("test")
    if cache.exists():
        images = np.load(cache, mmap_mode="r")
        return [np.asarray(images[i]) for i in indices]
    from zoolite.dataset.images import load_image

    paths = [test[i][0] for i in indices]
    if not all(p.is_file() for p in paths):
        return None
    return [load_image(p, results.backbones[backbone].input_size) for p in paths]


def _prediction_grid(layout: RunLayout, results: Run, backbone: str, variant: str) -> str:
    probabilities_path = layout.backbone(backbone).probabilities(variant)
    test = results.test_photos()
    if not (probabilities_path.exists() and test):
        return f'<p class="note">No prediction grid: {probabilities_path.name} or split.json is missing.</p>'
    probabilities = np.load(probabilities_path)
    labels = np.array([label for _, label in test], dtype=int)
    order = plots.prediction_order(labels, probabilities)[:GRID_IMAGES]
    images = _test_images(layout, results, backbone, test, order)
    if images is None:
        return '<p class="note">No prediction grid: the decoded test images and the dataset are both gone.</p>'
    wrong = int((stats.answers(probabilities) != labels).sum())
    title = (f"{backbone} {variant}: {wrong} of {len(labels)} test images wrong"
             + (" (shown first)" if wrong else "") + f"; {len(order)} shown")
    png = plots.prediction_grid(images, labels[order], probabilities[order], results.labels, title)
    return _img(png, title)


def _backbone_section(layout: RunLayout, results: Run, name: str) -> list[str]:
    backbone = results.backbones[name]
    chosen = results.recommended()
    recommended = chosen.variant if chosen and chosen.backbone is backbone else None
    header, rows = backbone_cells(results, name)
    parts = [f"<h2>{escape(name)}</h2>", f'<p class="caption">{escape(caption(results, name))}</p>',
             _table(header, rows, backbone.variants.index(recommended) if recommended else None),
             "<h3>Per class</h3>", f'<p class="note">{escape(CLASS_NOTE)}</p>', _table(*class_cells(results, name))]
    parts += _fidelity_section(results, backbone)
    parts += _rejection_section(results, name)
    parts += ["<h3>Training</h3>"] + _training_parts(backbone.training, name)
    shown = [(backbone.reference, "float Keras model")] + ([(recommended, "recommended")] if recommended else [])
    matrices = []
    for variant, role in shown:
        title = f"{name} {variant.target} ({role}): accuracy {variant.accuracy * 100:.1f}%"
        matrices.append(_img(plots.confusion_matrix(variant.confusion_matrix, results.labels, title), title))
    parts += ["<h3>Confusion matrices (test split)</h3>", f'<div class="pair">{"".join(matrices)}</div>',
              "<h3>Test images and predictions</h3>", _prediction_grid(layout, results, name, shown[-1][0].target)]
    return parts


def _training_parts(training: Training, name: str) -> list[str]:
    """The head's fit in words when it ran no epochs, and the curves of every stage that did."""
    parts = [f'<p class="note">{escape(head_note(training.head))}</p>'] if isinstance(training.head, LogisticFit) \
        else []
    if training.epoch_stages:
        parts.append(_img(plots.training_curves(training, f"{name}: training"), f"{name} training curves"))
    return parts


def _rejection_section(results: Run, name: str) -> list[str]:
    """How the backbone's files say "none of these", measured per variant, with the kept/rejected curves."""
    cells = rejection_cells(results, name)
    if cells is None:
        return []
    curves = plots.rejection_curves(results.backbones[name], f"{name}: none of these")
    return (["<h3>None of these</h3>", f'<p class="note">{escape(rejection_note(results, name))}</p>', _table(*cells)]
            + ([_img(curves, f"{name}: class photos kept against other photos rejected")] if curves else []))


def _fidelity_section(results: Run, backbone) -> list[str]:
    """Top-1 agreement with the float model and the mean total-variation distance of the outputs,
    by the float model's confidence, on the test images and the --unlabelled photos."""
    parts = []
    for images, title in fidelity_titles(results):
        table = fidelity_cells(backbone, images)
        if table:
            parts += [f"<h3>Fidelity to the float model on {escape(title)}</h3>",
                      f'<p class="note">{escape(FIDELITY_NOTE)}</p>', _table(*table)]
    if parts and results.unlabelled:
        u = results.unlabelled
        parts.append(f'<p class="note">Unlabelled photos: <code>{escape(u.root)}</code>, {u.photos} used, '
                     f'{len(u.skipped)} skipped. No labels are needed: these figures say how faithfully each variant '
                     "reproduces the float model. Photos of none of the classes make the float model unsure, and "
                     "unsure answers flip easily and mean little; a changed answer where the float model is "
                     f"confident (max probability ≥ {stats.CONFIDENT:g}) is what the recommendation counts.</p>")
    return parts


def html_report(results: Run) -> str:
    layout = RunLayout(Path(results.run_dir))
    skipped, m = results.dataset.skipped, results.machine
    names = list(results.backbones)
    body = [f"<h1>zoolite run: {escape(', '.join(names))}</h1>",
            f'<p class="sub">{escape(results.run_dir)}</p>']
    if results.recommendation:
        body.append(_recommendation_box(results))
    body += [f"<p>{dataset_sentence(results, lambda root: f'<code>{escape(root)}</code>', escape)}</p>",
             "<h2>Accuracy, latency and size</h2>",
             _img(plots.tradeoff(results), "accuracy vs latency of every variant"),
             '<p class="note">Up and to the left is better; bars are 95% intervals. The dashed line is the '
             "budget's accuracy floor: a variant below it is rejected only when the paired evidence shows its "
             "loss is real (see the recommendation). The Keras model is the float reference, not a file an app "
             "ships.</p>"]
    if len(names) > 1:
        body += ["<h3>All backbones</h3>", _table(*combined_cells(results))]
    for name in names:
        body += _backbone_section(layout, results, name)
    if skipped:
        body += ["<h2>Skipped files</h2>", _table(["File", "Reason"], [[s.file, s.reason] for s in skipped])]
    body += ["<h2>Machine</h2>",
             f"<p>{escape(machine_sentence(m))} The run took {results.timings['total']:.0f} s.</p>",
             f"<p>Command: <code>{escape(m.command)}</code></p>"]
    if results.config.tensorboard and any(b.training.epoch_stages for b in results.backbones.values()):
        body.append(f'<p class="note">Training logs: <code>tensorboard --logdir {escape(results.run_dir)}</code></p>')
    title = f"zoolite run: {', '.join(names)}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
