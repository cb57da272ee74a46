"""The "none of these" gate folded into the model: the trained classifier with the rejection fitted by
:mod:`zoolite.model.rejection` inside it, in built-in Keras layers, so that the ``.keras`` file loads in safe mode,
every converter takes it, and every client of a converted file rejects the same photos with no glue."""

from __future__ import annotations

import keras
import numpy as np

from zoolite.model.layers import L2Normalize
from zoolite.model.rejection import Prototypes, part_weights
from zoolite.model.training import GATED_HEAD, extractor_of, head_weights, reads_unit_features
from zoolite.results import Rejection

IMAGENET_VIEW = "imagenet_view"  # the layer of the ImageNet classifier's view (rejection.ImageNetView)


def with_rejection(classifier, prototypes: Prototypes, rejection: Rejection):
    """The trained ``classifier`` (pixels -> extractor -> head) with the temperature and the gate
    folded in: pixels in, ``softmax(logits / T) * gate`` out. The extractor feeds the gated head, a model of its
    own, so that the features can also be fed to it alone (:func:`zoolite.model.training.top_of`). Built-in layers
    only, so the ``.keras`` file loads in safe mode and every converter takes it. Each class's normalisation and
    the gate vector's part weights are folded into the weights of its similarities:
    z_c = (0.5 cos(mean) + 0.5 max cos(centroids) - mean_c) / spread_c, and a positive scale commutes
    with the max over a class's centroids."""
    extractor, (kernel, bias) = extractor_of(classifier), head_weights(classifier)
    n_classes, per_class, dim = prototypes.centroids.shape
    imagenet = prototypes.imagenet
    feature_dim = dim - (0 if imagenet is None else imagenet.kernel.shape[1])
    scale = 0.5 / prototypes.spread[:, None] * part_weights(feature_dim, imagenet)
    means, centroids = prototypes.means * scale, (prototypes.centroids * scale[:, None, :]).reshape(-1, dim)
    features = keras.Input(extractor.output_shape[1:], name="features")
    parts = [L2Normalize(name="unit_features")(features)]
    if imagenet is not None:
        imagenet_view = keras.layers.Dense(imagenet.kernel.shape[1], activation="softmax", name=IMAGENET_VIEW)
        parts.append(L2Normalize(name="unit_imagenet_view")(imagenet_view(features)))
    # Each part's similarities by a layer of its own, then added: concatenated, the parts would share
    # one 8-bit range in the integer files, the view's (up to 1), leaving the features' entries (a few
    # hundredths) a few steps of it.
    rows = np.split(np.arange(dim), [feature_dim])[:len(parts)]

    def similarity(name: str, weights: np.ndarray, offset: np.ndarray | None):
        layers = [keras.layers.Dense(len(weights), use_bias=offset is not None and i == 0, name=f"{name}_{i}")
                  for i in range(len(parts))]
        out = [layer(part) for layer, part in zip(layers, parts)]
        for i, (layer, part_rows) in enumerate(zip(layers, rows)):
            layer.set_weights([weights[:, part_rows].T.astype(np.float32)]
                              + ([offset.astype(np.float32)] if offset is not None and i == 0 else []))
        return out[0] if len(out) == 1 else keras.layers.Add(name=name)(out)

    probabilities = keras.layers.Dense(n_classes, activation="softmax", name="calibrated_probabilities")
    to_means = similarity("class_mean_similarity", means, -prototypes.mean / prototypes.spread)
    nearest = keras.layers.GlobalMaxPooling1D(data_format="channels_first", name="nearest_centroid")(
        keras.layers.Reshape((n_classes, per_class))(similarity("centroid_similarity", centroids, None)))
    z = keras.layers.Add(name="class_z")([to_means, nearest])
    best = keras.layers.GlobalMaxPooling1D(name="best_class_z")(keras.layers.Reshape((n_classes, 1))(z))
    shows_a_class = keras.layers.Dense(1, activation="sigmoid", name="shows_a_class")
    head_reads = parts[0] if reads_unit_features(classifier) else features
    scores = keras.layers.Multiply(name="scores")([probabilities(head_reads), shows_a_class(best)])
    pixels = keras.Input(extractor.input_shape[1:], name="pixels")
    model = keras.Model(pixels, keras.Model(features, scores, name=GATED_HEAD)(extractor(pixels)), name=classifier.name)
    probabilities.set_weights([kernel / rejection.temperature, bias / rejection.temperature])
    if imagenet is not None:
        imagenet_view.set_weights([imagenet.kernel.astype(np.float32), imagenet.bias.astype(np.float32)])
    shows_a_class.set_weights([np.array([[rejection.gate_slope]], np.float32),
                               np.array([-rejection.gate_slope * rejection.gate_centre], np.float32)])
    return model
