"""One backbone's stages as plain functions: :func:`train` -> :func:`gate` -> :func:`convert` ->
:func:`measure`, each reading a :class:`~zoolite.runs.inputs.BackboneRun` and the previous stage's typed
output. Each saves its output through the run folder's layout and loads it instead when a previous attempt
saved it, which is what ``--resume`` relies on. A notebook can call them one by one (docs/usage.md)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from zoolite import storage
from zoolite.measure import stats
from zoolite.measure.evaluation import measure_variant, predict_all
from zoolite.measure.evidence import ImageSets
from zoolite.model import rejection
from zoolite.model.augmentation import Views, random_views, view_maker
from zoolite.model.gated_head import with_rejection
from zoolite.model.logistic import fit_logistic_head
from zoolite.model.training import (assemble, build_head, class_weights, extractor_of, fit, labelled_batches, one_hot,
                                    set_base_trainable, top_of)
from zoolite.results import LogisticFit, Rejection, Training, TrainingStage, Variant
from zoolite.runs import provenance
from zoolite.runs.inputs import BackboneRun
from zoolite.targets import REFERENCE, ConversionSource, Target, chosen_targets, open_model
from zoolite.targets.keras import load_keras_model
from zoolite.targets.parallel import Spares, convert_targets

log = logging.getLogger(__name__)
FEATURELESS = 1e-6  # below it features tell no photo apart (EfficientNet-Lite0: ImageNet weights about 3, random 1e-11)


@dataclass
class Trained:
    """The train stage's output: the Keras classifier and how it was trained."""

    classifier: object  # keras.Model: pixels -> extractor -> head -> probabilities
    training: Training
    base_learned: bool  # fine-tuned, or trained from scratch: its features are no longer the frozen base's


@dataclass
class Gated:
    """The gate stage's output: the reference model, with "none of these" folded in, and how it rejects."""

    model: object  # keras.Model: pixels -> extractor -> gated head -> scores
    rejection: Rejection


@dataclass
class MeasuredFile:
    """One model file measured by the one routine, and its probabilities on each image set."""

    target: Target
    variant: Variant
    outputs: ImageSets


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _fit(run: BackboneRun, model, train, val, stage: str, weights, learning_rate=None) -> TrainingStage:
    def fit_logging_to(log_dir):
        return fit(model, train, val, run.config.train, learning_rate=learning_rate, log_dir=log_dir,
                   verbose=2 if run.steps.progress.enabled else 0, weights=weights)

    if not run.config.tensorboard:
        return fit_logging_to(None)
    # TensorBoard appends to its event files while training: they get their final name at the end.
    with storage.atomic_dir(run.layout.tensorboard(stage)) as log_dir:
        return fit_logging_to(log_dir)


def _views(run: BackboneRun, extractor) -> list[np.ndarray]:
    """The features of ``--augment-views`` augmented views of every training photo (none without
    augmentation), each view computed once and cached, so an interrupted run resumes view by view."""
    train = run.config.train
    if train.augment == "none":
        return []
    return [run.features(extractor, f"train_{train.augment}{k}", run.photos.train.paths,
                         view=view_maker(train.augment, seed=run.config.seed * 1000 + k))
            for k in range(1, train.augment_views + 1)]


def _image_data(run: BackboneRun, training: bool, weights):
    """Training photos augmented (``--augment``) in a reshuffled order, or validation photos with
    their class ``weights``."""
    train, photos = run.config.train, run.photos.train if training else run.photos.val
    return labelled_batches(photos.items, photos.root, run.spec.input_size, run.n_classes, train.batch_size,
                            run.config.seed if training else None, None if training else weights,
                            random_views(train.augment) if training else None)


