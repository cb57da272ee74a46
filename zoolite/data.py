"""The dataset stage: scan a folder-per-class image folder, split it, and stream its images.

A dataset is a folder with one sub-folder per class. Scanning opens every image once
to find the ones that cannot be used (empty, truncated, not an image, too large,
unreadable); they are skipped and listed, never fatal, unless a class ends up empty.
The split is stratified by class and seeded, and saved as file lists. Images are
streamed with ``tf.data`` in the order given and decoded with Pillow, which (unlike
``tf.io.decode_image``) also reads WebP, TIFF, CMYK and 16-bit files and applies the
EXIF orientation of phone photos.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoolite.config import DEFAULT_FRACTIONS
from zoolite.errors import ZooliteError

# The reference dataset's Italian folder names, shown in English.
ANIMALS10_LABELS = {
    "cane": "dog", "cavallo": "horse", "elefante": "elephant", "farfalla": "butterfly",
    "gallina": "chicken", "gatto": "cat", "mucca": "cow", "pecora": "sheep",
    "ragno": "spider", "scoiattolo": "squirrel",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Files and folders that operating systems and archivers drop into folders; ignored without a word.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r", "__macosx"})
# Larger images are refused as possible decompression bombs (Pillow's own default).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Pillow only warns about images between its limit and twice that. Make that an error for
# the whole process: images are checked in threads, and warnings.catch_warnings is not
# thread-safe.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
LOOP_REASON = "linked folder already scanned or containing the dataset (a symbolic link loop); not followed"
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """What a scan found: classes (folder names, display labels) and usable files."""

    root: Path
    class_dirs: list[str]
    labels: list[str]
    files: list[tuple[str, int]]  # (path relative to root, class index)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.class_dirs, 0)
        for _, label in self.files:
            counts[self.class_dirs[label]] += 1
        return counts


@dataclass
class Split:
    """A stratified train/val/test split as file lists relative to the dataset root."""

    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]
    seed: int
    fractions: tuple[float, float, float]
    other: OtherSplit | None = None  # the --other photos, if given

    def subset(self, name: str) -> list[tuple[str, int]]:
        return getattr(self, name)

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions),
                **{name: [list(item) for item in self.subset(name)] for name in SPLITS},
                **({"other": asdict(self.other)} if self.other else {})}

    @classmethod
    def from_json(cls, obj: dict) -> "Split":
        return cls(*([tuple(item) for item in obj[name]] for name in SPLITS),
                   seed=obj["seed"], fractions=tuple(obj["fractions"]),
                   other=OtherSplit(**obj["other"]) if obj.get("other") else None)


@dataclass
class OtherSplit:
    """Photos of none of the classes (``--other``), relative to ``root``: the ``calibration`` half
    fits the rejection, the ``test`` half measures it."""

    root: str
    calibration: list[str]
    test: list[str]


def split_other(root: str | Path, photos: list[str], seed: int) -> OtherSplit:
    """Half the photos (rounded down) calibrate, the rest are held out; seeded, like the dataset's split."""
    order = [photos[i] for i in np.random.default_rng(seed).permutation(len(photos))]
    half = len(order) // 2
    return OtherSplit(str(root), sorted(order[:half]), sorted(order[half:]))


