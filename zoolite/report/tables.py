"""The results tables: each backbone's variants with their ratios to the float reference, and
all backbones side by side; as plain text (the CLI), Markdown (report.md) or cells (report.html)."""

from __future__ import annotations

from zoolite.config import LatencyConfig
from zoolite.results.recommend import class_flags, fewer_kept_classes, lost_classes, rejection_lost
from zoolite.results import Backbone, Latency, LogisticFit, Machine, Run, Variant
from zoolite.measure.intervals import percent, share
from zoolite.measure.stats import CONFIDENT, FidelityRow
from zoolite.targets import FAMILIES


def runtime_label(variant: Variant) -> str:
    """What runs the variant's file, as tables name it: "LiteRT", "ONNX Runtime"."""
    return FAMILIES[variant.family].label


def machine_sentence(m: Machine) -> str:
    """What the figures were measured on: the CPU, the OS and the versions of Python and every runtime."""
    versions = ", ".join(f"{name} {version}" for name, version in m.packages.items() if version)
    return f"{m.cpu}, {m.cores} cores, {m.os}; Python {m.python}, {versions}."


def dataset_sentence(results: Run, code=str, text=str) -> str:
    """The dataset, its classes and its split, in one sentence: the folder marked up by ``code``, the class
    names by ``text`` (for HTML, escaped)."""
    d, split = results.dataset, results.split
    return (f"Dataset {code(d.root)}: {d.images} images in {len(d.labels)} classes ({text(', '.join(d.labels))}); split "
            f"{split.train}/{split.val}/{split.test} (train/val/test, seed {split.seed}){duplicates_clause(results, code)}; "
            f"{len(d.skipped)} file(s) skipped.{groups_sentence(results, code)}{suspects_sentence(results, code)}")


def suspects_sentence(results: Run, code=str, few: int = 3) -> str:
    """The suspect labels among the train and validation photos, as a sentence after the dataset's (with a
    leading space; "" when not looked for); the most suspect named, at most ``few``."""
    suspects = results.suspect_labels
    if suspects is None:
        return ""
    named = "".join(f"{'; ' if i else ': '}{code(s.file)} ({s.label} -> {s.suggested})"
                    for i, s in enumerate(suspects.named[:few]))
    more = "; ..." if suspects.found > few else ""
    return (f" Suspect labels (photos whose folder the {suspects.backbone} features confidently disagree with, "
            f"out of fold): {suspects.found} of the {suspects.checked} train and validation photos{named}{more}; "
            f"{code('zoolite check')} lists them all.")


def groups_sentence(results: Run, code=str, few: int = 10) -> str:
    """With --group-by, how the test split was drawn, as a sentence after the dataset's (with a leading space;
    "" without): what the test figures estimate, the groups and their photos per split, and the test groups'
    names when there are ``few``."""
    split = results.split
    if split.group_by is None:
        return ""
    groups, photos, test = split.user_groups or [0, 0, 0], split.user_group_photos or [0, 0, 0], split.test_groups or []
    named = f": {', '.join(code(g) for g in test)}" if 0 < len(test) <= few else ""
    return (f" Split by group ({code('--group-by ' + split.group_by)}): each group whole in one split, so the test "
            f"figures estimate photos of a new group, not new photos of groups seen in training; "
            f"{groups[0]}/{groups[1]}/{groups[2]} group(s) ({photos[0]}/{photos[1]}/{photos[2]} photos) in "
            f"train/val/test{named}; photos the pattern does not match are each their own group.")


def duplicates_clause(results: Run, code=str, few: int = 3) -> str:
    """How the split treated copies of one photo, as a clause of the dataset sentence ("" for results from
    before duplicates were looked for); the label-conflict photos named when there are ``few``."""
    split = results.split
    if split.duplicate_groups is None:
        return ", copies of one photo may be in train and test alike (--keep-duplicates)" \
            if results.config.keep_duplicates else ""
    conflicts = split.conflicts or []
    if not split.duplicate_groups and not conflicts:
        return ", no copies of one photo found"
    named = f" ({', '.join(code(c) for c in conflicts)})" if 0 < len(conflicts) <= few else ""
    return (f", {split.duplicate_groups} group(s) of duplicates ({split.duplicate_photos} photos) each kept within one "
            f"split, {len(conflicts)} label-conflict photo(s) left out{named}")


