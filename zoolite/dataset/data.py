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
import logging
import os
import re
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoolite.config import DEFAULT_FRACTIONS
from zoolite.dataset.duplicates import Duplicates, component_labels
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
log = logging.getLogger(__name__)


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
    # The duplicate groups, each kept within one split (None: not looked for: --keep-duplicates, or a
    # split.json of before), and the photos of label conflicts, left out of every split.
    groups: list[list[str]] | None = None
    conflicts: list[tuple[str, int]] = field(default_factory=list)
    # --group-by: the pattern and the groups it named ({group name: sorted photos}; photos it does not match
    # are each their own group and are not listed), each kept within one split. None: not asked for.
    group_by: str | None = None
    user_groups: dict[str, list[str]] | None = None

    def subset(self, name: str) -> list[tuple[str, int]]:
        return getattr(self, name)

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions),
                **{name: [list(item) for item in self.subset(name)] for name in SPLITS},
                **({"other": asdict(self.other)} if self.other else {}),
                # extra keys, which older zoolite versions ignore
                **({"duplicate_groups": self.groups, "label_conflicts": [list(item) for item in self.conflicts]}
                   if self.groups is not None else {}),
                **({"user_groups": {"pattern": self.group_by, "groups": self.user_groups}}
                   if self.group_by is not None else {})}

    @classmethod
    def from_json(cls, obj: dict) -> "Split":
        return cls(*([tuple(item) for item in obj[name]] for name in SPLITS),
                   seed=obj["seed"], fractions=tuple(obj["fractions"]),
                   other=OtherSplit(**obj["other"]) if obj.get("other") else None,
                   groups=obj.get("duplicate_groups"),
                   conflicts=[tuple(item) for item in obj.get("label_conflicts", [])],
                   group_by=(obj.get("user_groups") or {}).get("pattern"),
                   user_groups=(obj.get("user_groups") or {}).get("groups"))

    def where(self) -> dict[str, str]:
        """Each split photo's split name."""
        return {path: name for name in SPLITS for path, _ in self.subset(name)}

    def group_counts(self) -> dict[str, tuple[int, int]]:
        """With --group-by: per split, (user groups, their photos) in it; photos in no group not counted."""
        where = self.where()
        counts = {name: [0, 0] for name in SPLITS}
        for photos in (self.user_groups or {}).values():
            placed = [where[p] for p in photos if p in where]  # label conflicts are in no split
            if placed:
                counts[placed[0]][0] += 1
                counts[placed[0]][1] += len(placed)
        return {name: tuple(n) for name, n in counts.items()}

    def test_groups(self) -> list[str]:
        """With --group-by: the names of the user groups in the test split, sorted."""
        where = self.where()
        return sorted(name for name, photos in (self.user_groups or {}).items()
                      if any(where.get(p) == "test" for p in photos))


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


def scan_class_folders(root: Path, asked_as: str, workers: int | None = None) -> tuple[list[str], list, list]:
    """The class folders under ``root`` (``asked_as``: how the user passes it, for the messages), the usable
    images ((relative path, class index), in scan order) and the skipped files ((relative path, reason,
    class index)). One line if the folder is missing, is a file, has no class folders or an unreadable name."""
    if not root.exists():
        raise ZooliteError(f"{root}: data folder not found; pass {asked_as} with one sub-folder per class")
    if not root.is_dir():
        raise ZooliteError(f"{root}: not a folder; pass {asked_as} with one sub-folder per class")
    class_dirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    if not class_dirs:
        raise ZooliteError(f"{root}: no class folders in it; put each class's images in a "
                           "sub-folder named after the class")
    for folder in (root, *(root / name for name in class_dirs)):
        if _printable(str(folder)) != str(folder):
            raise ZooliteError(f"{_printable(str(folder))}: folder name is not valid UTF-8; rename it")
    files, skipped = _usable_images(root, list(enumerate(root / name for name in class_dirs)), workers)
    return class_dirs, files, skipped


def skipped_files(skipped: list) -> list[tuple[str, str]]:
    """(relative path, reason) of :func:`scan_class_folders`' skipped files, sorted."""
    return sorted((relative, reason) for relative, reason, _ in skipped)


def scan_dataset(root: str | Path, label_map: dict[str, str] | None = None,
                 workers: int | None = None) -> Dataset:
    """Find the classes and usable images under ``root``; list the files that are skipped.

    Raises ZooliteError when the folder is missing, or fewer than two classes have images.
    """
    root = Path(root)
    label_map = ANIMALS10_LABELS if label_map is None else label_map
    class_dirs, files, skipped = scan_class_folders(root, "--data DIR", workers)
    dataset = Dataset(root, class_dirs, [label_map.get(d, d) for d in class_dirs], files, skipped_files(skipped))
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


def user_groups(paths, pattern: str) -> dict[str, list[str]]:
    """The groups ``--group-by PATTERN`` names among ``paths`` (relative to the data folder, with ``/``):
    the pattern is searched in each path, and its match (group 1 if it has a group, else the whole match)
    names the photo's group. Photos it does not match are left out (each is its own group)."""
    regex = re.compile(pattern)
    groups: dict[str, list[str]] = {}
    for path in paths:
        match = regex.search(path)
        if match is not None:
            name = match.group(1) if regex.groups else match.group(0)
            groups.setdefault(name if name is not None else match.group(0), []).append(path)
    return {name: sorted(photos) for name, photos in sorted(groups.items())}


