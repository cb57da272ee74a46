"""The pipeline: dataset -> model -> variants -> measurements -> report, one stage after another.

Every stage writes its output atomically into the run folder (:mod:`zoolite.runs.layout`),
and a stage whose output is already there is not run again, which is what ``--resume``
relies on; :class:`Stages` holds that plumbing, with the timing and progress bars. The
run folder is marked complete only at the very end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from tensorflow import errors as tf_errors

from zoolite.apps import check

from zoolite.model import features, rejection

from zoolite.runs import provenance

from zoolite.report import reporting

from zoolite.measure import stats

from zoolite import storage
from zoolite.model.augmentation import Views, random_views, view_maker
from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights
from zoolite.config import RunConfig
from zoolite.dataset.data import Split, cache_images, even_sample, load_label_map, scan_dataset, scan_photos, split_dataset, \
    split_other
from zoolite.dataset.duplicates import Duplicates, find_duplicates
from zoolite.errors import ZooliteError
from zoolite.measure.evaluation import compare_with_reference, measure_variant, predict_all
from zoolite.runs.layout import BackboneLayout, RunLayout
from zoolite.progress import Progress
from zoolite.results.recommend import recommend
from zoolite.results import Backbone, BalancedComparison, Dataset, OtherPhotos, Rejection, Run, Skipped, SplitSizes, \
    SuspectLabels, Training, TrainingStage, UnlabelledPhotos, Variant, best_float_backbone, is_imbalanced
from zoolite.targets import REFERENCE, ConversionSource, Target, chosen_targets, open_model
from zoolite.targets.keras import load_keras_model
from zoolite.model.training import assemble, build_head, class_weights, fit, labelled_batches, one_hot, set_base_trainable

log = logging.getLogger(__name__)


class Stages:
    """What every stage shares: skip what is already on disk, time the rest, show progress, and
    tell ``after_stage`` (if given) the name of each timed step once it has finished."""

    def __init__(self, progress: Progress, timings: dict[str, float], prefix: str = "",
                 after_stage: Callable[[str], None] | None = None):
        self.progress, self.timings, self.prefix, self.after_stage = progress, timings, prefix, after_stage

    @contextlib.contextmanager
    def step(self, name: str, total: int = 0, unit: str = "img", title: str | None = None):
        """Time the block as ``name`` with a progress bar of ``total`` units (none if 0); yields
        the bar's advance callable."""
        start = time.perf_counter()
        with self.progress.bar(f"{self.prefix}{title or name.replace('_', ' ')}", total, unit) as advance:
            yield advance
        self.timings[name] = round(time.perf_counter() - start, 3)
        if self.after_stage:
            self.after_stage(name)

    def produce(self, name: str, outputs: list[Path], make: Callable, load: Callable, total: int = 0,
                unit: str = "img", title: str | None = None):
        """``load()`` the stage's ``outputs`` if all exist; else ``make(advance)`` them in a timed step."""
        if all(path.exists() for path in outputs):
            return load()
        with self.step(name, total, unit, title) as advance:
            return make(advance)


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _load_npy(path: Path) -> Callable[[], np.ndarray]:
    return lambda: np.load(path, mmap_mode="r")


