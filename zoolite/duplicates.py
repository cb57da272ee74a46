"""Duplicate photos in a dataset: byte-identical files and near-copies, grouped.

Real folders hold the same photo several times: copied, re-encoded, scaled, cropped a little,
mirrored or brightened, sometimes in two class folders (a *label conflict*). A split that puts
one copy in train and another in test measures memory, so :func:`zoolite.data.split_dataset`
keeps each group in one split and leaves label conflicts out.

How copies are found (``benchmarks/duplicates.py`` measures it):

* byte-identical files share a SHA-256 of their content (symbolic links and hard links too);
* near-copies: each photo, decoded once in grey at low resolution, gives a small descriptor
  (``SIZE`` x ``SIZE`` area-averaged pixels, minus their mean, scaled to unit length), so that
  re-encoding, scaling and brightness changes hardly move it. The descriptor of the whole frame
  and of its mirror image are compared with those of every photo's whole frame and of crops of it
  (``SCALES`` of its sides, at nine places each), so a copy cropped by 3-10% a side mostly finds its
  original. Two photos are copies when the cosine similarity of the best of these reaches ``THRESHOLD``.

Nearest neighbours are found by matrix products over chunks of photos (no pair of photos is
visited in Python), and groups are joined by a union over component labels, so thousands of
near-identical frames cost seconds and memory proportional to one chunk.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

SIZE = 16  # descriptor side, pixels
SCALES = (0.9, 0.8)  # crops (share of each side's length) that a whole frame is also compared with ...
SHIFTS = (0.25, 0.5, 0.75)  # ... each at these places of the margin, across and down


def _windows() -> list[tuple[float, float, float, float]]:
    """The boxes (left, top, right, bottom as shares of the image) a photo is described in: the whole
    frame first, then every crop of ``SCALES`` at every pair of ``SHIFTS``."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for scale in SCALES:
        margin = 1 - scale
        boxes += [(x * margin, y * margin, x * margin + scale, y * margin + scale) for y in SHIFTS for x in SHIFTS]
    return boxes
# benchmarks/duplicates.py on animals10-large: 0.94 groups none of the 2,528 photos wrongly (the 4 pairs it
# makes among them are real copies, checked by eye; 0.93 adds a wrong one) and 75% of 3-10% crops.
THRESHOLD = 0.94
CHUNK = 64  # photos compared at once: one chunk's similarities take CHUNK x 2 x photos x windows floats


@dataclass
class Duplicates:
    """The duplicate groups of a dataset, as paths relative to its root.

    ``groups``: each a sorted list of two or more photos that are copies of one another; every photo
    is in at most one group, and the groups are sorted. ``conflicts``: the groups whose photos sit in
    more than one class folder (label conflicts), also in ``groups``.
    """

    groups: list[list[str]] = field(default_factory=list)
    conflicts: list[list[str]] = field(default_factory=list)

    @property
    def photos(self) -> int:
        """Photos in a group (each group's original included)."""
        return sum(len(group) for group in self.groups)

    def conflict_photos(self) -> list[str]:
        """The photos of the label-conflict groups, sorted."""
        return sorted(path for group in self.conflicts for path in group)

    def group_of(self) -> dict[str, int]:
        """Each grouped photo's index in ``groups``."""
        return {path: i for i, group in enumerate(self.groups) for path in group}


def _descriptors(image: Image.Image) -> np.ndarray:
    """(windows, SIZE * SIZE) unit vectors: the grey image in each of :func:`_windows`, area-averaged."""
    width, height = image.size
    rows = []
    for left, top, right, bottom in _windows():
        box = (left * width, top * height, right * width, bottom * height)
        pixels = np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX, box=box), np.float32).ravel()
        pixels = pixels - pixels.mean()
        norm = float(np.linalg.norm(pixels))
        rows.append(pixels / norm if norm > 1e-3 * SIZE else np.zeros_like(pixels))  # a flat image matches nothing
    return np.stack(rows)


