"""Duplicate photos in a dataset: byte-identical files and near-copies, grouped.

Real folders hold the same photo several times: copied, re-encoded, scaled, cropped a little,
mirrored or brightened, sometimes in two class folders (a *label conflict*). A split that puts
one copy in train and another in test measures memory, so :func:`zoolite.dataset.split.split_dataset`
keeps each group in one split and leaves label conflicts out.

How copies are found (``benchmarks/duplicates.py`` measures it):

* byte-identical files share a SHA-256 of their content (symbolic links and hard links too);
* near-copies: each photo, decoded once in grey at low resolution and squeezed to a ``THUMB`` x
  ``THUMB`` thumbnail, gives small descriptors (``SIZE`` x ``SIZE`` area averages, minus their mean,
  scaled to unit length, all read off the thumbnail's integral image), so that re-encoding, scaling
  and brightness changes hardly move them: one of the whole frame and one of each crop of it
  (``SCALES`` of its sides, at nine places each).
* Each photo's ``NEIGHBOURS`` nearest photos are found on coarse descriptors (``COARSE`` x ``COARSE``,
  the fine ones pooled: cheap enough to compare every pair, by matrix products over chunks of photos):
  its whole frame and mirror image against every photo's whole frame and crops. Only these pairs are
  compared closely, the same way at ``SIZE`` x ``SIZE``, both ways round; they are copies when the
  cosine similarity of the best of these reaches ``THRESHOLD``.
* A crop whose sides differ (3% off one side, 10% off the other) falls between those crops, so the
  pairs that reach ``CANDIDATE`` without being joined are checked again, aligned: the crop box of the
  other photo is searched over a grid of margins (``MARGINS``, at the descriptor's size, on the
  thumbnails), and the pairs that reach ``SHORTLIST`` are refined by
  coordinate descent at ``FINE`` x ``FINE`` cells. At that size an aligned copy scores above
  ``ALIGNED_THRESHOLD`` and two different photos of a similar layout below it.

Groups are joined by a union over component labels, so thousands of near-identical frames of one
video make one group (each frame joined to its neighbours), at a cost that grows with the square of
the photos only in the coarse search (``benchmarks/video_frames.py``).
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from zoolite.dataset.boxes import box_descriptors, integral, nudged_box_descriptors, shared_box_descriptors
from zoolite.dataset.images import eight_bit
from zoolite.targets.base import usable_cores

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
# Each photo's 8 nearest photos, its whole frame (or mirror image) against their whole frames and crops
# at 8 x 8, are compared closely; against whole frames alone, one made crop of 140 ranked 54th.
COARSE, NEIGHBOURS = 8, 8
CANDIDATE, CANDIDATES = 0.6, 3  # the aligned check: each photo's 3 closest pairs that reach 0.6 unjoined ...
MARGINS = (0.0, 0.05, 0.1)  # ... their crop boxes: these margins on each side (81 boxes) ...
SHORTLIST = 0.85  # ... and the boxes that reach this, refined at FINE x FINE cells:
FINE, THUMB, FINE_THUMB = 32, 64, 96
# copies (made crops, and real re-crops, framed and watermarked copies in animals10-large, checked by eye)
# score 0.954-0.999 aligned; different photos of similar layout at most 0.931.
ALIGNED_THRESHOLD = 0.945
CHUNK = 256  # photos (or pairs) compared at once
# A chunk's coarse products take chunk x 2 x windows x photos float32s: at most this many bytes, so that the
# search's memory stops growing with the square of the photos (CHUNK photos a chunk up to 6,898 photos)
COARSE_BYTES = 256 * 2 ** 20


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


def _descriptors(thumbnails: np.ndarray) -> np.ndarray:
    """(photos, windows, SIZE * SIZE) unit vectors: each thumbnail in each of :func:`_windows`, area-averaged
    (all zero for a flat image, which matches nothing). Computed here, after the reading threads: their small
    NumPy products hold the GIL, so in those threads they kept the decoding from running in parallel."""
    windows = np.array(_windows())
    chunks = (integral(thumbnails[start:start + CHUNK], np.float64) for start in range(0, len(thumbnails), CHUNK))
    return np.concatenate([shared_box_descriptors(integrals, windows, SIZE) for integrals in chunks])


def _grey(source, side: int) -> Image.Image:
    """The photo (a path or a file object) upright, in grey, decoded at no less than ``side`` pixels when
    the format allows it (JPEG decodes at reduced scale)."""
    with Image.open(source) as image:
        image.draft("L", (side, side))
        return eight_bit(ImageOps.exif_transpose(image)).convert("L")


def _thumbnail(image: Image.Image, side: int) -> np.ndarray:
    """The grey image squeezed to ``side`` x ``side`` area-averaged pixels (crop boxes are shares of a side)."""
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), np.float32)


def _read(path: Path) -> tuple[str | None, np.ndarray | None]:
    """The SHA-256 of the file's bytes and its ``THUMB`` thumbnail; None for what cannot be read or decoded."""
    try:
        content = path.read_bytes()
    except OSError:
        return None, None
    digest = hashlib.sha256(content).hexdigest()
    try:
        image = _grey(io.BytesIO(content), 8 * SIZE)
    except Exception:  # noqa: BLE001 - any file Pillow cannot decode is compared by its bytes only
        return digest, None
    if min(image.size) < 2:
        return digest, None
    return digest, _thumbnail(image, THUMB).astype(np.uint8)


