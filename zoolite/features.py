"""The features stage: every training photo through the frozen backbone once, the fastest correct way.

A frozen base gives a photo the same features in every epoch, so they are computed once and the
head trains on them (:mod:`zoolite.training`). The backbone is converted once to a float32 LiteRT
file and run one photo per call with XNNPACK on every core, while a thread pool decodes the next
photos. ``benchmarks/features.py`` measured this against Keras's batch inference side by side on
the same photos: about three times the images per second on 2 cores, with the same features
(every difference below 1e-4 of the largest feature, :data:`TOLERANCE`).

Augmented views (:mod:`zoolite.augmentation`) are made in the decoding threads, so each view
costs one more backbone pass and little else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from zoolite import storage
from zoolite.data import decoded_batches

# Fast features must equal Keras's up to this fraction of the largest feature (float32 rounding,
# operations fused in a different order).
TOLERANCE = 1e-4


def backbone_file(extractor, folder: Path) -> Path:
    """``extractor`` (a Keras feature extractor, raw pixels in) as a float32 LiteRT file in ``folder``,
    converted unless already there. The file is named by a digest of the extractor's architecture and
    weights and of TensorFlow's version, so it is reused exactly when converting would give it again."""
    import hashlib

    import tensorflow as tf

    digest = hashlib.sha256(f"{extractor.to_json()} {tf.__version__}".encode())
    for weights in extractor.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    out = folder / f"{extractor.name}-{digest.hexdigest()[:16]}.tflite"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        from zoolite.targets.base import export_saved_model
        from zoolite.targets.litert import convert

        with tempfile.TemporaryDirectory(prefix="zoolite-backbone-") as tmp:
            storage.write_bytes(out, convert(export_saved_model(extractor, Path(tmp) / "saved_model"), "float32"))
    return out


def open_backbone(path: Path, threads: int | None = None):
    """A runtime that gives the features of a batch of photos (``predict``), one photo per call."""
    from zoolite.targets.litert import LiteRTRuntime

    return LiteRTRuntime(path, threads)


def extract(runtime, paths: list[Path], size: int, out: Path, progress=None,
            view: Callable[[int, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The features of ``paths`` (each photo made a ``view``, if given: :mod:`zoolite.augmentation`)
    streamed into the ``.npy`` ``out``, returned memory-mapped; decoding overlaps the backbone."""
    def features():
        for pixels in decoded_batches(paths, size, view=view):
            yield runtime.predict(pixels)

    # The runtime reads the backbone's output width as its number of classes.
    return storage.write_npy_stream(out, features(), len(paths), (runtime.n_classes,), np.float32, progress)


def extract_keras(extractor, paths: list[Path], size: int, out: Path, progress=None) -> np.ndarray:
    """The same features by Keras's batch inference (the reference the fast way is checked against)."""
    batches = (extractor.predict_on_batch(pixels.astype(np.float32)) for pixels in decoded_batches(paths, size))
    return storage.write_npy_stream(out, batches, len(paths), (extractor.output_shape[-1],), np.float32, progress)


def max_difference(features: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference between two feature arrays, as a fraction of the reference's largest feature."""
    return float(np.max(np.abs(features - reference)) / np.max(np.abs(reference)))