def _read(path: Path) -> tuple[str | None, np.ndarray | None]:
    """The SHA-256 of the file's bytes and its descriptors; None for what cannot be read or decoded."""
    try:
        content = path.read_bytes()
    except OSError:
        return None, None
    digest = hashlib.sha256(content).hexdigest()
    try:
        import io

        with Image.open(io.BytesIO(content)) as image:
            image.draft("L", (8 * SIZE, 8 * SIZE))  # JPEG: decode at reduced scale
            image = ImageOps.exif_transpose(image).convert("L")
            if min(image.size) < 2:
                return digest, None
            return digest, _descriptors(image)
    except Exception:  # noqa: BLE001 - any file Pillow cannot decode is compared by its bytes only
        return digest, None


class _Components:
    """Connected components as a label per photo, kept flat: joining relabels every member."""

    def __init__(self, n: int):
        self.label = np.arange(n)

    def join(self, members: np.ndarray) -> None:
        labels = self.label[members]
        if labels.size and labels.min() != labels.max():
            merged = np.unique(labels)
            self.label[np.isin(self.label, merged)] = merged[0]

    def groups(self) -> list[np.ndarray]:
        order = np.argsort(self.label, kind="stable")
        cuts = np.flatnonzero(np.diff(self.label[order])) + 1
        return [g for g in np.split(order, cuts) if g.size > 1]


def _join_near_copies(components: _Components, descriptors: np.ndarray, threshold: float = THRESHOLD,
                       progress: Callable[[int], None] | None = None) -> None:
    """Join every two photos whose descriptors (photos x windows x D; all zero: not compared) make them
    near-copies: the whole frame or its mirror of one against any crop of the other."""
    n, crops, dim = descriptors.shape
    index = descriptors.reshape(n * crops, dim)
    whole = descriptors[:, 0].reshape(n, SIZE, SIZE)
    queries = np.stack([whole, whole[:, :, ::-1]], axis=1).reshape(n, 2, dim)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        similarity = (queries[start:stop].reshape(-1, dim) @ index.T).reshape(stop - start, 2, n, crops)
        close = similarity.max(axis=(1, 3)) >= threshold
        close[np.arange(stop - start), np.arange(start, stop)] = False
        for row in np.flatnonzero(close.any(axis=1)):
            components.join(np.append(np.flatnonzero(close[row]), start + row))
        if progress:
            progress(stop - start)


def find_duplicates(root: str | Path, files: list[tuple[str, int]],
                    progress: Callable[[int], None] | None = None, threshold: float = THRESHOLD,
                    workers: int | None = None) -> Duplicates:
    """The duplicate groups among ``files`` ((path relative to ``root``, class index), as
    :func:`zoolite.data.scan_dataset` lists them): byte-identical files and near-copies.

    ``progress(n)``, if given, is called as photos are read (``len(files)`` in all) and again as they
    are compared (``len(files)`` more): a progress bar's total is ``2 * len(files)``. A file that
    cannot be read is left out; one that cannot be decoded is compared by its bytes only.
    """
    root = Path(root)
    paths = [path for path, _ in files]

    def read(path: str):
        out = _read(root / path)
        if progress:
            progress(1)
        return out

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        read_back = list(pool.map(read, paths))
    components = _Components(len(paths))
    by_digest: dict[str, list[int]] = {}
    for i, (digest, _) in enumerate(read_back):
        if digest is not None:
            by_digest.setdefault(digest, []).append(i)
    for members in by_digest.values():
        components.join(np.array(members))

    decoded = [i for i, (_, d) in enumerate(read_back) if d is not None]
    if decoded:
        descriptors = np.stack([read_back[i][1] for i in decoded]).astype(np.float32)
        near = _Components(len(decoded))
        _join_near_copies(near, descriptors, threshold, progress)
        for group in near.groups():
            components.join(np.array(decoded)[group])
    if progress and len(decoded) < len(paths):
        progress(len(paths) - len(decoded))

    groups = sorted(sorted(paths[i] for i in group) for group in components.groups())
    label_of = dict(files)
    conflicts = [group for group in groups if len({label_of[path] for path in group}) > 1]
    return Duplicates(groups, conflicts)
