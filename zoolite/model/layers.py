"""Keras layers of zoolite's own, registered so that its ``.keras`` files load in safe mode."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable("zoolite")
class L2Normalize(keras.layers.Layer):
    """Scales each feature vector to unit length. Unlike ``keras.layers.UnitNormalization``, whose
    graph has a SQUARE op that int8 quantization cannot take, ``tf.math.l2_normalize`` becomes
    one LiteRT ``L2_NORMALIZATION`` op, which runs in every quantization mode."""

    def call(self, inputs):
        return tf.math.l2_normalize(inputs, axis=-1)
