"""The "none of these" stage: a classifier that says so when a photo shows none of its classes.

Chosen by measurement (``benchmarks/rejection.py``): the score that generalised best to photos
of other things from collections it never saw is the cosine similarity of a photo's backbone
features to the nearest of a few *centroids* of each class's training features (k-means),
better than the top probability alone (which a confident mistake fools) and better than an
extra "other" class (which learns what its negatives look like). It runs inside the model:

    scores = softmax(logits / T) * gate,    gate = sigmoid(slope * (similarity - centre))

``T`` is the temperature fitted on the validation photos (calibrated probabilities); the gate
is the probability that the photo shows one of the classes at all. The scores of a class
photo are its class probabilities; those of anything else fall towards 0. A photo is
*rejected* when its top score is below the threshold, which keeps ``keep_rate`` of the
validation photos and travels in the file's metadata (``ScoreThresholdingOptions``, which
MediaPipe Tasks applies when the app sets no threshold) and in model.json. So every client
rejects the same photos with no glue, and every variant is measured at the same threshold.

With ``--other`` photos, their calibration half fits the gate (a one-feature logistic
regression of similarity against class photos of the validation split); without them the
gate is centred on the validation photos' similarities, and the report says rejection was
not measured against photos of other things.
"""

from __future__ import annotations

import numpy as np

from zoolite import stats
from zoolite.results import Rejection, RejectionMeasure

CENTROIDS_PER_CLASS = 16  # benchmarks/rejection.py: 16 to 64 reject alike; 16 keeps the file small
KMEANS_ITERATIONS = 30


# --- fitting (NumPy, on backbone features) ----------------------------------------------------

def scrambled(images: np.ndarray, seed: int, tiles: int = 4) -> np.ndarray:
    """``images`` cut into ``tiles`` x ``tiles`` squares put back in a random order: the colours and
    textures of real photos, but none of the classes.

    The integer modes' calibration needs them: it records each tensor's range on the sample, and on
    class photos alone the similarity to the nearest class centroid never goes low, so quantization
    clamps every other photo's similarity up to the class photos' lowest and the gate keeps it
    (benchmarks/calibration.py: uint8 files calibrated on 50 class photos kept 49% of the unlabelled
    photos their float model kept 6% of; with 10 scrambled photos added, 5%)."""
    rng = np.random.default_rng(seed)
    out = np.array(images, copy=True)
    side = out.shape[1] // tiles
    for image in out:
        squares = [image[r * side:(r + 1) * side, c * side:(c + 1) * side].copy()
                   for r in range(tiles) for c in range(tiles)]
        for k, square in enumerate(squares[i] for i in rng.permutation(len(squares))):
            r, c = divmod(k, tiles)
            image[r * side:(r + 1) * side, c * side:(c + 1) * side] = square
    return out


SCRAMBLED = 10  # at least; benchmarks/calibration.py: 2 or 5 left the gate's range to chance, 10 did not


