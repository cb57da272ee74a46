"""Where everything of a run lives: the run-folder layout, spelled out once.

    config.json  dataset.json  split.json  labels.txt  results.json  results.csv
    report.md  report.html  INCOMPLETE (while running) / COMPLETE (at the end)
    <backbone>/models/{model.keras, rejection.json, float32.tflite, ..., int8.tflite, labels.txt}
    <backbone>/history.json  <backbone>/measurements/  <backbone>/tensorboard/
    <backbone>/cache/  (decoded images, features: reusable intermediate files)

The pipeline, the reports, export and the benchmarks all ask these objects for paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoolite import storage


@dataclass(frozen=True)
class BackboneLayout:
    root: Path

    models = property(lambda self: self.root / "models")
    cache = property(lambda self: self.root / "cache")
    measurements = property(lambda self: self.root / "measurements")
    history = property(lambda self: self.root / "history.json")
    labels = property(lambda self: self.models / "labels.txt")
    classifier = property(lambda self: self.cache / "classifier.keras")  # trained, before rejection is added
    rejection = property(lambda self: self.models / "rejection.json")  # how model.keras says "none of these"

    def tensorboard(self, stage: str) -> Path:
        return self.root / "tensorboard" / stage

    def model(self, target) -> Path:
        return self.models / target.file_name

    def measurement(self, variant: str) -> Path:
        return self.measurements / f"{variant}.json"

    def probabilities(self, variant: str) -> Path:
        return self.measurements / f"{variant}.probabilities.npy"

    def unlabelled_probabilities(self, variant: str) -> Path:
        """On the photos of ``--unlabelled``."""
        return self.measurements / f"{variant}.unlabelled.npy"

    def other_probabilities(self, variant: str) -> Path:
        """On the held-out photos of ``--other``."""
        return self.measurements / f"{variant}.other.npy"

    def images(self, subset: str) -> Path:
        """Decoded images at the backbone's input size (``test``, ``representative``)."""
        return self.cache / f"{subset}_images.npy"

    def features(self, subset: str) -> Path:
        return self.cache / f"{subset}_features.npy"

    def make(self) -> "BackboneLayout":
        for folder in (self.models, self.cache, self.measurements):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class RunLayout:
    root: Path

    config = property(lambda self: self.root / "config.json")
    dataset = property(lambda self: self.root / "dataset.json")
    split = property(lambda self: self.root / "split.json")
    labels = property(lambda self: self.root / "labels.txt")
    results = property(lambda self: self.root / "results.json")
    results_csv = property(lambda self: self.root / "results.csv")
    report_md = property(lambda self: self.root / "report.md")
    report_html = property(lambda self: self.root / "report.html")
    incomplete_marker = property(lambda self: self.root / storage.INCOMPLETE_MARKER)

    def backbone(self, name: str) -> BackboneLayout:
        return BackboneLayout(self.root / name)

    def is_complete(self) -> bool:
        return storage.is_complete(self.root)