class _BackboneStages:
    """The model, variants and measurements stages of one backbone."""

    def __init__(self, spec, weights: str | None, config: RunConfig, split: Split, root: Path, labels: list[str],
                 layout: BackboneLayout, stages: Stages, unlabelled: list[Path]):
        self.spec, self.weights, self.config, self.split, self.root, self.labels = \
            spec, weights, config, split, root, labels
        self.unlabelled = unlabelled  # photos of --unlabelled, if given
        other = split.other
        self.other = {half: [Path(other.root) / p for p in getattr(other, half)] if other else []
                      for half in ("calibration", "test")}  # photos of --other
        self.layout, self.stages = layout.make(), stages
        self.n_classes = len(labels)
        self.class_weights = class_weights(self._labels("train"), self.n_classes, config.train.class_weights)
        self.extracted: dict[str, int] = {}  # features computed by this attempt: name -> photos
        self._backbones: dict[bool, object] = {}  # trained or not -> its fast features runtime

    def _paths(self, subset: str) -> list[Path]:
        return [self.root / p for p, _ in self.split.subset(subset)]

    def _labels(self, subset: str) -> np.ndarray:
        return np.array([label for _, label in self.split.subset(subset)], dtype=int)

    def _images(self, name: str, paths: list[Path]) -> np.ndarray:
        out = self.layout.images(name)
        return self.stages.produce(f"decode_{name}", [out], lambda step: cache_images(paths, self.spec.input_size,
                                                                                      out, step),
                                   _load_npy(out), len(paths), title=f"decoding {name} images")

    def _representative(self) -> np.ndarray:
        """The integer modes' calibration sample: training photos drawn evenly over the classes, and
        scrambled and plain ones that show none of them (:func:`zoolite.model.rejection.calibration_sample`)."""
        paths = self._paths("train")
        drawn = even_sample(self._labels("train"), self.config.representative_images, self.config.seed)
        return rejection.calibration_sample(self._images("representative", [paths[i] for i in drawn]),
                                            self.config.seed)

    def _backbone(self, extractor, trained: bool):
        """The fast features runtime of ``extractor`` (:mod:`zoolite.model.features`), converted once: a frozen
        backbone once per machine (in the user cache, like its weights), a trained one once per run."""
        if trained not in self._backbones:
            folder = self.layout.cache if trained else storage.cache_dir() / "backbones"
            with self.stages.step(f"convert_{'trained_' if trained else ''}backbone", 1, "model",
                                  title="converting the backbone for fast features (once)") as step:
                self._backbones[trained] = features.open_backbone(features.backbone_file(extractor, folder),
                                                                  self.config.threads)
                step(1)
        return self._backbones[trained]

    def _features(self, extractor, name: str, paths: list[Path] | None = None, trained: bool = False,
                  view=None) -> np.ndarray:
        """Features of a split's images (``name`` 'train' or 'val'), or of ``paths`` cached as ``name``;
        ``trained``: of the backbone as training left it; ``view``: of the views it makes of the photos."""
        out, paths = self.layout.features(name), self._paths(name) if paths is None else paths
        if out.exists():
            return _load_npy(out)()
        if not trained and view is None and self.spec.pretrained and self.weights == "imagenet":
            return self._cached_features(extractor, name, paths, out)
        runtime = self._backbone(extractor, trained)  # converted (and timed) outside the features step
        computed = self.stages.produce(
            f"features_{name}", [out],
            lambda step: features.extract(runtime, paths, self.spec.input_size, out, step, view),
            _load_npy(out), len(paths), title=f"features of {name.replace('_', ' ')} images")
        self.extracted[name] = len(paths)
        return computed

    def _cached_features(self, extractor, name: str, paths: list[Path], out: Path) -> np.ndarray:
        """The frozen backbone's features of ``paths`` through the per-photo cache that ``zoolite check``
        fills (:func:`zoolite.model.features.cached_features`): those it holds are copied, the others computed
        (the backbone converted only then) and added to it, so a check before or after a run costs little."""
        cache = features.features_cache(self.spec.name)
        with self.stages.step(f"hash_{name}", title=f"hashing {name.replace('_', ' ')} images"):
            hashes, missing = features.missing_from_cache(paths, cache)
        runtime = self._backbone(extractor, False) if missing else None
        computed = self.stages.produce(
            f"features_{name}", [out],
            lambda step: features.cached_features(paths, hashes, cache, runtime, self.spec.input_size, out, step),
            _load_npy(out), len(paths), title=f"features of {name.replace('_', ' ')} images"
            + ("" if missing else " (cached by zoolite check)"))
        if missing:
            self.extracted[name] = len(missing)
        return computed

    def features_per_second(self) -> float | None:
        """Photos per second of the features steps this attempt ran (None if it ran none)."""
        seconds = sum(self.stages.timings[f"features_{name}"] for name in self.extracted)
        return sum(self.extracted.values()) / seconds if seconds else None

    def _fit(self, model, train, val, stage: str, learning_rate=None) -> TrainingStage:
        def fit_logging_to(log_dir):
            return fit(model, train, val, self.config.train, learning_rate=learning_rate, log_dir=log_dir,
                       verbose=2 if self.stages.progress.enabled else 0, weights=self.class_weights)

        if not self.config.tensorboard:
            return fit_logging_to(None)
        # TensorBoard appends to its event files while training: they get their final name at the end.
        with storage.atomic_dir(self.layout.tensorboard(stage)) as log_dir:
            return fit_logging_to(log_dir)

    def _views(self, extractor) -> list[np.ndarray]:
        """The features of ``--augment-views`` augmented views of every training photo (none without
        augmentation), each view computed once and cached, so an interrupted run resumes view by view."""
        train = self.config.train
        if train.augment == "none":
            return []
        return [self._features(extractor, f"train_{train.augment}{k}", self._paths("train"),
                               view=view_maker(train.augment, seed=self.config.seed * 1000 + k))
                for k in range(1, train.augment_views + 1)]

    def _image_data(self, subset: str, shuffle: bool):
        """Training photos augmented (``--augment``) in a reshuffled order, or validation photos with
        their class weights."""
        train = self.config.train
        return labelled_batches(self.split.subset(subset), self.root, self.spec.input_size, self.n_classes,
                                train.batch_size, self.config.seed if shuffle else None,
                                None if shuffle else self.class_weights,
                                random_views(train.augment) if shuffle else None)

    def _train_head(self, extractor, head):
        """The head trained on the frozen base's cached features (and on those of augmented views)."""
        train_features, val_features = (self._features(extractor, subset) for subset in ("train", "val"))
        views = self._views(extractor)
        train = one_hot(self._labels("train"), self.n_classes)
        with self.stages.step("training"):
            return self._fit(head, Views([train_features, *views], train, self.config.train.batch_size,
                                         self.config.seed) if views else (np.asarray(train_features), train),
                             (np.asarray(val_features), one_hot(self._labels("val"), self.n_classes)), "head")

    def train(self, extractor) -> tuple:
        """The trained Keras classifier and its history (loaded when a previous attempt saved them)."""
        model_path, history_path = self.layout.classifier, self.layout.history
        if model_path.exists() and history_path.exists():
            return load_keras_model(model_path), Training.from_json(json.loads(history_path.read_text()))
        _seed_everything(self.config.seed)
        train_cfg = self.config.train
        head = build_head(self.spec.feature_dim, self.n_classes, train_cfg.dropout)
        if self.spec.pretrained:
            training = Training(self._train_head(extractor, head))
            model = assemble(extractor, head, name=f"{self.spec.name}_classifier")
        else:  # from scratch: the whole network learns, so it must see images
            set_base_trainable(extractor, None)
            model = assemble(extractor, head, name=f"{self.spec.name}_classifier")
            with self.stages.step("training"):
                training = Training(self._fit(model, self._image_data("train", True),
                                              self._image_data("val", False), "scratch"))
        if train_cfg.fine_tune_layers and self.spec.pretrained:
            set_base_trainable(extractor, train_cfg.fine_tune_layers)
            with self.stages.step("fine_tuning"):
                training.fine_tune = self._fit(model, self._image_data("train", True), self._image_data("val", False),
                                               "fine_tune", learning_rate=train_cfg.fine_tune_learning_rate)
            set_base_trainable(extractor, 0)
        storage.atomic_save_model(model, model_path)
        storage.write_json(history_path, asdict(training))
        return model, training

    def reject(self, classifier, training: Training) -> tuple:
        """The reference model: ``classifier`` with "none of these" folded in (:mod:`zoolite.model.rejection`),
        and how it rejects (loaded when a previous attempt saved them)."""
        model_path, rejection_path = self.layout.model(REFERENCE), self.layout.rejection
        if model_path.exists() and rejection_path.exists():
            return load_keras_model(model_path), Rejection.from_json(json.loads(rejection_path.read_text()))
        extractor = classifier.layers[-2]
        # The cached features are the frozen base's; a base that learned gives other features.
        tuned = training.fine_tune is not None or not self.spec.pretrained
        subsets = {subset: self._features(extractor, f"trained_{subset}" if tuned else subset, self._paths(subset), tuned)
                   for subset in ("train", "val")}
        other = {half: self._features(extractor, f"other_{half}", paths, tuned)
                 for half, paths in self.other.items() if paths}
        gate_features = np.concatenate([subsets["train"], subsets["val"]])
        gate_labels = np.concatenate([self._labels("train"), self._labels("val")])
        with self.stages.step("rejection"):
            # The ImageNet classifier reads the ImageNet weights' features: not those of a base that learned.
            imagenet = None if tuned or self.weights != "imagenet" or self.spec.imagenet_classifier is None \
                else rejection.ImageNetView(*self.spec.imagenet_classifier())

            def fit(other_features):
                return rejection.fit(classifier, gate_features, gate_labels, subsets["val"], self._labels("val"),
                                     other_features, self.config.keep_rate, self.config.seed, imagenet)

            prototypes, fitted = fit(None)
            if other:  # photos of the classes in --other would also bend the gate fitted on them: judge without
                self._warn_of_class_photos(rejection.confident_class_photos(
                    classifier, prototypes, fitted, np.concatenate(list(other.values()))))
                prototypes, fitted = fit(other["calibration"])
            self._warn_of_pooled_classes(fitted)
            model = rejection.with_rejection(classifier, prototypes, fitted)
        storage.atomic_save_model(model, model_path)
        storage.write_json(rejection_path, asdict(fitted))
        return model, fitted

    def _warn_of_pooled_classes(self, fitted: Rejection) -> None:
        if fitted.pooled_classes:
            log.warning("too few photos to fit \"none of these\" per class for %s (fewer than %d training and "
                        "validation photos): their gate uses the figures pooled over all classes; add photos to "
                        "give them their own", ", ".join(self.labels[c] for c in fitted.pooled_classes),
                        rejection.MIN_CLASS_PHOTOS)

    def _warn_of_class_photos(self, confident: int) -> None:
        if confident:
            other = self.split.other
            log.warning("--other %s: the float model is confident (score >= %g) that %d of its %d photos show one "
                        "of the classes; any that do show one teach the model to reject its class: remove them from "
                        "the folder", other.root, stats.CONFIDENT, confident,
                        len(other.calibration) + len(other.test))

    def convert(self, model, rejected: Rejection) -> dict[Target, Path]:
        """Every chosen target of the run, converted unless already written, each with the threshold of
        ``rejected`` in its metadata; target -> file."""
        files = {REFERENCE: self.layout.model(REFERENCE)}
        by_family: dict = {}
        for target in chosen_targets(self.config.runtimes, self.config.modes):
            files[target] = self.layout.model(target)
            if not all(file.exists() for file in target.family.files(files[target])):
                by_family.setdefault(target.family, []).append(target)
        about = provenance.model_about(self.spec, self.weights, self.labels, self.root, rejected)
        with ConversionSource(model, self.layout.cache, self._representative, self.stages.step, about) as source:
            for family, missing in by_family.items():
                converter = family.implementation().Converter(source)
                for target in missing:
                    converter.convert(target, files[target])
        return files

    def _measure(self, target: Target, path: Path, images: np.ndarray, labels: np.ndarray,
                 unlabelled: np.ndarray | None, other: np.ndarray | None) -> tuple:
        """(the variant, and its probabilities on the test images, the unlabelled photos and the
        held-out other photos; None for a set not given)."""
        outputs = {"test": self.layout.probabilities(target.name)}
        if unlabelled is not None:
            outputs["unlabelled"] = self.layout.unlabelled_probabilities(target.name)
        if other is not None:
            outputs["other"] = self.layout.other_probabilities(target.name)
        measurement = self.layout.measurement(target.name)

        def make(step):
            runtime, load_seconds = open_model(path, self.config.threads)
            latency = self.config.latency
            with self.stages.progress.bar(f"{self.spec.name}: timing {target.name} (up to {latency.runs} calls "
                                          f"or {latency.max_seconds:g} s)", latency.runs, unit="call") as timed:
                variant, probs = measure_variant(
                    runtime, target, path, images, labels, self.n_classes, latency, progress=step, timing_progress=timed,
                    recorded_as=path.relative_to(self.layout.root.parent).as_posix(), load_ms=load_seconds * 1000.0)
            for name, photos in (("unlabelled", unlabelled), ("other", other)):
                if photos is not None:
                    storage.write_npy(outputs[name], predict_all(runtime, photos, progress=step))
            storage.write_npy(outputs["test"], probs)
            storage.write_json(measurement, asdict(variant))
            return load()

        def load():
            variant = Variant.from_json(json.loads(measurement.read_text()))
            return variant, {name: np.load(path) for name, path in outputs.items()}

        return self.stages.produce(f"evaluate_{target.name}", [measurement, *outputs.values()], make, load,
                                   len(images) + sum(len(p) for p in (unlabelled, other) if p is not None),
                                   title=f"evaluating {target.name}")

    def evaluate(self, files: dict[Target, Path], rejected: Rejection) -> tuple[list[Variant], dict[str, np.ndarray]]:
        """Measure every variant with the one routine (:func:`~zoolite.measure.evaluation.measure_variant`), the reference
        first; compare each with the reference on the same images (labels needed or not), and measure its
        "none of these" at the shipped threshold, overall and per class. Returns the variants and which test
        images each got right."""
        images = self._images("test", self._paths("test"))
        unlabelled = self._images("unlabelled", self.unlabelled) if self.unlabelled else None
        other = self._images("other_test", self.other["test"]) if self.other["test"] else None
        labels = self._labels("test")
        measured = [self._measure(target, path, images, labels, unlabelled, other) for target, path in files.items()]
        reference_variant, reference = next(m for m in measured if m[0].role == "reference")
        # Calibration, measured on the test images: the reference's scores, renormalised, are the calibrated
        # probabilities; raised to the power T they are the probabilities before the temperature.
        calibrated = reference["test"] / reference["test"].sum(1, keepdims=True)
        rejected.ece_after = rejection.expected_calibration_error(calibrated, labels)
        rejected.ece_before = rejection.expected_calibration_error(calibrated ** rejected.temperature, labels)
        for variant, outputs in measured:
            variant.params = reference_variant.params  # every variant holds the same weights, differently stored
            compare_with_reference(variant, outputs, reference, labels, self.labels)
            variant.rejection = rejection.measure(outputs["test"], labels, self.labels, outputs.get("other"),
                                                  rejected.threshold, (reference["test"], reference.get("other")))
        return [variant for variant, _ in measured], \
            {variant.target: outputs["test"].argmax(1) == labels for variant, outputs in measured}