def warn_of_featureless_photos(backbone: str, weights: str | None, features: np.ndarray) -> bool:
    """Say so (and return True) when a backbone's features are all near zero, so that the head cannot tell the
    photos apart: EfficientNet-Lite with random weights gives about 1e-11."""
    largest = float(np.max(np.abs(features))) if len(features) else 0.0
    if largest >= FEATURELESS:
        return False
    log.warning("%s%s: its features are all near zero (largest %.1g), so the head cannot tell the photos apart and "
                "every figure of this backbone is chance; use the ImageNet weights", backbone,
                " with random weights (--weights none)" if weights == "none" else "", largest)
    return True


def _train_head(run: BackboneRun, extractor, head, weights) -> TrainingStage | LogisticFit:
    """The head fitted on the frozen base's cached features (and on those of augmented views): as a logistic
    regression, or by the recipe's epochs (``--head``)."""
    train, val, recipe = run.photos.train, run.photos.val, run.config.train
    train_features, val_features = (np.asarray(run.features(extractor, name, photos.paths))
                                    for name, photos in (("train", train), ("val", val)))
    warn_of_featureless_photos(run.spec.name, run.weights, train_features)
    views = _views(run, extractor)
    with run.steps.step("training"):
        if recipe.head == "logistic":
            return fit_logistic_head(head, (np.concatenate([train_features, *views]),
                                            np.tile(np.asarray(train.labels, int), 1 + len(views))),
                                     (val_features, np.asarray(val.labels, int)), recipe.head_c, weights, len(views))
        targets = one_hot(train.labels, run.n_classes)
        return _fit(run, head, Views([train_features, *views], targets, recipe.batch_size, run.config.seed)
                    if views else (train_features, targets),
                    (val_features, one_hot(val.labels, run.n_classes)), "head", weights)


def train(run: BackboneRun) -> Trained:
    """The classifier: the head fitted on the frozen base's features (a logistic regression, or by the recipe's
    epochs: ``--head``; a base without pretrained weights learns whole, on images, by the recipe), then the optional
    fine-tuning of the base's top layers by the recipe."""
    model_path, history_path = run.layout.classifier, run.layout.history
    if model_path.exists() and history_path.exists():
        training = Training.from_json(json.loads(history_path.read_text()))
        return Trained(load_keras_model(model_path), training, _base_learned(run, training))
    _seed_everything(run.config.seed)
    recipe, extractor = run.config.train, run.extractor
    weights = class_weights(run.photos.train.labels, run.n_classes, recipe.class_weights)
    logistic = recipe.head == "logistic" and run.spec.pretrained
    head = build_head(run.spec.feature_dim, run.n_classes, 0.0 if logistic else recipe.dropout, unit_features=logistic)
    if run.spec.pretrained:
        training = Training(_train_head(run, extractor, head, weights))
        model = assemble(extractor, head, name=f"{run.spec.name}_classifier")
    else:  # from scratch: the whole network learns, so it must see images
        set_base_trainable(extractor, None)
        model = assemble(extractor, head, name=f"{run.spec.name}_classifier")
        with run.steps.step("training"):
            training = Training(_fit(run, model, _image_data(run, True, weights), _image_data(run, False, weights),
                                     "scratch", weights))
    if recipe.fine_tune_layers and run.spec.pretrained:
        set_base_trainable(extractor, recipe.fine_tune_layers)
        with run.steps.step("fine_tuning"):
            training.fine_tune = _fit(run, model, _image_data(run, True, weights), _image_data(run, False, weights),
                                      "fine_tune", weights, learning_rate=recipe.fine_tune_learning_rate)
        set_base_trainable(extractor, 0)
    storage.atomic_save_model(model, model_path)
    storage.write_json(history_path, asdict(training))
    return Trained(model, training, _base_learned(run, training))


def _base_learned(run: BackboneRun, training: Training) -> bool:
    return training.fine_tune is not None or not run.spec.pretrained


