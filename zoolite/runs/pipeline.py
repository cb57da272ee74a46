"""The pipeline: dataset -> model -> variants -> measurements -> report.

:func:`run` scans and splits the dataset into a new run folder (or resumes one), runs each backbone's
stages (:mod:`zoolite.runs.stages`), gives every variant its evidence against the run's most accurate
float model, and writes the reports. Every stage writes its output atomically into the run folder
(:mod:`zoolite.runs.layout`), and a stage whose output is already there is not run again, which is
what ``--resume`` relies on. The run folder is marked complete only at the very end.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from tensorflow import errors as tf_errors

from zoolite import storage
from zoolite.config import RunConfig
from zoolite.dataset.scan import load_label_map, scan_dataset, scan_photos
from zoolite.dataset.split import Split, split_dataset, split_other
from zoolite.dataset.duplicates import Duplicates, find_duplicates
from zoolite.errors import ZooliteError
from zoolite.measure import stats
from zoolite.measure.evidence import BestFloat, with_evidence
from zoolite.measure.rejection import expected_calibration_error
from zoolite.model import suspects as suspect_labels
from zoolite.model.backbones import BackboneSpec, build_feature_extractor, get_backbone, resolve_weights
from zoolite.progress import Progress
from zoolite.report import reporting
from zoolite.results import Backbone, Dataset, Normalisation, OtherPhotos, Run, Skipped, SplitSizes, SuspectLabels, \
    UnlabelledPhotos, is_imbalanced
from zoolite.results.recommend import recommend
from zoolite.runs import provenance, stages
from zoolite.runs.inputs import BackboneRun, PhotoSets
from zoolite.runs.layout import RunLayout
from zoolite.runs.steps import Steps
from zoolite.runs.spares import run_spares
from zoolite.targets.parallel import Spares

log = logging.getLogger(__name__)


def split_sizes(split: Split) -> SplitSizes:
    """The split's sizes, its duplicate groups and label conflicts, for the results."""
    return SplitSizes(split.seed, len(split.train), len(split.val), len(split.test),
                      duplicate_groups=None if split.groups is None else len(split.groups),
                      duplicate_photos=None if split.groups is None else sum(map(len, split.groups)),
                      conflicts=None if split.groups is None else [path for path, _ in split.conflicts],
                      **_group_sizes(split))


def _group_sizes(split: Split) -> dict:
    """The --group-by fields of SplitSizes (none without it)."""
    if split.group_by is None:
        return {}
    counts = split.group_counts()
    return {"group_by": split.group_by, "user_groups": [counts[name][0] for name in ("train", "val", "test")],
            "user_group_photos": [counts[name][1] for name in ("train", "val", "test")],
            "test_groups": split.test_groups()}


def _describe_dataset(dataset) -> Dataset:
    return Dataset(root=str(dataset.root), class_dirs=dataset.class_dirs, labels=dataset.labels,
                   counts=dataset.counts(), images=len(dataset.files),
                   skipped=[Skipped(file, reason) for file, reason in dataset.skipped])


# Folders with at least this many photos show a progress bar while their duplicates are found.
DUPLICATES_BAR_FROM = 500


def _find_duplicates(config: RunConfig, dataset, progress: Progress) -> Duplicates | None:
    """The dataset's groups of copies (None with --keep-duplicates, said in one warning line)."""
    if config.keep_duplicates:
        log.warning("--keep-duplicates: copies of one photo may be in train and test alike, so the test figures "
                    "may measure memory rather than recognition")
        return None
    total = 2 * len(dataset.files) if len(dataset.files) >= DUPLICATES_BAR_FROM else 0
    with progress.bar("duplicates", total, "img") as advance:
        duplicates = find_duplicates(dataset.root, dataset.files, advance)
    if duplicates.groups:
        log.info("%d group(s) of copies of one photo (%d photos), each kept within one split",
                 len(duplicates.groups), duplicates.photos)
    conflicts = duplicates.conflict_photos()
    if conflicts:
        log.warning("%d photo(s) are copies in more than one class folder (label conflicts), left out of the split: "
                    "%s", len(conflicts), ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else ""))
    return duplicates


