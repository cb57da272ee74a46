"""Shared fixtures: small real data (a slice of the bundled sample) and one small pipeline run,
made once for the whole session even when pytest-xdist spreads the tests over several workers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[1] / "zoolite" / "sample" / "animals10"
BACKBONE = "efficientnet_lite0"


def pytest_collection_modifyitems(items):
    """Order the tests for xdist's work stealing, which gives each of N workers a contiguous share of this order
    and lets an idle worker take the back half of another's. The tests of the session's full pipeline run
    go first: the first worker makes it while the others start on tests that need none, rather than wait
    for it. The other slow tests open the second share, so that the short ones are left for the end,
    shared by whichever worker is free."""
    first = [item for item in items if "small_run" in item.fixturenames]
    slow = [item for item in items if "small_run" not in item.fixturenames
            and (item.get_closest_marker("slow") or "pair_run" in item.fixturenames)]
    placed = {id(item) for item in first + slow}
    rest = [item for item in items if id(item) not in placed]
    second_share = max(len(items) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1)) - len(first), 0)
    items[:] = first + rest[:second_share] + slow + rest[second_share:]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(shared_dir):
    """Converted weights go to a cache private to this test session (shared by its workers), so
    tests never depend on ~/.cache and the weights are ported once."""
    os.environ["ZOOLITE_CACHE"] = str(shared_dir / "zoolite-cache")


TINY_SIZE, TINY_CLASSES = 32, 4


def make_tiny_model(classes: int = TINY_CLASSES):
    """A seeded Keras classifier small enough to convert in a second: raw pixels in, normalised inside
    as zoolite's models are, one ReLU6 convolution, class probabilities out."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    x = keras.layers.Rescaling(1 / 128, -127 / 128)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="module")
def coloured_images():
    """24 noisy photos of one colour each for ``tiny_model``: its outputs spread over 0.38 between
    them, where on pure noise they would all be within 0.01 of one another (so a tolerance could
    not fail)."""
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
    from zoolite import storage

    with storage.one_maker(folder):
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
    from zoolite.runs.pipeline import run
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

    from zoolite.runs.layout import RunLayout

    images = np.load(RunLayout(Path(small_run.run_dir)).backbone(BACKBONE).images("test"))
    folder = tmp_path_factory.mktemp("test-photos")
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"test-{i:02d}.png")
        Image.fromarray(np.asarray(image)).save(paths[-1])
    return paths


def predict_top1(capsys, model, photos) -> list[str | None]:
    """What `zoolite predict MODEL PHOTO... --top 1` says of each photo: its top label, or None where it
    says the photo shows none of the classes."""
    from zoolite.cli import main

    capsys.readouterr()
    assert main(["predict", str(model), *map(str, photos), "--top", "1"]) == 0
    files, said = zip(*(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines()))
    assert list(files) == [str(photo) for photo in photos]
    return [None if answer.startswith("none of the ") else answer.rpartition(" ")[0] for answer in said]


def error_line(capsys, argv, alone: bool = True) -> str:
    """Run the command; it must exit 2 with one error line and no traceback (``alone``: and nothing else on
    stderr, no warning either). Return the line."""
    from zoolite.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert not any("Traceback" in line for line in err), err
    errors = [line for line in err if line.startswith("zoolite: error:")]
    assert len(errors) == 1 and (len(err) == 1 or not alone), err
    return errors[0]


# --- hand-made results, for the logic that reads them (recommendation, tables) ------------------

# The dev-set case: 40 test images, the float model right on 35 of them.
FLOAT_RIGHT = np.array([True] * 35 + [False] * 5)


def flip(correct, lost: int, won: int = 0):
    """``correct`` with its first ``lost`` right answers made wrong and first ``won`` wrong ones right."""
    out = np.array(correct, bool)
    out[np.flatnonzero(correct)[:lost]] = False
    out[np.flatnonzero(~correct)[:won]] = True
    return out

def made_variant(name: str, accuracy: float, median_ms: float, mb: float, role: str = "shippable", **fields):
    """A measured variant with no file behind it: ``accuracy``, median (and mean) latency and size as given,
    every other figure as ``fields`` say or a plain default."""
    from zoolite.results import Latency, Variant

    reference = role == "reference"
    return Variant(**{
        "target": name, "family": "keras" if reference else "litert", "mode": "float32" if reference else name,
        "role": role, "file": f"b/models/{name}", "size_bytes": int(mb * 1e6), "load_ms": 1.0, "loss": 1.0 - accuracy,
        "accuracy": accuracy, "top_k": 3, "top_k_accuracy": 1.0, "threads": "2", "backend": "test",
        "latency": Latency(median_ms, median_ms, median_ms * 1.2, median_ms * 1.3, 0.1, median_ms, 10),
        "eval_seconds": 1.0, "input_dtype": "float32", **fields})


def paired_variant(name: str, correct, reference, median_ms: float, mb: float, role: str = "shippable",
                   spread: float = 0.02, confident_agreement: tuple[int, int] | None = None, **fields):
    """A variant right on the test images where ``correct`` is True, with its paired evidence against a
    float model right where ``reference`` is; 100 timed calls spread around ``median_ms``; with
    ``confident_agreement`` (agreed, n), its fidelity where the float model is confident."""
    import zlib

    from zoolite.measure import intervals, stats
    from zoolite.results import Fidelity, Latency

    samples = median_ms * (1 + spread * np.random.default_rng(zlib.crc32(name.encode())).standard_normal(100))
    latency = Latency(float(samples.mean()), float(np.median(samples)), float(np.percentile(samples, 90)),
                      float(np.percentile(samples, 99)), float(samples.std()), float(samples.min()), 100,
                      samples_ms=samples.tolist(), median_interval=intervals.median_interval(samples))
    fidelity = None
    if confident_agreement is not None:
        agreed, n = confident_agreement
        interval = intervals.proportion_interval(agreed, n)
        fidelity = Fidelity([stats.FidelityRow(f"reference max prob >= {stats.CONFIDENT:g}", stats.CONFIDENT, None, n,
                                               agreed / n, interval.low, interval.high, 0.0)])
    right = int(np.sum(correct))
    return made_variant(name, right / len(correct), median_ms, mb, role, latency=latency, loss=0.3,
                        accuracy_interval=intervals.proportion_interval(right, len(correct)),
                        paired=stats.compare_paired(correct, reference), fidelity=fidelity, **fields)


def made_run(backbones: dict, test_images: int, labels=("a", "b", "c")):
    """Results of a run that never happened: ``backbones`` maps names to their variants, the reference first."""
    from zoolite.config import RunConfig
    from zoolite.results import Backbone, Dataset, Machine, Run, SplitSizes, Training, TrainingStage

    untrained = Training(TrainingStage())
    return Run(run_dir="run", machine=Machine("test CPU", 2, "test OS", "3.11", {}, "test", "pytest"),
               config=RunConfig(), dataset=Dataset("data", list(labels), list(labels), {}, test_images),
               split=SplitSizes(0, 0, 0, test_images), timings={},
               backbones={name: Backbone(name, 224, 1280, "ImageNet", "test", True, untrained, {}, variants)
                          for name, variants in backbones.items()})