_COLUMNS = ["Variant", "Runtime", "Loss", "Accuracy [95% CI]", "Balanced [95% CI]", "Δ vs float, pp [95% CI]",
            "Won/lost (p)", "Median ms [95% CI]", "Mean ms", "Speed-up", "Size MB", "Size", "Flag"]


def _cells(v: Variant, reference: Variant) -> list[str]:
    """One variant's row: its figures, their 95% intervals, the paired evidence against the run's best float
    model, and ratios to its backbone's reference."""
    paired = v.paired
    # 0.0 + x: no "-0.0" for a variant exactly as accurate as the reference
    delta = "-" if paired is None else (f"{0.0 + paired.difference * 100:+.1f} [{paired.difference_interval.low * 100:+.1f}, "
                                        f"{paired.difference_interval.high * 100:+.1f}]")
    evidence = "-" if paired is None else \
        f"{paired.only_variant_right}/{paired.only_reference_right} ({paired.mcnemar_p:.2g})"
    balanced = "-" if v.balanced_accuracy is None else percent(v.balanced_accuracy, v.balanced_accuracy_interval)
    return [v.target, runtime_label(v), f"{v.loss:.4f}", percent(v.accuracy, v.accuracy_interval), balanced, delta,
            evidence, latency_cell(v.latency),
            f"{v.latency.mean_ms:.2f}", f"{reference.latency.mean_ms / v.latency.mean_ms:.1f}x", f"{v.size_mb:.2f}",
            f"{v.size_bytes / reference.size_bytes * 100:.0f}%", "; ".join(class_flags(v).values())]


def latency_cell(latency: Latency) -> str:
    """The median latency in ms, with its 95% interval when it has one."""
    interval = latency.median_interval
    return f"{latency.median_ms:.2f}" + ("" if interval is None else f" [{interval.low:.2f}, {interval.high:.2f}]")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table whose cells hold what they are given: a class folder named ``a|b``, ``<b>`` or with a line
    break neither splits a cell nor becomes HTML (``\\`` and ``|`` escaped, ``&`` and ``<`` as entities, line
    breaks as spaces). Markdown's emphasis (a folder named ``_cat_``) is left alone: escaping ``_`` would put a
    backslash in every variant's name."""
    def cell(text: str) -> str:
        escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;")
        return " ".join(escaped.splitlines())

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


# Each timed step of a run (its own and its backbones') belongs to the first stage with a prefix of its name.
TIME_STAGES = (("scan and duplicates", ("scan", "duplicates")),
               ("features", ("hash_", "features_", "convert_backbone", "convert_trained_backbone")),
               ("training, gate, suspect labels", ("training", "fine_tuning", "rejection", "suspect_labels")),
               ("export and conversions", ("export_saved_model", "convert_", "calibrate_", "decode_representative")),
               ("evaluation", ("evaluate_", "decode_")))


def time_stage(step: str) -> str | None:
    """The stage of :data:`TIME_STAGES` a timed step belongs to (None: none names it)."""
    return next((stage for stage, prefixes in TIME_STAGES if step.startswith(prefixes)), None)


def time_rows(results: Run) -> list[list[str]]:
    """Where the run's time went: each stage's seconds and share of the run (start-up and the reports,
    which follow, not counted), the untimed rest (weights, building the models, the run folder) last."""
    steps = {name: seconds for name, seconds in results.timings.items() if name not in ("total", "import")}
    steps.update({f"{backbone}/{name}": seconds for backbone, b in results.backbones.items()
                  for name, seconds in b.timings.items()})
    total = results.timings.get("total") or sum(steps.values())
    spent = dict.fromkeys([stage for stage, _ in TIME_STAGES], 0.0)
    for name, seconds in steps.items():
        stage = time_stage(name.rsplit("/", 1)[-1])
        if stage:
            spent[stage] += seconds
    spent["other (weights, models, folders)"] = max(0.0, total - sum(spent.values()))
    return [[stage, f"{seconds:.1f}", f"{seconds / total:.0%}"] for stage, seconds in spent.items()] + \
        [["run", f"{total:.1f}", "100%"]]


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*row) for row in [header, *rows])