def _scan_and_split(config: RunConfig, timings: dict, progress: Progress | None = None) -> tuple[Dataset, Split]:
    start = time.perf_counter()
    dataset = scan_dataset(config.data, load_label_map(config.labels))
    timings["scan"] = round(time.perf_counter() - start, 3)
    for file, reason in dataset.skipped:
        log.warning("skipped %s: %s", Path(config.data, file), reason)
    start = time.perf_counter()
    duplicates = _find_duplicates(config, dataset, progress or Progress(False))
    timings["duplicates"] = round(time.perf_counter() - start, 3)
    split = split_dataset(dataset, config.split, config.seed, duplicates, config.group_by)
    if config.group_by is not None:
        counts = split.group_counts()
        log.info("--group-by %s: %d group(s) (%d photos; the others are each their own group), in train/val/test: "
                 "%s groups; the test figures estimate photos of a new group", config.group_by,
                 len(split.user_groups or {}), sum(map(len, (split.user_groups or {}).values())),
                 "/".join(str(counts[name][0]) for name in ("train", "val", "test")))
    if config.other is not None:
        photos, _ = _scan_photos(config.other, "--other")
        if len(photos) < 2:
            raise ZooliteError(f"--other {config.other}: only 1 usable photo; at least 2 are needed (half fit the "
                               "rejection, half measure it); add photos of things that are none of the classes")
        split.other = split_other(str(Path(config.other)), photos, config.seed)
    return _describe_dataset(dataset), split


def _scan_photos(folder: str, option: str) -> tuple[list[str], list[Skipped]]:
    """The photos of a folder option, ``--unlabelled`` or ``--other`` (checked before any work), and what
    in it was skipped."""
    photos, skipped = scan_photos(folder, option)
    for file, reason in skipped:
        log.warning("skipped %s: %s", Path(folder, file), reason)
    return photos, [Skipped(file, reason) for file, reason in skipped]


def _save_split(layout: RunLayout, dataset: Dataset, split: Split) -> None:
    storage.write_json(layout.dataset, asdict(dataset))
    storage.write_json(layout.split, split.to_json())


def _new_run_dir(config: RunConfig, dataset: Dataset, split: Split) -> RunLayout:
    for earlier in storage.incomplete_runs(config.runs_dir):
        log.warning("%s did not finish (unless it is still running); finish it with "
                    "`zoolite run --resume %s`", earlier, earlier)
    name = config.backbones[0] if len(config.backbones) == 1 else f"{len(config.backbones)}-backbones"
    layout = RunLayout(storage.new_run_dir(config.runs_dir, name))
    log.info("run folder: %s", layout.root)
    config.save(layout.config)
    _save_split(layout, dataset, split)
    return layout


def _resumable(layout: RunLayout) -> RunConfig:
    if not layout.config.is_file():
        raise ZooliteError(f"{layout.root}: not a zoolite run folder (no config.json); pass a folder under runs/")
    if layout.is_complete():
        raise ZooliteError(f"{layout.root}: this run is already complete; nothing to resume")
    config = RunConfig.load(layout.config)
    storage.remove_partial_files(layout.root)
    return config


def _resumed_split(layout: RunLayout, config: RunConfig, timings: dict,
                   progress: Progress | None = None) -> tuple[Dataset, Split]:
    """The split the interrupted run saved (made now if it was interrupted before), its images checked."""
    if not layout.split.exists():
        dataset, split = _scan_and_split(config, timings, progress)
        _save_split(layout, dataset, split)
        return dataset, split
    dataset = Dataset.from_json(json.loads(layout.dataset.read_text()))
    split = Split.from_json(json.loads(layout.split.read_text()))
    root = Path(dataset.root)
    missing = [p for name in ("train", "val", "test") for p, _ in split.subset(name) if not (root / p).is_file()]
    if missing:
        raise ZooliteError(f"{root / missing[0]}: an image of this run's split is gone ({len(missing)} "
                           "missing); put the data folder back to resume, or start a new run")
    return dataset, split


def _image_read_error(error: tf_errors.OpError, layout: RunLayout) -> ZooliteError:
    """One line for an image that failed to decode mid-run (a file vanished or changed during the run)."""
    # TensorFlow wraps the Python error of the decoding function; its last line names the file.
    causes = [line.strip() for line in error.message.splitlines() if re.match(r"\s*\w+(Error|Exception): ", line)]
    return ZooliteError(f"reading an image failed mid-run ({(causes or [error.message])[-1][:200]}); if the "
                        f"data folder changed, restore it and finish with `zoolite run --resume {layout.root}`")


@dataclass
class _Measured:
    """One backbone after its stages."""

    run: BackboneRun
    trained: stages.Trained
    gated: stages.Gated
    files: list[stages.MeasuredFile]  # the reference first

    @property
    def reference(self) -> stages.MeasuredFile:
        return self.files[0]


def _run_stages(run: BackboneRun, spares: Spares, meanwhile: Callable[[], object]) -> _Measured:
    trained = stages.train(run)
    gated = stages.gate(run, trained)
    return _Measured(run, trained, gated,
                     stages.measure(run, trained, stages.convert(run, gated, spares, meanwhile)))