def _units(paths: list[str], joined: list[list[str]]) -> list[list[str]]:
    """``paths`` partitioned so that each list of ``joined`` is within one part (the union that joins
    copies, :func:`zoolite.dataset.duplicates.component_labels`): sorted parts of sorted paths."""
    index = {path: i for i, path in enumerate(paths)}
    edges = []
    for members in joined:
        present = [index[p] for p in members if p in index]
        edges += [(present[0], other) for other in present[1:]]
    label = component_labels(len(paths), np.array(edges, int).reshape(-1, 2))
    parts: dict[int, list[str]] = {}
    for path, part in zip(paths, label):
        parts.setdefault(int(part), []).append(path)
    return sorted(sorted(part) for part in parts.values())


def split_dataset(dataset: Dataset, fractions=DEFAULT_FRACTIONS, seed: int = 0,
                  duplicates: Duplicates | None = None, group_by: str | None = None) -> Split:
    """Split per class (stratified), reproducibly for a given seed.

    Every class gets at least one test image, and one validation image when the
    validation fraction is above zero. With ``duplicates`` (:func:`zoolite.dataset.duplicates.find_duplicates`),
    each group of copies is one unit of its class and lands whole in one split, and the photos of a
    label conflict (a group in several class folders) are left out of every split; without, every
    photo is its own unit (as before duplicates were looked for).

    With ``group_by`` (a regular expression, :func:`user_groups`), the photos of each group it names
    land whole in one split too, as scikit-learn's group splitters do: a photo in a group of copies and
    in a user group joins both into one unit. A unit may then hold photos of several classes; it is
    split as a unit of its majority class (ties: the first class), each photo keeping its own label, and
    the fractions count units, not photos. A class whose photos all lie in one unit cannot be in both
    train and test, and is refused; one that has too few units of its own to fill every split is warned of
    when it ends up missing from train or test.
    """
    conflicted = set(duplicates.conflict_photos()) if duplicates else set()
    label_of = {path: label for path, label in dataset.files if path not in conflicted}
    named = user_groups(sorted(label_of), group_by) if group_by is not None else None
    units = _units(list(label_of), (duplicates.groups if duplicates else []) + list((named or {}).values()))
    if group_by is not None:
        _refuse_single_unit_classes(dataset, units, label_of, group_by, named)
    by_class: dict[int, list[list[str]]] = {}  # majority label -> units, sorted by their first photo
    for unit in units:
        labels = [label_of[p] for p in unit]
        by_class.setdefault(max(sorted(set(labels)), key=labels.count), []).append(unit)
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for label in range(len(dataset.class_dirs)):
        own = by_class.get(label, [])
        n = len(own)
        n_test = max(1, round(n * fractions[2]))
        n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
        if n - n_test - n_val < 1 and group_by is not None:
            # its photos lie in other classes' units too (checked above): fill train first, then test, then val
            n_test, n_val = (0, 0) if n < 2 else (1, 0) if n < 3 else (n_test, n_val)
        elif n - n_test - n_val < 1:
            distinct = " distinct" if duplicates and duplicates.groups else ""
            raise ZooliteError(
                f"{dataset.root / dataset.class_dirs[label]}: only {n} usable{distinct} image(s)"
                + (" (copies of one photo count once, label conflicts not at all)" if distinct else "")
                + f"; each class needs at least {2 + (n_val > 0)} for the train/val/test split; add images")
        order = [own[i] for i in rng.permutation(n)]
        parts["test"] += [(p, label_of[p]) for unit in order[:n_test] for p in unit]
        parts["val"] += [(p, label_of[p]) for unit in order[n_test:n_test + n_val] for p in unit]
        parts["train"] += [(p, label_of[p]) for unit in order[n_test + n_val:] for p in unit]
    split = Split(parts["train"], parts["val"], parts["test"], seed, fractions,
                  groups=duplicates.groups if duplicates is not None else None,
                  conflicts=sorted((p, label) for p, label in dataset.files if p in conflicted),
                  group_by=group_by, user_groups=named)
    if group_by is not None:
        for label, name in enumerate(dataset.class_dirs):
            missing = [s for s in ("train", "test") if not any(l == label for _, l in split.subset(s))]
            if missing:
                log.warning("--group-by %s: class %s has no photos in %s with seed %d (its photos lie in few "
                            "groups); its figures are not measured; try another --seed or a finer pattern",
                            group_by, name, " or ".join(missing), seed)
    return split


def _refuse_single_unit_classes(dataset: Dataset, units: list[list[str]], label_of: dict[str, int],
                                group_by: str, named: dict[str, list[str]]) -> None:
    """One line for the first class whose photos all lie in one unit (one --group-by group, with its copies)."""
    unit_of = {p: i for i, unit in enumerate(units) for p in unit}
    for label, class_dir in enumerate(dataset.class_dirs):
        touched = {unit_of[p] for p, l in label_of.items() if l == label}
        if len(touched) == 1:
            unit = set(units[touched.pop()])
            names = [name for name, photos in named.items() if unit.intersection(photos)]
            raise ZooliteError(
                f"--group-by {group_by}: all photos of the class {class_dir} are in one group"
                + (f" ({', '.join(names[:3])})" if names else "")
                + ", so it cannot be in both train and test; use a pattern that splits its photos into "
                  "several groups, add photos of other groups, or leave out --group-by")


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
