"""The "none of these" stage: a classifier that says so when a photo shows none of its classes.

Chosen by measurement (``benchmarks/rejection.py``, judged per class and on photos from sources
the model never saw). A photo is seen as its *gate vector*: its unit-length backbone features and,
where the backbone's ImageNet weights come with their classifier, what that classifier sees in it
(:func:`gate_vectors`). Each class c gets a *similarity* s_c: the mean of the cosine similarities of
a photo's gate vector to the class's mean and to the nearest of a few centroids of its training
photos' (k-means). One threshold on raw similarities served the classes unevenly: a
class with few or varied photos sits further from its own prototypes, so its photos were the ones
rejected. So each class's similarity is *normalised*, z_c = (s_c - mean_c) / spread_c, with mean_c
and spread_c measured out of sample (cross-fitted over the training and validation photos: each
photo scored by prototypes fitted without it) and shrunk toward the pooled figures for a class with
few photos. The model computes, with built-in layers only (:mod:`zoolite.model.gated_head`),

    scores = softmax(logits / T) * gate,    gate = sigmoid(slope * (max_c z_c - centre))

``T`` is the temperature fitted on the validation photos (calibrated probabilities). A photo is
*rejected* when its top score is below the threshold, the highest at which every class is
estimated, out of sample, to keep at least ``keep_rate`` of its photos (:func:`choose_threshold`);
the gate's centre is placed so that the threshold falls at :data:`THRESHOLD_AT`.
It travels in the file's metadata (``ScoreThresholdingOptions``, which MediaPipe Tasks applies when
the app sets no threshold) and in model.json, so every client rejects the same photos with no glue.

The class photos are scored once (:func:`score_class_photos`); the gate is then calibrated on those scores
(:func:`calibrate`). With ``--other`` photos, their calibration half fits the gate's slope and centre (a
one-feature logistic regression against the class photos' out-of-sample z); without them the gate is centred
on the class photos', and the report says rejection was not measured against photos of other things.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoolite.measure import intervals, stats
from zoolite.model.logistic import softmax, unit
from zoolite.results import ClassGate, Rejection

CENTROIDS_PER_CLASS = 16  # benchmarks/rejection.py: 16 to 64 reject alike; 16 keeps the file small
KMEANS_ITERATIONS = 30
FOLDS = 5  # cross-fitting: each photo's similarity comes from prototypes fitted on the other folds
# A class's own figures weigh as much as its photos against this many photos' worth of the pooled
# ones (shrinkage); a class with fewer than MIN_CLASS_PHOTOS takes the pooled figures alone.
SHRINKAGE_PHOTOS = 10
MIN_CLASS_PHOTOS = 10
# z is in units of a class's own spread, so one slope fits every class. Near the threshold the gate is
# far below 1 (THRESHOLD_AT), so a photo is judged by slope x z plus the log of its top probability:
# by its similarity more than its probability (benchmarks/rejection.py: a gate centred on the lowest
# 5% of z, nearly 1 for most class photos, left it to the top probability, and kept 5 points fewer
# held-out photos at the same rejection).
GATE_SLOPE = 4.0
# The gate vector's two parts, each of unit length, weigh cos and sin of this angle (their weights'
# ratio 1.5 : 1). benchmarks/rejection.py tried 1 : 1, 1 : 1.5 and the ImageNet part alone: by its
# winner rule (the most class photos of unseen sources kept, among gates rejecting 90% of both
# collections of other things) 1.5 : 1 came first when the in-source photos were one test split a seed;
# cross-fitted, every gate meets the rule only at keep rate 0.85, where the ImageNet part alone leads.
# The more the ImageNet part weighs, the fewer of the Caltech-101 photos of other things the gate
# rejects at the default keep rate (at 0.90: 89.6% at 1.5 : 1, 85.2% for the ImageNet part alone).
FEATURES_ANGLE = float(np.arctan2(1.0, 1.5))
# The gate's centre is placed so that the threshold falls here: the integer files' 8-bit output has a
# step of 1/255, and a threshold of a few thousandths (where a centre of z = 0 put it) sat within the
# lowest step, so int8 and float files decided differently on the photos near it.
THRESHOLD_AT = 0.1


# --- fitting (NumPy, on backbone features) ----------------------------------------------------

class ImageNetView:
    """What the backbone's ImageNet classifier sees in a photo, from its pooled features: its 1,000
    probabilities, scaled to unit length. Photos of a class from a new camera or collection still
    show the same few ImageNet classes (a sheep: ram, bighorn), where their features sit far from
    the few training photos of a rare class (benchmarks/rejection.py)."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray):
        self.kernel, self.bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)

    # The probabilities scaled to unit length, not their square root (the Hellinger embedding, which weighs the
    # many small probabilities more): both separated alike in the benchmark, but an 8-bit softmax output rounds the
    # small ones away, and with the square root the int8 files of a run on animals10-large kept clearly fewer test
    # photos than its float file (tried while building it).
    def __call__(self, features: np.ndarray) -> np.ndarray:
        return unit(softmax(np.asarray(features, np.float64) @ self.kernel + self.bias))