def _best_float(measured: list[_Measured], labels: np.ndarray) -> BestFloat:
    """The run's most accurate float model (balanced accuracy on an imbalanced test split): the budget's and
    the paired evidence's reference."""
    balanced = is_imbalanced(np.bincount(labels).tolist())
    best = max((m.reference for m in measured), key=lambda file: file.variant.judged_accuracy(balanced))
    return BestFloat(stats.answers(best.outputs.test) == labels, best.variant.balanced_accuracy)


def _backbone_results(measured: _Measured, best: BestFloat, config: RunConfig) -> Backbone:
    """One backbone's results: its variants with their evidence, and its gate with the calibration measured
    on the test images (the reference's scores, renormalised, are the calibrated probabilities; raised to
    the power T they are the probabilities before the temperature)."""
    run, reference, fitted = measured.run, measured.reference, measured.gated.rejection
    labels, spec = run.photos.test.labels, run.spec
    calibrated = reference.outputs.test / reference.outputs.test.sum(1, keepdims=True)
    gate = replace(fitted, ece_after=expected_calibration_error(calibrated, labels),
                   ece_before=expected_calibration_error(calibrated ** fitted.temperature, labels))
    variants = [with_evidence(file.variant, file.outputs, reference.outputs, best, labels, run.class_names,
                              gate.threshold, reference.variant.params) for file in measured.files]
    return Backbone(name=spec.name, input_size=spec.input_size, feature_dim=spec.feature_dim,
                    weights=provenance.weights_caption(spec, run.weights, config.train, measured.trained.training),
                    weights_source=spec.weights_source, pretrained=spec.pretrained, training=measured.trained.training,
                    timings=run.steps.timings, variants=variants, rejection=gate,
                    features_per_second=run.features_per_second(),
                    normalisation=Normalisation.of(spec.scale, spec.offset))


@dataclass
class Prepared:
    """A run ready for its stages: its options and folder, the dataset and its split, and each backbone's
    spec, weights and feature extractor."""

    config: RunConfig
    layout: RunLayout
    dataset: Dataset
    split: Split
    unlabelled: UnlabelledPhotos | None  # the --unlabelled folder: its photos counted, and what in it was skipped
    unlabelled_photos: list[Path]
    specs: list[BackboneSpec]
    weights: dict[str, str | None]
    extractors: dict[str, object]  # backbone -> its Keras feature extractor

    def backbone_run(self, name: str, progress: Progress | None = None,
                     after_step: Callable[[str], None] | None = None) -> BackboneRun:
        """What the stages of the backbone ``name`` read (:mod:`zoolite.runs.stages`)."""
        spec = next((spec for spec in self.specs if spec.name == name), None)
        if spec is None:
            raise ZooliteError(f"backbone {name!r}: not in this run; choose from: "
                               f"{', '.join(spec.name for spec in self.specs)}")
        run = BackboneRun(spec, self.weights[name], self.extractors[name], self.config, self.dataset.labels,
                          PhotoSets.of(self.split, Path(self.dataset.root), self.unlabelled_photos),
                          self.layout.backbone(name).make(), Steps(progress or Progress(False), {}, f"{name}: ",
                                                                   after_step))
        storage.write_text(run.layout.labels, "\n".join(self.dataset.labels) + "\n")
        return run


def prepare(config: RunConfig | None = None, resume: str | Path | None = None, progress: Progress | None = None,
            timings: dict[str, float] | None = None) -> Prepared:
    """A new run folder with the dataset scanned and split (or the folder ``resume`` names, with its split),
    and every backbone's weights and extractor. Unusable data or weights stop a new run before its folder is
    made. ``timings`` gets the seconds of the scan and of the duplicates search."""
    timings = {} if timings is None else timings
    progress = progress or Progress(False)
    if resume is None:
        config = config or RunConfig()
        dataset, split = _scan_and_split(config, timings, progress)
    else:
        layout = RunLayout(Path(resume))
        config = _resumable(layout)
    unlabelled, unlabelled_photos = None, []
    if config.unlabelled:
        photos, skipped = _scan_photos(config.unlabelled, "--unlabelled")
        unlabelled = UnlabelledPhotos(str(Path(config.unlabelled)), len(photos), skipped)
        unlabelled_photos = [Path(config.unlabelled) / photo for photo in photos]
    # Weights next: a backbone whose weights cannot be had stops the run before any work.
    specs = [get_backbone(name) for name in config.backbones]
    unused = config.train.unused_epoch_options(all(spec.pretrained for spec in specs))
    if unused and resume is None:
        log.warning("%s: nothing in this run trains by epochs (its head is a logistic regression, --head logistic), "
                    "so they change nothing; pass --head recipe to train the head by epochs", ", ".join(unused))
    weights = {spec.name: resolve_weights(spec, config.weights) for spec in specs}
    extractors = {spec.name: build_feature_extractor(spec, weights[spec.name]) for spec in specs}
    if resume is None:
        layout = _new_run_dir(config, dataset, split)
    else:
        dataset, split = _resumed_split(layout, config, timings, progress)
    storage.write_text(layout.labels, "\n".join(dataset.labels) + "\n")
    return Prepared(config, layout, dataset, split, unlabelled, unlabelled_photos, specs, weights, extractors)


