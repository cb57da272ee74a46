"""The features stage: the fast way gives Keras's features, and augmented views are real, reproducible,
cached and resumed view by view."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKBONE, SAMPLE, SMALL_RUN_OPTIONS, copy_sample
from zoolite import storage
from zoolite.model import features
from zoolite.model.augmentation import view_maker
from zoolite.model.backbones import build_feature_extractor, get_backbone
from zoolite.dataset.images import load_image

PHOTOS = sorted(SAMPLE.glob("*/*"))[::5]  # 40 real photos of all ten classes


def test_the_fast_features_are_kerass(tmp_path):
    spec = get_backbone(BACKBONE)
    extractor = build_feature_extractor(spec)
    folder = storage.cache_dir() / "backbones"  # where runs and checks keep it
    path = features.backbone_file(extractor, folder)
    converted = path.stat().st_mtime_ns
    assert features.backbone_file(extractor, folder) == path and path.stat().st_mtime_ns == converted  # reused
    runtime = features.open_backbone(path)
    fast = features.extract(runtime, PHOTOS, spec.input_size, tmp_path / "fast.npy")
    keras = features.extract_keras(extractor, PHOTOS, spec.input_size, tmp_path / "keras.npy")
    assert fast.shape == keras.shape == (len(PHOTOS), spec.feature_dim)
    assert features.max_difference(fast, keras) <= features.TOLERANCE
    assert np.abs(keras).max() > 1  # real features, not a file of zeros


@pytest.mark.parametrize("name", ["flip", "standard"])
def test_views_differ_from_the_photo_and_are_the_same_every_time(name):
    pixels = load_image(PHOTOS[0], 224)
    views = [view_maker(name, seed)(0, pixels) for seed in range(6)]
    assert all(v.shape == pixels.shape and v.dtype == np.uint8 for v in views)
    assert sum(not np.array_equal(v, pixels) for v in views) >= 2  # a flip happens half the time
    assert np.array_equal(view_maker(name, 3)(0, pixels), views[3])  # seeded by the seed and the photo
    assert not np.array_equal(view_maker(name, 3)(1, pixels), views[3])
    if name == "flip":
        assert all(np.array_equal(v, pixels) or np.array_equal(v, pixels[:, ::-1]) for v in views)
    else:  # rotated, zoomed and contrast-changed: more than a flip, yet the same photo
        assert all(not np.array_equal(v, pixels[:, ::-1]) for v in views)
        assert all(abs(float(v.mean()) - float(pixels.mean())) < 25 for v in views)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_views_are_cached_and_an_interrupted_run_resumes_view_by_view(tmp_path):
    """Interrupted after the first view's features, the train stage of the resumed run computes only the second."""
    from zoolite.config import RunConfig
    from zoolite.runs import pipeline, stages

    config = RunConfig.from_options(data=str(copy_sample(tmp_path / "data", per_class=6)), runs_dir=str(tmp_path),
                                    augment="standard", augment_views=2, modes=("float32",),
                                    tensorboard=False, **SMALL_RUN_OPTIONS)

    def stop_after_the_first_view(step):
        if step == "features_train_standard1":
            raise KeyboardInterrupt

    prepared = pipeline.prepare(config)
    with pytest.raises(KeyboardInterrupt):
        stages.train(prepared.backbone_run(BACKBONE, after_step=stop_after_the_first_view))
    cache = prepared.layout.backbone(BACKBONE).cache
    first = _digest(cache / "train_standard1_features.npy")
    assert not (cache / "train_standard2_features.npy").exists()

    resumed = pipeline.prepare(resume=prepared.layout.root).backbone_run(BACKBONE)  # what `--resume` runs
    stages.train(resumed)
    timings = resumed.steps.timings
    assert "features_train_standard2" in timings and "training" in timings
    assert "features_train_standard1" not in timings and "features_train" not in timings  # reused
    assert _digest(cache / "train_standard1_features.npy") == first
    original, *views = (np.load(cache / f"{name}_features.npy") for name in
                        ("train", "train_standard1", "train_standard2"))
    assert all(v.shape == original.shape for v in views)
    assert not np.allclose(views[0], original) and not np.allclose(views[0], views[1])
    assert resumed.features_per_second() > 0

def test_the_checks_features_are_the_runs_bit_for_bit(tmp_path, monkeypatch):
    """``zoolite check`` caches the features a run reuses: computed by the check (one thread or all cores),
    read back from its cache, or computed by the run's plain path, they are the same bytes."""
    from zoolite.apps import check

    spec = get_backbone(BACKBONE)
    runtime = features.open_backbone(features.backbone_file(build_feature_extractor(spec),
                                                            storage.cache_dir() / "backbones"))
    run_path = np.load(features.extract(runtime, PHOTOS, spec.input_size, tmp_path / "run.npy").filename)
    files = [photo.relative_to(SAMPLE).as_posix() for photo in PHOTOS]
    for threads, cache in ((None, "a"), (1, "b")):
        monkeypatch.setattr(features, "features_cache", lambda backbone, cache=cache: tmp_path / cache)
        computed = check.photo_features(SAMPLE, files, threads=threads)
        assert len(list((tmp_path / cache).glob("*.npy"))) == len(PHOTOS)
        cached = check.photo_features(SAMPLE, files, threads=threads)
        assert computed.tobytes() == run_path.tobytes() == cached.tobytes(), threads


def test_one_process_makes_a_cache_file_while_the_others_wait(tmp_path):
    """Runs and checks share the user cache (the converted backbone, the ported weights): of several that
    want a missing file at once, one makes it and the others find it made."""
    import threading
    import time

    path, made = tmp_path / "cache" / "backbone.tflite", []

    def want():
        with storage.one_maker(path):
            if not path.exists():
                made.append(threading.get_ident())
                time.sleep(0.2)  # converting
                path.write_text("converted")

    wanting = [threading.Thread(target=want) for _ in range(4)]
    for thread in wanting:
        thread.start()
    for thread in wanting:
        thread.join()
    assert len(made) == 1 and path.read_text() == "converted"
