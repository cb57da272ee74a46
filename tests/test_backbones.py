"""The EfficientNet-Lite port against the reference logits, and the weights reader."""

from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest

from conftest import DATA
from zoolite.model.backbones import BACKBONES, build_feature_extractor, get_backbone
from zoolite.model.backbones.efficientnet_lite import _torch_weights_file, efficientnet_lite
from zoolite.model.backbones.torch_weights import read_state_dict
from zoolite.errors import ZooliteError
from zoolite.model.training import base_of


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_port_matches_reference_logits(name):
    model = efficientnet_lite(name, include_top=True, weights="imagenet")
    x = np.load(DATA / name / "input_nhwc.npy")
    reference = np.load(DATA / name / "logits.npy")
    logits = np.asarray(model(x, training=False))
    assert np.abs(logits - reference).max() <= 1e-4
    assert list(np.argsort(-logits[0])[:3]) == list(np.argsort(-reference[0])[:3])


def test_feature_extractor_takes_raw_pixels():
    """Normalisation (x - 127) / 128 is inside the model: raw pixels give the reference features."""
    spec = get_backbone("efficientnet_lite0")
    extractor = build_feature_extractor(spec)
    normalised = np.load(DATA / "efficientnet_lite0" / "input_nhwc.npy")
    base = base_of(extractor)
    expected = np.asarray(base(normalised, training=False))
    got = np.asarray(extractor(normalised * 128 + 127, training=False))
    assert got.shape == (1, 1280)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_backbone_without_its_classifier_has_the_ported_weights(tmp_path, monkeypatch):
    """Its own weights file, ported on first use, then read back from the cache: it gives the pooled features
    of the model with the ImageNet classifier (which the port is checked against)."""
    import keras

    full = efficientnet_lite("efficientnet_lite0", include_top=True, weights="imagenet")
    pooled = keras.Model(full.input, full.get_layer("avg_pool").output)
    normalised = np.load(DATA / "efficientnet_lite0" / "input_nhwc.npy")
    expected = np.asarray(pooled(normalised, training=False))
    monkeypatch.setenv("ZOOLITE_CACHE", str(tmp_path))
    for made in (False, True):
        assert (tmp_path / "efficientnet_lite0_imagenet_no_top.weights.h5").exists() == made
        got = np.asarray(efficientnet_lite("efficientnet_lite0", weights="imagenet")(normalised, training=False))
        np.testing.assert_array_equal(got, expected)


def test_state_dict_reader_gives_arrays_of_the_right_shapes():
    state = read_state_dict(_torch_weights_file("efficientnet_lite0"))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype == np.float32)


def _legacy_file(state_pickle: bytes) -> bytes:
    head = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    return head + state_pickle + pickle.dumps([], protocol=2)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_reader_refuses_a_file_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_legacy_file(pickle.dumps(OrderedDict(w=_RunsCode(marker)), protocol=2)))
    with pytest.raises(ZooliteError, match="system"):
        read_state_dict(evil)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", pickle.dumps(1234)])
def test_reader_rejects_damaged_files_with_one_line(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(ZooliteError) as err:
        read_state_dict(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_reader_rejects_truncated_weights(tmp_path):
    original = _torch_weights_file("efficientnet_lite0").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(ZooliteError, match="truncated"):
        read_state_dict(path)


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(ZooliteError) as err:
        get_backbone("resnet9000")
    assert all(name in str(err.value) for name in BACKBONES)