def _compare_with_the_best_float_model(backbones: dict[str, Backbone], correct: dict[tuple[str, str], np.ndarray],
                                       labels: np.ndarray):
    """Each variant's paired evidence against the run's most accurate float model (the budget's
    reference), overall and balanced over the classes: the same test images, so each image counts
    once for both."""
    n_classes = len(next(iter(backbones.values())).reference.per_class)
    per_class = np.bincount(labels, minlength=n_classes)
    best = best_float_backbone(backbones, is_imbalanced(per_class.tolist()))
    reference = correct[best.name, best.reference.target]
    for backbone in backbones.values():
        for variant in backbone.variants:
            mine = correct[backbone.name, variant.target]
            variant.paired = stats.compare_paired(mine, reference)
            won, lost = (np.bincount(labels[a & ~b], minlength=n_classes) for a, b in ((mine, reference),
                                                                                       (reference, mine)))
            variant.balanced_paired = BalancedComparison(
                difference=variant.balanced_accuracy - best.reference.balanced_accuracy,
                loss_p=stats.balanced_loss_p(won, lost, per_class))


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


def _backbone(spec, weights: str | None, extractor, stages: _BackboneStages, config: RunConfig) -> tuple:
    """One backbone trained, converted and measured: (its results, which test images each variant got right)."""
    classifier, training = stages.train(extractor)
    model, rejected = stages.reject(classifier, training)
    variants, right = stages.evaluate(stages.convert(model, rejected), rejected)
    return Backbone(name=spec.name, input_size=spec.input_size, feature_dim=spec.feature_dim,
                    weights=provenance.weights_caption(spec, weights, config.train, training),
                    weights_source=spec.weights_source, pretrained=spec.pretrained, training=training,
                    timings=stages.stages.timings, variants=variants, rejection=rejected,
                    features_per_second=stages.features_per_second()), right


