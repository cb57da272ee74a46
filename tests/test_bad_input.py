"""Bad input of every kind the robustness issue lists: a clear line, the right exit code, no traceback.

Images and folders are skipped and listed, or stop the command with one line when the
dataset becomes unusable; bad models, labels and options stop it with one line. Most
cases drive ``zoolite.cli.main`` in-process; two run the real command in a subprocess.
Models are tiny (32x32 input) so the module stays fast: the cases are about input
handling, not accuracy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import copy_sample, error_line, make_tiny_model
from zoolite import targets
from zoolite.model.backbones import BACKBONES
from zoolite.cli import main
from zoolite.dataset.images import load_image
from zoolite.dataset.scan import LOOP_REASON, scan_dataset

# zoolite.dataset.images makes this warning an error for the whole process (as the command runs);
# pytest resets warning filters for each test, so they are set again here.
pytestmark = pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")

CAT_FOLDER = "gatto 🐱 ñ"  # unicode and spaces in a class folder name, mapped with --labels
LABEL_MAP = {"cane": "dog", CAT_FOLDER: "cat", "ragno": "spider"}
LABELS = ["dog", "cat", "spider"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels: how a decompression bomb announces itself."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _photo(root: Path, folder: str) -> Image.Image:
    return Image.open(next(p for p in sorted((root / folder).iterdir()) if p.suffix == ".jpg")).convert("RGB")


# Converted copies of a real photo: file name -> how it is written. Each must be decoded as RGB.
CONVERTED = {
    "upper.JPG": lambda im, p: im.save(p, "JPEG"),
    "photo.jpeg": lambda im, p: im.save(p),
    "photo.webp": lambda im, p: im.save(p),
    "photo.bmp": lambda im, p: im.save(p),
    "photo.gif": lambda im, p: im.save(p),
    "gray.png": lambda im, p: im.convert("L").save(p),
    "gray-alpha.png": lambda im, p: im.convert("LA").save(p),
    "rgba.png": lambda im, p: im.convert("RGBA").save(p),
    "palette.png": lambda im, p: im.convert("P").save(p),
    "cmyk.jpg": lambda im, p: im.convert("CMYK").save(p),
    "sixteen-bit.png": lambda im, p: Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257).save(p),
    "float-grey.tiff": lambda im, p: Image.fromarray(np.asarray(im.convert("L"), np.float32) / 255).save(p),
    "saved-by-a-browser.jfif": lambda im, p: im.save(p, "JPEG"),
}

# relative path -> what its skip reason must say
SKIPPED = {
    "cane/zero.jpg": "empty file (0 bytes)",
    "cane/truncated.jpg": "damaged or truncated image",
    f"{CAT_FOLDER}/truncated.png": "damaged or truncated image",
    "ragno/random-bytes.jpg": "not an image (content not recognised)",
    "ragno/text.gif": "not an image (content not recognised)",
    "ragno/bomb.png": "image too large",
    "cane/bomb-below-twice-the-limit.png": "image too large",
    "cane/sub/loop/": LOOP_REASON,
    "ragno/up/": LOOP_REASON,
    f"{CAT_FOLDER}/spiders/": LOOP_REASON,
    "cane/gone.jpg": "file not found (a broken symbolic link?)",
    "cane/caf\\xe9.jpg": "file name is not valid UTF-8; rename it",
    "ragno/pipe.jpg": "not a regular file",
}


def _messy_dataset(root: Path) -> tuple[Path, set[str]]:
    """Three classes of real photos plus every bad and odd file; return it and the files to use."""
    copy_sample(root, classes=("cane", "gatto", "ragno"), per_class=3)
    (root / "gatto").rename(root / CAT_FOLDER)
    cane, cat, ragno = root / "cane", root / CAT_FOLDER, root / "ragno"
    usable = {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}

    photo = _photo(root, "cane")
    for name, save in CONVERTED.items():
        save(photo, cane / name)
        usable.add(f"cane/{name}")
    (cane / "sub" / "deeper").mkdir(parents=True)
    photo.save(cane / "sub" / "deeper" / "nested.jpg")  # nested sub-folders count for their class
    photo.save(cane / "foto di cane è.jpg")
    _photo(root, "ragno").save(ragno / "паук 1.png")
    usable |= {"cane/sub/deeper/nested.jpg", "cane/foto di cane è.jpg", "ragno/паук 1.png"}

    jpeg = (cane / "upper.JPG").read_bytes()
    (cane / "zero.jpg").write_bytes(b"")
    (cane / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    photo.save(cat / "whole.png")
    (cat / "truncated.png").write_bytes((cat / "whole.png").read_bytes()[:20_000])
    (cat / "whole.png").unlink()
    (ragno / "random-bytes.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (ragno / "text.gif").write_text("not a picture, whatever the extension says")
    (ragno / "bomb.png").write_bytes(_png_header(20_000, 20_000))  # over twice Pillow's limit: an error
    (cane / "bomb-below-twice-the-limit.png").write_bytes(_png_header(10_000, 10_000))  # Pillow only warns
    (cane / "sub" / "loop").symlink_to("..")  # back into its own class folder
    (ragno / "up").symlink_to("../..")  # a folder that contains the whole dataset
    (cat / "spiders").symlink_to("../ragno")  # another class's folder
    (cane / "gone.jpg").symlink_to("missing.jpg")
    photo.save(os.path.join(os.fsencode(cane), b"caf\xe9.jpg"))  # a Latin-1 name from an old archive
    os.mkfifo(ragno / "pipe.jpg")

    # Ignored without a word: hidden files and folders, and what operating systems leave behind.
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.jpg", "._photo.jpg"):
        (cane / name).write_bytes(b"\0\1junk")
    (cat / ".thumbnails").mkdir()
    photo.save(cat / ".thumbnails" / "thumb.jpg")
    (root / "__MACOSX" / "cane").mkdir(parents=True)
    (root / "__MACOSX" / "cane" / "._photo.jpg").write_bytes(b"\0\5\26\7")
    (root / ".cache").mkdir()
    return root, usable


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> tuple[Path, set[str]]:
    return _messy_dataset(tmp_path_factory.mktemp("messy") / "data")


@pytest.fixture(scope="module")
def label_map(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.json"
    path.write_text(json.dumps(LABEL_MAP, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny classifiers as .keras and .tflite, each with its labels.txt, plus models to refuse."""
    import keras

    from zoolite.targets.base import export_saved_model
    from zoolite.targets.litert import convert

    root = tmp_path_factory.mktemp("models")

    def save(name: str, model) -> Path:
        folder = root / name
        folder.mkdir()
        (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
        model.save(folder / "model.keras")
        export_saved_model(model, root / f"{name}-saved")
        (folder / "model.tflite").write_bytes(convert(root / f"{name}-saved", "float32"))
        return folder

    classifier = make_tiny_model(len(LABELS))
    pixels = classifier.inputs[0]
    features = keras.Input((8,))
    paths = {"good": save("good", classifier),
             "features_in": save("features_in", keras.Model(features, keras.layers.Dense(3)(features)))}
    # A Lambda layer carries Python code: this one leaves a file named code-ran wherever it runs.
    with_code = root / "with_code"
    with_code.mkdir()
    with contextlib.chdir(with_code):
        code = keras.layers.Lambda(lambda t: (open("code-ran", "w").close(), t)[1])
        keras.Model(pixels, code(classifier(pixels))).save("model.keras")
    (with_code / "code-ran").unlink()  # building the model ran it once
    (with_code / "labels.txt").write_text("\n".join(LABELS) + "\n")
    paths["with_code"] = with_code
    return paths


def _deny_reading(monkeypatch, path: Path) -> None:
    """Take away read permission. Tests may run as root, whom permission bits do not stop, so
    there opening the path is made to fail exactly as the kernel fails it for everyone else."""
    path.chmod(0)
    if os.geteuid() != 0:
        return
    denied = str(path)

    def refuse_if_denied(real):
        def call(target, *args, **kwargs):
            if os.fspath(target) == denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
            return real(target, *args, **kwargs)
        return call

    monkeypatch.setattr(Image, "open", refuse_if_denied(Image.open))
    monkeypatch.setattr(os, "scandir", refuse_if_denied(os.scandir))  # what os.walk lists folders with


# --- images and folders -------------------------------------------------------------------------

def test_scan_skips_every_bad_file_with_its_reason_and_keeps_every_usable_one(messy):
    root, usable = messy
    dataset = scan_dataset(root, LABEL_MAP)
    assert dataset.class_dirs == ["cane", CAT_FOLDER, "ragno"]  # __MACOSX and .cache are not classes
    assert dataset.labels == LABELS
    skipped = dict(dataset.skipped)
    assert set(skipped) == set(SKIPPED), "hidden and system files must be ignored, bad ones listed"
    for file, reason in SKIPPED.items():
        assert reason in skipped[file], (file, skipped[file])
        assert "\n" not in skipped[file]
    assert {path for path, _ in dataset.files} == usable
    assert dict(dataset.files)["cane/sub/deeper/nested.jpg"] == 0  # a nested image belongs to its class


def test_unusual_formats_and_modes_decode_to_the_same_rgb_picture(messy):
    root, _ = messy
    original = load_image(root / "cane" / "upper.JPG", 64).astype(float)
    for name in CONVERTED:
        image = load_image(root / "cane" / name, 64)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8, name
        # Grey levels compared, so grayscale files are judged by what they keep.
        difference = np.abs(image.astype(float).mean(-1) - original.mean(-1)).mean()
        assert difference < 12, (name, difference)


def test_runs_written_inside_the_data_folder_are_not_a_class(tmp_path, capsys):
    """``zoolite run --data . --out runs`` from inside the data folder: the next run and check see no class
    ``runs`` (whose files would be skipped and leave it empty: a stop), and say why they left it out."""
    from zoolite import storage
    from zoolite.dataset.scan import RUNS_REASON

    data = copy_sample(tmp_path / "data", per_class=4)
    storage.mark_complete(storage.new_run_dir(data / "runs", "efficientnet_lite0"))
    storage.new_run_dir(data / "runs", "efficientnet_lite0")  # and one still running, or killed
    dataset = scan_dataset(data)
    assert dataset.class_dirs == ["cane", "gatto", "ragno"] and len(dataset.files) == 12
    assert dataset.skipped == [("runs/", RUNS_REASON)]
    assert main(["check", str(data), "--no-suspects", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["folder"] for c in report["classes"]] == ["cane", "gatto", "ragno"]
    assert report["unusable"] == [{"file": "runs/", "reason": RUNS_REASON}]


def test_evaluate_measures_a_messy_folder_and_lists_what_it_skipped(messy, models, label_map, tmp_path):
    """The real command in its own process: skipped files on stderr, figures on stdout, exit 0."""
    root, usable = messy
    result = subprocess.run(
        [sys.executable, "-m", "zoolite.cli", "evaluate", str(models["good"] / "model.tflite"), str(root),
         "--labels", str(label_map), "--warmup", "0", "--runs", "2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for file, reason in SKIPPED.items():
        assert f"zoolite: skipped {root / file.rstrip('/')}: {reason}" in result.stderr, file
    assert f"{len(usable)} images in 3 classes, {len(SKIPPED)} file(s) skipped" in result.stdout
    assert "accuracy" in result.stdout and "latency mean" in result.stdout


def test_an_unreadable_file_or_folder_is_skipped_with_the_permission_problem(tmp_path, monkeypatch, capsys):
    root = copy_sample(tmp_path / "data", per_class=4)
    (root / "cane" / "private").mkdir()
    shutil.copy(next((root / "cane").glob("*.jpg")), root / "cane" / "private" / "x.jpg")
    _deny_reading(monkeypatch, root / "gatto" / sorted(p.name for p in (root / "gatto").iterdir())[0])
    _deny_reading(monkeypatch, root / "cane" / "private")
    try:
        skipped = dict(scan_dataset(root).skipped)
    finally:
        for path in (root / "cane" / "private", *(root / "gatto").iterdir()):
            path.chmod(0o755)
    assert len(skipped) == 2, skipped
    assert skipped["cane/private/"] == "folder cannot be read (Permission denied); fix its permissions"
    assert [reason for file, reason in skipped.items() if file.startswith("gatto/")] == [
        "cannot be read (permission denied); fix its permissions"]


def _make_class_all_bad(root: Path) -> None:
    copy_sample(root)
    (root / "mucca").mkdir()
    (root / "mucca" / "a.jpg").write_text("text")
    (root / "mucca" / "b.png").write_bytes(b"")


def _make_class_of_system_files(root: Path) -> None:
    copy_sample(root)
    (root / "mucca").mkdir()
    for name in (".DS_Store", "Thumbs.db"):
        (root / "mucca" / name).write_bytes(b"\0")


def _make_one_class_plus_macos_folder(root: Path) -> None:
    copy_sample(root, classes=("cane",))
    (root / "__MACOSX" / "cane").mkdir(parents=True)
    (root / "__MACOSX" / "cane" / "._x.jpg").write_bytes(b"\0")


def _make_classes_too_small_for_a_test_split(root: Path) -> None:
    copy_sample(root, per_class=2)  # 3 classes, 6 images: the test split would be smaller than needed


def _make_non_utf8_class_folder(root: Path) -> None:
    copy_sample(root)
    os.rename(os.fsencode(root / "ragno"), os.path.join(os.fsencode(root), b"r\xe4gno"))


def _make_a_split_dataset(root: Path) -> None:
    copy_sample(root / "train")  # as Kaggle ships many datasets: train/ and test/, each with the classes
    copy_sample(root / "test", per_class=3)


def _make_two_folders_of_one_label(root: Path) -> None:
    copy_sample(root)
    shutil.copytree(root / "cane", root / "dog")  # Animals-10's cane is shown as dog


@pytest.mark.parametrize("make, message", [
    (_make_class_all_bad, "mucca: class folder has no usable images (2 skipped, e.g. mucca/a.jpg: not an image"),
    (_make_class_of_system_files, "mucca: class folder has no usable images; add images or remove the folder"),
    (_make_one_class_plus_macos_folder, "only one class folder (cane)"),
    (_make_classes_too_small_for_a_test_split, "only 2 usable image(s); each class needs at least 3"),
    (_make_non_utf8_class_folder, "r\\xe4gno: folder name is not valid UTF-8; rename it"),
    (_make_a_split_dataset, "folders test, train are a split, not classes (each holds the class folders cane, gatto, "
                            "ragno); merge them into one folder per class"),
    (_make_two_folders_of_one_label, "the folders cane and dog both get the label 'dog'"),
])
def test_an_unusable_dataset_stops_the_run_before_anything_is_written(tmp_path, capsys, make, message):
    data, runs = tmp_path / "data", tmp_path / "runs"
    make(data)
    line = error_line(capsys, ["run", "--data", data, "--out", runs, "--quiet"])
    assert message in line
    assert not runs.exists()


# --- models and labels --------------------------------------------------------------------------

def _empty(folder: Path, models) -> Path:
    (folder / "model.keras").touch()
    return folder / "model.keras"


def _random_keras(folder: Path, models) -> Path:
    (folder / "model.keras").write_bytes(np.random.default_rng(1).bytes(3000))
    return folder / "model.keras"


def _truncated_tflite(folder: Path, models) -> Path:
    data = (models["good"] / "model.tflite").read_bytes()
    (folder / "model.tflite").write_bytes(data[:len(data) // 2])
    return folder / "model.tflite"


def _folder(folder: Path, models) -> Path:
    (folder / "model.tflite").mkdir()
    return folder / "model.tflite"


def _wrong_suffix(folder: Path, models) -> Path:
    return shutil.copy(models["good"] / "model.keras", folder / "model.h5")


# case -> (make the model file in a folder, what the error must say)
MODEL_FILES = {
    "missing": (lambda folder, models: folder / "model.tflite", "model file not found"),
    "empty": (_empty, "empty file (0 bytes)"),
    "random .keras": (_random_keras, "not a loadable Keras model"),
    "truncated .tflite": (_truncated_tflite, "not a valid LiteRT model"),
    "a folder": (_folder, "is a folder"),
    "wrong suffix": (_wrong_suffix, "not a model file (expected .keras, .tflite, .onnx or .xml)"),
    "Lambda layer": (lambda folder, models: models["with_code"] / "model.keras",
                     "refused: the model contains Python code (a Lambda layer)"),
    "features in (.keras)": (lambda folder, models: models["features_in"] / "model.keras",
                             "takes input of shape (None, 8), not a batch of square RGB images"),
    "features in (.tflite)": (lambda folder, models: models["features_in"] / "model.tflite",
                              "takes input of shape (1, 8), not a batch of square RGB images"),
}


@pytest.mark.parametrize("case", list(MODEL_FILES))
def test_evaluate_refuses_a_bad_model_file(case, models, messy, tmp_path, capsys):
    make, message = MODEL_FILES[case]
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    model = make(tmp_path, models)
    line = error_line(capsys, ["evaluate", model, messy[0]])
    assert str(model) in line and message in line


@pytest.mark.parametrize("case", ["Lambda layer", "features in (.keras)", "features in (.tflite)"])
def test_predict_refuses_a_model_with_code_or_the_wrong_input(case, models, messy, capsys):
    make, message = MODEL_FILES[case]
    assert message in error_line(capsys, ["predict", make(None, models), messy[0] / "cane" / "upper.JPG"])


def test_the_lambda_model_is_refused_by_the_real_command_and_its_code_never_runs(models, messy, tmp_path):
    result = subprocess.run([sys.executable, "-m", "zoolite.cli", "predict",
                             str(models["with_code"] / "model.keras"), str(messy[0] / "cane" / "upper.JPG")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert not (tmp_path / "code-ran").exists()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"zoolite: error: {models['with_code'] / 'model.keras'}: refused: the model contains Python code")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("labels, message", [
    ("dog\ncat\n", "the model has 3 outputs but {labels} lists 2 labels"),
    (None, "{labels}: labels file not found; pass an existing labels.txt"),
    (b"\xff\xfe\x00binary", "{labels}: not a readable labels file"),
])
def test_labels_that_do_not_fit_the_model_are_refused(command, labels, message, models, messy, tmp_path, capsys):
    labels_file = tmp_path / "labels.txt"
    if isinstance(labels, bytes):
        labels_file.write_bytes(labels)
    elif labels is not None:
        labels_file.write_text(labels)
    target = messy[0] if command == "evaluate" else messy[0] / "cane" / "upper.JPG"
    line = error_line(capsys, [command, models["good"] / "model.tflite", target, "--labels-file", labels_file])
    assert message.format(labels=labels_file) in line


def test_predict_without_labels_beside_the_model_says_where_to_put_them(models, tmp_path, capsys):
    shutil.copy(models["good"] / "model.tflite", tmp_path / "model.tflite")
    line = error_line(capsys, ["predict", tmp_path / "model.tflite", "x.jpg"])
    assert f"{tmp_path / 'labels.txt'}: labels file not found next to the model" in line
    assert "--labels-file" in line


def test_evaluate_refuses_a_dataset_whose_classes_are_not_the_models(models, tmp_path, capsys):
    data = copy_sample(tmp_path / "data", classes=("cane", "gatto", "mucca"))
    line = error_line(capsys, ["evaluate", models["good"] / "model.keras", data])
    assert "its classes cow are not the model's (dog, cat, spider" in line


def test_evaluate_takes_photos_of_some_of_the_models_classes(models, tmp_path, capsys):
    """New photos of one class, say: each is scored against all the model's classes, and the figures are
    those of the classes with photos."""
    data = copy_sample(tmp_path / "data", classes=("gatto",), per_class=6)
    capsys.readouterr()
    assert main(["evaluate", str(models["good"] / "model.tflite"), str(data), "--runs", "2", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["images"] == 6 and evaluation["classes"] == LABELS
    assert [name for name, c in evaluation["per_class"].items() if c["support"]] == ["cat"]
    cat_recall = evaluation["per_class"]["cat"]["recall"]
    assert evaluation["scores"]["accuracy"] == evaluation["scores"]["balanced_accuracy"] == cat_recall
    assert main(["evaluate", str(models["good"] / "model.tflite"), str(data), "--runs", "2"]) == 0
    assert "6 images of 1 of its 3 classes" in capsys.readouterr().out


def test_evaluate_matches_classes_by_label_not_by_folder_order(models, messy, label_map, tmp_path, capsys):
    """A model whose outputs are in another order than the class folders is scored output by label."""
    import keras

    model_labels = ["spider", "dog", "cat"]
    (tmp_path / "labels.txt").write_text("\n".join(model_labels) + "\n")
    assert main(["evaluate", str(models["good"] / "model.keras"), str(messy[0]), "--labels", str(label_map),
                 "--labels-file", str(tmp_path / "labels.txt"), "--warmup", "0", "--runs", "1"]) == 0
    printed = capsys.readouterr().out
    dataset = scan_dataset(messy[0], LABEL_MAP)
    images = np.stack([load_image(messy[0] / p, 32) for p, _ in dataset.files]).astype(np.float32)
    predicted = np.asarray(keras.saving.load_model(models["good"] / "model.keras")(images)).argmax(1)
    folder_classes = np.array([c for _, c in dataset.files])
    by_label = np.mean(predicted == [model_labels.index(dataset.labels[c]) for c in folder_classes])
    by_folder_order = np.mean(predicted == folder_classes)
    assert f"{by_label * 100:.1f}" != f"{by_folder_order * 100:.1f}"  # else this test could not tell
    assert f"accuracy {by_label * 100:.1f}%" in printed
    recalls = {name: np.mean(predicted[folder_classes == c] == model_labels.index(name))
               for c, name in enumerate(dataset.labels)}
    assert f"balanced accuracy {np.mean(list(recalls.values())) * 100:.1f}%" in printed
    n = {name: int(np.sum(folder_classes == c)) for c, name in enumerate(dataset.labels)}
    assert all(f"{name} {recall * 100:.0f}% [" in printed and f"] of {n[name]}" in printed
               for name, recall in recalls.items())


# --- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, valid", [
    (["--backbones", "lenet"], BACKBONES),
    (["--modes", "float32,int4"], targets.MODES),
    (["--runtimes", "litert,tensorrt"], targets.RUNTIMES),
])
def test_unknown_names_list_the_valid_ones(tmp_path, capsys, argv, valid):
    line = error_line(capsys, ["run", "--out", tmp_path / "runs", *argv])
    assert f"choose from: {', '.join(valid)}" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size 0: must be above 0"),
    (["--learning-rate", "-0.1"], "--learning-rate -0.1: must be above 0"),
    (["--patience", "-1"], "--patience -1: must be at least 0"),
    (["--dropout", "1.5"], "--dropout 1.5: must be in [0, 1)"),
    (["--head-c", "0"], "--head-c 0.0: must be above 0"),
    (["--head", "svm"], "--head svm: must be one of: logistic, recipe"),
    (["--split", "0.5,0.5"], "--split 0.5,0.5: must be three train,val,test fractions that sum to 1"),
    (["--split", "0.7,0.3,0"], "each above 0"),
    (["--max-size-mb", "inf"], "--max-size-mb inf: must be above 0; or leave it out"),  # JSON has no infinity
    (["--split", "0.85,0,0.15"], "--split 0.85,0.0,0.15: must be three train,val,test fractions that sum to 1, each "
                                 "above 0"),  # the gate and early stopping need validation photos
    (["--split", "0.8,0.3,-0.1"], "sum to 1"),
    (["--representative-images", "0"], "--representative-images 0: must be at least 1"),
    (["--threads", "0"], "--threads 0: must be at least 1"),
    (["--runs", "0"], "--runs 0: must be at least 1"),
    (["--warmup", "-1"], "--warmup -1: must be at least 0"),
])
def test_out_of_range_options_are_refused_before_any_work(tmp_path, capsys, argv, message):
    assert message in error_line(capsys, ["run", "--out", tmp_path / "runs", *argv])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "--split", "a,b,c"], "argument --split: expected comma-separated numbers, got 'a,b,c'"),
    (["run", "--epochs", "1.5"], "argument --epochs: invalid int value: '1.5'"),
    (["evaluate", "model.tflite"], "the following arguments are required: data"),
])
def test_malformed_options_get_argparse_usage_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_other_commands_refuse_out_of_range_options(models, messy, capsys):
    model = models["good"] / "model.tflite"
    assert "--top 0: must be at least 1" in error_line(capsys, ["predict", model, "x.jpg", "--top", "0"])
    assert "--threads -2: must be at least 1" in error_line(capsys, ["evaluate", model, messy[0], "--threads", "-2"])


def test_resume_refuses_options_that_contradict_the_saved_run(tmp_path, capsys):
    line = error_line(capsys, ["run", "--resume", tmp_path, "--epochs", "3", "--data", "elsewhere", "--quiet"])
    assert "drop --data, --epochs (or start a new run to change them)" in line


def test_zoolite_lines_are_zoolites_own(models, tmp_path, capsys, monkeypatch):
    """A library's notes on the root logger (the ONNX quantizer's) do not come out as "zoolite: ..." lines."""
    import logging

    import zoolite.dataset.images

    real = zoolite.dataset.images.load_image

    def noisy(path, size):
        logging.warning("a library's note")
        logging.getLogger("zoolite.dataset").warning("zoolite's own note")
        return real(path, size)

    monkeypatch.setattr(zoolite.dataset.images, "load_image", noisy)
    photo = next(copy_sample(tmp_path / "data", classes=("cane",), per_class=1).rglob("*.jpg"))
    capsys.readouterr()
    assert main(["predict", str(models["good"] / "model.tflite"), str(photo)]) == 0
    said = capsys.readouterr().err
    assert "zoolite: zoolite's own note" in said and "a library's note" not in said


def test_python_takes_list_options_in_the_command_lines_form():
    from zoolite.config import RunConfig
    from zoolite.errors import ZooliteError

    config = RunConfig.from_options(modes="float32,int8", runtimes="litert", split="0.8,0.1,0.1")
    assert (config.modes, config.runtimes, config.split) == (("float32", "int8"), ("litert",), (0.8, 0.1, 0.1))
    with pytest.raises(ZooliteError, match="^--split: expected comma-separated numbers, got 'a,b'$"):
        RunConfig.from_options(split="a,b")


def test_resume_takes_the_saved_options_from_any_working_folder(tmp_path, capsys, monkeypatch):
    """A run saves its folders whole, so it resumes from anywhere; an option given again with the value it
    saved (the seed, the data folder named from here) changes nothing and is not refused."""
    from zoolite.config import RunConfig

    copy_sample(tmp_path / "data", per_class=4)
    monkeypatch.chdir(tmp_path)
    config = RunConfig.from_options(data="data", other="data/cane")
    assert (config.data, config.other) == (str(tmp_path / "data"), str(tmp_path / "data" / "cane"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config.save(run_dir / "config.json")
    (run_dir / "COMPLETE").write_text("")
    monkeypatch.chdir(run_dir)
    assert "already complete" in error_line(capsys, ["run", "--resume", run_dir, "--seed", "0", "--data", "../data"])
    assert "drop --seed (or start" in error_line(capsys, ["run", "--resume", run_dir, "--seed", "1", "--data", "../data"])


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "not a zoolite run folder (no config.json)"),
    (lambda d: (d / "config.json").write_text('{"seed": '), "config.json: damaged run config"),
    (lambda d: (d / "config.json").write_text('{"seed": 0}'), "written by another zoolite version, which this one "
                                                               "cannot resume (no version"),
    (lambda d: shutil.copy(Path(__file__).parent / "data" / "run-schema4" / "config.json", d),  # the previous version's
     "cannot resume (results schema 4; this one resumes config version 4); start a new run"),
    (lambda d: (d / "config.json").write_text('{"config_version": 1, "seed": 0}'),  # rejection.json before schema 6
     "cannot resume (config version 1; this one resumes config version 4); start a new run"),
    (lambda d: (d / "config.json").write_text('{"config_version": 2, "seed": 0}'),  # a head by epochs, before --head
     "cannot resume (config version 2; this one resumes config version 4); start a new run"),
    (lambda d: (d / "config.json").write_text('{"config_version": 3, "seed": 0}'),  # warm-up without a time limit
     "cannot resume (config version 3; this one resumes config version 4); start a new run"),
    (lambda d: ((d / "config.json").write_text("{}"), (d / "COMPLETE").write_text("")), "already complete"),
])
def test_resume_refuses_a_folder_it_cannot_continue(tmp_path, capsys, make, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make(run_dir)
    assert message in error_line(capsys, ["run", "--resume", run_dir, "--quiet"])


@pytest.mark.parametrize("option", ["--unlabelled", "--other"])
@pytest.mark.parametrize("make, message", [
    (lambda folder: None, "{option} {folder}: folder not found"),
    (lambda folder: folder.mkdir(), "{option} {folder}: no usable images in it; pass a folder of photos"),
    (lambda folder: (folder.mkdir(), (folder / "a.jpg").write_text("text"), (folder / "b.png").write_bytes(b"")),
     "{option} {folder}: no usable images in it (2 skipped, e.g. a.jpg: not an image"),
])
def test_unusable_photo_folders_are_refused_before_any_work(small_dataset, tmp_path, capsys, make, message, option):
    folder = tmp_path / "photos"
    make(folder)
    line = error_line(capsys, ["run", "--data", small_dataset, option, folder, "--out", tmp_path / "runs"])
    assert message.format(option=option, folder=folder) in line
    assert not (tmp_path / "runs").exists()


def test_other_with_one_photo_is_refused_before_any_work(small_dataset, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(next(small_dataset.rglob("*.jpg")), folder / "one.jpg")
    line = error_line(capsys, ["run", "--data", small_dataset, "--other", folder, "--out", tmp_path / "runs"])
    assert f"--other {folder}: only 1 usable photo; at least 2 are needed" in line
    assert not (tmp_path / "runs").exists()
