"""Streaming a dataset's images: decoded with Pillow, upright RGB, in the order given.

Pillow, unlike ``tf.io.decode_image``, also reads WebP, TIFF, CMYK and 16-bit files and applies the
EXIF orientation of phone photos. :func:`decoded_batches` decodes on a thread pool without
TensorFlow, :func:`image_batches` is the ``tf.data`` pipeline for training on images, and
:func:`cache_images` decodes once into a ``.npy`` file on disk.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from zoolite.errors import ZooliteError
from zoolite.targets.base import usable_cores

# Larger images are refused as possible decompression bombs (Pillow's own default).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Pillow only warns about images between its limit and twice that. Make that an error for
# the whole process: images are checked in threads, and warnings.catch_warnings is not
# thread-safe.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def eight_bit(image: Image.Image) -> Image.Image:
    """``image`` at 8 bits a channel as it looks: a 16-bit grey keeps its top 8 bits, a float grey of 0..1 is
    scaled to 0..255 (Pillow's own conversion would clip the one to white and the other to black)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    if image.mode == "F":
        grey = np.nan_to_num(np.asarray(image, np.float32))
        return Image.fromarray(np.rint(grey * (255 if grey.max() <= 1 else 1)).clip(0, 255).astype(np.uint8))
    return image


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode an image file as upright RGB, resized to ``size`` x ``size``: uint8 (size, size, 3)."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: let the decoder downscale by up to 8x first
        image = ImageOps.exif_transpose(image)
        image = eight_bit(image).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def image_batches(paths: list[str | Path], size: int, batch_size: int = 32, labels=None,
                  shuffle_seed: int | None = None, views: Callable[[np.ndarray, int], np.ndarray] | None = None):
    """A ``tf.data`` pipeline of uint8 image batches (with ``labels`` batches, if given).

    Images are decoded in parallel and come in the order of ``paths``, or reshuffled
    every epoch when ``shuffle_seed`` is set; ``views(pixels, random seed)`` (with a shuffle
    seed) makes each a new random view every epoch (:func:`zoolite.model.augmentation.random_views`).
    """
    import tensorflow as tf

    def decode(path, seed):
        image = tf.numpy_function(
            lambda p, s: load_image(p.decode(), size) if views is None else views(load_image(p.decode(), size), s),
            [path, seed], tf.uint8)
        image.set_shape((size, size, 3))
        return image

    paths = [str(p) for p in paths]
    dataset = tf.data.Dataset.from_tensor_slices(paths if labels is None else (paths, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    # A random seed per photo and epoch, for its view.
    seeds = tf.data.Dataset.random(seed=shuffle_seed or 0, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip(dataset, seeds)
    if labels is None:
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda item, s: (decode(item[0], s), item[1]), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _decode(path: str | Path, size: int) -> np.ndarray:
    try:
        return load_image(path, size)
    except (OSError, ValueError) as e:
        raise ZooliteError(f"{path}: could not be read any more ({e}); if the data folder changed, restore "
                           "it and try again (`zoolite run --resume RUN_DIR` finishes an interrupted run)") from None


def decoded_batches(paths: list[str | Path], size: int, batch_size: int = 32,
                    view: Callable[[int, np.ndarray], np.ndarray] | None = None):
    """uint8 batches of ``paths`` decoded in order on a thread pool (Pillow releases the GIL), the next
    batch decoding while the caller works on this one; each photo made ``view(its index, pixels)``
    if given (:func:`zoolite.model.augmentation.view_maker`). No TensorFlow, so that measuring a ``.tflite``
    file needs none."""
    def decode(index: int) -> np.ndarray:
        pixels = _decode(paths[index], size)
        return pixels if view is None else view(index, pixels)

    with ThreadPoolExecutor(usable_cores()) as pool:
        pending = None
        for start in range(0, len(paths), batch_size):
            decoding = [pool.submit(decode, i) for i in range(start, min(start + batch_size, len(paths)))]
            if pending:
                yield np.stack([future.result() for future in pending])
            pending = decoding
        if pending:
            yield np.stack([future.result() for future in pending])


def cache_images(paths: list[str | Path], size: int, out: Path, progress=None, batch_size: int = 32) -> np.ndarray:
    """Decode ``paths`` once, in order, into a uint8 ``.npy`` on disk and return it memory-mapped."""
    from zoolite import storage

    return storage.write_npy_stream(out, decoded_batches(paths, size, batch_size), len(paths), (size, size, 3),
                                    np.uint8, progress)
