"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Figures are made with ``matplotlib.figure.Figure`` directly (no pyplot), so no GUI
backend or global state is involved; PNGs are rendered by Agg.
"""

from __future__ import annotations

import io
import itertools
import warnings
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from zoolite.results import Backbone, Run, Training, TrainingStage
from zoolite.measure.intervals import Interval
from zoolite.measure.stats import NO_CLASS, answers
from zoolite.report.tables import runtime_label

DPI = 110
COLOURS = [f"C{i}" for i in range(10)]  # one per runtime
MARKERS = ["o", "s", "^", "D", "v", "P"]  # one per backbone
WRONG, RIGHT = "#c62828", "#2e7d32"
# Marker area (points^2) of the largest file in the trade-off plot.
MAX_MARKER_AREA = 900.0


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a label's emoji the font lacks, a long label the layout cannot fit: the
        warnings.simplefilter("ignore", UserWarning)  # plot is drawn all the same, and the report is the user's
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # trims empty margins
    return buffer.getvalue()


def _marker_area(size_mb: float, largest_mb: float) -> float:
    return max(40.0, MAX_MARKER_AREA * size_mb / largest_mb)


@dataclass
class _Point:
    """One variant in the trade-off plot."""

    name: str
    accuracy: float  # the accuracy the budget judges
    ms: float  # median latency
    size_mb: float
    accuracy_interval: Interval | None
    latency_interval: Interval | None


def _label_points(ax, points: list[_Point], largest_mb: float) -> None:
    """Name each point. Points close on both axes (often variants of equal accuracy) get their
    labels alternately above and below, further out the more crowded it gets, with a leader line."""
    accuracies = [p.accuracy for p in points]
    near_accuracy = max(0.08 * (max(accuracies) - min(accuracies)), 1e-3)
    previous, level = None, 0
    for p in sorted(points, key=lambda p: p.ms):
        crowded = previous and p.ms < previous.ms * 1.35 and abs(p.accuracy - previous.accuracy) < near_accuracy
        level = level + 1 if crowded else 0
        previous = p
        radius = np.sqrt(_marker_area(p.size_mb, largest_mb)) / 2  # scatter's area is diameter squared
        offset = (radius + 11 + 12 * (level // 2)) * (1 if level % 2 == 0 else -1)
        ax.annotate(p.name, (p.ms, p.accuracy * 100), xytext=(0, offset),
                    textcoords="offset points", ha="center", va="center", fontsize=9, zorder=4,
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6, "shrinkA": 0,
                                "shrinkB": radius} if level > 1 else None)


def _error_bars(ax, points: list[_Point], colour: str) -> None:
    """95% intervals of accuracy and median latency around each point that has both."""
    points = [p for p in points if p.accuracy_interval and p.latency_interval]
    if points:
        ax.errorbar([p.ms for p in points], [p.accuracy * 100 for p in points],
                    xerr=np.array([[p.ms - p.latency_interval.low, p.latency_interval.high - p.ms]
                                   for p in points]).T.clip(0),
                    yerr=np.array([[(p.accuracy - p.accuracy_interval.low) * 100,
                                    (p.accuracy_interval.high - p.accuracy) * 100] for p in points]).T.clip(0),
                    fmt="none", ecolor=colour, elinewidth=1, capsize=3, alpha=0.8, zorder=2)


def _points(results: Run) -> dict[tuple[str, str], list[_Point]]:
    """The plotted variants, grouped by (backbone, runtime label)."""
    balanced = results.balanced
    points: dict[tuple[str, str], list[_Point]] = {}
    for name, b in results.backbones.items():
        for v in b.variants:
            points.setdefault((name, runtime_label(v)), []).append(_Point(
                v.target, v.judged_accuracy(balanced), v.latency.median_ms, v.size_mb,
                v.balanced_accuracy_interval if balanced else v.accuracy_interval, v.latency.median_interval))
    return points


def tradeoff(results: Run) -> bytes:
    """Accuracy vs median single-image latency (log scale), one point per variant, area = file size,
    with 95% error bars on both, coloured by runtime; the budget's accuracy floor (the same rule the recommendation
    applies) as a dashed line."""
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax = fig.add_subplot()
    balanced = results.balanced  # the accuracy the budget judges
    # One group per backbone and runtime: colour says the runtime, marker shape the backbone.
    points = _points(results)
    runtimes = list(dict.fromkeys(runtime for _, runtime in points))
    several = len(results.backbones) > 1
    largest = max(p.size_mb for rows in points.values() for p in rows)
    markers = dict(zip(results.backbones, itertools.cycle(MARKERS)))
    for (name, runtime), rows in points.items():
        colour = COLOURS[runtimes.index(runtime) % len(COLOURS)]
        ax.scatter([p.ms for p in rows], [p.accuracy * 100 for p in rows],
                   s=[_marker_area(p.size_mb, largest) for p in rows], color=colour, alpha=0.55,
                   marker=markers[name], edgecolors="black", linewidths=0.6,
                   label=f"{name}, {runtime}" if several else runtime, zorder=3)
        _error_bars(ax, rows, colour)
    recommendation = results.recommendation
    budget = recommendation.budget if recommendation else None
    if budget:
        floor = budget.accuracy_floor(results.best_reference_accuracy) * 100
        best = "the best float model" if several else "the float model"
        ax.axhline(floor, color="black", linestyle="--", linewidth=1,
                   label=f"{results.accuracy_name} floor ({budget.max_accuracy_drop_pp:g} pp below {best})")
    _label_points(ax, [p for rows in points.values() for p in rows], largest)
    if budget and budget.max_latency_ms is not None:
        ax.axvline(budget.max_latency_ms, color="grey", linestyle=":", linewidth=1.5,
                   label=f"mean-latency limit {budget.max_latency_ms:g} ms")
    chosen = results.recommended()
    if chosen:
        ring = (np.sqrt(_marker_area(chosen.variant.size_mb, largest)) + 9) ** 2
        ax.scatter([chosen.variant.latency.median_ms], [chosen.variant.judged_accuracy(balanced) * 100], s=ring,
                   facecolors="none", edgecolors="black", linewidths=2, label="recommended", zorder=5)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    ax.margins(x=0.12, y=0.25)
    ax.set_xlabel("median latency per image, ms (log scale; 1 image per call)")
    ax.set_ylabel(f"test {results.accuracy_name}, %")
    ax.set_title("Accuracy vs latency, with 95% intervals; marker area = file size (MB)")
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    data_entries = len(handles)
    # A key for the marker areas, with round sizes spanning the files.
    keys = sorted({float(f"{s:.1g}") for s in (largest / 10, largest / 3, largest)})
    handles += [ax.scatter([], [], s=_marker_area(s, largest), color="lightgrey", edgecolors="black",
                           linewidths=0.6) for s in keys]
    labels += [f"file of {s:g} MB" for s in keys]
    legend = fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=9, labelspacing=1.3,
                        handletextpad=2, columnspacing=2.5, borderpad=1)
    for handle in legend.legend_handles[:data_entries]:  # their data's marker size would mean nothing here
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([60])
    return _png(fig)


def _stage_series(training: Training) -> list[tuple[str, TrainingStage, int]]:
    """(stage, its history, epoch offset) for head training then fine-tuning, end to end (the stages that ran
    epochs)."""
    out, offset = [], 0
    for name, stage in training.epoch_stages:
        out.append((name, stage, offset))
        offset += len(stage.loss)
    return out


def training_curves(training: Training, title: str) -> bytes:
    """Loss and accuracy per epoch, train and validation, with the kept and the stopping epoch marked."""
    stages = _stage_series(training)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, metric, label in zip(axes, ("loss", "accuracy"), ("cross-entropy loss", "accuracy")):
        for i, (stage, h, offset) in enumerate(stages):
            train, val = getattr(h, metric), getattr(h, f"val_{metric}")
            stage_name = [stage.replace("_", "-")] if len(stages) > 1 or stage != "head" else []
            style = "-" if i == 0 else "-."
            ax.plot(np.arange(1, len(train) + 1) + offset, train, color="C0", linestyle=style,
                    label=", ".join(["train", *stage_name]))
            if val:  # Keras validates every validation_freq-th epoch only
                every = [f"every {h.validation_freq} epochs"] if h.validation_freq > 1 else []
                ax.plot(offset + h.validation_freq * np.arange(1, len(val) + 1), val, color="C1", marker="o",
                        markersize=4, linestyle=style, label=", ".join(["validation", *stage_name, *every]))
            if h.best_epoch:
                ax.axvline(offset + h.best_epoch, color=RIGHT, linestyle="--", linewidth=1,
                           label=f"best val_loss, weights kept (epoch {offset + h.best_epoch})")
            if h.stopped_epoch:
                ax.axvline(offset + h.stopped_epoch, color=WRONG, linestyle=":", linewidth=1.5,
                           label=f"early stop (epoch {offset + h.stopped_epoch})")
            if offset:
                ax.axvline(offset + 0.5, color="grey", linewidth=1, label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=9)
    fig.suptitle(title)
    return _png(fig)


def confusion_matrix(matrix, class_names: list[str], title: str) -> bytes:
    """Counts, coloured by the share of each true class (row), so rare classes show up too."""
    counts = np.asarray(matrix, dtype=int)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    n = len(class_names)
    side = max(3.5, 1.2 + 0.38 * n)
    fig = Figure(figsize=(side + 0.8, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return _png(fig)


def prediction_order(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Test images wrong first (most confident mistakes first), then right ones, least confident first."""
    predicted = answers(probabilities)
    confidence = probabilities.max(1)
    wrong = predicted != labels
    return np.lexsort((np.where(wrong, -confidence, confidence), ~wrong))


