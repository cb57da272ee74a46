"""Descriptors of boxes of grey photos, read off their integral images: each box averaged over cells x cells
areas, minus their mean, scaled to unit length (:mod:`zoolite.dataset.duplicates` compares photos by them).
Boxes are shares of the sides, so one photo's box can be compared with another's at any size."""

from __future__ import annotations

import numpy as np


def integral(thumbnails: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(m, side + 1, side + 1) integral images of (m, side, side) thumbnails, with a zero first row and column."""
    m, side, _ = thumbnails.shape
    out = np.zeros((m, side + 1, side + 1), dtype)
    out[:, 1:, 1:] = thumbnails.astype(np.float64).cumsum(axis=1).cumsum(axis=2)
    return out


def _interpolation(low: np.ndarray, high: np.ndarray, cells: int, side: int) -> np.ndarray:
    """(..., cells + 1, side + 1) weights that sample a row of an integral image linearly at the
    cells + 1 edges between ``low`` and ``high`` (shares of the side)."""
    edges = (low[..., None] + (high - low)[..., None] * np.arange(cells + 1) / cells) * side
    first = np.clip(np.floor(edges).astype(int), 0, side - 1)
    weights = np.zeros((*edges.shape, side + 1), np.float32)
    np.put_along_axis(weights, first[..., None], (1 - (edges - first))[..., None], axis=-1)
    np.put_along_axis(weights, first[..., None] + 1, (edges - first)[..., None], axis=-1)
    return weights


def box_descriptors(integrals: np.ndarray, boxes: np.ndarray, cells: int) -> np.ndarray:
    """(..., cells * cells) unit descriptors of boxes (..., 4: left, top, right, bottom as shares) of
    integral images (..., side + 1, side + 1; the two broadcast): each box averaged over cells x cells
    areas, minus their mean. An integral image of flat pixels is bilinear within a pixel, so sampling it
    linearly gives exact area sums for any box."""
    side = integrals.shape[-1] - 1
    rows = _interpolation(boxes[..., 1], boxes[..., 3], cells, side)
    columns = _interpolation(boxes[..., 0], boxes[..., 2], cells, side)
    return _unit_descriptors(_cell_sums(rows @ integrals @ np.swapaxes(columns, -1, -2)), cells)


def nudged_box_descriptors(integrals: np.ndarray, boxes: np.ndarray, nudges: np.ndarray, cells: int) -> np.ndarray:
    """(nudges, ..., cells * cells): :func:`box_descriptors` of ``boxes`` (..., 4) moved by each of ``nudges``
    (nudges, 4; kept within the image). A nudge moves the left and right sides or the top and bottom ones, never
    both, so the integral images' product with the sides it keeps is made once for every nudge."""
    if (nudges[:, [0, 2]].any(axis=1) & nudges[:, [1, 3]].any(axis=1)).any():
        raise ValueError("a nudge moves the left or right side and the top or bottom one")
    side = integrals.shape[-1] - 1
    rows = _interpolation(boxes[..., 1], boxes[..., 3], cells, side) @ integrals
    columns = integrals @ np.swapaxes(_interpolation(boxes[..., 0], boxes[..., 2], cells, side), -1, -2)
    descriptors = []
    for nudge in nudges:
        left, top, right, bottom = np.moveaxis(np.clip(boxes + nudge, 0.0, 1.0), -1, 0)
        corners = (rows @ np.swapaxes(_interpolation(left, right, cells, side), -1, -2) if not nudge[[1, 3]].any()
                   else _interpolation(top, bottom, cells, side) @ columns)
        descriptors.append(_unit_descriptors(_cell_sums(corners), cells))
    return np.stack(descriptors)


def shared_box_descriptors(integrals: np.ndarray, boxes: np.ndarray, cells: int) -> np.ndarray:
    """(photos, boxes, cells * cells): :func:`box_descriptors` of the same ``boxes`` (boxes, 4) in every
    integral image (photos, side + 1, side + 1), by large matrix products rather than two small ones per photo
    and box (whose calls cost more than their arithmetic), each box's rows sampled once for the boxes that
    share them (the 81 boxes of the duplicate search's margin grid have 9 pairs of top and bottom)."""
    n, edge, _ = integrals.shape
    spans, span_of = np.unique(boxes[:, [1, 3]], axis=0, return_inverse=True)
    rows = _interpolation(spans[:, 0], spans[:, 1], cells, edge - 1)
    columns = _interpolation(boxes[:, 0], boxes[:, 2], cells, edge - 1)
    # every span's rows through every photo at once: (spans * (cells + 1), edge) x (edge, photos * edge)
    sampled = (rows.reshape(-1, edge) @ integrals.transpose(1, 0, 2).reshape(edge, n * edge)).reshape(
        len(spans), cells + 1, n, edge).transpose(0, 2, 1, 3)
    span_of = span_of.ravel()  # NumPy 2.0 gave unique's inverse the shape of the boxes
    sums = np.empty((n, len(boxes), cells, cells), np.result_type(rows, integrals))
    for span in range(len(spans)):
        chosen = np.flatnonzero(span_of == span)
        # (photos, cells + 1, edge) x (boxes, 1, edge, cells + 1) -> (boxes, photos, cells + 1, cells + 1)
        corners = sampled[span] @ np.swapaxes(columns[chosen], -1, -2)[:, None]
        sums[:, chosen] = _cell_sums(corners).transpose(1, 0, 2, 3)
    return _unit_descriptors(sums, cells)


def _cell_sums(corners: np.ndarray) -> np.ndarray:
    """(..., cells, cells) sums of a box's cells from an integral image sampled at their corners
    (..., cells + 1, cells + 1)."""
    return corners[..., 1:, 1:] - corners[..., :-1, 1:] - corners[..., 1:, :-1] + corners[..., :-1, :-1]


def _unit_descriptors(sums: np.ndarray, cells: int) -> np.ndarray:
    """Unit descriptors (..., cells * cells) of a box's cell sums (..., cells, cells): minus their mean."""
    vectors = sums.reshape(*sums.shape[:-2], cells * cells)
    level = np.abs(vectors).mean(axis=-1, keepdims=True)
    vectors = vectors - vectors.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    # flat: what is left is rounding of the integral image, not the picture
    return np.where(norms > 1e-3 * cells * level, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
