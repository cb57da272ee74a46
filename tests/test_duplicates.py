"""Duplicate photos: found by zoolite.dataset.duplicates, kept within one split, label conflicts left out."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, SAMPLE, copy_sample
from zoolite.config import RunConfig
from zoolite.dataset.scan import scan_dataset
from zoolite.dataset.split import Split, split_dataset
from zoolite.dataset.duplicates import find_duplicates

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from duplicates import KINDS, make_copy  # noqa: E402  (the benchmark's made copies)

CLASSES = tuple(sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()))
# The bundled sample's one real pair of copies: the same black horse, re-cropped to another shape
# (300x201 and 300x268 pixels), found only once aligned.
SAMPLE_COPIES = [["cavallo/OIP-JWUV6Zu7rNgxUUPXDNw80gHaE9.jpg", "cavallo/OIP-Junvfw6M-f5CciCfImQHRgAAAA.jpg"]]


@pytest.fixture(scope="module")
def made_copies(tmp_path_factory):
    """The whole bundled sample (160 photos, one pair of them copies: SAMPLE_COPIES), and one copy of each
    kind of 14 of them (two of every kind; label conflicts, re-encoded, go to the next class's folder).
    Crops take 3% off the left and top, 10% off the right and bottom: lopsided crops like these fall
    between the finder's windows and are found once aligned."""
    root = copy_sample(tmp_path_factory.mktemp("copies") / "data", classes=CLASSES, per_class=16)
    rng = np.random.default_rng(0)
    originals = [f"{c}/{sorted(p.name for p in (root / c).iterdir())[i]}" for i, c in enumerate(CLASSES[:7] * 2)]
    families = {}
    for i, original in enumerate(originals):
        kind = KINDS[i % len(KINDS)]
        folder = original.split("/")[0]
        if kind == "conflict":
            folder = CLASSES[(CLASSES.index(folder) + 1) % len(CLASSES)]
        copy = f"{folder}/copy-{kind}-{i}.jpg"
        (root / copy).write_bytes(make_copy(root / original, "reencoded" if kind == "conflict" else kind, rng,
                                                 crop=(0.03, 0.03, 0.10, 0.10)))
        families[original] = copy
    return root, families


def test_each_made_copy_is_grouped_with_its_original_and_nothing_else(made_copies):
    root, families = made_copies
    dataset = scan_dataset(root)
    found = find_duplicates(root, dataset.files)
    assert found.groups == sorted([sorted(pair) for pair in families.items()] + SAMPLE_COPIES)
    assert found.conflicts == sorted(sorted(pair) for pair in families.items() if "conflict" in pair[1])


def test_the_coarse_search_finds_the_same_copies_a_photo_at_a_time(made_copies, monkeypatch):
    """Its memory is bounded by comparing fewer photos at once as the photos grow: down to one, nothing changes."""
    from zoolite.dataset import duplicates

    windows = len(duplicates._windows())
    assert [duplicates.coarse_chunk(2 * windows * photos * 4) for photos in (2_528, 6_898, 6_899, 26_179)] == \
        [256, 256, 255, 67]  # float32 products of a photo's whole frame and mirror image against every window
    root, families = made_copies
    dataset = scan_dataset(root)
    monkeypatch.setattr(duplicates, "COARSE_BYTES", 1)
    assert find_duplicates(root, dataset.files).groups == sorted([sorted(pair) for pair in families.items()]
                                                                 + SAMPLE_COPIES)


def test_the_samples_one_real_copy_is_found_and_no_false_pair():
    files = scan_dataset(SAMPLE).files
    assert find_duplicates(SAMPLE, files).groups == SAMPLE_COPIES


def test_a_label_conflict_is_left_out_of_every_split_and_groups_stay_whole(made_copies):
    root, families = made_copies
    dataset = scan_dataset(root)
    duplicates = find_duplicates(root, dataset.files)
    conflicted = set(duplicates.conflict_photos())
    assert len(conflicted) == 4
    for seed in range(5):
        split = split_dataset(dataset, (0.5, 0.25, 0.25), seed, duplicates)
        where = {path: name for name in ("train", "val", "test") for path, _ in split.subset(name)}
        assert not conflicted & set(where)
        assert sorted(p for p, _ in split.conflicts) == sorted(conflicted)
        for group in duplicates.groups:
            if group[0] not in conflicted:
                assert len({where[p] for p in group}) == 1, (seed, group)
        assert len(where) == len(dataset.files) - len(conflicted)
        restored = Split.from_json(json.loads(json.dumps(split.to_json())))
        assert restored == split


def test_the_pipelines_split_keeps_groups_whole_and_keep_duplicates_restores_the_old_one(made_copies, tmp_path,
                                                                                        caplog):
    from zoolite.runs.pipeline import _scan_and_split, split_sizes

    root, families = made_copies
    timings = {}
    dataset, split = _scan_and_split(RunConfig.from_options(data=str(root), seed=1), timings)
    assert "duplicates" in timings
    where = {path: name for name in ("train", "val", "test") for path, _ in split.subset(name)}
    for original, copy in families.items():
        assert ("conflict" in copy and original not in where and copy not in where) or where[original] == where[copy]
    sizes = split_sizes(split)
    assert (sizes.duplicate_groups, sizes.duplicate_photos, len(sizes.conflicts)) == (15, 30, 4)  # with SAMPLE_COPIES

    with caplog.at_level(logging.WARNING, logger="zoolite"):
        _, kept = _scan_and_split(RunConfig.from_options(data=str(root), seed=1, keep_duplicates=True), {})
    old = split_dataset(scan_dataset(root), seed=1)
    assert kept.to_json() == old.to_json() and kept.groups is None
    warnings = [r.getMessage() for r in caplog.records if "--keep-duplicates" in r.getMessage()]
    assert len(warnings) == 1 and "memory" in warnings[0]
    assert split_sizes(kept).duplicate_groups is None


def test_the_dataset_sentence_tells_of_groups_and_names_few_conflicts(made_copies):
    from conftest import made_run
    from zoolite.results import SplitSizes
    from zoolite.report.tables import dataset_sentence

    results = made_run({}, 10)
    assert "duplicate" not in dataset_sentence(results)  # results from before: nothing said
    results.split = SplitSizes(0, 5, 2, 3, duplicate_groups=2, duplicate_photos=5, conflicts=["a/x.jpg", "b/x.jpg"])
    sentence = dataset_sentence(results)
    assert "2 group(s) of duplicates (5 photos)" in sentence and "2 label-conflict photo(s) left out (a/x.jpg, b/x.jpg)" in sentence


@pytest.mark.parametrize("run", sorted(p.name for p in DATA.glob("run-*")))
def test_a_split_json_of_before_still_loads(run):
    obj = json.loads((DATA / run / "split.json").read_text())
    split = Split.from_json(obj)
    assert split.groups is None and split.conflicts == [] and len(split.test) == len(obj["test"])


def test_symlinked_and_case_variant_copies_are_grouped(tmp_path):
    root = copy_sample(tmp_path / "data", classes=("cane", "gatto"), per_class=4)
    photo = sorted((root / "cane").iterdir())[0]
    os.symlink(photo, root / "cane" / "link.jpg")
    shutil.copy(photo, root / "cane" / photo.name.upper())
    os.symlink(photo, root / "gatto" / "linked-from-cane.jpg")
    dataset = scan_dataset(root)
    found = find_duplicates(root, dataset.files)
    group = sorted(["cane/link.jpg", f"cane/{photo.name}", f"cane/{photo.name.upper()}", "gatto/linked-from-cane.jpg"])
    if (root / "cane" / photo.name.upper()).samefile(photo):  # a case-insensitive file system: one file
        group.remove(f"cane/{photo.name.upper()}")
    assert found.groups == [group] and found.conflicts == [group]


def test_thousands_of_near_identical_frames_make_one_group_quickly(tmp_path):
    root = tmp_path / "frames"
    (root / "a").mkdir(parents=True)
    with Image.open(sorted((SAMPLE / "cane").iterdir())[0]) as image:
        base = np.asarray(image.convert("RGB").resize((64, 64)))
    files = []
    for i in range(2000):
        frame = base.copy()
        y, x = divmod(i % 3600, 60)
        frame[y % 60:y % 60 + 3, x:x + 3] = 255  # a moving dot
        Image.fromarray(frame).save(root / "a" / f"{i:04d}.png")
        files.append((f"a/{i:04d}.png", 0))
    start = time.perf_counter()
    found = find_duplicates(root, files)
    assert time.perf_counter() - start < 30
    assert len(found.groups) == 1 and len(found.groups[0]) == 2000


def test_box_descriptors_from_integral_images_are_exact_area_averages():
    from zoolite.dataset.boxes import box_descriptors, integral, nudged_box_descriptors

    image = np.random.default_rng(0).uniform(0, 255, (48, 48)).astype(np.float32)
    blocks = image.reshape(16, 3, 16, 3).mean(axis=(1, 3))[4:12, 2:10].ravel()  # an aligned box: x 2-10, y 4-12
    expected = (blocks - blocks.mean()) / np.linalg.norm(blocks - blocks.mean())
    box = np.array([2 / 16, 4 / 16, 10 / 16, 12 / 16])
    np.testing.assert_allclose(box_descriptors(integral(image[None]), box, 8)[0], expected, atol=1e-4)

    # a box whose edges fall inside pixels (every 0.1 pixel): against the image blown up 10 times
    fine = np.repeat(np.repeat(image, 10, axis=0), 10, axis=1)
    left, top, right, bottom = 48, 96, 408, 432  # tenths of a pixel; cells of 45 x 42
    cells = fine[top:bottom, left:right].reshape(8, 42, 8, 45).sum(axis=(1, 3)).ravel()
    expected = (cells - cells.mean()) / np.linalg.norm(cells - cells.mean())
    box = np.array([left, top, right, bottom]) / 480
    np.testing.assert_allclose(box_descriptors(integral(image[None], np.float64), box, 8)[0], expected, atol=1e-5)


def test_the_same_boxes_of_many_photos_get_each_photos_own_descriptors():
    from zoolite.dataset.boxes import box_descriptors, integral, nudged_box_descriptors, shared_box_descriptors

    thumbnails = np.random.default_rng(0).uniform(0, 255, (5, 40, 40))
    # boxes that share a top and bottom (the first two), a left and right (the second and fourth), or nothing
    boxes = np.array([[0.0, 0.1, 0.9, 0.8], [0.2, 0.1, 1.0, 0.8], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 1.0, 0.6],
                      [0.1, 0.25, 0.75, 0.95]])
    for dtype, tolerance in ((np.float64, 1e-6), (np.float32, 1e-4)):  # as the search's two uses take them
        integrals = integral(thumbnails, dtype)
        shared = shared_box_descriptors(integrals, boxes, 8)
        assert shared.shape == (5, 5, 64)
        for photo in range(5):
            for box in range(5):
                np.testing.assert_allclose(shared[photo, box], box_descriptors(integrals[photo], boxes[box], 8),
                                           atol=tolerance)