def prediction_grid(images, labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
                    title: str, columns: int = 6) -> bytes:
    """Thumbnails titled with the true label and the prediction (red when wrong)."""
    rows = -(-len(images) // columns)
    fig = Figure(figsize=(columns * 1.9, rows * 2.2 + 0.5), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(images):]:
        ax.axis("off")
    predictions = answers(probabilities).tolist()
    for ax, image, label, probs, predicted in zip(axes.flat, images, labels, probabilities, predictions):
        colour = WRONG if predicted != label else RIGHT
        ax.imshow(np.asarray(image))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():  # a thick red frame makes mistakes stand out
            spine.set(color=colour, linewidth=3 if predicted != label else 0.5)
        said = f"{class_names[predicted]} {probs[predicted]:.0%}" if predicted != NO_CLASS else "no class (all 0)"
        ax.set_title(f"true: {class_names[label]}\npredicted: {said}",
                     fontsize=8, color=colour)
    fig.suptitle(title)
    return _png(fig)


def rejection_curves(backbone: Backbone, title: str) -> bytes | None:
    """Class photos kept against other photos rejected as the threshold moves, one curve per variant,
    each variant's point at the shipped threshold marked; None without held-out other photos."""
    measured = [v for v in backbone.variants if v.rejection and v.rejection.curve]
    if not measured:
        return None
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    for colour, variant in zip(itertools.cycle(COLOURS), measured):
        r = variant.rejection
        points = np.asarray(r.curve)
        ax.plot(points[:, 2] * 100, points[:, 1] * 100, color=colour, lw=1.4,
                label=f"{variant.target} (AUROC {r.auroc:.3f})")
        ax.plot(r.rejected_rate * 100, r.kept_rate * 100, "o", color=colour, ms=7, mec="black", mew=0.6)
    ax.set_xlabel("other photos rejected, % (held-out --other photos)")
    ax.set_ylabel("class photos kept, % (test split)")
    ax.set_title(f"{title}\n(dots: the shipped threshold, {backbone.rejection.threshold:.3f})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)
