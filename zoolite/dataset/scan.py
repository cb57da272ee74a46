"""Scanning a dataset: a folder with one sub-folder per class, its images checked and labelled.

Scanning opens every image once to find the ones that cannot be used (empty, truncated, not an
image, too large, unreadable); they are skipped and listed, never fatal, unless a class ends up
empty. Class folders are shown by their labels (a label map: Animals-10's Italian folder names in
English by default). :func:`scan_photos` and :func:`photo_files` find the usable photos of a
folder without classes, in any layout.
"""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from zoolite import storage
from zoolite.dataset.images import MAX_PIXELS
from zoolite.errors import ZooliteError
from zoolite.targets.base import usable_cores

# The reference dataset's Italian folder names, shown in English.
ANIMALS10_LABELS = {
    "cane": "dog", "cavallo": "horse", "elefante": "elephant", "farfalla": "butterfly",
    "gallina": "chicken", "gatto": "cat", "mucca": "cow", "pecora": "sheep",
    "ragno": "spider", "scoiattolo": "squirrel",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Files and folders that operating systems and archivers drop into folders; ignored without a word.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r", "__macosx"})
LOOP_REASON = "linked folder already scanned or containing the dataset (a symbolic link loop); not followed"
RUNS_REASON = "zoolite's run folders, not a class; not scanned"
# Folder names of a dataset that comes split already (Kaggle's train/ and test/, each with the class folders).
SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "dev", "test", "testing"})


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


def printable(name: str) -> str:
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
                skipped.append((f"{printable(relative)}/", problem, label))
            elif printable(relative) != relative:  # it could not be saved in the run's file lists
                skipped.append((printable(relative), "file name is not valid UTF-8; rename it", label))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                candidates.append((path, relative, label))
            else:
                skipped.append((relative, f"not an image file extension ({path.suffix or 'none'})", label))
    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool:
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
    """The photos ``paths`` name: files as given, folders searched recursively, and the files given or
    found that are not usable images, with the reason (so one bad file in a shell's ``*.jpg`` costs only
    its own answer). A missing path, or no usable photo at all, is a one-line error."""
    files, skipped = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found, unusable = scan_photos(path, "predict")
            files += [path / file for file in found]
            skipped += [(printable(str(path / file)), reason) for file, reason in unusable]
        elif not path.exists() and not path.is_symlink():
            raise ZooliteError(f"{printable(str(path))}: file not found; pass an image file (JPEG, PNG, ...) "
                               "or a folder of them")
        elif problem := check_image(path):
            skipped.append((printable(str(path)), problem))
        else:
            files.append(path)
    if not files:
        raise ZooliteError(f"{skipped[0][0]}: {skipped[0][1]}; pass an image file (JPEG, PNG, ...) or a folder of them")
    return files, skipped


def scan_class_folders(root: Path, asked_as: str, workers: int | None = None) -> tuple[list[str], list, list]:
    """The class folders under ``root`` (``asked_as``: how the user passes it, for the messages), the usable
    images ((relative path, class index), in scan order) and the skipped files ((relative path, reason,
    class index)). One line if the folder is missing, is a file, has no class folders or an unreadable name."""
    if not root.exists():
        raise ZooliteError(f"{root}: data folder not found; pass {asked_as} with one sub-folder per class")
    if not root.is_dir():
        raise ZooliteError(f"{root}: not a folder; pass {asked_as} with one sub-folder per class")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    runs = [name for name in folders if storage.holds_runs(root / name)]  # `--out` inside `--data`
    class_dirs = [name for name in folders if name not in runs]
    if not class_dirs:
        raise ZooliteError(f"{root}: no class folders in it; put each class's images in a "
                           "sub-folder named after the class")
    for folder in (root, *(root / name for name in class_dirs)):
        if printable(str(folder)) != str(folder):
            raise ZooliteError(f"{printable(str(folder))}: folder name is not valid UTF-8; rename it")
    _refuse_a_split_layout(root, class_dirs)
    files, skipped = _usable_images(root, list(enumerate(root / name for name in class_dirs)), workers)
    return class_dirs, files, skipped + [(f"{name}/", RUNS_REASON, -1) for name in runs]


def _sub_folders(folder: Path) -> set[str]:
    try:
        return {p.name for p in folder.iterdir() if p.is_dir() and not _is_hidden(p.name)}
    except OSError:  # unreadable: the scan lists it as skipped
        return set()


def _refuse_a_split_layout(root: Path, class_dirs: list[str]) -> None:
    """One line when the "classes" are a split (train/, test/, ...) that each hold the same class folders."""
    if not set(map(str.lower, class_dirs)) <= SPLIT_NAMES:
        return
    shared = sorted(set.intersection(*(_sub_folders(root / name) for name in class_dirs)))
    if len(shared) >= 2:
        raise ZooliteError(f"{root}: its folders {', '.join(class_dirs)} are a split, not classes (each holds the "
                           f"class folders {', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}); merge them "
                           f"into one folder per class (zoolite makes its own split), or pass just one of them: "
                           f"{root / class_dirs[-1]}")


def skipped_files(skipped: list) -> list[tuple[str, str]]:
    """(relative path, reason) of :func:`scan_class_folders`' skipped files, sorted."""
    return sorted((relative, reason) for relative, reason, _ in skipped)


def shared_labels(class_dirs: list[str], labels: list[str]) -> dict[str, list[str]]:
    """The labels that two class folders or more get (``cane`` and ``dog``, or a label map's doing): label ->
    its folders. A run refuses them; a check notes them."""
    folders: dict[str, list[str]] = {}
    for name, label in zip(class_dirs, labels):
        folders.setdefault(label, []).append(name)
    return {label: names for label, names in folders.items() if len(names) > 1}


def _refuse_shared_labels(root: Path, class_dirs: list[str], labels: list[str]) -> None:
    for label, folders in shared_labels(class_dirs, labels).items():
        raise ZooliteError(f"{root}: the folders {' and '.join(folders)} both get the label {label!r}; "
                           "move their photos into one folder, or give them labels of their own with --labels FILE")


def scan_dataset(root: str | Path, label_map: dict[str, str] | None = None, workers: int | None = None,
                 asked_as: str = "--data DIR", min_classes: int = 2) -> Dataset:
    """Find the classes and usable images under ``root``; list the files that are skipped.

    Raises ZooliteError when the folder is missing, a class folder has no images, or there are fewer than
    ``min_classes`` classes (two to train a classifier).
    """
    root = Path(root)
    label_map = ANIMALS10_LABELS if label_map is None else label_map
    class_dirs, files, skipped = scan_class_folders(root, asked_as, workers)
    dataset = Dataset(root, class_dirs, [label_map.get(d, d) for d in class_dirs], files, skipped_files(skipped))
    _refuse_shared_labels(root, class_dirs, dataset.labels)
    empty = [name for name, n in dataset.counts().items() if n == 0]
    if empty:
        label = class_dirs.index(empty[0])
        reasons = sorted((relative, reason) for relative, reason, i in skipped if i == label)
        raise ZooliteError(f"{root / empty[0]}: class folder has no usable images"
                           + (f" ({len(reasons)} skipped, e.g. {reasons[0][0]}: {reasons[0][1]})"
                              if reasons else "")
                           + "; add images or remove the folder"
                           + (f" (also empty: {', '.join(empty[1:])})" if len(empty) > 1 else ""))
    if len(class_dirs) < min_classes:
        raise ZooliteError(f"{root}: only one class folder ({class_dirs[0]}); a classifier "
                           "needs at least two")
    return dataset
