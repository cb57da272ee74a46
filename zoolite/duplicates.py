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
* crops whose sides differ (3% off one side, 10% off the other) fall between those windows, so every
  photo's ``CANDIDATES`` nearest photos that reach ``CANDIDATE`` are checked again, aligned: the crop box
  of the other photo is searched over a grid of margins (``MARGINS``, at the descriptor's size, from
  integral images of a ``THUMB``-pixel thumbnail), and the pairs that reach ``SHORTLIST`` are refined by
  coordinate descent at ``FINE`` x ``FINE`` cells. At that size an aligned copy scores above
  ``ALIGNED_THRESHOLD`` and two different photos of a similar layout below it.

Nearest neighbours are found by matrix products over chunks of photos (no pair of photos is
visited in Python), and groups are joined by a union over component labels, so thousands of
near-identical frames cost seconds and memory proportional to one chunk.
"""

from __future__ import annotations

import hashlib
import io
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
# benchmarks/duplicates.py on animals10-large: 0.94 groups none of the 2,528 photos wrongly (0.93 adds a
# wrong pair); the aligned check below then finds the crops that fall between the windows.
THRESHOLD = 0.94
CANDIDATE, CANDIDATES = 0.6, 3  # the aligned check: each photo's 3 nearest photos that reach 0.6 ...
MARGINS = (0.0, 0.05, 0.1)  # ... their crop boxes: these margins on each side (81 boxes) ...
SHORTLIST = 0.85  # ... and the boxes that reach this, refined at FINE x FINE cells:
FINE, THUMB, FINE_THUMB = 32, 48, 96
# copies (made crops, and real re-crops, framed and watermarked copies in animals10-large, checked by eye)
# score 0.954-0.999 aligned; different photos of similar layout at most 0.931.
ALIGNED_THRESHOLD = 0.945
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


def _grey(source, side: int) -> Image.Image:
    """The photo (a path or a file object) upright, in grey, decoded at no less than ``side`` pixels when
    the format allows it (JPEG decodes at reduced scale)."""
    with Image.open(source) as image:
        image.draft("L", (side, side))
        return ImageOps.exif_transpose(image).convert("L")


def _thumbnail(image: Image.Image, side: int) -> np.ndarray:
    """The grey image squeezed to ``side`` x ``side`` area-averaged pixels (crop boxes are shares of a side)."""
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), np.float32)


def _read(path: Path) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
    """The SHA-256 of the file's bytes, its descriptors and its ``THUMB`` thumbnail; None for what cannot
    be read or decoded."""
    try:
        content = path.read_bytes()
    except OSError:
        return None, None, None
    digest = hashlib.sha256(content).hexdigest()
    try:
        image = _grey(io.BytesIO(content), 8 * SIZE)
    except Exception:  # noqa: BLE001 - any file Pillow cannot decode is compared by its bytes only
        return digest, None, None
    if min(image.size) < 2:
        return digest, None, None
    return digest, _descriptors(image), _thumbnail(image, THUMB).astype(np.uint8)


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
                       progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Join every two photos whose descriptors (photos x windows x D; all zero: not compared) make them
    near-copies: the whole frame or its mirror of one against any crop of the other. Return the pairs to
    check aligned, rows of (photo, other photo, 1 if mirrored): each photo's ``CANDIDATES`` nearest photos
    that reach ``CANDIDATE`` but not ``threshold``."""
    n, crops, dim = descriptors.shape
    index = descriptors.reshape(n * crops, dim)
    whole = descriptors[:, 0].reshape(n, SIZE, SIZE)
    queries = np.stack([whole, whole[:, :, ::-1]], axis=1).reshape(n, 2, dim)
    candidates = []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        rows = np.arange(stop - start)
        similarity = (queries[start:stop].reshape(-1, dim) @ index.T).reshape(stop - start, 2, n, crops).max(axis=3)
        best = similarity.max(axis=1)
        best[rows, np.arange(start, stop)] = -1
        close = best >= threshold
        for row in np.flatnonzero(close.any(axis=1)):
            components.join(np.append(np.flatnonzero(close[row]), start + row))
        nearest = np.argpartition(np.where(close, 1, -best), min(CANDIDATES, n - 1), axis=1)[:, :CANDIDATES]
        row, column = np.nonzero(np.take_along_axis(best, nearest, axis=1) >= CANDIDATE)
        other = nearest[row, column]
        candidates.append(np.stack([start + row, other, similarity[row, 1, other] > similarity[row, 0, other]], axis=1))
        if progress:
            progress(stop - start)
    return np.concatenate(candidates) if candidates else np.zeros((0, 3), int)