def _measure_backbones(prepared: Prepared, progress: Progress, after_step, spares: Spares,
                       meanwhile: Callable[[], object], during: BackboneSpec | None) -> dict[str, Backbone]:
    """Every backbone's results, each variant with its paired evidence against the run's best float model;
    ``meanwhile()`` called once this process has converted its share of ``during``'s targets, before it waits for
    the spare processes."""
    measured = [_run_stages(prepared.backbone_run(spec.name, progress, after_step), spares,
                            meanwhile if spec is during else lambda: None) for spec in prepared.specs]
    best = _best_float(measured, measured[0].run.photos.test.labels)
    return {m.run.spec.name: _backbone_results(m, best, prepared.config) for m in measured}


def _suspect_labels(layout: RunLayout, dataset: Dataset, split: Split, spec: BackboneSpec | None, timings: dict,
                    seed: int) -> SuspectLabels | None:
    """The suspect labels among the train and validation photos, from the frozen features the run saved for
    ``spec``, its first pretrained backbone (None: none saved them, or fewer than two classes of two photos)."""
    saved = [layout.backbone(spec.name).features(subset) for subset in ("train", "val")] if spec else []
    files = split.train + split.val
    chosen = suspect_labels.suspect_candidates(files)
    if not saved or not all(path.exists() for path in saved) or not chosen:
        return None
    start = time.perf_counter()
    found, named = suspect_labels.find_suspects(np.concatenate([np.load(path) for path in saved])[chosen],
                                       [files[i] for i in chosen], dataset.class_dirs, seed)
    timings["suspect_labels"] = round(time.perf_counter() - start, 3)
    return SuspectLabels(spec.name, len(chosen), found, named)


def run(config: RunConfig | None = None, resume: str | Path | None = None, progress: Progress | None = None,
        command: str | None = None, after_stage: Callable[[str], None] | None = None,
        spares: Spares | None = None) -> Run:
    """Run the whole pipeline (or finish the one in ``resume``); return its :class:`~zoolite.results.Run`.

    The results are also written into a new run folder, ``Run.run_dir``. Unusable data or
    weights stop a new run before its folder is made. On Ctrl-C the KeyboardInterrupt
    carries the folder as ``run_dir``. ``after_stage(name)`` is called after each timed step.
    ``spares``: those of :func:`zoolite.runs.spares.run_spares`, started earlier (by default, now).
    """
    with contextlib.ExitStack() as stack:
        return _run(config, resume, progress or Progress(), command, after_stage,
                    spares or stack.enter_context(run_spares(config, resume)))


def _run(config: RunConfig | None, resume: str | Path | None, progress: Progress, command: str | None,
         after_stage: Callable[[str], None] | None, spares: Spares) -> Run:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    prepared = prepare(config, resume, progress, timings)
    config, layout, split = prepared.config, prepared.layout, prepared.split
    pretrained = next((spec for spec in prepared.specs if spec.pretrained), None)
    # Found while spare processes convert that backbone's targets, from the features its training saved.
    suspects = functools.cache(lambda: _suspect_labels(layout, prepared.dataset, split, pretrained, timings,
                                                       config.seed))
    try:
        backbones = _measure_backbones(prepared, progress, after_stage, spares, suspects, pretrained)
        timings["total"] = round(time.perf_counter() - started, 3)
        results = Run(run_dir=str(layout.root), machine=provenance.machine_info(command, config.runtimes),
                      config=config, dataset=prepared.dataset, split=split_sizes(split), timings=timings,
                      backbones=backbones,
                      unlabelled=prepared.unlabelled,
                      other=OtherPhotos(split.other.root, len(split.other.calibration), len(split.other.test))
                      if split.other else None,
                      suspect_labels=suspects())
        results.recommendation = recommend(results, config.budget)
        reporting.write_reports(results)
        storage.mark_complete(layout.root)
        return results
    except KeyboardInterrupt as interrupt:
        interrupt.run_dir = layout.root
        raise
    except tf_errors.OpError as e:
        raise _image_read_error(e, layout) from None


__all__ = ["Prepared", "RunConfig", "prepare", "run"]
