"""The training stage: the reference recipe, made fast by training the head on cached features.

With a frozen base, the base's output for an image never changes, so it is computed
once per image (:mod:`zoolite.model.features`) and the new dense head is trained on those
vectors; base and head are then assembled into one raw-pixels-in, probabilities-out
model for export. Models that must see images while training (a network trained from
scratch, fine-tuning, later augmentation) take the same recipe through :func:`fit` on
an image pipeline instead (:func:`labelled_batches`).
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from zoolite.config import TrainConfig
from zoolite.results import TrainingStage


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, quiet on the epochs that have no validation (validation_freq > 1)."""

    def get_monitor_value(self, logs):
        return (logs or {}).get(self.monitor)


def recipe_callbacks(config: TrainConfig, log_dir: Path | None = None) -> list:
    """Early stopping on val_loss restoring the best weights, the learning-rate decay, logs."""
    decay = math.exp(-config.lr_decay)
    callbacks = [
        _EarlyStopping(monitor="val_loss", patience=config.patience,
                       start_from_epoch=config.start_from_epoch, restore_best_weights=True),
        keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 1 else lr * decay),
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    return callbacks


# Training steps on feature arrays Keras runs in one call of its compiled function: the same steps in the same
# order (the same weights, bit for bit: tested), without the Python round trip of every step, which is most of
# what a step of a dense head on features costs (benchmarks/head_training.py). A step through a backbone saves
# nothing so, and would answer Ctrl-C only every that many steps: one step a call there.
STEPS_PER_EXECUTION = 32


def compile_model(model: keras.Model, learning_rate: float, steps_per_execution: int = 1) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], steps_per_execution=steps_per_execution)
    return model


def class_weights(labels, n_classes: int, how: str = "auto") -> dict[int, float] | None:
    """Each class's weight in the loss: ``auto`` is scikit-learn's "balanced", n / (k · n_c), so every
    class weighs as much as any other in total and a rare class's photos are not drowned out by a
    common one's (all 1 on balanced data); ``none`` gives None, every photo weighing 1."""
    if how == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes)
    return {c: float(len(labels) / (np.count_nonzero(counts) * count)) if count else 0.0
            for c, count in enumerate(counts)}


def sample_weights(one_hot_labels, weights: dict[int, float]) -> np.ndarray:
    """The weight of each photo: its class's."""
    return np.array([weights[c] for c in np.asarray(one_hot_labels).argmax(-1)], np.float32)


def fit(model: keras.Model, train, val, config: TrainConfig, learning_rate: float | None = None,
        log_dir: Path | None = None, verbose: int = 1, shuffle: bool = True,
        weights: dict[int, float] | None = None) -> TrainingStage:
    """Train ``model`` with the recipe; ``train``/``val`` are (x, one-hot y) arrays or datasets
    (a validation dataset brings its own sample weights, if any).

    ``weights`` (:func:`class_weights`) weigh each training photo's loss by its class, and each
    validation photo's too, so that early stopping watches the loss that is minimised.
    ``shuffle`` applies to arrays (a dataset brings its own order).

    Returns the stage's history: per-epoch figures, and where early stopping left it.
    """
    x, y = train if isinstance(train, tuple) else (train, None)
    compile_model(model, learning_rate or config.learning_rate, STEPS_PER_EXECUTION if y is not None else 1)
    callbacks = recipe_callbacks(config, log_dir)
    if weights is not None and isinstance(val, tuple):
        val = (*val, sample_weights(val[1], weights))
    history = model.fit(x, y, batch_size=config.batch_size if y is not None else None,
                        epochs=config.epochs, validation_data=val, class_weight=weights,
                        validation_freq=config.validation_freq, callbacks=callbacks,
                        shuffle=shuffle and y is not None, verbose=verbose)
    early_stopping = callbacks[0]
    per_epoch = {name: [float(v) for v in history.history.get(name, [])]
                 for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")}
    return TrainingStage(**per_epoch, epochs_run=len(history.epoch),
                         best_epoch=early_stopping.best_epoch + 1 if early_stopping.best_weights is not None else None,
                         stopped_epoch=early_stopping.stopped_epoch + 1 if early_stopping.stopped_epoch else None,
                         validation_freq=config.validation_freq,
                         class_weights=None if weights is None else [weights[c] for c in sorted(weights)])


def one_hot(labels, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels, dtype=int)]


HEAD, PROBABILITIES = "head", "probabilities"  # the new classifier, and its dense softmax layer
UNIT_FEATURES = "unit_features"  # the layer of a head that reads the features scaled to unit length
GATED_HEAD = "gated_head"  # the reference model's part after the extractor: the head with "none of these"