def calibration_sample(photos: np.ndarray, seed: int) -> np.ndarray:
    """The integer modes' calibration sample: ``photos`` of the classes and :func:`scrambled` ones,
    a fifth as many and at least :data:`SCRAMBLED` (photos reused when there are fewer)."""
    count = max(SCRAMBLED, -(-len(photos) // 5))
    return np.concatenate([photos, scrambled(np.resize(photos, (count, *photos.shape[1:])), seed)])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_centroids(features: np.ndarray, labels: np.ndarray, per_class: int = CENTROIDS_PER_CLASS,
                    seed: int = 0) -> np.ndarray:
    """Unit-length centroids of each class's unit-length features: spherical k-means with
    ``min(per_class, photos of the class)`` centroids per class; (centroids, features)."""
    rng = np.random.default_rng(seed)
    unit, labels = _unit(features), np.asarray(labels)
    found = []
    for label in np.unique(labels):
        points = unit[labels == label]
        centres = points[rng.choice(len(points), min(per_class, len(points)), replace=False)]
        for _ in range(KMEANS_ITERATIONS):
            nearest = (points @ centres.T).argmax(1)
            centres = _unit(np.stack([points[nearest == j].mean(0) if np.any(nearest == j) else centres[j]
                                      for j in range(len(centres))]))
        found.append(centres)
    return np.concatenate(found).astype(np.float32)


def similarity(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of each photo's features to its nearest centroid."""
    return (_unit(features) @ np.asarray(centroids, np.float64).T).max(1)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (a grid over
    0.05-20, log-spaced: one parameter needs no optimiser)."""
    rows = np.arange(len(labels))
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))
    nll = [-np.mean(np.log(softmax(logits / t)[rows, labels] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by their photos."""
    p = np.asarray(probabilities, np.float64)
    p = p / p.sum(1, keepdims=True)
    confidence, right = p.max(1), p.argmax(1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(confidence[which == b].mean() - right[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def fit_gate(class_similarity: np.ndarray, other_similarity: np.ndarray | None) -> tuple[float, float]:
    """(slope, centre) of the gate. With photos of other things: a logistic regression of
    similarity, class photos against them, each group weighing half. Without: centred on the
    lowest 5% of the class photos' similarities, as steep as their spread allows."""
    positive = np.asarray(class_similarity, np.float64)
    spread = max(float(np.subtract(*np.percentile(positive, [75, 25]))), 1e-3)
    if other_similarity is None or len(other_similarity) == 0:
        return 4.0 / spread, float(np.percentile(positive, 5))
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
    slope = max(w / scale, 1e-3)  # similarity to the classes can only make a photo more of a class photo
    return float(slope), float(mean - b * scale / w) if w > 0 else float(np.percentile(positive, 5))


def gate(similarities: np.ndarray, slope: float, centre: float) -> np.ndarray:
    return 1 / (1 + np.exp(-slope * (np.asarray(similarities, np.float64) - centre)))


def choose_threshold(top_scores: np.ndarray, keep_rate: float) -> float:
    """The highest threshold that keeps at least ``keep_rate`` of these photos, as a float32 (what the
    file's metadata holds), rounded down so that the photos at it stay kept."""
    ordered = np.sort(np.asarray(top_scores, np.float64))
    dropped = int(np.floor(len(ordered) * (1 - keep_rate) + 1e-9))
    threshold = np.float32(ordered[min(dropped, len(ordered) - 1)])
    return float(threshold if threshold <= ordered[dropped] else np.nextafter(threshold, np.float32(0)))


def _head(classifier) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of the trained classifier's dense softmax layer."""
    kernel, bias = classifier.layers[-1].get_layer("probabilities").get_weights()
    return np.asarray(kernel, np.float64), np.asarray(bias, np.float64)


def fit(classifier, centroids: np.ndarray, val_features: np.ndarray, val_labels: np.ndarray,
        other_features: np.ndarray | None, keep_rate: float) -> Rejection:
    """Fit the rejection of a trained ``classifier`` around its training photos' ``centroids``
    (:func:`class_centroids`): the temperature and the threshold on the validation photos, the
    gate on the validation photos and (if given) the calibration half of the other photos."""
    kernel, bias = _head(classifier)
    val_logits = np.asarray(val_features, np.float64) @ kernel + bias
    temperature = fit_temperature(val_logits, np.asarray(val_labels))
    val_similarity = similarity(val_features, centroids)
    other_similarity = None if other_features is None else similarity(other_features, centroids)
    slope, centre = fit_gate(val_similarity, other_similarity)
    top = softmax(val_logits / temperature).max(1) * gate(val_similarity, slope, centre)
    n_other = 0 if other_features is None else len(other_features)
    return Rejection(
        method=f"top score of softmax(logits / T) x sigmoid(slope x (cosine similarity to the nearest of "
               f"{len(centroids)} class centroids - centre))",
        temperature=temperature, centroids=len(centroids), gate_slope=slope, gate_centre=centre,
        threshold=choose_threshold(top, keep_rate), keep_rate=keep_rate,
        calibrated_on=(f"{len(val_labels)} validation photos and {n_other} --other photos" if n_other else
                       f"{len(val_labels)} validation photos only (no --other photos)"),
        other_photos=n_other)


def scores(classifier, features: np.ndarray, centroids: np.ndarray, rejection: Rejection) -> np.ndarray:
    """What the model with rejection outputs for these features, computed in NumPy."""
    kernel, bias = _head(classifier)
    probabilities = softmax((np.asarray(features, np.float64) @ kernel + bias) / rejection.temperature)
    return probabilities * gate(similarity(features, centroids), rejection.gate_slope, rejection.gate_centre)[:, None]


def confident_class_photos(classifier, centroids: np.ndarray, rejection: Rejection, features: np.ndarray) -> int:
    """How many photos the float model is confident show one of its classes (top score >= stats.CONFIDENT)."""
    return int(np.sum(scores(classifier, features, centroids, rejection).max(1) >= stats.CONFIDENT))


# --- measuring (on any variant's output) ------------------------------------------------------

def kept(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which photos a file's output keeps: the rule MediaPipe applies (top score >= threshold)."""
    return np.asarray(scores).max(1) >= threshold


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a class photo scores above another photo (ties count half)."""
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # average ranks of ties
        ties = values == value
        ranks[ties] = ranks[ties].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def curve(positive: np.ndarray, negative: np.ndarray, points: int = 101) -> list[list[float]]:
    """[threshold, share of class photos kept, share of other photos rejected] over thresholds."""
    top = np.concatenate([positive, negative])
    thresholds = np.unique(np.quantile(top, np.linspace(0, 1, points)))
    return [[float(t), float(np.mean(positive >= t)), float(np.mean(negative < t))] for t in thresholds]


def kept_per_class(scores: np.ndarray, keep: np.ndarray, labels: np.ndarray, class_names: list[str],
                   reference_keep: np.ndarray | None = None) -> dict:
    """What users of each class feel, as :class:`RejectionMeasure` fields: each class's share of photos
    kept (with, against the float model's ``reference_keep``, the photos kept only here / only there and
    the Holm-corrected test that the class loses them), the balanced kept share, and the balanced share
    answered and right (a rejected photo counts as a miss)."""
    from zoolite.results import ClassKept

    labels, n = np.asarray(labels, dtype=int), len(class_names)
    photos = np.bincount(labels, minlength=n)
    kept_photos = np.bincount(labels[keep], minlength=n)
    answered_right = np.bincount(labels[keep & (np.asarray(scores).argmax(1) == labels)], minlength=n)
    losses = [{}] * n if reference_keep is None else \
        [vars(loss) for loss in stats.class_losses(keep, reference_keep, labels, n)]
    balanced_kept = stats.balanced_accuracy_interval(kept_photos, photos)
    balanced_right = stats.balanced_accuracy_interval(answered_right, photos)
    return {"per_class": {name: ClassKept(int(kept_photos[i]), int(photos[i]),
                                          stats.proportion_interval(int(kept_photos[i]), int(photos[i])), **losses[i])
                          for i, name in enumerate(class_names)},
            "balanced_kept": balanced_kept.estimate, "balanced_kept_interval": balanced_kept,
            "balanced_answered_right": balanced_right.estimate, "balanced_answered_right_interval": balanced_right}


def measure(scores: np.ndarray, labels: np.ndarray, class_names: list[str], other_scores: np.ndarray | None,
            threshold: float, reference: tuple[np.ndarray, np.ndarray | None] | None = None) -> RejectionMeasure:
    """A variant's rejection at ``threshold``: ``scores`` on the class photos of the test split (of
    ``labels``, indices into ``class_names``), overall and per class (:func:`kept_per_class`);
    ``other_scores`` on the held-out ``--other`` photos (or None); ``reference`` the float model's
    two score arrays for the paired comparisons."""
    keep = kept(scores, threshold)
    measured = RejectionMeasure(kept=int(keep.sum()), photos=len(keep),
                                kept_interval=stats.proportion_interval(int(keep.sum()), len(keep)),
                                **kept_per_class(scores, keep, labels, class_names,
                                                 None if reference is None else kept(reference[0], threshold)))
    if other_scores is None or len(other_scores) == 0:
        return measured
    reject = ~kept(other_scores, threshold)
    positive, negative = np.asarray(scores).max(1), np.asarray(other_scores).max(1)
    measured.rejected, measured.other_photos = int(reject.sum()), len(reject)
    measured.rejected_interval = stats.proportion_interval(int(reject.sum()), len(reject))
    measured.auroc = auroc(positive, negative)
    measured.curve = curve(positive, negative)
    if reference is not None:
        measured.paired = stats.compare_paired(reject, ~kept(reference[1], threshold))
    return measured


def lost_rejection(variant: RejectionMeasure, reference: RejectionMeasure, max_drop_pp: float,
                   significance: float = 0.05) -> bool:
    """True when ``variant`` rejects fewer held-out other photos than ``reference`` by more than
    the budget, and the loss is real: more decisions lost than won with a one-sided exact
    McNemar p below ``significance`` (the accuracy rule, applied to rejection)."""
    if variant.rejected is None or reference.rejected is None or variant.paired is None:
        return False
    if variant.rejected_rate >= reference.rejected_rate - max_drop_pp / 100 - 1e-8:
        return False
    paired = variant.paired
    return paired.only_reference_right > paired.only_variant_right and paired.mcnemar_p / 2 < significance


# --- in the model (Keras) -----------------------------------------------------------------------

def with_rejection(classifier, centroids: np.ndarray, rejection: Rejection):
    """The trained ``classifier`` (pixels -> extractor -> head) with the temperature and the gate
    folded in: pixels in, ``softmax(logits / T) * gate`` out. Built-in layers only, so the
    ``.keras`` file loads in safe mode and every converter takes it."""
    import keras

    from zoolite.layers import L2Normalize

    extractor, head = classifier.layers[-2], classifier.layers[-1]
    kernel, bias = head.get_layer("probabilities").get_weights()
    pixels = keras.Input(extractor.input_shape[1:], name="pixels")
    features = extractor(pixels)
    probabilities = keras.layers.Dense(kernel.shape[1], activation="softmax", name="calibrated_probabilities")
    similarities = keras.layers.Dense(len(centroids), use_bias=False, name="centroid_similarity")
    shows_a_class = keras.layers.Dense(1, activation="sigmoid", name="shows_a_class")
    nearest = keras.layers.GlobalMaxPooling1D(name="nearest_centroid")(
        keras.layers.Reshape((len(centroids), 1))(similarities(L2Normalize(name="unit_features")(features))))
    scores = keras.layers.Multiply(name="scores")([probabilities(features), shows_a_class(nearest)])
    model = keras.Model(pixels, scores, name=classifier.name)
    probabilities.set_weights([kernel / rejection.temperature, bias / rejection.temperature])
    similarities.set_weights([np.asarray(centroids, np.float32).T])
    shows_a_class.set_weights([np.array([[rejection.gate_slope]], np.float32),
                               np.array([-rejection.gate_slope * rejection.gate_centre], np.float32)])
    return model