def test_nudged_boxes_get_the_descriptors_of_the_boxes_they_move_to():
    from zoolite.dataset.boxes import box_descriptors, integral, nudged_box_descriptors, nudged_box_descriptors

    integrals = integral(np.random.default_rng(1).uniform(0, 255, (3, 40, 40)))
    boxes = np.array([[0.05, 0.1, 0.9, 0.95], [0.0, 0.0, 1.0, 1.0], [0.1, 0.02, 0.97, 0.9]])
    nudges = 0.03 * np.concatenate([np.eye(4), -np.eye(4)])
    nudged = nudged_box_descriptors(integrals, boxes, nudges, 8)
    assert nudged.shape == (8, 3, 64)
    for i, nudge in enumerate(nudges):  # a box at an edge stays within the image
        np.testing.assert_allclose(nudged[i], box_descriptors(integrals, np.clip(boxes + nudge, 0, 1), 8), atol=5e-5)
    with pytest.raises(ValueError, match="nudge moves"):
        nudged_box_descriptors(integrals, boxes, np.array([[0.01, 0.01, 0.0, 0.0]]), 8)


def test_the_aligned_check_moves_each_pair_until_no_move_improves_it():
    """A crop whose box starts a few steps off is refined until no move of the finest step improves it, beside the
    same crop starting further off (still moving when the first has settled) and a pair that fits from the start;
    each pair gets what it gets alone, and the boxes it was given are left as they were."""
    from PIL import ImageFilter

    from zoolite.dataset.boxes import box_descriptors, integral, nudged_box_descriptors
    from zoolite.dataset.duplicates import FINE, FINE_THUMB, _aligned_similarity, _frames, _thumbnail

    noise = np.random.default_rng(0).uniform(0, 255, (300, 300)).astype(np.uint8)
    whole = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(6))
    cropped = whole.crop((21, 24, 279, 279))  # shares 0.07, 0.08, 0.93, 0.93 of each side
    integrals = integral(np.stack([_thumbnail(image, FINE_THUMB) for image in (cropped, whole)]))
    pairs = np.array([[0, 1, 0], [0, 1, 0], [1, 1, 0]])  # the crop against the whole, twice; the whole itself
    start = np.array([[0.05, 0.1, 0.95, 0.9], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    queries, crops_of = _frames(integrals[pairs[:, 0]], pairs[:, 2], FINE), integrals[pairs[:, 1]]
    unmoved = np.einsum("pd,pd->p", queries, box_descriptors(crops_of, start, FINE))
    moved, boxes = _aligned_similarity(pairs, start, integrals)
    assert moved.tolist() == [_aligned_similarity(pairs[[i]], start[[i]], integrals)[0][0] for i in range(3)]
    assert (moved[:2] > 0.99).all() and (unmoved[:2] < 0.9).all() and moved[2] == unmoved[2] > 0.999
    finest = 0.005 * np.concatenate([np.eye(4), -np.eye(4)])
    nudged = np.einsum("pd,npd->np", queries[:1], nudged_box_descriptors(crops_of[:1], boxes[:1], finest, FINE))
    assert (nudged <= moved[0]).all()
    assert start.tolist() == [[0.05, 0.1, 0.95, 0.9], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]


def test_component_labels_join_a_long_chain_and_keep_apart_what_no_edge_joins():
    from zoolite.dataset.duplicates import component_labels

    chain = np.column_stack([np.arange(1, 1000), np.arange(999)])[::-1]  # 999 -> ... -> 0, given backwards
    label = component_labels(1003, np.concatenate([chain, [[1001, 1002]]]))
    assert (label[:1000] == 0).all() and label[1000] == 1000 and label[1001] == label[1002] == 1001


def test_plain_colour_images_are_no_copies_of_one_another(tmp_path):
    root = copy_sample(tmp_path / "data", classes=("cane", "gatto"), per_class=3)
    for i, colour in enumerate((0, 40, 128, 255)):
        Image.new("RGB", (120 + 10 * i, 90), (colour, colour, colour)).save(root / "cane" / f"plain-{i}.png")
    assert find_duplicates(root, scan_dataset(root).files).groups == []