def _measure_backbones(config: RunConfig, layout: RunLayout, dataset: Dataset, split: Split, specs: list, weights: dict,
                       extractors: dict, unlabelled: list[Path], progress: Progress, after_stage) -> dict[str, Backbone]:
    """Every backbone's results, each variant with its paired evidence against the run's best float model."""
    storage.write_text(layout.labels, "\n".join(dataset.labels) + "\n")
    backbones, correct = {}, {}
    for spec in specs:
        stages = _BackboneStages(spec, weights[spec.name], config, split, Path(dataset.root), dataset.labels,
                                 layout.backbone(spec.name), Stages(progress, {}, f"{spec.name}: ", after_stage),
                                 unlabelled)
        storage.write_text(stages.layout.labels, "\n".join(dataset.labels) + "\n")
        backbones[spec.name], right = _backbone(spec, weights[spec.name], extractors[spec.name], stages, config)
        correct.update({(spec.name, name): r for name, r in right.items()})
    _compare_with_the_best_float_model(backbones, correct, np.array([label for _, label in split.test]))
    return backbones


def _suspect_labels(layout: RunLayout, dataset: Dataset, split: Split, specs: list, timings: dict,
                    seed: int) -> SuspectLabels | None:
    """The suspect labels among the train and validation photos, from the frozen features the run saved for
    its first pretrained backbone (None: none saved them, or fewer than two classes of two photos)."""
    spec = next((spec for spec in specs if spec.pretrained), None)
    saved = [layout.backbone(spec.name).features(subset) for subset in ("train", "val")] if spec else []
    files = split.train + split.val
    chosen = check.suspect_candidates(files)
    if not saved or not all(path.exists() for path in saved) or not chosen:
        return None
    start = time.perf_counter()
    found, named = check.find_suspects(np.concatenate([np.load(path) for path in saved])[chosen],
                                       [files[i] for i in chosen], dataset.class_dirs, seed)
    timings["suspect_labels"] = round(time.perf_counter() - start, 3)
    return SuspectLabels(spec.name, len(chosen), found, named)


