"""The backbone zoo: every registry entry's builder, normalisation and conversion; the weights
options; fine-tuning; and several backbones in one run.

Each entry is built (random weights: tests stay offline), given a small head, converted to
LiteRT and compared with Keras, without running the whole pipeline per entry. One real
run of two backbones (2 classes x 4 photos, 1 epoch) serves the fine-tuning and the
several-backbones tests.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import copy_sample, made_once
from zoolite.model.backbones import BACKBONES, build_feature_extractor, describe_weights, get_backbone, resolve_weights
from zoolite.model.gated_head import IMAGENET_VIEW
from zoolite.cli import main
from zoolite.config import RunConfig
from zoolite.results import LogisticFit
from zoolite.runs.layout import RunLayout
from zoolite.runs.pipeline import run
from zoolite.progress import Progress
from zoolite.targets import TARGETS
from zoolite.targets.base import export_saved_model
from zoolite.targets.keras import KerasRuntime, load_keras_model
from zoolite.targets.litert import LiteRTRuntime, convert
from zoolite.model.training import PROBABILITIES, assemble, base_of, build_head, extractor_of, head_of, top_of

SLOW = {"xception", "inception_resnet_v2", "resnet50"}
# One run holds these two, fine-tuning the first: it serves the fine-tuning and the
# several-backbones tests.
PAIR = ("efficientnet_lite0", "scratch_cnn")
PAIR_VARIANTS = ["keras", "float32", "int8"]
FINE_TUNE_LAYERS = 4  # efficientnet_lite0's top_conv, top_bn, top_relu6, avg_pool


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return copy_sample(tmp_path_factory.mktemp("zoo") / "data", classes=("cane", "gatto"), per_class=4)


@pytest.fixture(scope="session")
def pair_run(shared_dir):
    """Made once for the session, even when its tests land on different xdist workers."""
    from zoolite.results import load

    root = shared_dir / "pair-run"
    with made_once(root) as first:
        if first:
            config = RunConfig.from_options(
                data=str(copy_sample(root / "data", classes=("cane", "gatto"), per_class=4)), backbones=PAIR,
                runs_dir=str(root / "runs"), representative_images=2, tensorboard=False,
                modes=tuple(PAIR_VARIANTS[1:]), epochs=1, validation_freq=1, start_from_epoch=0,
                fine_tune_layers=FINE_TUNE_LAYERS, fine_tune_learning_rate=1e-4, warmup=0, runs=1, min_runs=1)
            (root / "run_dir.txt").write_text(run(config, progress=Progress(False)).run_dir)
    return load((root / "run_dir.txt").read_text())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in BACKBONES])
def test_backbone_builds_and_converts_to_a_litert_model_that_follows_keras(name, tmp_path):
    """Raw pixels in at the entry's own size, its feature vector out; with a head, the LiteRT file
    gives Keras's probabilities, so the normalisation inside the model survives conversion."""
    spec = get_backbone(name)
    extractor = build_feature_extractor(spec, resolve_weights(spec, "none"))
    assert extractor.input_shape == (None, spec.input_size, spec.input_size, 3)
    assert extractor.output_shape == (None, spec.feature_dim)
    keras.utils.set_random_seed(0)
    model = assemble(extractor, build_head(spec.feature_dim, 2, 0.0))
    head_of(model).get_layer(PROBABILITIES).kernel.assign(  # big enough logits that the classes really differ
        np.random.default_rng(0).normal(0, 1, (spec.feature_dim, 2)).astype(np.float32))
    path = tmp_path / "float32.tflite"
    path.write_bytes(convert(export_saved_model(model, tmp_path / "saved_model"), "float32"))
    runtime = LiteRTRuntime(path)
    assert (runtime.input_size, runtime.n_classes) == (spec.input_size, 2)
    pixels = np.random.default_rng(1).integers(0, 256, (2, spec.input_size, spec.input_size, 3)).astype(np.uint8)
    expected = np.asarray(model(pixels.astype(np.float32), training=False))
    np.testing.assert_allclose(runtime.predict(pixels), expected, atol=2e-4)


def test_a_backbone_whose_features_are_all_near_zero_is_said_to_give_chance(caplog):
    """EfficientNet-Lite0 with random weights gives real photos features of about 1e-11: the head can learn
    nothing from them, and the run says so; with its ImageNet weights they are about 3."""
    import logging

    from conftest import SAMPLE
    from zoolite.dataset.images import load_image
    from zoolite.runs.stages import warn_of_featureless_photos

    photos = np.stack([load_image(p, 224) for p in sorted((SAMPLE / "cane").iterdir())[:4]]).astype(np.float32)
    spec = get_backbone("efficientnet_lite0")
    random, pretrained = (build_feature_extractor(spec, resolve_weights(spec, weights)).predict_on_batch(photos)
                          for weights in ("none", "imagenet"))
    with caplog.at_level(logging.WARNING, logger="zoolite"):
        assert not warn_of_featureless_photos("efficientnet_lite0", "imagenet", pretrained)
        assert warn_of_featureless_photos("efficientnet_lite0", "none", random)
    (said,) = [record.getMessage() for record in caplog.records]
    assert said.startswith("efficientnet_lite0 with random weights (--weights none): its features are all near "
                           "zero (largest ") and "every figure of this backbone is chance" in said