def build_head(feature_dim: int, n_classes: int, dropout: float = 0.2, unit_features: bool = False) -> keras.Model:
    """The new classifier: a dense softmax layer over the features, after optional dropout (the recipe's) or after
    scaling them to unit length (the logistic regression's, :func:`zoolite.model.logistic.fit_logistic_head`)."""
    from zoolite.model.layers import L2Normalize

    inputs = keras.Input((feature_dim,), name="features")
    x = L2Normalize(name=UNIT_FEATURES)(inputs) if unit_features else inputs
    x = keras.layers.Dropout(dropout, name="head_dropout")(x) if dropout else x
    outputs = keras.layers.Dense(n_classes, activation="softmax", name=PROBABILITIES)(x)
    return keras.Model(inputs, outputs, name=HEAD)


def assemble(extractor: keras.Model, head: keras.Model, name: str = "classifier") -> keras.Model:
    """One model: raw pixels in, class probabilities out."""
    inputs = keras.Input(extractor.input_shape[1:], name="pixels")
    return keras.Model(inputs, head(extractor(inputs)), name=name)


def _inner_model(model: keras.Model, but: tuple[str, ...] = ()) -> keras.Model:
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name not in but)


def head_of(classifier: keras.Model) -> keras.Model:
    """The head inside a model :func:`assemble` made."""
    return classifier.get_layer(HEAD)


def extractor_of(classifier: keras.Model) -> keras.Model:
    """The feature extractor inside a model :func:`assemble` or :func:`zoolite.model.gated_head.with_rejection`
    made: its one inner model besides the (gated) head."""
    return _inner_model(classifier, but=(HEAD, GATED_HEAD))


def top_of(model: keras.Model) -> keras.Model | None:
    """The part of ``model`` that reads its extractor's features: the head of a model :func:`assemble` made, the
    gated head of one :func:`zoolite.model.gated_head.with_rejection` made (None in the reference model of a run
    of zoolite 0.6 or older, whose gate lies flat beside the extractor)."""
    return next((layer for layer in model.layers if isinstance(layer, keras.Model)
                 and layer.name in (HEAD, GATED_HEAD)), None)


def base_of(extractor: keras.Model) -> keras.Model:
    """The backbone (keras.applications' or zoolite's) inside a feature extractor: its inner model."""
    return _inner_model(extractor)


def head_weights(classifier: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of the head's dense softmax layer."""
    kernel, bias = head_of(classifier).get_layer(PROBABILITIES).get_weights()
    return kernel, bias


def reads_unit_features(classifier: keras.Model) -> bool:
    """Whether the head's dense layer reads the features scaled to unit length (a logistic regression's)."""
    return any(layer.name == UNIT_FEATURES for layer in head_of(classifier).layers)


def set_base_trainable(extractor: keras.Model, top_layers: int | None) -> None:
    """Freeze the base, or unfreeze its top ``top_layers`` layers (None: all of them, from scratch).

    When fine-tuning, BatchNorm layers stay frozen, which in Keras 3 also keeps them in
    inference mode (moving statistics untouched). The extractor's ``training=False`` call
    is not enough: ``fit`` passes ``training=True`` down to nested models
    (keras-team/keras#20285).
    """
    base = base_of(extractor)
    base.trainable = True
    layers = base.layers
    cut = 0 if top_layers is None else max(0, len(layers) - top_layers)
    for i, layer in enumerate(layers):
        frozen_batch_norm = top_layers is not None and isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= cut and not frozen_batch_norm
    extractor.trainable = top_layers != 0


def labelled_batches(items: list[tuple[str, int]], root: Path, size: int, n_classes: int,
                     batch_size: int, shuffle_seed: int | None = None, weights: dict[int, float] | None = None,
                     views=None):
    """A ``tf.data`` pipeline of (float32 pixels, one-hot labels), with each photo's class weight
    when ``weights`` are given, and each photo a new random view every epoch with ``views``
    (:func:`zoolite.model.augmentation.random_views`), for training on images."""
    import tensorflow as tf

    from zoolite.dataset.images import image_batches

    labels = one_hot([label for _, label in items], n_classes)
    batches = image_batches([root / p for p, _ in items], size, batch_size,
                            labels=labels if weights is None else (labels, sample_weights(labels, weights)),
                            shuffle_seed=shuffle_seed, views=views)
    if weights is None:
        return batches.map(lambda x, y: (tf.cast(x, tf.float32), y))
    return batches.map(lambda x, y: (tf.cast(x, tf.float32), *y))