def backends(backbone: Backbone) -> str:
    """What ran each runtime's files: the first file's backend, and any file of the same runtime
    that ran otherwise (OpenVINO says the precision it inferred in)."""
    by_runtime: dict[str, list[Variant]] = {}
    for v in backbone.variants:
        by_runtime.setdefault(v.family, []).append(v)
    parts = []
    for variants in by_runtime.values():
        first = variants[0].backend
        others = [f"{v.target}: {v.backend}" for v in variants[1:] if v.backend != first]
        parts.append(first + (f" ({'; '.join(others)})" if others else ""))
    return "; ".join(parts)


def warmup_caption(latency: LatencyConfig) -> str:
    if latency.max_warmup_seconds is None or latency.warmup <= 1:  # the first warm-up call is always made
        return f"{latency.warmup} warm-up"
    return f"{latency.warmup} warm-up (or {latency.max_warmup_seconds:g} s of it)"


def caption(results: Run, backbone: str) -> str:
    b = results.backbones[backbone]
    threads = sorted({v.threads for v in b.shippable})
    m = results.machine
    latency = results.config.latency
    features = "" if b.features_per_second is None else f"features at {b.features_per_second:.0f} images/s; "
    return (f"{backbone}, {b.input_size}px, weights: {b.weights}; {features}test split {results.split.test} "
            f"images; latency: 1 image per call, {warmup_caption(latency)} + up to {latency.runs} timed "
            f"calls, threads {', '.join(threads) or '-'}; {m.cpu}, {m.cores} cores; {backends(b)}. "
            "Intervals are 95% (accuracy and per-class recall: Wilson; balanced accuracy, the mean recall over the "
            "classes: the spread of the mean of the classes' Jeffreys posteriors around it; Δ: Newcombe's paired interval against the run's most "
            "accurate float model on the same images, with the images won/lost and the exact McNemar p; "
            "median latency: bootstrap over the timed calls). Speed-up and size vs the float Keras model. A variant "
            "is flagged when it loses a class's photos against its float model beyond chance, answering them wrong "
            "(loses) or saying \"none of these\" (keeps fewer of) more often (one-sided exact test per class, "
            "Holm-corrected for the number of classes).")


def head_note(head: LogisticFit) -> str:
    """How a head fitted as a logistic regression (it ran no epochs, so has no curves) was fitted, and its fit."""
    val = "" if head.val_loss is None else \
        f"; validation photos: loss {head.val_loss:.3f}, accuracy {head.val_accuracy * 100:.1f}%"
    balanced = ", each class's photos weighing as much in total" if head.class_weights else ""
    how = "to convergence in" if head.converged else "stopped before converging, after"
    return (f"The head is an L2-regularised logistic regression on the features scaled to unit length (C = "
            f"{head.c:g}{balanced}), fitted {how} {head.iterations} L-BFGS iterations, with no epochs. Training "
            f"photos: loss {head.loss:.3f}, accuracy {head.accuracy * 100:.1f}%{val} (losses are cross-entropies).")