def even_sample(labels: list[int] | np.ndarray, n: int, seed: int) -> list[int]:
    """Indices of ``n`` items drawn evenly over the classes of ``labels`` (seeded): each class in turn
    gives one more, in a random order within the class, until ``n`` are drawn or all are."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=int)
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    drawn: list[int] = []
    while len(drawn) < min(n, len(labels)):
        for queue in queues:
            if queue and len(drawn) < n:
                drawn.append(int(queue.pop()))
    return drawn


def load_label_map(path: str | Path | None) -> dict[str, str]:
    """The folder-name -> label map: Animals-10's by default, or a JSON object from ``path``."""
    if path is None:
        return dict(ANIMALS10_LABELS)
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooliteError(f"{path}: label map file not found; pass a JSON file like "
                           '{"cane": "dog"}') from None
    except (OSError, ValueError) as e:
        raise ZooliteError(f"{path}: not a readable JSON label map ({e}); expected an object "
                           'like {"cane": "dog"}') from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ZooliteError(f'{path}: the label map must be a JSON object like {{"cane": "dog"}}')
    return mapping


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def _walk_files(class_dir: Path, seen: set[str], root_real: str):
    """Yield (file, None) for each non-hidden file under ``class_dir``, sub-folders included,
    and (folder, reason) for a folder that is not scanned.

    A linked folder is not followed when it leads to a folder in ``seen`` (scanned already,
    or another class) or to one that contains the dataset: that is a loop.
    """
    unreadable = []
    for folder, dirs, files in os.walk(class_dir, onerror=unreadable.append, followlinks=True):
        followed = []
        for name in sorted(d for d in dirs if not _is_hidden(d)):
            real = os.path.realpath(os.path.join(folder, name))
            if real in seen or os.path.commonpath([real, root_real]) == real:
                yield Path(folder, name), LOOP_REASON
            else:
                seen.add(real)
                followed.append(name)
        dirs[:] = followed
        for name in sorted(files):
            if not _is_hidden(name):
                yield Path(folder, name), None
    for error in unreadable:
        yield Path(error.filename), f"folder cannot be read ({error.strerror}); fix its permissions"


def _printable(name: str) -> str:
    """``name`` with bytes that are not UTF-8 shown as escapes (\\xe9), so it can be printed and saved."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_image(path: Path) -> str | None:
    """Return why ``path`` cannot be used as an image, or None if it decodes completely."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file (a pipe, socket or device)"
        if info.st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return (f"image too large ({image.width}x{image.height} pixels, over "
                        f"{MAX_PIXELS:,}); downsize it")
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads it all
            image.load()
    except PermissionError:
        return "cannot be read (permission denied); fix its permissions"
    except FileNotFoundError:
        return "file not found (a broken symbolic link?)"
    except UnidentifiedImageError:
        return "not an image (content not recognised)"
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return f"image too large (over {MAX_PIXELS:,} pixels); downsize it"
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return f"damaged or truncated image ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return None


def _usable_images(root: Path, folders: list[tuple[int, Path]], workers: int | None = None):
    """Every image file under the ``(label, folder)`` pairs, each opened once: returns the usable
    ones as (path relative to ``root``, label) and the skipped ones as (relative path, reason, label)."""
    root_real = os.path.realpath(root)
    seen = {os.path.realpath(folder) for _, folder in folders}
    candidates, skipped = [], []
    for label, folder in folders:
        for path, problem in _walk_files(folder, seen, root_real):
            relative = path.relative_to(root).as_posix()
            if problem:
                skipped.append((f"{_printable(relative)}/", problem, label))
            elif _printable(relative) != relative:  # it could not be saved in the run's file lists
                skipped.append((_printable(relative), "file name is not valid UTF-8; rename it", label))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                candidates.append((path, relative, label))
            else:
                skipped.append((relative, f"not an image file extension ({path.suffix or 'none'})", label))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        problems = list(pool.map(check_image, (path for path, _, _ in candidates)))
    files = []
    for (_, relative, label), problem in zip(candidates, problems):
        if problem:
            skipped.append((relative, problem, label))
        else:
            files.append((relative, label))
    return files, skipped


