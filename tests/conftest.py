"""Shared fixtures: small real data (a slice of the bundled sample) and one small pipeline run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parents[1] / "zoolite" / "sample" / "animals10"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Converted weights go to a per-session cache, so tests never depend on ~/.cache."""
    os.environ["ZOOLITE_CACHE"] = str(tmp_path_factory.mktemp("zoolite-cache"))


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
def small_run(tmp_path_factory):
    """One real pipeline run on 3 classes x 10 photos, with settings cut down for speed."""
    from zoolite.evaluation import LatencyConfig
    from zoolite.pipeline import RunConfig, run
    from zoolite.progress import Progress
    from zoolite.training import TrainConfig

    root = tmp_path_factory.mktemp("small-run")
    data = copy_sample(root / "data", per_class=10)
    config = RunConfig(data=str(data), runs_dir=str(root / "runs"), representative_images=8,
                       train=TrainConfig(epochs=4, validation_freq=1, start_from_epoch=0),
                       latency=LatencyConfig(warmup=1, runs=3))
    return run(config, progress=Progress(False))