def backbone_cells(results: Run, backbone: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of one backbone's table, one row per variant."""
    b = results.backbones[backbone]
    return _COLUMNS, [_cells(v, b.reference) for v in b.variants]


def backbone_table(results: Run, backbone: str, markdown: bool = False) -> str:
    return (markdown_table if markdown else plain_table)(*backbone_cells(results, backbone))


def _class_cell(v: Variant, name: str, lost: list[str], fewer_kept: list[str]) -> str:
    """One class under one variant: its recall, then its share of photos kept (schema 6 on), each marked
    LOST with the photos won/lost when the variant loses it against its float model beyond chance."""
    c = v.per_class[name]
    cell = share(c.recall, c.recall_interval) + (f" LOST {c.won}/{c.lost}" if name in lost else "")
    if v.rejection is None or v.rejection.per_class is None:
        return cell
    k = v.rejection.per_class[name]
    return cell + f"; kept {share(k.rate, k.interval)}" + (f" LOST {k.won}/{k.lost}" if name in fewer_kept else "")


def class_cells(results: Run, backbone: str) -> tuple[list[str], list[list[str]]]:
    """Per-class recall [95% CI] and share of photos kept [95% CI] of every variant, a class a variant loses
    against its float model beyond chance marked with its photos won/lost. One row per class and a column per
    variant, or the other way round when there are more variants than classes (several runtimes): the table
    takes the fewer columns."""
    variants = results.backbones[backbone].variants
    cells = {(v.target, name): _class_cell(v, name, lost, fewer_kept)
             for v, lost, fewer_kept in ((v, lost_classes(v), fewer_kept_classes(v)) for v in variants)
             for name in results.labels}
    classes = [(name, f"{name} ({variants[0].per_class[name].support})") for name in results.labels]
    if len(variants) > len(classes):
        return ["Variant"] + [title for _, title in classes], \
            [[v.target] + [cells[v.target, name] for name, _ in classes] for v in variants]
    return ["Class"] + [v.target for v in variants], \
        [[title] + [cells[v.target, name] for v in variants] for name, title in classes]


def class_table(results: Run, backbone: str, markdown: bool = False) -> str:
    return (markdown_table if markdown else plain_table)(*class_cells(results, backbone))


CLASS_NOTE = ("Recall per class (its test photos) [95% Wilson CI]; kept: the share of them answered as one of the "
              "classes rather than \"none of these\" [95% Wilson CI]; LOST w/l after either: the variant lost it "
              "against its float model beyond chance (photos won/lost; one-sided exact test, Holm-corrected for the "
              "number of classes).")


def combined_cells(results: Run) -> tuple[list[str], list[list[str]]]:
    """Variants as rows, one column group per backbone: accuracy (loss), mean latency, size."""
    names = list(results.backbones)
    header = ["Variant"] + [f"{n} {c}" for n in names for c in ("acc (loss)", "ms", "MB")]
    variants = list(dict.fromkeys(v.target for n in names for v in results.backbones[n].variants))
    rows = []
    for variant in variants:
        row = [variant]
        for n in names:
            v = results.backbones[n].find(variant)
            row += ([f"{v.accuracy * 100:.1f}% ({v.loss:.3f})", f"{v.latency.mean_ms:.1f}", f"{v.size_mb:.1f}"]
                    if v else ["-", "-", "-"])
        rows.append(row)
    return header, rows


def combined_table(results: Run, markdown: bool = False) -> str:
    return (markdown_table if markdown else plain_table)(*combined_cells(results))


FIDELITY_NOTE = ("Top-1 agreement with the float model [95% CI] and the mean total-variation distance (TV) of the "
                 "output probabilities, by the float model's confidence (its max probability).")


def fidelity_titles(results: Run) -> list[tuple[str, str]]:
    """The image sets fidelity is measured on: (name in Fidelity.sets(), what to call it)."""
    return [("test", f"the {results.split.test} test images"), ("unlabelled", "the unlabelled photos")]


def _confidence_group(row: FidelityRow) -> str:
    low, high = row.reference_max_prob_from, row.reference_max_prob_below
    if low is None and high is None:
        return "all images"
    if low is None:
        return f"float model unsure (< {high:g})"
    return f"confident (≥ {low:g})" if high is None else f"{low:g} to {high:g}"


def fidelity_cells(backbone: Backbone, images: str) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of the fidelity table on one image set ('test', 'unlabelled'); None if not measured."""
    measured = {v.target: v.fidelity.sets()[images] for v in backbone.shippable
                if v.fidelity and images in v.fidelity.sets()}
    if not measured:
        return None
    header = ["Variant"] + [_confidence_group(r) for r in next(iter(measured.values()))]
    return header, [[variant] + ["-" if r.agreement is None else
                                 f"{r.agreement * 100:.1f}% [{r.agreement_low * 100:.0f}–"
                                 f"{r.agreement_high * 100:.0f}] of {r.n}, TV {r.mean_total_variation:.3f}"
                                 for r in rows] for variant, rows in measured.items()]


def _class_gate_note(rejection, labels: list[str]) -> str:
    """Each class's kept share as the gate was fitted (out of sample), with how sure it is, and the classes
    with too few photos for a gate of their own."""
    if not rejection.classes:
        return ""
    estimates = "; ".join(f"{label} {gate.kept_estimate:.0%} (its own {gate.kept} of {gate.photos}: "
                          f"{share(gate.kept / gate.photos, gate.kept_interval)})" if gate.photos else
                          f"{label} {gate.kept_estimate:.0%} (no photos of its own)"
                          for label, gate in zip(labels, rejection.classes))
    pooled = [labels[c] for c in rejection.pooled_classes]
    return (f" Kept at the threshold, estimated out of sample on the training and validation photos, each class's "
            f"share shrunk toward the pooled share (its own share, with its 95% Wilson interval): {estimates}."
            + (f" Too few photos to fit the gate per class for {', '.join(pooled)}: the figures pooled over the "
               "classes stand in; add photos to give them their own." if pooled else ""))


def _class_photos_in_other(rejection) -> str:
    if not rejection.other_class_photos:
        return ""
    return (f" {rejection.other_class_photos} of the --other photos look to the float model like one of the "
            f"classes (score >= {CONFIDENT:g}): any that do show one taught the gate to reject its class; remove "
            "them from the folder.")


def rejection_note(results: Run, backbone: str) -> str | None:
    """How one backbone's files say "none of these", how it was chosen and what it was measured on."""
    rejection = results.backbones[backbone].rejection
    if rejection is None:
        return None
    calibration = ("" if rejection.ece_before is None else
                   f" Probabilities calibrated by temperature T = {rejection.temperature:.2f}: expected calibration "
                   f"error on the test images {rejection.ece_before:.3f} before, {rejection.ece_after:.3f} after.")
    measured = (f" Rejection measured on {results.other.test} held-out --other photos (the other "
                f"{results.other.calibration} fitted it)." + _class_photos_in_other(rejection) if results.other else
                " Rejection was NOT measured against photos of other things: pass --other DIR with photos of "
                "none of the classes to fit and measure it.")
    return (f"\"None of these\": a photo whose top score is below {rejection.threshold:.3f} shows none of the "
            f"{len(results.labels)} classes ({rejection.chosen}; fitted on {rejection.calibrated_on}; it is in every file's metadata, so MediaPipe Tasks applies it)."
            + measured + calibration + _class_gate_note(rejection, results.labels) + " Balanced kept: the mean over the classes of the share of their test photos "
            "kept (each class's is in the per-class table); balanced answered right: the mean over the classes of "
            "the share kept and answered right, a photo said to be \"none of these\" counting as a miss (intervals "
            "as balanced accuracy's).")


def rejection_cells(results: Run, backbone: str) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of one backbone's "none of these" table; None for results without it."""
    b = results.backbones[backbone]
    if b.rejection is None:
        return None
    header = ["Variant", "Class photos kept [95% CI]", "Balanced kept [95% CI]", "Balanced answered right [95% CI]"]
    if results.other:
        header += ["Other photos rejected [95% CI]", "AUROC", "Won/lost vs float (p)", "Flag"]
    rows = []
    for v in b.variants:
        r = v.rejection
        row = [v.target, f"{percent(r.kept_rate, r.kept_interval)} of {r.photos}",
               *("-" if value is None else percent(value, interval)  # "-": results before schema 6
                 for value, interval in ((r.balanced_kept, r.balanced_kept_interval),
                                         (r.balanced_answered_right, r.balanced_answered_right_interval)))]
        if results.other:
            paired = r.paired
            row += [f"{percent(r.rejected_rate, r.rejected_interval)} of {r.other_photos}", f"{r.auroc:.3f}",
                    "-" if paired is None or not v.shippable else
                    f"{paired.only_variant_right}/{paired.only_reference_right} ({paired.mcnemar_p:.2g})",
                    "loses rejection" if v.shippable and rejection_lost(v, b, results.recommendation.budget
                                                                        if results.recommendation else None) else ""]
        rows.append(row)
    return header, rows


def rejection_table(results: Run, backbone: str, markdown: bool = False) -> str | None:
    cells = rejection_cells(results, backbone)
    return None if cells is None else (markdown_table if markdown else plain_table)(*cells)