def gate(run: BackboneRun, trained: Trained) -> Gated:
    """The reference model: the classifier with "none of these" folded in (:mod:`zoolite.model.rejection`),
    fitted on the training and validation photos (and the calibration half of ``--other``)."""
    model_path, rejection_path = run.layout.model(REFERENCE), run.layout.rejection
    if model_path.exists() and rejection_path.exists():
        return Gated(load_keras_model(model_path), Rejection.from_json(json.loads(rejection_path.read_text())))
    classifier, tuned, photos = trained.classifier, trained.base_learned, run.photos
    extractor = extractor_of(classifier)
    # The cached features are the frozen base's; a base that learned gives other features.
    fitted_on = {name: run.features(extractor, f"trained_{name}" if tuned else name, subset.paths, tuned)
                 for name, subset in (("train", photos.train), ("val", photos.val))}
    other = {half: run.features(extractor, f"other_{half}", paths, tuned)
             for half, paths in (("calibration", photos.other_calibration), ("test", photos.other_test)) if paths}
    gate_features = np.concatenate([fitted_on["train"], fitted_on["val"]])
    gate_labels = np.concatenate([photos.train.labels, photos.val.labels])
    with run.steps.step("rejection"):
        # The ImageNet classifier reads the ImageNet weights' features: not those of a base that learned.
        imagenet = None if tuned or run.weights != "imagenet" or run.spec.imagenet_classifier is None \
            else rejection.ImageNetView(*run.spec.imagenet_classifier())
        scored = rejection.score_class_photos(classifier, gate_features, gate_labels, fitted_on["val"],
                                              photos.val.labels, run.config.seed, imagenet)
        prototypes, fitted = scored.prototypes, rejection.calibrate(scored, None, run.config.keep_rate)
        if other:  # photos of the classes in --other would also bend the gate fitted on them: judge without
            confident = rejection.confident_class_photos(classifier, prototypes, fitted,
                                                         np.concatenate(list(other.values())))
            _warn_of_class_photos(run, confident)
            fitted = replace(rejection.calibrate(scored, other["calibration"], run.config.keep_rate),
                             other_class_photos=confident)
        _warn_of_pooled_classes(run, fitted)
        model = with_rejection(classifier, prototypes, fitted)
    storage.atomic_save_model(model, model_path)
    storage.write_json(rejection_path, asdict(fitted))
    return Gated(model, fitted)


def _warn_of_pooled_classes(run: BackboneRun, fitted: Rejection) -> None:
    if fitted.pooled_classes:
        log.warning("too few photos to fit \"none of these\" per class for %s (fewer than %d training and "
                    "validation photos): their gate uses the figures pooled over all classes; add photos to "
                    "give them their own", ", ".join(run.class_names[c] for c in fitted.pooled_classes),
                    rejection.MIN_CLASS_PHOTOS)


def _warn_of_class_photos(run: BackboneRun, confident: int) -> None:
    if confident:
        other = run.photos.other
        log.warning("--other %s: the float model is confident (score >= %g) that %d of its %d photos show one "
                    "of the classes; any that do show one teach the model to reject its class: remove them from "
                    "the folder", other.root, stats.CONFIDENT, confident, len(other.calibration) + len(other.test))


def convert(run: BackboneRun, gated: Gated, spares: Spares | None = None,
            meanwhile: Callable[[], object] = lambda: None) -> dict[Target, Path]:
    """Every chosen target of the run, converted unless already written (in this process and, where the cores
    allow it, in ``spares``; ``meanwhile()`` called once this process has converted its share, before it waits for
    them: :func:`~zoolite.targets.parallel.convert_targets`),
    each with the gate's threshold (and the labels and provenance of :func:`zoolite.runs.provenance.model_about`)
    in its metadata; target -> file."""
    files = {target: run.layout.model(target) for target in chosen_targets(run.config.runtimes, run.config.modes)}
    missing = {target: path for target, path in files.items()
               if not all(file.exists() for file in target.family.files(path))}
    about = provenance.model_about(run.spec, run.weights, run.class_names, run.photos.train.root, gated.rejection)
    with ConversionSource(gated.model, run.layout.cache, run.representative, run.steps.step, about) as source:
        convert_targets(source, missing, run.steps.record, spares, meanwhile)
    return {REFERENCE: run.layout.model(REFERENCE), **files}