def test_random_weights_are_said_plainly():
    assert describe_weights(get_backbone("mobilenet"), resolve_weights(get_backbone("mobilenet"), "none")) \
        == "RANDOM, not pretrained (--weights none)"
    assert describe_weights(get_backbone("scratch_cnn"), None) == "none (trained from scratch)"


# Ground truth for the normalisation inside each keras.applications extractor: Keras's
# own preprocess_input. ResNet50's is caffe-style BGR; its first convolution is flipped
# to take RGB instead (checked end to end below).
KERAS_PREPROCESSING = {
    "mobilenet": ("mobilenet", False), "mobilenet_v2": ("mobilenet_v2", False),
    "efficientnet_b0": ("efficientnet", False), "resnet50": ("resnet50", True),
    "xception": ("xception", False), "inception_resnet_v2": ("inception_resnet_v2", False),
}


def test_every_keras_application_is_checked_against_its_preprocessing():
    assert set(KERAS_PREPROCESSING) == {n for n, s in BACKBONES.items() if s.keras_weights_file}


@pytest.mark.parametrize("name", sorted(KERAS_PREPROCESSING))
def test_normalisation_matches_keras_preprocess_input(name):
    module, bgr = KERAS_PREPROCESSING[name]
    spec = get_backbone(name)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    ours = np.asarray(keras.layers.Rescaling(spec.scale, spec.offset)(pixels))
    expected = np.asarray(getattr(keras.applications, module).preprocess_input(pixels.copy()))
    np.testing.assert_allclose(ours, expected[..., ::-1] if bgr else expected, rtol=1e-5, atol=1e-4)


def _saved_no_top_weights(constructor: str, size: int, path: Path) -> tuple[keras.Model, Path]:
    """A no-top model of ``constructor`` with random weights, every array made distinct, saved to ``path``."""
    model = getattr(keras.applications, constructor)(weights=None, include_top=False, pooling="avg",
                                                      input_shape=(size, size, 3))
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.uniform(0.01, 0.02, w.shape).astype(w.dtype) for w in model.get_weights()])
    model.save_weights(path)
    return model, path


