"""TFLite metadata: what MediaPipe Tasks needs to run a zoolite model, and what ``predict`` shows.

Writing uses MediaPipe's own metadata writer (imported lazily: importing ``mediapipe`` also
imports TensorFlow). Reading parses the flatbuffers directly with generated schema modules, so
``zoolite predict`` starts without TensorFlow or MediaPipe.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import sys
import types
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from zoolite.errors import ZooliteError
from zoolite.targets.base import About

_METADATA_NAME = b"TFLITE_METADATA"  # name of the model metadata entry that holds the metadata buffer
_LABELS_FILE = "labels.txt"


def add_metadata(model: bytes, about: About) -> bytes:
    """Return ``model`` with TFLite metadata that MediaPipe's ``ImageClassifier`` accepts.

    The input is described as an RGB image of raw 0-255 pixels (normalisation mean 0, std 1:
    the model normalises inside), the output as class scores with ``about.labels`` attached as
    ``labels.txt``. ``about.score_threshold``, if given, is stored as the output's
    ``ScoreThresholdingOptions``: MediaPipe Tasks drops every class scored below it unless the
    app sets its own threshold, so a photo of none of the classes comes back with no class.
    Only the metadata entry and the appended zip change: tensors and ops don't.
    """
    from ai_edge_litert import schema_py_generated as tfl

    labels, threshold = about.labels, about.score_threshold
    classes = _class_count(tfl.Model.GetRootAs(model, 0))
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for a model with {classes} classes")
    for label in labels:
        if "\n" in label or "\r" in label:
            raise ZooliteError(f"class name {label!r} contains a line break: rename its folder")
    writers = _metadata_writers()
    writer = writers.MetadataWriter.create(bytearray(model))
    # add_general_info() sets only name and description; GeneralMd also takes version and author.
    writer._general_md = writers.metadata_info.GeneralMd(
        name=about.name, description=about.description, version=about.version, author=about.author)
    # MediaPipe applies this to float inputs and ignores it for uint8 ones (checked with 1.2.3).
    writer.add_image_input(norm_mean=[0.0], norm_std=[1.0])
    writer.add_classification_output(
        writers.Labels().add(list(labels), exported_filename=_LABELS_FILE),
        score_thresholding=None if threshold is None else writers.ScoreThresholding(float(threshold)))
    model_with_metadata, _json = writer.populate()
    return _without_zip_times(bytes(model_with_metadata))


def _without_zip_times(model: bytes) -> bytes:
    """The model with the zip of its attached files rewritten at a fixed time, so that one model gives one
    file (the writer stamps each attached file with the time it wrote it)."""
    with zipfile.ZipFile(io.BytesIO(model)) as attached:
        entries = attached.infolist()
        contents = [attached.read(entry) for entry in entries]
    out = io.BytesIO(model[:min(entry.header_offset for entry in entries)])
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as rewritten:  # on a file that is no zip, "a" appends one
        for entry, content in zip(entries, contents):
            fixed = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.external_attr = entry.external_attr
            rewritten.writestr(fixed, content, compress_type=entry.compress_type)
    return out.getvalue()


def read_metadata(model: str | os.PathLike | bytes) -> About | None:
    """Read the metadata of a ``.tflite`` model (path or contents); None if it has none.

    Imports neither TensorFlow nor MediaPipe. Raises ZooliteError if the file is not a TFLite
    model or its metadata or attached labels are damaged.
    """
    where = "the model" if isinstance(model, bytes) else str(model)
    try:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
    except OSError as e:
        raise ZooliteError(f"cannot read {where}: {e.strerror}; check the path") from e
    from ai_edge_litert import schema_py_generated as tfl

    if not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise ZooliteError(f"{where} is not a TFLite model; pass a .tflite file made by zoolite")
    try:
        return _parse(data, tfl.Model.GetRootAs(data, 0))
    # A damaged flatbuffer or zip fails in whichever low-level read first hits the damage.
    except (struct.error, IndexError, ValueError, TypeError, KeyError, AttributeError, EOFError,
            zipfile.BadZipFile) as e:
        raise ZooliteError(f"{where}: damaged TFLite metadata ({type(e).__name__}: {e}); re-create the model "
                           "with `zoolite run`, or pass --labels-file to use it without its metadata") from None


def _parse(data: bytes, model) -> About | None:
    """What the metadata of a TFLite ``model`` (parsed from ``data``) says about it; raises on damage."""
    buffer = next((model.Buffers(model.Metadata(i).Buffer()) for i in range(model.MetadataLength())
                   if model.Metadata(i).Name() == _METADATA_NAME), None)
    if buffer is None:
        return None
    fb = _metadata_schema()
    raw = buffer.DataAsNumpy().tobytes()
    if not fb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        raise ValueError("the metadata buffer lacks its file identifier")
    meta = fb.ModelMetadata.GetRootAs(raw, 0)
    output = meta.SubgraphMetadata(0).OutputTensorMetadata(0)
    files = (output.AssociatedFiles(i) for i in range(output.AssociatedFilesLength()))
    label_file = next((f.Name().decode() for f in files
                       if f.Type() == fb.AssociatedFileType.TENSOR_AXIS_LABELS), None)
    if label_file is None:
        raise ValueError("the output has no label file")
    with zipfile.ZipFile(io.BytesIO(data)) as attached:
        # The writer joins labels with "\n"; splitlines() would also split on other characters.
        labels = attached.read(label_file).decode("utf-8").split("\n")
    classes = _class_count(model)
    if len(labels) != classes:
        raise ValueError(f"{label_file} has {len(labels)} labels for {classes} classes")
    units = (output.ProcessUnits(i) for i in range(output.ProcessUnitsLength()))
    thresholding = next((unit for unit in units
                         if unit.OptionsType() == fb.ProcessUnitOptions.ScoreThresholdingOptions), None)
    threshold = None
    if thresholding is not None:
        options = fb.ScoreThresholdingOptions()
        options.Init(thresholding.Options().Bytes, thresholding.Options().Pos)
        threshold = float(options.GlobalScoreThreshold())
    return About(name=_text(meta.Name()), description=_text(meta.Description()), labels=labels,
                 version=_text(meta.Version()), score_threshold=threshold, author=_text(meta.Author()))


def _class_count(model) -> int:
    """Length of the last axis of the first output of a TFLite ``model``."""
    graph = model.Subgraphs(0)
    return int(graph.Tensors(graph.Outputs(0)).ShapeAsNumpy()[-1])


def _text(value: bytes | None) -> str:
    return value.decode("utf-8") if value else ""


@cache
def _metadata_schema() -> types.ModuleType:
    """MediaPipe's generated metadata schema module, loaded without the ``mediapipe`` package.

    ``import mediapipe.tasks.metadata...`` would run ``mediapipe/__init__.py``, which imports
    every task and TensorFlow (3-4 s); the generated module itself needs only ``flatbuffers``.
    """
    package = importlib.util.find_spec("mediapipe")  # a top-level name is found without importing
    if package is None or package.origin is None:
        raise ZooliteError("reading model metadata needs mediapipe: pip install mediapipe==1.2.3")
    path = Path(package.origin).parent / "tasks" / "metadata" / "metadata_schema_py_generated.py"
    spec = importlib.util.spec_from_file_location("_zoolite_metadata_schema_fb", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _metadata_writers() -> types.ModuleType:
    """MediaPipe's ``metadata_writer`` module, made importable on mediapipe 1.2.3.

    Its wheel lacks the compiled ``_pywrap_metadata_version``, whose one function computes the
    ``min_parser_version`` stored in the metadata; zoolite supplies it (_min_parser_version).
    """
    try:
        import mediapipe.tasks.cc.metadata.python._pywrap_metadata_version  # noqa: F401
    except ModuleNotFoundError:
        shim = types.ModuleType("_pywrap_metadata_version")
        shim.GetMinimumMetadataParserVersion = _min_parser_version
        package = types.ModuleType("mediapipe.tasks.cc.metadata.python")
        package._pywrap_metadata_version = shim
        sys.modules[package.__name__] = package
    from mediapipe.tasks.python.audio.core import audio_record
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    # mediapipe keeps the error of its optional audio dependency (PortAudio missing) whose
    # traceback pins the frames of whoever imported it first: our caller's model and writer.
    if getattr(audio_record, "sd_error", None) is not None:
        audio_record.sd_error.__traceback__ = None
    return metadata_writer


def _min_parser_version(metadata_buffer: bytes) -> str:
    """The oldest metadata parser that understands every field used in ``metadata_buffer``.

    Versions are those of the schema history in mediapipe/tasks/metadata/metadata_schema.fbs;
    anything not listed there is in 1.0.0, the version of file identifier "M001".
    """
    fb = _metadata_schema()
    options = fb.ProcessUnitOptions

    def versions(table) -> Iterator[tuple[int, int, int]]:
        kind = type(table).__name__
        if kind == "AssociatedFileT":
            yield {fb.AssociatedFileType.VOCABULARY: (1, 0, 1),
                   fb.AssociatedFileType.SCANN_INDEX_FILE: (1, 4, 0)}.get(table.type, (1, 0, 0))
            if table.version is not None:
                yield 1, 4, 1
        elif kind == "ProcessUnitT":
            yield {options.BertTokenizerOptions: (1, 1, 0),
                   options.SentencePieceTokenizerOptions: (1, 1, 0),
                   options.RegexTokenizerOptions: (1, 2, 1)}.get(table.optionsType, (1, 0, 0))
        elif kind == "ContentT" and table.contentPropertiesType == fb.ContentProperties.AudioProperties:
            yield 1, 3, 0
        elif kind == "SubGraphMetadataT":
            if table.inputProcessUnits or table.outputProcessUnits:
                yield 1, 1, 0
            if table.inputTensorGroups or table.outputTensorGroups:
                yield 1, 2, 0
            if table.customMetadata:
                yield 1, 5, 0
        for value in vars(table).values():
            for child in value if isinstance(value, list) else [value]:
                if hasattr(child, "__dict__"):  # a nested table, not a scalar, string or array
                    yield from versions(child)

    root = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(metadata_buffer, 0))
    return ".".join(map(str, max(versions(root), default=(1, 0, 0))))
