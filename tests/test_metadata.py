"""TFLite metadata: written without changing the model, accepted by MediaPipe, read without TF."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from zoolite.errors import ZooliteError
from zoolite.targets.metadata import add_metadata, read_metadata
from zoolite.targets import About

SIZE = 16
LABELS = ["cane", "gatto", "ragno"]
ABOUT = About(name="zoo", description="Tells dogs, cats and spiders apart.", labels=LABELS, version="0.1.0")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple]:
    """Tiny real models by I/O type: (path without metadata, path with metadata)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(size=(3, 3, 3, 8)).astype("float32"))
    dense = tf.constant(rng.normal(size=(8, len(LABELS))).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def classify(pixels):  # raw 0-255 pixels in, class probabilities out, like zoolite's models
        x = tf.nn.relu(tf.nn.conv2d(pixels / 127.5 - 1, kernel, 1, "SAME"))
        return tf.nn.softmax(tf.reduce_mean(x, [1, 2]) @ dense)

    def convert(io_type):
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [classify.get_concrete_function()], classify)
        if io_type is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype("float32")] for _ in range(8))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = io_type
        return converter.convert()

    root = tmp_path_factory.mktemp("metadata")
    paths = {}
    for name, io_type in [("float32", None), ("uint8", tf.uint8), ("int8", tf.int8)]:
        plain, tagged = root / f"{name}.tflite", root / f"{name}_md.tflite"
        plain.write_bytes(convert(io_type))
        tagged.write_bytes(add_metadata(plain.read_bytes(), ABOUT))
        paths[name] = (plain, tagged)
    return paths


def images(count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]


def litert_outputs(path, image: np.ndarray) -> tuple[np.ndarray, dict]:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(source["index"], image[None].astype(source["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(target["index"])[0], target


@pytest.mark.parametrize("io_type", ["float32", "uint8"])
def test_metadata_leaves_the_outputs_bit_identical(models, io_type):
    plain, tagged = models[io_type]
    assert tagged.read_bytes() != plain.read_bytes()
    for image in images():
        before, _ = litert_outputs(plain, image)
        after, _ = litert_outputs(tagged, image)
        assert before.tobytes() == after.tobytes()


@pytest.mark.parametrize("io_type", ["float32", "uint8"])
def test_mediapipe_classifier_names_the_litert_top_class(models, io_type):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(models[io_type][1])))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images():
            scores, detail = litert_outputs(models[io_type][1], image)
            scale, zero_point = detail["quantization"]
            probabilities = (scores - zero_point) * scale if scale else scores
            top = int(np.argmax(probabilities))
            assert np.sum(probabilities == probabilities[top]) == 1, "tied top class: pick another image"
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
            best = result.classifications[0].categories[0]
            assert (best.index, best.category_name) == (top, LABELS[top])
            assert best.score == pytest.approx(probabilities[top], abs=1e-6)


def test_mediapipe_refuses_a_float_model_without_metadata(models):
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(models["float32"][0])))
    with pytest.raises(FileNotFoundError, match="NormalizationOptions"):  # sic: mediapipe 1.2.3
        vision.ImageClassifier.create_from_options(options)


def test_metadata_is_written_for_int8_io_too_though_mediapipe_refuses_int8_input(models):
    from mediapipe.tasks.python import BaseOptions, vision

    assert read_metadata(models["int8"][1]).labels == LABELS
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(models["int8"][1])))
    with pytest.raises(ValueError, match="uint8/float32, got INT8"):
        vision.ImageClassifier.create_from_options(options)


def test_read_metadata_from_path_and_bytes(models):
    expected = ABOUT
    assert read_metadata(models["uint8"][1]) == expected
    assert read_metadata(models["uint8"][1].read_bytes()) == expected


def test_read_metadata_of_a_model_without_metadata_is_none(models):
    assert read_metadata(models["float32"][0]) is None


def test_written_metadata_declares_parser_version_1_0_0(models):
    from zoolite.targets.metadata import _metadata_writers

    _metadata_writers()  # makes mediapipe's metadata module importable
    from mediapipe.tasks.python.metadata.metadata import MetadataDisplayer

    shown = json.loads(MetadataDisplayer.with_model_file(str(models["float32"][1])).get_metadata_json())
    assert shown["min_parser_version"] == "1.0.0"


def test_min_parser_version_follows_the_schema_history():
    import flatbuffers

    from zoolite.targets.metadata import _metadata_schema, _min_parser_version

    fb = _metadata_schema()
    labels = fb.AssociatedFileT()
    labels.name, labels.type, labels.version = "labels.txt", fb.AssociatedFileType.TENSOR_AXIS_LABELS, "2"
    tensor, subgraph, model = fb.TensorMetadataT(), fb.SubGraphMetadataT(), fb.ModelMetadataT()
    tensor.associatedFiles, subgraph.outputTensorMetadata, model.subgraphMetadata = [labels], [tensor], [subgraph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    assert _min_parser_version(bytes(builder.Output())) == "1.4.1"  # AssociatedFile.version


@pytest.mark.parametrize("damage", ["identifier", "root offset"])
def test_damaged_metadata_buffer_is_a_zoolite_error(models, tmp_path, damage):
    data = bytearray(models["uint8"][1].read_bytes())
    assert data.count(b"M001") == 1  # the metadata buffer: root offset (4 bytes), then "M001"
    start = data.index(b"M001")
    if damage == "identifier":
        data[start:start + 4] = b"XXXX"
    else:
        data[start - 4:start] = b"\xff\xff\xff\x7f"
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(bytes(data))
    with pytest.raises(ZooliteError, match="broken.tflite: damaged TFLite metadata .*; re-create the model"):
        read_metadata(broken)


def test_truncated_labels_are_a_zoolite_error(models, tmp_path):
    broken = tmp_path / "cut.tflite"
    broken.write_bytes(models["uint8"][1].read_bytes()[:-30])  # cuts the zip's central directory
    with pytest.raises(ZooliteError, match="cut.tflite"):
        read_metadata(broken)


def test_labels_must_match_the_classes(models):
    with pytest.raises(ValueError, match="2 labels for a model with 3 classes"):
        add_metadata(models["float32"][0].read_bytes(), replace(ABOUT, labels=LABELS[:2]))


def test_reading_metadata_imports_neither_tensorflow_nor_mediapipe(models):
    """What keeps `zoolite predict` quick to start (benchmarks/predict_startup.py times it)."""
    script = (
        "import json, sys\n"
        "from zoolite.targets.metadata import read_metadata\n"
        f"labels = read_metadata({str(models['float32'][1])!r}).labels\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'mediapipe'})\n"
        "print(json.dumps([list(labels), heavy]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    labels, heavy = json.loads(done.stdout)
    assert labels == LABELS
    assert heavy == []


def test_one_model_gives_one_file_whenever_it_is_written(models, monkeypatch):
    """The metadata writer stamps the attached labels.txt with the time; zoolite's files do not differ by it."""
    import time

    plain, tagged = models["float32"]
    monkeypatch.setattr(time, "time", lambda: 1e9)  # 2001
    assert add_metadata(plain.read_bytes(), ABOUT) == tagged.read_bytes()
    assert read_metadata(tagged.read_bytes()) == ABOUT
