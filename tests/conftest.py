"""Shared fixtures: small real data (a slice of the bundled sample) and one small pipeline run,
made once for the whole session even when pytest-xdist spreads the tests over several workers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[1] / "zoolite" / "sample" / "animals10"
BACKBONE = "efficientnet_lite0"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(shared_dir):
    """Converted weights go to a cache private to this test session (shared by its workers), so
    tests never depend on ~/.cache and the weights are ported once."""
    os.environ["ZOOLITE_CACHE"] = str(shared_dir / "zoolite-cache")


TINY_SIZE, TINY_CLASSES = 32, 4


@pytest.fixture(scope="module")
def tiny_model():
    """A seeded Keras classifier small enough to convert in a second: raw pixels in, normalised inside
    as zoolite's models are, one ReLU6 convolution, class probabilities out."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    x = keras.layers.Rescaling(1 / 128, -127 / 128)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(TINY_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def coloured_images():
    """24 noisy photos of one colour each for ``tiny_model``: its outputs spread over 0.38 between
    them, where on pure noise they would all be within 0.01 of one another (so a tolerance could
    not fail)."""
    import numpy as np

    rng = np.random.default_rng(0)
    colours, noise = rng.integers(0, 256, (24, 1, 1, 3)), rng.integers(-48, 49, (24, TINY_SIZE, TINY_SIZE, 3))
    return np.clip(colours + noise, 0, 255).astype(np.uint8)


def copy_sample(dest: Path, classes=("cane", "gatto", "ragno"), per_class: int = 8) -> Path:
    """Copy ``per_class`` real photos of each class of the bundled sample into ``dest``."""
    for name in classes:
        (dest / name).mkdir(parents=True)
        for src in sorted((SAMPLE / name).iterdir())[:per_class]:
            shutil.copy(src, dest / name / src.name)
    return dest


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    return copy_sample(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id) -> Path:
    """A folder every xdist worker of this session sees (the base temp folder's parent is shared)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@contextlib.contextmanager
def made_once(folder: Path):
    """Yield True to the one process that must make ``folder``'s contents, False to the others once
    it is done: an exclusive lock on a file beside it, and a marker written when it is finished."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder.with_suffix(".done")
        yield not done.exists()
        done.touch()


def unlabelled_photos(dest: Path) -> Path:
    """Photos of none of the run's classes, flat and nested, plus a file that is not an image."""
    copy_sample(dest, classes=("cavallo", "elefante"), per_class=4)
    copy_sample(dest / "more", classes=("mucca",), per_class=4)
    (dest / "notes.jpg").write_text("not a photo")
    return dest


def other_photos(dest: Path) -> Path:
    """Real photos of none of the run's classes (other Animals-10 classes), for ``--other``."""
    return copy_sample(dest, classes=("farfalla", "gallina", "pecora", "scoiattolo"), per_class=4)


RUNTIMES = ("litert", "onnxruntime", "openvino")  # every family, measured in one run
SMALL_RUN_OPTIONS = {"representative_images": 8, "epochs": 4, "validation_freq": 1, "start_from_epoch": 0,
                     "warmup": 1, "runs": 3}


@pytest.fixture(scope="session")
def small_run(shared_dir):
    """One real pipeline run of every runtime on 3 classes x 10 photos (6 test images), 12 unlabelled photos and 16 photos
    of other classes (``--other``: 8 fit the rejection, 8 measure it), with
    settings cut down for speed; made once per session and read back (as results.json) by the
    other workers."""
    from zoolite.config import RunConfig
    from zoolite.pipeline import run
    from zoolite.progress import Progress
    from zoolite.results import load

    root = shared_dir / "small-run"
    with made_once(root) as first:
        if first:
            shutil.rmtree(root, ignore_errors=True)
            data = copy_sample(root / "data", per_class=10)
            config = RunConfig.from_options(data=str(data), runs_dir=str(root / "runs"), runtimes=RUNTIMES,
                                            unlabelled=str(unlabelled_photos(root / "unlabelled")),
                                            other=str(other_photos(root / "other")),
                                            **SMALL_RUN_OPTIONS)
            results = run(config, progress=Progress(False))
            (root / "run_dir.json").write_text(json.dumps(results.run_dir))
    return load(json.loads((root / "run_dir.json").read_text()))


@pytest.fixture(scope="session")
def test_photos(small_run, tmp_path_factory) -> list[Path]:
    """The run's decoded test images, saved as PNGs at the model's size (so no client resamples)."""
    import numpy as np
    from PIL import Image

    from zoolite.layout import RunLayout

    images = np.load(RunLayout(Path(small_run.run_dir)).backbone(BACKBONE).images("test"))
    folder = tmp_path_factory.mktemp("test-photos")
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"test-{i:02d}.png")
        Image.fromarray(np.asarray(image)).save(paths[-1])
    return paths


def error_line(capsys, argv) -> str:
    """Run the command; it must exit 2 with one error line and no traceback. Return the line."""
    from zoolite.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert not any("Traceback" in line for line in err), err
    errors = [line for line in err if line.startswith("zoolite: error:")]
    assert len(errors) == 1, err
    return errors[0]