def _integral(thumbnails: np.ndarray) -> np.ndarray:
    """(m, side + 1, side + 1) integral images of (m, side, side) thumbnails, with a zero first row and column."""
    m, side, _ = thumbnails.shape
    integral = np.zeros((m, side + 1, side + 1), np.float32)
    integral[:, 1:, 1:] = thumbnails.astype(np.float64).cumsum(axis=1).cumsum(axis=2)
    return integral


def _interpolation(low: np.ndarray, high: np.ndarray, cells: int, side: int) -> np.ndarray:
    """(..., cells + 1, side + 1) weights that sample a row of an integral image linearly at the
    cells + 1 edges between ``low`` and ``high`` (shares of the side)."""
    edges = (low[..., None] + (high - low)[..., None] * np.arange(cells + 1) / cells) * side
    first = np.clip(np.floor(edges).astype(int), 0, side - 1)
    weights = np.zeros((*edges.shape, side + 1), np.float32)
    np.put_along_axis(weights, first[..., None], (1 - (edges - first))[..., None], axis=-1)
    np.put_along_axis(weights, first[..., None] + 1, (edges - first)[..., None], axis=-1)
    return weights


def _box_descriptors(integrals: np.ndarray, boxes: np.ndarray, cells: int) -> np.ndarray:
    """(..., cells * cells) unit descriptors of boxes (..., 4: left, top, right, bottom as shares) of
    integral images (..., side + 1, side + 1; the two broadcast): each box averaged over cells x cells
    areas, minus their mean. An integral image of flat pixels is bilinear within a pixel, so sampling it
    linearly gives exact area sums for any box."""
    side = integrals.shape[-1] - 1
    rows = _interpolation(boxes[..., 1], boxes[..., 3], cells, side)
    columns = _interpolation(boxes[..., 0], boxes[..., 2], cells, side)
    corners = rows @ integrals @ np.swapaxes(columns, -1, -2)
    sums = corners[..., 1:, 1:] - corners[..., :-1, 1:] - corners[..., 1:, :-1] + corners[..., :-1, :-1]
    vectors = sums.reshape(*sums.shape[:-2], cells * cells)
    vectors = vectors - vectors.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.where(norms > 1e-3, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def _frames(integrals: np.ndarray, mirrored: np.ndarray, cells: int) -> np.ndarray:
    """The whole-frame descriptors of ``integrals``, mirrored where ``mirrored``."""
    frames = _box_descriptors(integrals, np.array([0.0, 0.0, 1.0, 1.0]), cells).reshape(-1, cells, cells)
    return np.where(mirrored[:, None, None].astype(bool), frames[:, :, ::-1], frames).reshape(len(frames), -1)


def _best_boxes(candidates: np.ndarray, thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate (photo, other, mirrored): the best similarity of the photo's whole frame against
    the other photo's boxes on the ``MARGINS`` grid, and that box."""
    grid = np.array([(left, top, 1 - right, 1 - bottom) for left in MARGINS for top in MARGINS
                     for right in MARGINS for bottom in MARGINS])
    photo, other, mirrored = candidates.T
    integrals = _integral(thumbnails)
    queries = _frames(integrals[photo], mirrored, SIZE)
    similarity, boxes = np.zeros(len(candidates)), np.zeros((len(candidates), 4))
    others, position = np.unique(other, return_inverse=True)
    for start in range(0, len(others), CHUNK):
        crops = _box_descriptors(integrals[others[start:start + CHUNK], None], grid, SIZE)
        chunk = np.flatnonzero((position >= start) & (position < start + CHUNK))
        scores = np.einsum("pd,pbd->pb", queries[chunk], crops[position[chunk] - start])
        similarity[chunk], boxes[chunk] = scores.max(axis=1), grid[scores.argmax(axis=1)]
    return similarity, boxes


def _aligned_similarity(pairs: np.ndarray, boxes: np.ndarray, integrals: np.ndarray) -> np.ndarray:
    """The similarity at ``FINE`` x ``FINE`` cells of each pair (photo, other, mirrored; rows of
    ``integrals``) once the other photo's crop box, starting at ``boxes``, is moved side by side to fit
    best (coordinate descent in steps of 2%, 1% and 0.5% of a side)."""
    photo, other, mirrored = pairs.T
    queries = _frames(integrals[photo], mirrored, FINE)
    crops_of = integrals[other]
    moves = np.concatenate([np.eye(4), -np.eye(4)])

    def score(trials: np.ndarray) -> np.ndarray:
        return np.einsum("pd,...pd->...p", queries, _box_descriptors(crops_of, trials, FINE))

    best = score(boxes)
    for step in (0.02, 0.01, 0.005):
        for _ in range(8):
            trials = np.clip(boxes[None] + step * moves[:, None], 0.0, 1.0)
            scores = score(trials)
            pick = scores.argmax(axis=0)
            moved = scores[pick, np.arange(len(pairs))]
            if not (moved > best).any():
                break
            boxes = np.where((moved > best)[:, None], trials[pick, np.arange(len(pairs))], boxes)
            best = np.maximum(best, moved)
    return best


def _aligned_copies(candidates: np.ndarray, thumbnails: np.ndarray, paths: list[Path]) -> np.ndarray:
    """The candidates (photo, other, mirrored) that are copies once aligned: a crop of the other photo
    fits the photo's whole frame at ``ALIGNED_THRESHOLD`` or more."""
    if not len(candidates):
        return candidates
    similarity, boxes = _best_boxes(candidates, thumbnails)
    shortlist = similarity >= SHORTLIST
    pairs, boxes = candidates[shortlist], boxes[shortlist]
    if not len(pairs):
        return pairs
    photos, local = np.unique(pairs[:, :2], return_inverse=True)
    integrals = _integral(np.stack([_thumbnail(_grey(paths[i], 2 * FINE_THUMB), FINE_THUMB) for i in photos]))
    local_pairs = np.column_stack([local.reshape(-1, 2), pairs[:, 2]])
    return pairs[_aligned_similarity(local_pairs, boxes, integrals) >= ALIGNED_THRESHOLD]


def find_duplicates(root: str | Path, files: list[tuple[str, int]],
                    progress: Callable[[int], None] | None = None, near_copies: bool = True,
                    workers: int | None = None) -> Duplicates:
    """The duplicate groups among ``files`` ((path relative to ``root``, class index), as
    :func:`zoolite.data.scan_dataset` lists them): byte-identical files and near-copies.

    ``progress(n)``, if given, is called as photos are read (``len(files)`` in all) and again as they
    are compared (``len(files)`` more): a progress bar's total is ``2 * len(files)``. A file that
    cannot be read is left out; one that cannot be decoded is compared by its bytes only. Without
    ``near_copies``, only byte-identical files are grouped.
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
    for i, (digest, _, _) in enumerate(read_back):
        if digest is not None:
            by_digest.setdefault(digest, []).append(i)
    for members in by_digest.values():
        components.join(np.array(members))

    decoded = [i for i, (_, d, _) in enumerate(read_back) if d is not None] if near_copies else []
    if decoded:
        descriptors = np.stack([read_back[i][1] for i in decoded]).astype(np.float32)
        near = _Components(len(decoded))
        candidates = _join_near_copies(near, descriptors, THRESHOLD, progress)
        thumbnails = np.stack([read_back[i][2] for i in decoded])
        for photo, other, _ in _aligned_copies(candidates, thumbnails, [root / paths[i] for i in decoded]):
            near.join(np.array([photo, other]))
        for group in near.groups():
            components.join(np.array(decoded)[group])
    if progress and len(decoded) < len(paths):
        progress(len(paths) - len(decoded))

    groups = sorted(sorted(paths[i] for i in group) for group in components.groups())
    label_of = dict(files)
    conflicts = [group for group in groups if len({label_of[path] for path in group}) > 1]
    return Duplicates(groups, conflicts)