def part_weights(feature_dim: int, imagenet: ImageNetView | None) -> np.ndarray:
    """Each gate-vector entry's weight: the features', then the ImageNet view's (:data:`FEATURES_ANGLE`)."""
    if imagenet is None:
        return np.ones(feature_dim)
    return np.repeat([np.cos(FEATURES_ANGLE), np.sin(FEATURES_ANGLE)], [feature_dim, imagenet.kernel.shape[1]])


def gate_vectors(features: np.ndarray, imagenet: ImageNetView | None) -> np.ndarray:
    """(photos, dims), each of unit length: the unit-length features, and with ``imagenet`` its view
    beside them, the two parts weighed by :func:`part_weights`."""
    if imagenet is None:
        return unit(features)
    return np.concatenate([unit(features), imagenet(features)], 1) * part_weights(np.shape(features)[1], imagenet)


class Prototypes:
    """Each class's unit-length mean and ``per_class`` unit-length centroids (spherical k-means) of its
    photos' :func:`gate_vectors`, and the per-class normalisation of the similarity to them."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, n_classes: int,
                 per_class: int = CENTROIDS_PER_CLASS, seed: int = 0, imagenet: ImageNetView | None = None):
        rng = np.random.default_rng(seed)
        vectors, labels = unit(vectors), np.asarray(labels)
        self.imagenet = imagenet
        self.means = unit(np.stack([vectors[labels == c].mean(0) for c in range(n_classes)]))
        # As many centroids for every class (a class with fewer photos repeats some), so that the
        # model takes each class's nearest one with one pooling layer.
        self.centroids = np.stack([np.resize(kmeans(vectors[labels == c], per_class, rng),
                                             (per_class, vectors.shape[1])) for c in range(n_classes)])
        # The similarity's normalisation, measured out of sample by :func:`score_class_photos`.
        self.mean, self.spread = np.zeros(n_classes), np.ones(n_classes)

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        """(photos, classes): the mean of the cosine similarity of gate vectors to each class's mean and to its
        nearest centroid."""
        vectors = unit(vectors)
        classes, per_class, dim = self.centroids.shape
        nearest = (vectors @ self.centroids.reshape(-1, dim).T).reshape(len(vectors), classes, per_class).max(2)
        return 0.5 * (vectors @ self.means.T + nearest)

    def normalised(self, features: np.ndarray) -> np.ndarray:
        """(photos, classes): each class's similarity of these backbone features, normalised by its
        out-of-sample mean and spread."""
        return (self.similarity(gate_vectors(features, self.imagenet)) - self.mean) / self.spread


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = points[rng.choice(len(points), min(k, len(points)), replace=False)]
    assigned = None
    for _ in range(KMEANS_ITERATIONS):
        nearest = (points @ centres.T).argmax(1)
        if assigned is not None and np.array_equal(nearest, assigned):
            break  # converged: the same points give the same centres
        assigned = nearest
        # each centre moves to the mean direction of its nearest points (one product for all); an empty one stays
        members = np.eye(len(centres))[nearest]
        counts = members.sum(0)[:, None]
        centres = unit(np.where(counts > 0, members.T @ points / np.maximum(counts, 1), centres))
    return centres


def folds(labels: np.ndarray, n_classes: int, seed: int, count: int = FOLDS) -> np.ndarray:
    """Each photo's fold of ``count``, dealt round-robin within its class in a seeded order."""
    rng, fold = np.random.default_rng(seed), np.empty(len(labels), int)
    for c in range(n_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = np.arange(len(members)) % count
    return fold


def out_of_fold_similarity(vectors: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """(photos, classes): each photo's similarity (of its gate vector) to every class by prototypes fitted without its fold.
    A class whose every photo is in the fold keeps all of them (only with one or two photos a class)."""
    labels, fold = np.asarray(labels), folds(labels, n_classes, seed)
    out = np.empty((len(labels), n_classes))
    for f in range(FOLDS):
        held = fold == f
        if held.any():
            fitting = ~held | np.isin(labels, [c for c in range(n_classes) if np.all(held[labels == c])])
            out[held] = Prototypes(vectors[fitting], labels[fitting], n_classes, seed=seed).similarity(vectors[held])
    return out


def shrunk(own: np.ndarray, pooled: float, photos: np.ndarray) -> np.ndarray:
    """Per-class figures shrunk toward the pooled one: weighed as photos against SHRINKAGE_PHOTOS
    pooled ones, and the pooled one alone below MIN_CLASS_PHOTOS."""
    weight = np.where(photos >= MIN_CLASS_PHOTOS, photos, 0)
    return (weight * own + SHRINKAGE_PHOTOS * pooled) / (weight + SHRINKAGE_PHOTOS)


def normalisation(own_similarity: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) per class of the photos' out-of-sample similarity to their own class, shrunk."""
    photos = np.bincount(labels, minlength=n_classes)
    means = np.array([own_similarity[labels == c].mean() for c in range(n_classes)])
    variances = np.array([own_similarity[labels == c].var() for c in range(n_classes)])
    mean = shrunk(means, float(own_similarity.mean()), photos)
    spread = np.sqrt(shrunk(variances, float(np.mean((own_similarity - means[labels]) ** 2)), photos))
    return mean, np.maximum(spread, 1e-6)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (a grid over 0.01-20, log-spaced:
    one parameter needs no optimiser; a logistic regression's logits, shrunk by its regularisation, may need
    sharpening by far)."""
    rows = np.arange(len(labels))
    grid = np.exp(np.linspace(np.log(0.01), np.log(20.0), 500))
    nll = [-np.mean(np.log(softmax(logits / t)[rows, labels] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def fit_gate(class_similarity: np.ndarray, other_similarity: np.ndarray | None) -> tuple[float, float]:
    """(slope, centre) of the gate on the best class z. With photos of other things: a logistic
    regression of z, class photos against them, each group weighing half. Without: :data:`GATE_SLOPE`,
    centred on z = 0, a class's own mean."""
    positive = np.asarray(class_similarity, np.float64)
    if other_similarity is None or len(other_similarity) == 0:
        return GATE_SLOPE, 0.0
    negative = np.asarray(other_similarity, np.float64)
    x = np.concatenate([positive, negative])
    y = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    weight = np.where(y == 1, 0.5 / len(positive), 0.5 / len(negative))
    mean, scale = x.mean(), x.std() or 1.0
    z, w, b = (x - mean) / scale, 1.0, 0.0
    for _ in range(500):  # Newton steps on a convex, two-parameter problem
        p = 1 / (1 + np.exp(-(w * z + b)))
        g = np.array([np.sum(weight * (p - y) * z), np.sum(weight * (p - y))])
        h = np.sum(weight * p * (1 - p) * np.stack([z * z, z, z, np.ones_like(z)]), 1).reshape(2, 2)
        step = np.linalg.solve(h + 1e-6 * np.eye(2), g)
        w, b = w - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    if w <= 0:  # the other photos look no less like the classes than the class photos do: the default gate
        return GATE_SLOPE, 0.0
    return float(w / scale), float(mean - b * scale / w)


def gate(similarities: np.ndarray, slope: float, centre: float) -> np.ndarray:
    return 1 / (1 + np.exp(-slope * (np.asarray(similarities, np.float64) - centre)))


def class_keep_estimates(top: np.ndarray, labels: np.ndarray, n_classes: int, threshold: float) -> np.ndarray:
    """Each class's estimated share of photos kept at ``threshold``, shrunk toward the pooled share."""
    photos = np.bincount(labels, minlength=n_classes)
    kept = np.bincount(labels[top >= threshold], minlength=n_classes)
    return shrunk(kept / np.maximum(photos, 1), kept.sum() / photos.sum(), photos)


def choose_threshold(top: np.ndarray, labels: np.ndarray, n_classes: int, keep_rate: float) -> float:
    """The highest threshold at which every class is estimated (:func:`class_keep_estimates`) to keep at
    least ``keep_rate`` of its photos, as a float32 (what the file's metadata holds), rounded down so
    that the photos at it stay kept."""
    top, labels = np.asarray(top, np.float64), np.asarray(labels)
    values = np.unique(top)  # ascending; the lowest keeps every photo, and estimates fall as it rises
    low, high = 0, len(values) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if class_keep_estimates(top, labels, n_classes, values[middle]).min() >= keep_rate - 1e-12:
            low = middle
        else:
            high = middle - 1
    threshold = np.float32(values[low])
    return float(threshold if threshold <= values[low] else np.nextafter(threshold, np.float32(0)))


def _logits(classifier):
    """The trained classifier's logits as a function of its features, in float64: its dense softmax layer's, on
    the features scaled to unit length if its head reads them so."""
    from zoolite.model.training import head_weights, reads_unit_features  # Keras only when a model is at hand

    kernel, bias = (np.asarray(w, np.float64) for w in head_weights(classifier))
    scaled = unit if reads_unit_features(classifier) else (lambda x: np.asarray(x, np.float64))
    return lambda features: scaled(features) @ kernel + bias


def _class_gates(top: np.ndarray, labels: np.ndarray, prototypes: Prototypes, threshold: float) -> list[ClassGate]:
    photos = np.bincount(labels, minlength=len(prototypes.mean))
    estimates = class_keep_estimates(top, labels, len(photos), threshold)
    return [ClassGate(photos=int(photos[c]), mean=float(prototypes.mean[c]), spread=float(prototypes.spread[c]),
                      pooled=bool(photos[c] < MIN_CLASS_PHOTOS), kept=int(np.sum(top[labels == c] >= threshold)),
                      kept_estimate=float(estimates[c]),
                      kept_interval=intervals.proportion_interval(int(np.sum(top[labels == c] >= threshold)),
                                                                  int(photos[c])))
            for c in range(len(photos))]


def _centre_for_threshold(probability: np.ndarray, best: np.ndarray, slope: float, labels: np.ndarray,
                          n_classes: int, keep_rate: float) -> float:
    """The gate's centre at which :func:`choose_threshold` lands at :data:`THRESHOLD_AT` (bisection: the
    threshold falls as the centre rises). Where the gate is far below 1 it is nearly exp(slope x (z -
    centre)), so moving the centre moves every top score by one factor and keeps the decisions; it only
    lifts the threshold out of the lowest steps of an 8-bit output."""
    low, high = float(best.min()) - 20 / slope, float(best.max()) + 20 / slope
    for _ in range(50):
        middle = 0.5 * (low + high)
        if choose_threshold(probability * gate(best, slope, middle), labels, n_classes, keep_rate) > THRESHOLD_AT:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


@dataclass(frozen=True, eq=False)
class ClassScores:
    """What calibrating the gate starts from, whatever photos of other things it is given
    (:func:`score_class_photos`): the prototypes, the temperature, and each class photo's label, best class z and
    top probability, out of sample."""

    prototypes: Prototypes
    labels: np.ndarray
    temperature: float
    best_z: np.ndarray
    probability: np.ndarray


def score_class_photos(classifier, gate_features: np.ndarray, gate_labels: np.ndarray, val_features: np.ndarray,
                       val_labels: np.ndarray, seed: int = 0, imagenet: ImageNetView | None = None) -> ClassScores:
    """The prototypes of the ``gate_*`` photos (the training and validation photos), normalised out of sample
    (cross-fitted over them), the temperature on the validation photos, and the class photos' scores. With
    ``imagenet`` (the frozen backbone's ImageNet classifier), the photos are compared by it too
    (:func:`gate_vectors`)."""
    logits, labels = _logits(classifier), np.asarray(gate_labels)
    gate_logits = logits(gate_features)
    n_classes, temperature = gate_logits.shape[1], fit_temperature(logits(val_features), np.asarray(val_labels))
    vectors = gate_vectors(gate_features, imagenet)
    similarity = out_of_fold_similarity(vectors, labels, n_classes, seed)
    prototypes = Prototypes(vectors, labels, n_classes, seed=seed, imagenet=imagenet)
    prototypes.mean, prototypes.spread = normalisation(similarity[np.arange(len(labels)), labels], labels, n_classes)
    best_z = ((similarity - prototypes.mean) / prototypes.spread).max(1)
    return ClassScores(prototypes, labels, temperature, best_z, probability=softmax(gate_logits / temperature).max(1))


def calibrate(scored: ClassScores, other_features: np.ndarray | None, keep_rate: float) -> Rejection:
    """How the gate rejects: its slope and centre fitted on the class photos' scores and, if given, the
    calibration half of the other photos, and the threshold at which every class is estimated to keep
    ``keep_rate`` of its photos."""
    prototypes, labels, n_classes = scored.prototypes, scored.labels, len(scored.prototypes.mean)
    other_best = None if other_features is None else prototypes.normalised(other_features).max(1)
    slope, _ = fit_gate(scored.best_z, other_best)
    centre = _centre_for_threshold(scored.probability, scored.best_z, slope, labels, n_classes, keep_rate)
    top = scored.probability * gate(scored.best_z, slope, centre)
    threshold = choose_threshold(top, labels, n_classes, keep_rate)
    n_other = 0 if other_features is None else len(other_features)
    return Rejection(
        method=f"top score of softmax(logits / T) x sigmoid(slope x (best class z - centre)), z = a class's "
               f"similarity (cosine to its mean and to the nearest of its {prototypes.centroids.shape[1]} "
               "centroids, averaged) normalised by its out-of-sample mean and spread; photos compared by their "
               + ("features and what the backbone's ImageNet classifier sees in them" if prototypes.imagenet
                  else "features"),
        temperature=scored.temperature, centroids=int(np.prod(prototypes.centroids.shape[:2])), gate_slope=slope,
        gate_centre=centre, threshold=threshold, keep_rate=keep_rate,
        calibrated_on=f"{len(labels)} training and validation photos (cross-fitted"
                      + (f") and {n_other} --other photos" if n_other else "; no --other photos)"),
        other_photos=n_other, classes=_class_gates(top, labels, prototypes, threshold))


def scores(classifier, features: np.ndarray, prototypes: Prototypes, rejection: Rejection) -> np.ndarray:
    """What the model with rejection outputs for these features, computed in NumPy."""
    probabilities = softmax(_logits(classifier)(features) / rejection.temperature)
    best = prototypes.normalised(features).max(1)
    return probabilities * gate(best, rejection.gate_slope, rejection.gate_centre)[:, None]


def confident_class_photos(classifier, prototypes: Prototypes, rejection: Rejection, features: np.ndarray) -> int:
    """How many photos the float model is confident show one of its classes (top score >= stats.CONFIDENT)."""
    return int(np.sum(scores(classifier, features, prototypes, rejection).max(1) >= stats.CONFIDENT))