def test_weights_file_is_loaded_into_the_extractor(tmp_path):
    saved, path = _saved_no_top_weights("MobileNet", 224, tmp_path / "mobilenet_no_top.weights.h5")
    spec = get_backbone("mobilenet")
    extractor = build_feature_extractor(spec, resolve_weights(spec, str(path)))  # as `--weights PATH`
    loaded = base_of(extractor).get_weights()
    assert len(loaded) == len(saved.get_weights())
    for got, want in zip(loaded, saved.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_resnet50_takes_rgb_like_keras_takes_preprocessed_bgr(tmp_path):
    """Mean subtraction inside the model plus the flipped first convolution give Keras's own features."""
    keras_model, path = _saved_no_top_weights("ResNet50", 224, tmp_path / "resnet50_no_top.weights.h5")
    extractor = build_feature_extractor(get_backbone("resnet50"), str(path))
    rgb = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    expected = np.asarray(keras_model(keras.applications.resnet50.preprocess_input(rgb.copy()), training=False))
    got = np.asarray(extractor(rgb, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_a_weights_file_of_another_architecture_is_one_line(tiny_data, tmp_path, capsys):
    _, path = _saved_no_top_weights("MobileNet", 224, tmp_path / "mobilenet_no_top.weights.h5")
    assert main(["run", "--data", str(tiny_data), "--backbones", "mobilenet_v2", "--weights", str(path),
                 "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and "mobilenet_v2" in err
    assert not (tmp_path / "runs").exists()


def test_offline_keras_application_stops_before_any_work(tiny_data, tmp_path, monkeypatch, capsys):
    """No network and an empty Keras cache: one line naming the backbone, the file and both ways out."""
    from keras.src.backend import config as keras_config

    fetched = []

    def offline(url, *args, **kwargs):
        fetched.append(url if isinstance(url, str) else url.full_url)
        raise urllib.error.URLError("network disabled by the test")

    # Keras reads KERAS_HOME once at import, so its cache folder is pointed at an empty one directly.
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "empty-keras-home"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    runs = tmp_path / "runs"
    # scratch_cnn needs no weights, but the run must not start it before mobilenet's fail.
    assert main(["run", "--data", str(tiny_data), "--backbones", "scratch_cnn,mobilenet", "--out", str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("zoolite: error: mobilenet: ")
    assert "mobilenet_1_0_224_tf_no_top.h5" in err
    assert "--weights PATH" in err and "efficientnet_lite0" in err
    assert fetched and fetched[0].endswith("mobilenet_1_0_224_tf_no_top.h5")
    assert not runs.exists()


def test_fine_tuning_trains_only_the_top_base_layers(pair_run):
    layout = RunLayout(Path(pair_run.run_dir))
    backbone = pair_run.backbones["efficientnet_lite0"]
    assert isinstance(backbone.training.head, LogisticFit)  # fitted, then fine-tuned from it by epochs
    assert [name for name, _ in backbone.training.epoch_stages] == ["fine_tune"]
    assert backbone.training.fine_tune.epochs_run == 1
    assert f"top {FINE_TUNE_LAYERS} base layers fine-tuned" in backbone.weights
    assert "fine_tuning" in backbone.timings
    assert f"top {FINE_TUNE_LAYERS} base layers fine-tuned" in layout.report_md.read_text()
    assert pair_run.backbones["scratch_cnn"].training.fine_tune is None  # nothing pretrained to fine-tune

    model = load_keras_model(layout.backbone("efficientnet_lite0").model(TARGETS["keras"]))
    # The ImageNet classifier reads the frozen base's features: a tuned base's gate compares features alone.
    assert IMAGENET_VIEW not in [layer.name for layer in top_of(model).layers]
    assert backbone.rejection.method.endswith("compared by their features")
    # The reference predicted the test photos from the features of the tuned backbone (converted in the run), as
    # the whole model does.
    files = layout.backbone("efficientnet_lite0")
    [tuned_file] = files.cache.glob(f"{extractor_of(model).name}-*.tflite")
    images, saved = np.load(files.images("test")), np.load(files.probabilities("keras"))
    np.testing.assert_array_equal(saved, top_of(model).predict(LiteRTRuntime(tuned_file).predict(images), verbose=0))
    np.testing.assert_allclose(saved, KerasRuntime(model).predict(images), atol=1e-5)
    tuned = base_of(extractor_of(model))
    original = base_of(build_feature_extractor(get_backbone("efficientnet_lite0")))
    cut = len(original.layers) - FINE_TUNE_LAYERS
    changed = []
    for i, (before, after) in enumerate(zip(original.layers, tuned.layers)):
        assert before.name == after.name
        for w0, w1 in zip(before.weights, after.weights):
            if not np.array_equal(w0.numpy(), w1.numpy()):
                changed.append((i, before.name, w0.name))
    assert changed and all(i >= cut for i, _, _ in changed), changed
    # top_bn is among the top layers but BatchNorm stays frozen: not even its moving statistics move.
    assert {name for _, name, _ in changed} == {"top_conv"}


def test_several_backbones_get_one_combined_table(pair_run):
    report = RunLayout(Path(pair_run.run_dir)).report_md.read_text()
    for name in PAIR:
        assert f"## {name}\n" in report
    combined = report.split("## All backbones\n", 1)[1].strip().split("\n\n")[0].splitlines()
    header = [c.strip() for c in combined[0].strip("|").split("|")]
    assert header == ["Variant"] + [f"{n} {c}" for n in PAIR for c in ("acc (loss)", "ms", "MB")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in combined[2:]]
    assert [r[0] for r in rows] == PAIR_VARIANTS
    for r in rows:
        for k, name in enumerate(PAIR):
            measured = pair_run.backbones[name].variant(r[0])
            assert r[1 + 3 * k].startswith(f"{measured.accuracy * 100:.1f}% ({measured.loss:.3f})")
            assert r[3 + 3 * k] == f"{measured.size_bytes / 1e6:.1f}"
    scratch = pair_run.backbones["scratch_cnn"]
    features = np.load(RunLayout(Path(pair_run.run_dir)).backbone("efficientnet_lite0").features("train"))
    assert features.shape == (pair_run.split.train, 1280)  # the head trained on the frozen base's output
    assert not RunLayout(Path(pair_run.run_dir)).backbone("scratch_cnn").features("train").exists()
    assert scratch.training.head.epochs_run == 1


def test_every_variant_is_compared_with_the_runs_most_accurate_float_model(pair_run):
    """The budget's reference is the best float model of the run, not each backbone's own."""
    from zoolite.results import best_float_backbone

    best = best_float_backbone(pair_run.backbones, pair_run.balanced).reference
    weaker = next(b for b in pair_run.backbones.values() if b.reference is not best).reference
    assert weaker.judged_accuracy(pair_run.balanced) < best.judged_accuracy(pair_run.balanced)  # they differ
    for backbone in pair_run.backbones.values():
        for variant in backbone.variants:
            assert variant.paired.reference_accuracy == best.accuracy
            assert variant.balanced_paired.difference == pytest.approx(variant.balanced_accuracy
                                                                       - best.balanced_accuracy)