def _open(path: Path, target: Target, threads: int | None, backbone):
    """``path`` opened as a runtime, and its load time; the reference predicting from ``backbone``'s features
    (but a reference saved by zoolite 0.6 or older, whose gate lies flat beside its extractor, from pixels)."""
    runtime, load_seconds = open_model(path, threads)
    top = top_of(runtime.model) if target is REFERENCE else None
    return (runtime.predicting_from(backbone, top) if top is not None else runtime), load_seconds


def _outputs(run: BackboneRun, target: Target, images: ImageSets) -> tuple[ImageSets, Path]:
    """Where a file's probabilities on each image set, and its measurement, are saved."""
    layout = run.layout
    return (ImageSets(layout.probabilities(target.name),
                      layout.unlabelled_probabilities(target.name) if images.unlabelled is not None else None,
                      layout.other_probabilities(target.name) if images.other is not None else None),
            layout.measurement(target.name))


def _measure_file(run: BackboneRun, target: Target, path: Path, images: ImageSets, backbone) -> MeasuredFile:
    """One file measured by :func:`~zoolite.measure.evaluation.measure_variant` on the test images, and
    its probabilities on every image set (loaded when a previous attempt saved them)."""
    layout, labels = run.layout, run.photos.test.labels
    saved, measurement = _outputs(run, target, images)

    def make(step):
        runtime, load_seconds = _open(path, target, run.config.threads, backbone)
        latency = run.config.latency
        with run.steps.progress.bar(f"{run.spec.name}: timing {target.name} (up to {latency.runs} calls "
                                    f"or {latency.max_seconds:g} s)", latency.runs, unit="call") as timed:
            variant, probabilities = measure_variant(
                runtime, target, path, images.test, labels, run.n_classes, latency, progress=step,
                timing_progress=timed, recorded_as=path.relative_to(layout.root.parent).as_posix(),
                load_ms=load_seconds * 1000.0)
        for out, photos in ((saved.unlabelled, images.unlabelled), (saved.other, images.other)):
            if photos is not None:
                storage.write_npy(out, predict_all(runtime, photos, progress=step))
        storage.write_npy(saved.test, probabilities)
        storage.write_json(measurement, asdict(variant))
        return load()

    def load():
        return MeasuredFile(target, Variant.from_json(json.loads(measurement.read_text())), saved.map(np.load))

    return run.steps.produce(f"evaluate_{target.name}", [measurement, *saved.given()], make, load,
                             sum(len(photos) for photos in images.given()), title=f"evaluating {target.name}")


def measure(run: BackboneRun, trained: Trained, files: dict[Target, Path]) -> list[MeasuredFile]:
    """Every file measured with the one routine, the reference first, on the test images, and its
    probabilities on the ``--unlabelled`` photos and the held-out half of ``--other``. The reference predicts
    from the features of its backbone as ``trained`` left it, computed the way the head's training photos'
    were (:meth:`zoolite.targets.keras.KerasRuntime.predicting_from`)."""
    photos = run.photos
    images = ImageSets(run.images("test", photos.test.paths),
                       run.images("unlabelled", photos.unlabelled) if photos.unlabelled else None,
                       run.images("other_test", photos.other_test) if photos.other_test else None)
    # The features runtime the gate stage read, for a reference still to measure: opened (or converted, and
    # timed) outside the evaluation steps.
    saved, measurement = _outputs(run, REFERENCE, images)
    unmeasured = REFERENCE in files and not all(out.exists() for out in (measurement, *saved.given()))
    backbone = run.features_runtime(extractor_of(trained.classifier), trained.base_learned) if unmeasured else None
    return [_measure_file(run, target, path, images, backbone) for target, path in files.items()]
