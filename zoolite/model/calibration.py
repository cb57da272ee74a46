"""The integer modes' calibration sample: photos of the classes, and scrambled and plain ones.

Quantization records each tensor's range on this sample; the scrambled and plain photos stretch the
"none of these" gate's range down to photos of nothing in particular, so that the integer files
reject what their float model rejects (:func:`calibration_sample`).
"""

from __future__ import annotations

import numpy as np


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


def flat(images: np.ndarray) -> np.ndarray:
    """Each image filled with its own mean colour: a photo's colour with no texture or shape at all."""
    return np.broadcast_to(np.asarray(images).mean((1, 2), keepdims=True), np.shape(images)).astype(images.dtype)


def calibration_sample(photos: np.ndarray, seed: int) -> np.ndarray:
    """The integer modes' calibration sample: ``photos`` of the classes, and as many :func:`scrambled` and
    as many :func:`flat` ones, each a fifth as many as the photos and at least :data:`SCRAMBLED` (photos
    reused when there are fewer). The gate's best class z of a photo of nothing in particular lies far
    below a scrambled photo's (-3 to -4 spreads against -1 to -2 on the bundled sample), and a range
    that stops at the scrambled photos clamps it up to a gate that keeps it: the int8 files then kept
    98% of plain and noise images their float file rejected half of (tests/test_rejection.py)."""
    count = max(SCRAMBLED, -(-len(photos) // 5))
    reused = np.resize(photos, (count, *photos.shape[1:]))
    return np.concatenate([photos, scrambled(reused, seed), flat(reused)])
