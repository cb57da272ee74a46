"""Scanning, splitting and loading a folder-per-class dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import copy_sample
from zoolite.config import RunConfig
from zoolite.dataset.images import load_image
from zoolite.dataset.scan import scan_dataset
from zoolite.dataset.split import Split, split_dataset
from zoolite.errors import ZooliteError


def test_scan_counts_classes_and_shows_english_labels(small_dataset):
    dataset = scan_dataset(small_dataset)
    assert dataset.class_dirs == ["cane", "gatto", "ragno"]
    assert dataset.labels == ["dog", "cat", "spider"]
    assert dataset.counts() == {"cane": 8, "gatto": 8, "ragno": 8}
    assert dataset.skipped == []


def test_label_map_overrides_the_default(small_dataset):
    dataset = scan_dataset(small_dataset, {"cane": "hund"})
    assert dataset.labels == ["hund", "gatto", "ragno"]


def test_scan_skips_and_names_unusable_files(small_dataset):
    cats = small_dataset / "gatto"
    good = sorted(cats.iterdir())[0].read_bytes()
    (cats / "empty.jpg").write_bytes(b"")
    (cats / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (cats / "notes.jpg").write_text("this is text with an image extension")
    (cats / "readme.txt").write_text("not an image")
    (cats / ".DS_Store").write_bytes(b"\0\0")
    dataset = scan_dataset(small_dataset)
    reasons = dict(dataset.skipped)
    assert set(reasons) == {"gatto/empty.jpg", "gatto/truncated.jpg", "gatto/notes.jpg", "gatto/readme.txt"}
    assert "empty" in reasons["gatto/empty.jpg"]
    assert "truncated" in reasons["gatto/truncated.jpg"]
    assert "not an image" in reasons["gatto/notes.jpg"]
    assert dataset.counts()["gatto"] == 8


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "data folder not found"),
    (lambda root: root.mkdir(), "no class folders"),
    (lambda root: copy_sample(root, classes=("cane",)), "only one class"),
])
def test_scan_stops_with_one_line_on_unusable_folders(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(ZooliteError, match=message) as err:
        scan_dataset(root)
    assert "\n" not in str(err.value)


def test_scan_stops_on_a_class_with_no_usable_image(small_dataset):
    (small_dataset / "mucca").mkdir()
    (small_dataset / "mucca" / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(ZooliteError, match="mucca: class folder has no usable images"):
        scan_dataset(small_dataset)


def test_split_is_stratified_deterministic_and_disjoint(tmp_path):
    dataset = scan_dataset(copy_sample(tmp_path / "d", per_class=16))
    split = split_dataset(dataset, (0.7, 0.15, 0.15), seed=3)
    again = split_dataset(dataset, (0.7, 0.15, 0.15), seed=3)
    other = split_dataset(dataset, (0.7, 0.15, 0.15), seed=4)
    assert split.to_json() == again.to_json()
    assert split.test != other.test
    for subset, expected in (("train", 12), ("val", 2), ("test", 2)):
        per_class = np.bincount([label for _, label in split.subset(subset)], minlength=3)
        assert list(per_class) == [expected] * 3, subset
    files = [p for s in ("train", "val", "test") for p, _ in split.subset(s)]
    assert sorted(files) == sorted(p for p, _ in dataset.files)
    restored = Split.from_json(json.loads(json.dumps(split.to_json())))
    assert restored.to_json() == split.to_json()


@pytest.mark.parametrize("fractions", [(0.5, 0.2, 0.2), (0.8, 0.3, -0.1), (1.0, 0.0, 0.0)])
def test_split_rejects_bad_fractions(small_dataset, fractions):
    with pytest.raises(ZooliteError, match="--split .*: must be three train,val,test fractions that sum to 1"):
        RunConfig(data=str(small_dataset), split=fractions)


def test_split_rejects_classes_too_small_to_split(tmp_path):
    dataset = scan_dataset(copy_sample(tmp_path / "d", per_class=2))
    with pytest.raises(ZooliteError, match="at least 3"):
        split_dataset(dataset)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_load_image_gives_rgb_uint8_for_any_mode(tmp_path, mode):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 200
    image = Image.fromarray(rgb)
    if mode == "I;16":
        image = Image.fromarray((rgb[..., 0].astype(np.uint16) * 257))
    else:
        image = image.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    out = load_image(path, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[:, :10].mean() > 150 and out[:, -10:].mean() < 60  # bright left, dark right


def test_load_image_applies_exif_orientation(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # left half white
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    out = load_image(path, 20)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # white half now on top


def test_photos_are_read_on_one_thread_a_core_this_process_may_use(small_dataset, monkeypatch):
    """Scanning, the duplicate search and decoding each take a thread a core of the process's CPU affinity (a
    container's CPU set), not one a core of the host, as do the runtimes; results.json's machine says so too."""
    import os

    from zoolite.dataset import duplicates, images, scan
    from zoolite.runs.provenance import machine_info

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    pools = []
    for module in (scan, duplicates, images):
        def counted(max_workers=None, made=module.ThreadPoolExecutor):
            pools.append(max_workers)
            return made(max_workers)
        monkeypatch.setattr(module, "ThreadPoolExecutor", counted)
    dataset = scan_dataset(small_dataset)
    duplicates.find_duplicates(dataset.root, dataset.files)
    list(images.decoded_batches([dataset.root / path for path, _ in dataset.files[:2]], 32))
    assert pools == [1, 1, 1] and machine_info().cores == 1