def scan_photos(root: str | Path, option: str = "--unlabelled") -> tuple[list[str], list[tuple[str, str]]]:
    """The usable images anywhere under ``root`` (flat or nested, no classes), relative to it, and
    the skipped files with their reasons. Raises ZooliteError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise ZooliteError(f"{option} {root}: folder not found; pass a folder of photos (any layout)")
    files, skipped = _usable_images(root, [(0, root)])
    skipped = sorted((relative, reason) for relative, reason, _ in skipped)
    if not files:
        raise ZooliteError(f"{option} {root}: no usable images in it" + (
            f" ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else "")
            + "; pass a folder of photos")
    return sorted(path for path, _ in files), skipped


def photo_files(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """The photos ``paths`` name: files as given, folders searched recursively, and the files in those
    folders that are not usable images, with the reason. A missing path, a file given by name that is
    not an image, or a folder without any usable one is a one-line error."""
    files, skipped = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found, unusable = scan_photos(path, "predict")
            files += [path / file for file in found]
            skipped += [(str(path / file), reason) for file, reason in unusable]
            continue
        problem = check_image(path) if path.is_file() else "file not found"
        if problem:
            raise ZooliteError(f"{path}: {problem}; pass an image file (JPEG, PNG, ...) or a folder of them")
        files.append(path)
    return files, skipped


def scan_dataset(root: str | Path, label_map: dict[str, str] | None = None,
                 workers: int | None = None) -> Dataset:
    """Find the classes and usable images under ``root``; list the files that are skipped.

    Raises ZooliteError when the folder is missing, or fewer than two classes have images.
    """
    root = Path(root)
    if not root.exists():
        raise ZooliteError(f"{root}: data folder not found; pass --data DIR with one sub-folder per class")
    if not root.is_dir():
        raise ZooliteError(f"{root}: not a folder; pass --data DIR with one sub-folder per class")
    label_map = ANIMALS10_LABELS if label_map is None else label_map
    class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    if not class_dirs:
        raise ZooliteError(f"{root}: no class folders in it; put each class's images in a "
                           "sub-folder named after the class")
    for folder in (root, *(root / name for name in class_dirs)):
        if _printable(str(folder)) != str(folder):
            raise ZooliteError(f"{_printable(str(folder))}: folder name is not valid UTF-8; rename it")

    files, skipped = _usable_images(root, list(enumerate(root / name for name in class_dirs)), workers)
    dataset = Dataset(root, class_dirs, [label_map.get(d, d) for d in class_dirs], files,
                      sorted((relative, reason) for relative, reason, _ in skipped))
    empty = [name for name, n in dataset.counts().items() if n == 0]
    if empty:
        label = class_dirs.index(empty[0])
        reasons = sorted((relative, reason) for relative, reason, i in skipped if i == label)
        raise ZooliteError(f"{root / empty[0]}: class folder has no usable images"
                           + (f" ({len(reasons)} skipped, e.g. {reasons[0][0]}: {reasons[0][1]})"
                              if reasons else "")
                           + "; add images or remove the folder"
                           + (f" (also empty: {', '.join(empty[1:])})" if len(empty) > 1 else ""))
    if len(class_dirs) < 2:
        raise ZooliteError(f"{root}: only one class folder ({class_dirs[0]}); a classifier "
                           "needs at least two")
    return dataset


def split_dataset(dataset: Dataset, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> Split:
    """Split per class (stratified), reproducibly for a given seed.

    Every class gets at least one test image, and one validation image when the
    validation fraction is above zero.
    """
    by_class: dict[int, list[str]] = {}
    for path, label in dataset.files:
        by_class.setdefault(label, []).append(path)
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        paths = sorted(by_class[label])
        n = len(paths)
        n_test = max(1, round(n * fractions[2]))
        n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
        if n - n_test - n_val < 1:
            raise ZooliteError(
                f"{dataset.root / dataset.class_dirs[label]}: only {n} usable image(s); each class "
                f"needs at least {2 + (n_val > 0)} for the train/val/test split; add images")
        order = [paths[i] for i in rng.permutation(n)]
        parts["test"] += [(p, label) for p in order[:n_test]]
        parts["val"] += [(p, label) for p in order[n_test:n_test + n_val]]
        parts["train"] += [(p, label) for p in order[n_test + n_val:]]
    return Split(parts["train"], parts["val"], parts["test"], seed, fractions)


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode an image file as upright RGB, resized to ``size`` x ``size``: uint8 (size, size, 3)."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: let the decoder downscale by up to 8x first
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit: keep the top 8 bits
            image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255)
                                    .astype(np.uint8))
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def image_batches(paths: list[str | Path], size: int, batch_size: int = 32, labels=None,
                  shuffle_seed: int | None = None, views: Callable[[np.ndarray, int], np.ndarray] | None = None):
    """A ``tf.data`` pipeline of uint8 image batches (with ``labels`` batches, if given).

    Images are decoded in parallel and come in the order of ``paths``, or reshuffled
    every epoch when ``shuffle_seed`` is set; ``views(pixels, random seed)`` (with a shuffle
    seed) makes each a new random view every epoch (:func:`zoolite.augmentation.random_views`).
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
    if given (:func:`zoolite.augmentation.view_maker`). No TensorFlow, so that measuring a ``.tflite``
    file needs none."""
    def decode(index: int) -> np.ndarray:
        pixels = _decode(paths[index], size)
        return pixels if view is None else view(index, pixels)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
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
