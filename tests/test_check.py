"""`zoolite check DATA`: the dataset report before training, on real photos of the bundled sample."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from conftest import copy_sample, error_line
from zoolite.cli import main


def check_json(capsys, data: Path, *flags) -> dict:
    capsys.readouterr()
    assert main(["check", str(data), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_duplicates_conflicts_counts_and_unusable_files_with_relative_paths(tmp_path, capsys):
    data = copy_sample(tmp_path / "data", per_class=6)
    cane = sorted((data / "cane").iterdir())
    gatto = sorted((data / "gatto").iterdir())
    shutil.copy(cane[0], data / "cane" / "byte-copy.jpg")                     # a byte copy, same class
    with Image.open(gatto[0]) as image:                                        # a mirrored copy, same class
        ImageOps.mirror(image.convert("RGB")).save(data / "gatto" / "mirrored.jpg", quality=90)
    shutil.copy(cane[1], data / "ragno" / "in-the-wrong-folder.jpg")           # a copy in another class's folder
    (data / "ragno" / "notes.jpg").write_text("not a photo")
    (data / "mucca").mkdir()                                                   # an empty class

    report = check_json(capsys, data, "--no-suspects")
    relative = lambda path: path.relative_to(data).as_posix()  # noqa: E731
    assert sorted(report["duplicates"]) == sorted([
        sorted([relative(cane[0]), "cane/byte-copy.jpg"]),
        sorted([relative(gatto[0]), "gatto/mirrored.jpg"]),
        sorted([relative(cane[1]), "ragno/in-the-wrong-folder.jpg"])])
    assert report["label_conflicts"] == [sorted([relative(cane[1]), "ragno/in-the-wrong-folder.jpg"])]
    assert report["photos"] == 21 and report["class_count"] == 4
    assert report["per_class"] == {"cane": 7, "gatto": 7, "mucca": 0, "ragno": 7}
    assert report["empty_classes"] == ["mucca"]
    assert report["unusable"] == [{"file": "ragno/notes.jpg", "reason": "not an image (content not recognised)"}]
    assert report["suspect_labels"] == [] and report["suspects_checked"] is False

    assert main(["check", str(data), "--no-suspects", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "duplicate groups: 3" in text and "label conflicts (duplicates in more than one class folder): 1" in text
    assert f"{relative(cane[1])} = ragno/in-the-wrong-folder.jpg" in text and "ragno/notes.jpg" in text


def test_copies_in_16_bit_or_float_grey_are_found_as_copies(tmp_path, capsys):
    """Pillow turns a 16-bit grey white and a float grey black when it converts them to 8 bits; a copy
    saved so is still the same photo."""
    import numpy as np

    data = copy_sample(tmp_path / "data", per_class=4)
    original = sorted((data / "cane").iterdir())[0]
    with Image.open(original) as image:
        grey = np.asarray(image.convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(data / "gatto" / "sixteen-bit.png")
    Image.fromarray(grey.astype(np.float32) / 255).save(data / "ragno" / "float.tiff")
    report = check_json(capsys, data, "--no-suspects")
    assert report["label_conflicts"] == [sorted([f"cane/{original.name}", "gatto/sixteen-bit.png", "ragno/float.tiff"])]


def test_a_check_says_what_would_stop_a_run(tmp_path, capsys):
    """What `zoolite run` refuses, a check reports: one class with photos, a class too small to split, two
    folders of one label."""
    one = copy_sample(tmp_path / "one", classes=("cane",), per_class=4)
    assert check_json(capsys, one, "--no-suspects")["notes"][0] == \
        "`zoolite run` needs photos in two classes or more; here 1 (cane)"
    data = copy_sample(tmp_path / "data", per_class=4)
    for photo in sorted((data / "ragno").iterdir())[2:]:
        photo.unlink()
    shutil.copytree(data / "cane", data / "dog")
    notes = check_json(capsys, data, "--no-suspects")["notes"]
    assert notes[:2] == [
        "`zoolite run` stops at ragno: 2 photo(s), and a class needs at least 3 for the default train/val/test split",
        "`zoolite run` stops: the folders cane and dog both get the label 'dog'"]


@pytest.fixture(scope="module")
def moved_photo(tmp_path_factory):
    """3 classes x 12 real photos, one cat photo moved into the dog folder."""
    data = copy_sample(tmp_path_factory.mktemp("moved") / "data", per_class=12)
    photo = sorted((data / "gatto").iterdir())[3]
    photo.rename(data / "cane" / photo.name)
    return data, f"cane/{photo.name}"


def test_a_photo_in_the_wrong_class_folder_is_a_suspect_with_the_right_class(moved_photo, capsys):
    data, moved = moved_photo
    report = check_json(capsys, data)
    assert report["suspects_checked"] and report["photos"] == 36
    suspects = {s["file"]: s for s in report["suspect_labels"]}
    assert moved in suspects, report["suspect_labels"]
    assert suspects[moved]["label"] == "cane" and suspects[moved]["suggested"] == "gatto"
    assert 0 < suspects[moved]["score"] <= 1
    assert len(suspects) <= 0.15 * 36

    assert main(["check", str(data), "--quiet"]) == 0
    assert f"{moved}: cane -> gatto (" in capsys.readouterr().out


def test_the_second_check_reuses_the_cached_features(moved_photo, capsys, monkeypatch):
    import zoolite.model.features
    from zoolite.apps.check import BACKBONE
    from zoolite.model.features import content_hash, features_cache

    data, _ = moved_photo
    first = check_json(capsys, data)
    assert all((features_cache(BACKBONE) / f"{content_hash(photo)}.npy").exists()
               for photo in data.glob("*/*.jpg"))
    calls = []
    monkeypatch.setattr(zoolite.model.features, "extract", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(zoolite.model.features, "open_backbone", lambda *args, **kwargs: calls.append(args))
    assert check_json(capsys, data) == first and calls == []


def test_clean_data_names_few_photos(tmp_path, capsys):
    data = copy_sample(tmp_path / "data", classes=("cane", "gatto", "ragno", "cavallo"), per_class=12)
    report = check_json(capsys, data)
    assert report["suspects_checked"] and report["photos"] == 48
    assert len(report["suspect_labels"]) <= 0.15 * 48, report["suspect_labels"]


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "data folder not found"),
    (lambda root: (root.parent.mkdir(parents=True, exist_ok=True), root.write_text("x")), "not a folder"),
    (lambda root: (root.mkdir(parents=True), (root / "photo.jpg").write_text("x")), "no class folders"),
])
def test_bad_input_is_one_line_naming_the_path(tmp_path, capsys, make, message):
    data = tmp_path / "data"
    make(data)
    line = error_line(capsys, ["check", data])
    assert message in line and str(data) in line


def test_help_imports_neither_numpy_nor_tensorflow():
    code = ("import sys\nfrom zoolite.cli import main\ntry:\n    main(['check', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint(sorted({'numpy', 'tensorflow', 'keras'} & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


@pytest.mark.slow
def test_a_run_after_a_check_reuses_its_features_and_gets_the_same_files(tmp_path, monkeypatch, capsys):
    import numpy as np

    import zoolite.model.features
    from conftest import BACKBONE, SMALL_RUN_OPTIONS
    from zoolite.config import RunConfig
    from zoolite.runs import pipeline, stages

    data = copy_sample(tmp_path / "data", per_class=6)
    extract, computed = zoolite.model.features.extract, []

    def counting(runtime, paths, *args, **kwargs):
        computed.extend(paths)
        return extract(runtime, paths, *args, **kwargs)

    monkeypatch.setattr(zoolite.model.features, "extract", counting)

    def features_of_a_run(cache: str):
        """The train and val features a run's train stage (where they are made) saves, and the stage's timings."""
        monkeypatch.setattr(zoolite.model.features, "features_cache", lambda backbone: tmp_path / cache)
        config = RunConfig.from_options(data=str(data), runs_dir=str(tmp_path / f"runs-{cache}"),
                                        modes=("float32",), tensorboard=False, **SMALL_RUN_OPTIONS)
        computed.clear()
        run = pipeline.prepare(config).backbone_run(BACKBONE)
        stages.train(run)
        return run.steps.timings, {name: np.load(run.layout.features(name)) for name in ("train", "val")}

    _, files_alone = features_of_a_run("alone")  # an empty cache: the run computes and fills it
    assert len(computed) == len(files_alone["train"]) + len(files_alone["val"])  # the spy sees the backbone
    assert len(list((tmp_path / "alone").glob("*.npy"))) == len(computed)

    monkeypatch.setattr(zoolite.model.features, "features_cache", lambda backbone: tmp_path / "checked")
    check_json(capsys, data)
    timings, files_after = features_of_a_run("checked")
    assert computed == []  # no photo through the backbone: train and val features read from the check's cache
    assert "features_train" in timings and "features_val" in timings and "convert_backbone" not in timings
    for name in ("train", "val"):
        assert files_after[name].tobytes() == files_alone[name].tobytes(), name


@pytest.mark.slow
def test_a_run_counts_the_suspect_labels_of_its_train_and_validation_photos(moved_photo, tmp_path, monkeypatch):
    from conftest import BACKBONE, SMALL_RUN_OPTIONS
    from zoolite.config import RunConfig
    from zoolite.runs import pipeline
    from zoolite.progress import Progress
    from zoolite.results import load

    measured_before = []  # whether any file was measured when the suspect labels were sought: none, they come first

    def suspect_labels(layout, *args):
        measured_before.append(bool(list(layout.root.glob("*/measurements/*"))))
        return find(layout, *args)

    find = pipeline._suspect_labels
    monkeypatch.setattr(pipeline, "_suspect_labels", suspect_labels)
    data, moved = moved_photo
    config = RunConfig.from_options(data=str(data), runs_dir=str(tmp_path / "runs"), modes=("float32",),
                                    tensorboard=False, **SMALL_RUN_OPTIONS)
    results = pipeline.run(config, progress=Progress(False))
    assert measured_before == [False]
    split = json.loads((Path(results.run_dir) / "split.json").read_text())
    assert moved in {photo for photo, _ in split["train"] + split["val"]}  # this seed's split: it is checked
    suspects = load(results.run_dir).suspect_labels  # as results.json keeps them
    assert suspects.backbone == BACKBONE and suspects.checked == len(split["train"]) + len(split["val"])
    named = {s.file: s for s in suspects.named}
    assert named[moved].label == "cane" and named[moved].suggested == "gatto"
    assert suspects.found <= 0.15 * suspects.checked
    report = (Path(results.run_dir) / "report.md").read_text()
    assert "Suspect labels" in report and f"`{moved}` (cane -> gatto)" in report


def test_a_group_of_many_copies_is_one_short_line(tmp_path, capsys):
    data = copy_sample(tmp_path / "data", classes=("cane", "gatto"), per_class=3)
    frame = sorted((data / "cane").iterdir())[0]
    for i in range(40):  # 40 copies of one frame, as a video's still frames would be
        shutil.copy(frame, data / "cane" / f"frame-{i:02d}.jpg")
    assert main(["check", str(data), "--no-suspects", "--quiet", "--show", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    group = [line for line in lines if line.startswith("  ") and " = " in line]
    assert len(group) == 1 and group[0].count(" = ") == 5 and "36 more, 41 files in all" in group[0]
    assert max(map(len, lines)) < 400
