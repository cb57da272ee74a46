"""Suspect labels: photos that are probably in the wrong class folder, found from their backbone features.

The method is *confident learning* (Northcutt et al., "Confident learning: estimating uncertainty in
dataset labels", 2021), written here from the paper: out-of-fold class probabilities from a multinomial
logistic regression (scikit-learn's; :func:`out_of_fold_probabilities`, K folds stratified by class), per-class
thresholds ``t_j`` = mean probability of class j over the photos labelled j (times :data:`THRESHOLD_SCALE`),
and a photo labelled i is suspect when its best class among those with ``p_j >= t_j`` is some j != i (an off-diagonal
entry of the "confident joint") with ``p_j > p_i``. Suspects are ranked by the margin
``p_j - p_i`` and at most :data:`MAX_SUSPECT_SHARE` of the photos are named.

``zoolite check`` (:mod:`zoolite.apps.check`) looks for them among all the photos, ``zoolite run`` among its
train and validation photos. ``benchmarks/suspect_labels.py`` measures the suspects on photos moved to wrong
folders on purpose.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from zoolite.model.logistic import fit_multinomial, softmax, unit
from zoolite.model.rejection import FOLDS, folds
from zoolite.results import SuspectLabel

# At most this share of the photos is named as suspect labels (the most suspect first): on a clean
# folder the logistic regression's honest mistakes would otherwise fill the list.
MAX_SUSPECT_SHARE = 0.10
# L2 penalty of the logistic regression (on unit-length, centred features): mean cross-entropy + PENALTY/2 |W|^2.
PENALTY = 1e-3
PCA_DIMENSIONS = 64
# The thresholds are this share of each class's mean self-probability. The logistic regression is
# confident on most photos of a class, so the plain mean (the paper's t_j) missed a third of the moved
# photos of animals10-large; benchmarks/suspect_labels.py measured 0.8 x the mean catching 88% of them
# while naming under 2% of the photos of the clean folders (docs/usage.md, "zoolite check").
THRESHOLD_SCALE = 0.8


def _prepared(features: np.ndarray) -> np.ndarray:
    """Unit-length features, centred, on their main principal axes (unsupervised: no label leaks)."""
    x = unit(features)
    x = x - x.mean(0)
    k = min(PCA_DIMENSIONS, x.shape[0] - 1, x.shape[1])
    if k < x.shape[1]:
        _, axes = np.linalg.eigh(x.T @ x)  # ascending eigenvalues: the main axes are the last ones
        x = x @ axes[:, ::-1][:, :k]
    return x


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """(photos, classes): each photo's class probabilities from a model fitted without its fold."""
    x, labels = _prepared(np.asarray(features, np.float64)), np.asarray(labels)
    fold = folds(labels, n_classes, seed)
    out = np.empty((len(labels), n_classes))
    for f in range(FOLDS):
        held = fold == f
        if held.any():
            w, b, _ = fit_multinomial(x[~held], labels[~held], n_classes, c=1 / (PENALTY * np.sum(~held)))
            out[held] = softmax(x[held] @ w + b)
    return out


@dataclass
class Suspects:
    indices: list[int]  # photos, most suspect first (all found, before any cap)
    suggested: list[int]
    scores: list[float]
    thresholds: list[float]


def confident_suspects(probabilities: np.ndarray, labels: np.ndarray) -> Suspects:
    """The off-diagonal of the confident joint: a photo labelled i whose best class among those with
    ``p_j >= t_j`` is j != i, and ``p_j > p_i``; ranked by ``p_j - p_i``."""
    n_classes = probabilities.shape[1]
    thresholds = THRESHOLD_SCALE * np.array([probabilities[labels == j, j].mean() if np.any(labels == j) else 1.0
                                             for j in range(n_classes)])
    above = np.where(probabilities >= thresholds - 1e-12, probabilities, -1.0)
    best = above.argmax(1)
    rows = np.arange(len(labels))
    p_label, p_best = probabilities[rows, labels], probabilities[rows, best]
    suspect = (above.max(1) >= 0) & (best != labels) & (p_best > p_label)
    scores = p_best - p_label
    order = [int(i) for i in np.flatnonzero(suspect)[np.argsort(-scores[suspect], kind="stable")]]
    return Suspects(order, [int(best[i]) for i in order], [float(scores[i]) for i in order], thresholds.tolist())


def suspect_candidates(files: list[tuple[str, int]]) -> list[int]:
    """The photos of ``files`` ((path, class index)) that can be looked at for suspect labels: those of
    the classes with two photos or more, when there are two such classes or more (else none)."""
    counts = Counter(label for _, label in files)
    kept = [i for i, (_, label) in enumerate(files) if counts[label] >= 2]
    return kept if len({files[i][1] for i in kept}) >= 2 else []


def find_suspects(features: np.ndarray, files: list[tuple[str, int]], class_dirs: list[str],
                  seed: int = 0) -> tuple[int, list[SuspectLabel]]:
    """The suspect labels among ``files`` ((path, class index), as :func:`suspect_candidates` picks them)
    from their ``features``: how many were found, and the most suspect, at most
    :data:`MAX_SUSPECT_SHARE` of the photos."""
    present = sorted({label for _, label in files})
    index = {label: i for i, label in enumerate(present)}
    labels = np.array([index[label] for _, label in files])
    probabilities = out_of_fold_probabilities(features, labels, len(present), seed)
    found = confident_suspects(probabilities, labels)
    cap = max(1, math.floor(MAX_SUSPECT_SHARE * len(files)))
    named = [SuspectLabel(files[i][0], class_dirs[present[labels[i]]], class_dirs[present[j]], round(score, 4),
                          round(float(probabilities[i, labels[i]]), 4), round(float(probabilities[i, j]), 4))
             for i, j, score in list(zip(found.indices, found.suggested, found.scores))[:cap]]
    return len(found.indices), named


__all__ = ["confident_suspects", "find_suspects", "out_of_fold_probabilities", "suspect_candidates"]
