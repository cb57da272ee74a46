"""A small CNN trained from scratch: the baseline that shows what transfer learning buys."""

from __future__ import annotations

import keras


def scratch_cnn(input_size: int = 128, filters=(32, 64, 128, 256)) -> keras.Model:
    """LeNet/AlexNet-style stack of conv-BN-ReLU-maxpool stages, then global average pooling.

    Args:
        input_size: side of the square input (normalised pixels in [0, 1]).
        filters: channels of each stage; the last one is the feature size.
    """
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = inputs
    for i, n in enumerate(filters):
        x = keras.layers.Conv2D(n, 3, padding="same", use_bias=False, name=f"stage{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"stage{i}_bn")(x)
        x = keras.layers.ReLU(name=f"stage{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="scratch_cnn")
