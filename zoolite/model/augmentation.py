"""Augmentation: random changes to the training photos' pixels before the backbone, so the head learns
what a cat looks like rather than these cats.

``standard`` is the reference material's: horizontal flip, small rotation, zoom and contrast.
Each view is one affine warp of the decoded photo (flip, rotation and zoom together, edges
filled by reflection, as Keras's ``RandomRotation``/``RandomZoom`` default to) and a contrast
change, done with Pillow and NumPy in the decoding threads, like torchvision's transforms.
Keras's preprocessing layers did the same at 250-290 images/s on 2 cores, as slow as the
backbone itself; here it costs almost nothing beside decoding.

With a frozen base, zoolite keeps its cached features fast: each training photo's features are
computed for ``--augment-views`` views once (:mod:`zoolite.model.features`), and each epoch draws one
of the photo's versions (:class:`Views`). Fine-tuning trains through the backbone and makes new
views on the fly with the same function (:func:`zoolite.dataset.images.image_batches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Augmentation:
    """What a view may change: a horizontal flip (half the time), a rotation of up to ±``rotation_deg``,
    a zoom by a factor in 1 ± ``zoom``, a contrast factor in 1 ± ``contrast`` (uniform draws)."""

    flip: bool = False
    rotation_deg: float = 0.0
    zoom: float = 0.0
    contrast: float = 0.0

    def view(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random view of a square uint8 photo (size, size, 3), the same shape and type."""
        size = pixels.shape[0]
        angle = math.radians(rng.uniform(-self.rotation_deg, self.rotation_deg))
        scale = rng.uniform(1 - self.zoom, 1 + self.zoom)
        mirror = -1.0 if self.flip and rng.random() < 0.5 else 1.0
        pad = size // 4  # reflected border: room for the corners of a rotated or zoomed-out view
        padded = Image.fromarray(np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
        # Pillow maps each output pixel back into the input: input = centre + M (output - centre).
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        m = ((cos * mirror, -sin), (sin * mirror, cos))
        half, centre = size / 2, pad + size / 2
        warped = padded.transform((size, size), Image.Transform.AFFINE, resample=Image.Resampling.BILINEAR, data=(
            m[0][0], m[0][1], centre - half * (m[0][0] + m[0][1]),
            m[1][0], m[1][1], centre - half * (m[1][0] + m[1][1])))
        x = np.asarray(warped, np.float32)
        if self.contrast:
            mean = x.mean(axis=(0, 1))
            x = (x - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# One per choice of --augment (zoolite.config.AUGMENTATIONS).
_RECIPES = {"none": None, "flip": Augmentation(flip=True),
            "standard": Augmentation(flip=True, rotation_deg=10.0, zoom=0.1, contrast=0.1)}


def view_maker(name: str, seed: int) -> Callable[[int, np.ndarray], np.ndarray] | None:
    """``(photo index, pixels) -> a view``, the same view of the same photo every time (seeded by
    ``seed`` and the index, whatever thread makes it); None for ``none``."""
    recipe = _RECIPES[name]
    if recipe is None:
        return None
    return lambda index, pixels: recipe.view(pixels, np.random.default_rng([seed, index]))


def random_views(name: str) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """``(pixels, random seed) -> a view``, for views made anew every epoch; None for ``none``."""
    recipe = _RECIPES[name]
    return None if recipe is None else lambda pixels, seed: recipe.view(pixels, np.random.default_rng(seed))


class Views(keras.utils.PyDataset):
    """Training batches of cached features: each epoch shows every photo once, as one of its versions
    (the original or one of its augmented views) drawn at random, in a new order."""

    def __init__(self, versions: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.versions, self.labels, self.batch_size = versions, labels, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.labels))
        self.version = self.rng.integers(len(self.versions), size=len(self.labels))

    def __getitem__(self, index: int):
        photos = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return np.stack([self.versions[v][i] for v, i in zip(self.version[photos], photos)]), self.labels[photos]