def component_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """The connected components of ``n`` photos joined by ``edges`` (pairs of indices), as the smallest
    index of each photo's component: roots hooked onto smaller roots, then pointers jumped to their
    roots, over all edges at once (a handful of rounds even for a chain of thousands of frames)."""
    label = np.arange(n)
    edges = np.asarray(edges, int).reshape(-1, 2)
    while True:
        a, b = label[edges[:, 0]], label[edges[:, 1]]
        crossing = a != b
        if not crossing.any():
            return label
        np.minimum.at(label, np.maximum(a, b)[crossing], np.minimum(a, b)[crossing])
        while not np.array_equal(label[label], label):
            label = label[label]


def _groups(label: np.ndarray) -> list[np.ndarray]:
    """The components of two photos or more, as arrays of indices."""
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return [group for group in np.split(order, cuts) if group.size > 1]


def _coarse(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coarse descriptors of every window, window-major, as columns (COARSE * COARSE, windows * photos: the
    layout BLAS multiplies fastest), and of the whole frames and their mirror images (photos, 2, COARSE * COARSE):
    the fine ones pooled."""
    n, windows, _ = descriptors.shape
    pooled = descriptors.reshape(n, windows, COARSE, SIZE // COARSE, COARSE, SIZE // COARSE).mean(axis=(3, 5))
    pooled -= pooled.mean(axis=(2, 3), keepdims=True)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=(2, 3), keepdims=True), 1e-12)
    whole = pooled[:, 0]
    return (pooled.transpose(2, 3, 1, 0).reshape(COARSE * COARSE, windows * n),
            np.stack([whole, whole[:, :, ::-1]], axis=1).reshape(n, 2, -1))


def _near_copies(descriptors: np.ndarray,
                 progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of photos that are copies, and those to check aligned (``CANDIDATES`` a photo at most),
    each as (photo, other, mirrored). In rounds, each photo's ``NEIGHBOURS`` nearest photos by the coarse
    descriptor, outside the group it is joined to so far, are compared closely (:func:`_close_pairs`);
    the next round asks again for the photos whose group grew. So a long run of near-identical frames
    joins up whole in a few rounds, though each frame's nearest photos are frames of its own little run."""
    n = len(descriptors)
    columns, queries = _coarse(descriptors)
    label = np.arange(n)
    k = min(NEIGHBOURS, n - 1)
    copies, candidates = [np.zeros((0, 3), int)], [np.zeros((0, 3), int)]
    asking = np.arange(n)
    out_of_reach = -2 - np.arange(1, n + 1, dtype=np.float32) / n
    chunk = coarse_chunk(queries.shape[1] * columns.nbytes // len(columns))
    products = np.empty((min(chunk, n) * queries.shape[1], columns.shape[1]), columns.dtype)  # reused: no page faults
    while len(asking) and k > 0:
        for start in range(0, len(asking), chunk):
            rows = asking[start:start + chunk]
            chunk_products = np.matmul(queries[rows].reshape(-1, len(columns)), columns,
                                       out=products[:len(rows) * queries.shape[1]])
            similarity = chunk_products.reshape(len(rows), -1, n).max(axis=1)
            # the photo itself and its group so far: out, each below -2 by a different amount (ties slow the
            # partition down badly)
            similarity = np.where(label[rows, None] == label[None, :], out_of_reach, similarity)
            nearest = np.argpartition(similarity, n - k, axis=1)[:, n - k:]
            row, column = np.nonzero(np.take_along_axis(similarity, nearest, axis=1) > -2)
            close, pairs = _close_pairs(descriptors, np.column_stack([rows[row], nearest[row, column]]))
            copies.append(pairs[close >= THRESHOLD])
            unjoined = np.flatnonzero((close >= CANDIDATE) & (close < THRESHOLD))
            candidates.append(pairs[unjoined[_closest_per_photo(row[unjoined], close[unjoined], CANDIDATES)]])
            if progress and len(asking) == n:  # the first round: every photo
                progress(len(rows))
        grown = component_labels(n, np.concatenate(copies)[:, :2])
        asking = np.flatnonzero(np.bincount(grown, minlength=n)[grown] != np.bincount(label, minlength=n)[label])
        label = grown
    return np.concatenate(copies), np.concatenate(candidates)


def coarse_chunk(bytes_a_photo: int) -> int:
    """How many photos the coarse pass compares at once, when each photo's products take ``bytes_a_photo``."""
    return max(1, min(CHUNK, COARSE_BYTES // bytes_a_photo))


def _closest_per_photo(photo: np.ndarray, similarity: np.ndarray, count: int) -> np.ndarray:
    """The indices of each photo's ``count`` most similar pairs (``photo``: the photo of each pair)."""
    order = np.lexsort((-similarity, photo))
    starts = np.r_[True, photo[order][1:] != photo[order][:-1]] if len(order) else np.zeros(0, bool)
    place = np.arange(len(order)) - np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    return order[place < count]


def _close_pairs(descriptors: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's best similarity (the whole frame of one, or its mirror image, against the whole frame
    and crops of the other, both ways round), and the pair as (photo, other, mirrored) in that best way."""
    n, windows, dim = descriptors.shape
    similarity, oriented = np.zeros(len(pairs)), np.zeros((len(pairs), 3), int)
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        best = []
        for photo, other in (chunk.T, chunk[:, ::-1].T):
            whole = descriptors[photo, 0].reshape(-1, SIZE, SIZE)
            queries = np.stack([whole, whole[:, :, ::-1]], axis=1).reshape(-1, 2, dim)
            best.append(np.einsum("pqd,pwd->pqw", queries, descriptors[other]).max(axis=2))
        scores = np.stack(best, axis=1)  # (pairs, direction, mirrored)
        flat = scores.reshape(len(chunk), 4).argmax(axis=1)
        direction, mirrored = np.divmod(flat, 2)
        similarity[start:start + CHUNK] = scores.reshape(len(chunk), 4).max(axis=1)
        oriented[start:start + CHUNK] = np.column_stack([np.where(direction == 0, chunk[:, 0], chunk[:, 1]),
                                                         np.where(direction == 0, chunk[:, 1], chunk[:, 0]), mirrored])
    return similarity, oriented


def _frames(integrals: np.ndarray, mirrored: np.ndarray, cells: int) -> np.ndarray:
    """The whole-frame descriptors of ``integrals``, mirrored where ``mirrored``."""
    frames = box_descriptors(integrals, np.array([0.0, 0.0, 1.0, 1.0]), cells).reshape(-1, cells, cells)
    return np.where(mirrored[:, None, None].astype(bool), frames[:, :, ::-1], frames).reshape(len(frames), -1)


def _best_boxes(candidates: np.ndarray, thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate (photo, other, mirrored): the best similarity of the photo's whole frame against
    the other photo's boxes on the ``MARGINS`` grid, and that box."""
    grid = np.array([(left, top, 1 - right, 1 - bottom) for left in MARGINS for top in MARGINS
                     for right in MARGINS for bottom in MARGINS])
    photo, other, mirrored = candidates.T
    similarity, boxes = np.zeros(len(candidates)), np.zeros((len(candidates), 4))
    others, position = np.unique(other, return_inverse=True)
    for start in range(0, len(others), CHUNK):  # integral images of a chunk's photos only: all would be large
        crops = shared_box_descriptors(integral(thumbnails[others[start:start + CHUNK]]), grid, SIZE)
        chunk = np.flatnonzero((position >= start) & (position < start + CHUNK))
        queries = _frames(integral(thumbnails[photo[chunk]]), mirrored[chunk], SIZE)
        scores = np.einsum("pd,pbd->pb", queries, crops[position[chunk] - start])
        similarity[chunk], boxes[chunk] = scores.max(axis=1), grid[scores.argmax(axis=1)]
    return similarity, boxes


def _aligned_similarity(pairs: np.ndarray, boxes: np.ndarray, integrals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity at ``FINE`` x ``FINE`` cells of each pair (photo, other, mirrored; rows of
    ``integrals``) once the other photo's crop box, starting at ``boxes``, is moved side by side to fit
    best (coordinate descent in steps of 2%, 1% and 0.5% of a side, at most 8 moves a step), and those boxes."""
    photo, other, mirrored = pairs.T
    queries = _frames(integrals[photo], mirrored, FINE)
    crops_of = integrals[other]
    moves = np.concatenate([np.eye(4), -np.eye(4)])  # one side at a time
    best, boxes = np.einsum("pd,pd->p", queries, box_descriptors(crops_of, boxes, FINE)), boxes.copy()
    for step in (0.02, 0.01, 0.005):
        moving = np.arange(len(pairs))  # a pair no move improved stays where it is at this step: left out
        for _ in range(8):
            scores = np.einsum("pd,npd->np", queries[moving],
                               nudged_box_descriptors(crops_of[moving], boxes[moving], step * moves, FINE))
            pick = scores.argmax(axis=0)
            moved = scores[pick, np.arange(len(moving))]
            improved = moved > best[moving]
            if not improved.any():
                break
            moving, pick = moving[improved], pick[improved]
            boxes[moving] = np.clip(boxes[moving] + step * moves[pick], 0.0, 1.0)
            best[moving] = moved[improved]
    return best, boxes


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
    copies = []
    for start in range(0, len(pairs), CHUNK):  # a chunk's photos decoded again, larger
        chunk = pairs[start:start + CHUNK]
        photos, local = np.unique(chunk[:, :2], return_inverse=True)
        integrals = integral(np.stack([_thumbnail(_grey(paths[i], 2 * FINE_THUMB), FINE_THUMB) for i in photos]))
        local_pairs = np.column_stack([local.reshape(-1, 2), chunk[:, 2]])
        similarity, _ = _aligned_similarity(local_pairs, boxes[start:start + CHUNK], integrals)
        copies.append(chunk[similarity >= ALIGNED_THRESHOLD])
    return np.concatenate(copies)


def find_duplicates(root: str | Path, files: list[tuple[str, int]],
                    progress: Callable[[int], None] | None = None, near_copies: bool = True,
                    workers: int | None = None) -> Duplicates:
    """The duplicate groups among ``files`` ((path relative to ``root``, class index), as
    :func:`zoolite.dataset.scan.scan_dataset` lists them): byte-identical files and near-copies.

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

    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool:
        read_back = list(pool.map(read, paths))
    by_digest: dict[str, list[int]] = {}
    for i, (digest, _) in enumerate(read_back):
        if digest is not None:
            by_digest.setdefault(digest, []).append(i)
    edges = [np.column_stack([np.full(len(members) - 1, members[0]), members[1:]]) for members in by_digest.values()]

    decoded = np.array([i for i, (_, t) in enumerate(read_back) if t is not None] if near_copies else [], int)
    if len(decoded):
        thumbnails = np.stack([read_back[i][1] for i in decoded])
        copies, candidates = _near_copies(_descriptors(thumbnails), progress)
        edges.append(decoded[copies[:, :2]])
        label = component_labels(len(paths), np.concatenate(edges))
        candidates = candidates[label[decoded[candidates[:, 0]]] != label[decoded[candidates[:, 1]]]]  # not joined yet
        edges.append(decoded[_aligned_copies(candidates, thumbnails, [root / paths[i] for i in decoded])[:, :2]])
    if progress and len(decoded) < len(paths):
        progress(len(paths) - len(decoded))

    label = component_labels(len(paths), np.concatenate(edges) if edges else np.zeros((0, 2), int))
    groups = sorted(sorted(paths[i] for i in group) for group in _groups(label))
    label_of = dict(files)
    conflicts = [group for group in groups if len({label_of[path] for path in group}) > 1]
    return Duplicates(groups, conflicts)
