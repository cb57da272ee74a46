"""``zoolite evaluate``: a model file of any runtime measured on a labelled folder, by the routine that
measures a run's variants (:func:`zoolite.measure.evaluation.measure`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zoolite.config import LatencyConfig
from zoolite.errors import ZooliteError
from zoolite.measure import rejection
from zoolite.measure.evaluation import Scores, measure, per_class_report
from zoolite.measure.intervals import share
from zoolite.results import ClassMeasure, Latency, RejectionMeasure


@dataclass
class ModelEvaluation:
    """A model file measured on a labelled folder (``zoolite evaluate``)."""

    model: str
    images: int
    classes: list[str]
    skipped: list[tuple[str, str]]
    scores: Scores
    latency: Latency
    threads: str
    backend: str
    per_class: dict[str, ClassMeasure]  # the folder's classes
    rejection: RejectionMeasure  # the photos it kept rather than said show none of its classes, overall and per class

    def to_json(self) -> dict:
        """The same figures as data."""
        return {**asdict(self), "skipped": [{"file": file, "reason": reason} for file, reason in self.skipped]}

    def summary(self) -> str:
        s, latency, r = self.scores, self.latency, self.rejection
        recalls = ", ".join(f"{name} {share(c.recall, c.recall_interval)} of {c.support}"
                            for name, c in self.per_class.items() if c.support)
        kept = ", ".join(f"{name} {share(c.rate, c.interval)}" for name, c in r.per_class.items() if c.photos)
        present = sum(1 for c in self.per_class.values() if c.support)
        classes = f"in {present}" if present == len(self.classes) else f"of {present} of its {len(self.classes)}"
        return (f"{self.model}: {self.images} images {classes} classes, {len(self.skipped)} file(s) "
                f"skipped\nloss {s.loss:.4f}  accuracy {s.accuracy * 100:.1f}%  balanced accuracy "
                f"{s.balanced_accuracy * 100:.1f}%  top-{s.top_k} accuracy "
                f"{s.top_k_accuracy * 100:.1f}%  kept {r.kept_rate * 100:.1f}% (none of the {len(self.classes)} "
                f"classes: {r.photos - r.kept})  latency mean {latency.mean_ms:.2f} ms, "
                f"p90 {latency.p90_ms:.2f} ms ({latency.runs} single-image calls, threads: {self.threads})\n"
                f"recall per class [95% Wilson CI]: {recalls}\n"
                f"kept per class (not \"none of these\") [95% Wilson CI]: {kept}\n"
                f"balanced kept {share(r.balanced_kept, r.balanced_kept_interval)}  balanced answered right "
                f"(a photo said to be none of the classes counts as a miss) "
                f"{share(r.balanced_answered_right, r.balanced_answered_right_interval)}")


def evaluate_model(model: str | Path, data: str | Path, labels_file: str | Path | None = None,
                   label_map: str | Path | None = None, threads: int | None = None,
                   latency: LatencyConfig | None = None) -> ModelEvaluation:
    """Measure a model file on a folder with one sub-folder per class, with the one routine
    (:func:`zoolite.measure.evaluation.measure`).

    The folder's classes must be the model's (from ``labels_file``, default the labels.txt beside it), all
    of them or some (new photos of one class, say).
    """
    import tempfile

    from zoolite.dataset.images import cache_images
    from zoolite.dataset.scan import load_label_map, scan_dataset
    from zoolite.targets import open_classifier

    classifier = open_classifier(model, labels_file, threads)
    runtime, labels, labels_path = classifier.runtime, classifier.labels, classifier.labels_source
    dataset = scan_dataset(data, load_label_map(label_map), asked_as="a folder", min_classes=1)
    unknown = [label for label in dataset.labels if label not in labels]
    if unknown:
        raise ZooliteError(f"{data}: its classes {', '.join(unknown)} are not the model's "
                           f"({', '.join(labels)}, from {labels_path}); pass a folder with one sub-folder "
                           "per class the model was trained on (all of them, or some), with --labels FILE if "
                           "its run mapped folder names to labels")
    model_index = [labels.index(label) for label in dataset.labels]
    targets = np.array([model_index[label] for _, label in dataset.files])
    with tempfile.TemporaryDirectory(prefix="zoolite-evaluate-") as tmp:  # decoded once, on disk
        images = cache_images([dataset.root / p for p, _ in dataset.files], runtime.input_size,
                              Path(tmp) / "images.npy")
        measured = measure(runtime, images, targets, len(labels), latency)
        del images
    probabilities = measured.probabilities
    threshold = -np.inf if classifier.threshold is None else classifier.threshold  # none: it never rejects
    return ModelEvaluation(str(model), len(targets), labels, list(dataset.skipped), measured.scores, measured.latency,
                           runtime.threads, runtime.backend, per_class_report(probabilities, targets, labels)[1],
                           rejection.measure(probabilities, targets, labels, None, threshold))
