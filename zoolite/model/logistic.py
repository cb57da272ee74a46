"""L2-regularised multinomial logistic regression, fitted by scikit-learn: the default head on a frozen base
(``--head logistic``), and the classifier that finds suspect labels (:mod:`zoolite.model.suspects`).

On the frozen base's features a linear head's training is a convex problem: scikit-learn's L-BFGS solves it to
convergence, with no epochs, learning rate or early stopping to choose, and its coefficients become the head's
dense layer. On features scaled to unit length, at scikit-learn's default strength, it answers the rare classes and
photos of new sources better than the recipe's epochs do (benchmarks/head_fit.py).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np

from zoolite.results import LogisticFit

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# Iterations L-BFGS may take: convergence takes tens to a few hundred on 10 classes of 1,280 features.
MAX_ITERATIONS = 2000


def unit(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length, as the head's ``L2Normalize`` layer scales it (``tf.math.l2_normalize``: the
    squared length floored at 1e-12)."""
    x = np.asarray(x, np.float64)
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=-1, keepdims=True), 1e-12))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Each row's softmax, in float64. Not ``scipy.special.softmax``: importing it takes a few tenths of a second,
    and ``zoolite check`` imports this module (with the suspect labels) before it knows whether it will fit
    anything."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def fit_multinomial(x: np.ndarray, labels: np.ndarray, n_classes: int, c: float,
                    sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(kernel: features x classes, bias, iterations) of the L2-regularised multinomial logistic regression that
    minimises c x the photos' (weighted) cross-entropies + |kernel|^2 / 2, the bias not regularised: scikit-learn's
    L-BFGS, over all ``n_classes``. Two classes scikit-learn fits as one sigmoid(z), which is the softmax of
    [-z/2, z/2] with half the penalty: at 2c. A class with no photo gets a bias below the lowest logit a present
    class gives a vector as long as the longest photo's, so that it is never the top class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    binary = len(np.unique(labels)) == 2
    with warnings.catch_warnings():  # the caller says it, in its own words
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=2 * c if binary else c, max_iter=MAX_ITERATIONS).fit(
            x, labels, sample_weight=sample_weight)
    coef, intercept = model.coef_, model.intercept_
    if binary:
        coef, intercept = np.stack([-coef[0], coef[0]]) / 2, np.array([-intercept[0], intercept[0]]) / 2
    kernel, bias = np.zeros((x.shape[1], n_classes)), np.zeros(n_classes)
    kernel[:, model.classes_], bias[model.classes_] = coef.T, intercept
    longest = np.max(np.linalg.norm(x, axis=1))
    bias[np.setdiff1d(np.arange(n_classes), model.classes_)] = np.min(intercept - np.linalg.norm(coef, axis=1)
                                                                      * longest) - 10
    return kernel, bias, int(np.max(model.n_iter_))


def fit_logistic_head(head: keras.Model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                      c: float, weights: dict[int, float] | None, views: int = 0) -> LogisticFit:
    """Fit ``head`` (:func:`~zoolite.model.training.build_head` with ``unit_features``) as
    :func:`fit_multinomial` on the unit-length features of the ``train`` photos (features, integer labels), each
    photo's loss weighed by its class's weight (:func:`~zoolite.model.training.class_weights`), and set its
    coefficients as the head's dense layer. With ``views`` augmented views of each photo (``train`` holds the photos,
    then each view of them in turn), each row weighs 1 / (1 + views), so that the views add variety, not weight
    against the regularisation. ``val`` is only measured."""
    from zoolite.model.training import PROBABILITIES, UNIT_FEATURES  # Keras only when a model is at hand

    head.get_layer(UNIT_FEATURES)  # the fit is of unit-length features: Keras raises ValueError for a head without
    (x, labels), n_classes = train, head.output_shape[-1]
    photo_weights = np.ones(len(labels)) if weights is None else np.array([weights[label] for label in labels])
    x = unit(x)
    kernel, bias, iterations = fit_multinomial(x, labels, n_classes, c, photo_weights / (1 + views))
    head.get_layer(PROBABILITIES).set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    if iterations >= MAX_ITERATIONS:
        log.warning("the logistic-regression head did not converge in %d iterations; its figures stand, but a "
                    "smaller --head-c (stronger regularisation) converges sooner", MAX_ITERATIONS)

    def measured(unit_features, true, sample_weight):
        probabilities = softmax(unit_features @ kernel + bias)
        right = probabilities.argmax(1) == true
        loss = -np.log(np.maximum(probabilities[np.arange(len(true)), true], 1e-12))
        return float(np.average(loss, weights=sample_weight)), float(np.average(right, weights=sample_weight))

    loss, accuracy = measured(x, labels, photo_weights)
    val_loss, val_accuracy = measured(unit(val[0]), val[1], None if weights is None else
                                      [weights[label] for label in val[1]]) if len(val[1]) else (None, None)
    return LogisticFit(c=c, iterations=iterations, converged=iterations < MAX_ITERATIONS, loss=loss,
                       accuracy=accuracy, val_loss=val_loss, val_accuracy=val_accuracy,
                       class_weights=None if weights is None else [weights[k] for k in sorted(weights)])