def run(config: RunConfig | None = None, resume: str | Path | None = None, progress: Progress | None = None,
        command: str | None = None, after_stage: Callable[[str], None] | None = None) -> Run:
    """Run the whole pipeline (or finish the one in ``resume``); return its :class:`~zoolite.results.Run`.

    The results are also written into a new run folder, ``Run.run_dir``. Unusable data or
    weights stop a new run before its folder is made. On Ctrl-C the KeyboardInterrupt
    carries the folder as ``run_dir``. ``after_stage(name)`` is called after each stage.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    progress = progress or Progress()
    if resume is None:
        config = config or RunConfig()
        dataset, split = _scan_and_split(config, timings, progress)
    else:
        layout = RunLayout(Path(resume))
        config = _resumable(layout)
    unlabelled = _scan_photos(config.unlabelled, "--unlabelled") if config.unlabelled else None
    # Weights next: a backbone whose weights cannot be had stops the run before any work.
    specs = [get_backbone(name) for name in config.backbones]
    weights = {spec.name: resolve_weights(spec, config.weights) for spec in specs}
    extractors = {spec.name: build_feature_extractor(spec, weights[spec.name]) for spec in specs}
    if resume is None:
        layout = _new_run_dir(config, dataset, split)
    else:
        dataset, split = _resumed_split(layout, config, timings, progress)
    try:
        backbones = _measure_backbones(config, layout, dataset, split, specs, weights, extractors,
                                       [Path(config.unlabelled) / p for p in unlabelled[0]] if unlabelled else [],
                                       progress or Progress(), after_stage)
        suspects = _suspect_labels(layout, dataset, split, specs, timings, config.seed)
        timings["total"] = round(time.perf_counter() - started, 3)
        sizes = split_sizes(split)
        results = Run(run_dir=str(layout.root), machine=provenance.machine_info(command, config.runtimes),
                      config=config, dataset=dataset, split=sizes, timings=timings, backbones=backbones,
                      unlabelled=UnlabelledPhotos(str(Path(config.unlabelled)), len(unlabelled[0]), unlabelled[1])
                      if unlabelled else None,
                      other=OtherPhotos(split.other.root, len(split.other.calibration), len(split.other.test))
                      if split.other else None,
                      suspect_labels=suspects)
        results.recommendation = recommend(results, config.budget)
        reporting.write_reports(results)
        storage.mark_complete(layout.root)
        return results
    except KeyboardInterrupt as interrupt:
        interrupt.run_dir = layout.root
        raise
    except tf_errors.OpError as e:
        raise _image_read_error(e, layout) from None


__all__ = ["RunConfig", "run", "Stages"]
