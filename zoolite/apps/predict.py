"""``zoolite predict``: classify photos with a model file of any runtime, as an app does."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prediction:
    """One photo's answer: its most probable classes, best first, and whether the model says it
    shows none of them (its top score is below the model's threshold)."""

    file: str
    top: list[tuple[str, float]]
    none_of_these: bool
    answer: str  # the same, as one line of text


@dataclass
class Predictions:
    """A model's answers for photos, and the files under the folders given that were not photos."""

    model: str
    labels_source: str
    threshold: float | None
    predictions: list[Prediction]
    skipped: list[tuple[str, str]]  # (file, reason)

    def to_json(self) -> dict:
        return {**asdict(self),
                "predictions": [{**asdict(p), "top": [{"label": label, "score": score} for label, score in p.top]}
                                for p in self.predictions],
                "skipped": [{"file": file, "reason": reason} for file, reason in self.skipped]}


def predict(model: str | Path, photos, labels_file: str | Path | None = None, top: int = 3,
            threads: int | None = None) -> Predictions:
    """Classify photos with a model file of any runtime, as an app does: one photo per call, "none of
    these" below the file's threshold. ``photos`` is a path or a list of paths, files or folders
    (searched recursively; files in them that are not images are skipped and listed)."""
    from zoolite.config import PredictOptions
    from zoolite.dataset.images import load_image
    from zoolite.dataset.scan import photo_files, printable
    from zoolite.targets import open_classifier, top_classes

    PredictOptions(threads=threads, top=top)  # checked as the command's flags are
    classifier = open_classifier(model, labels_file, threads)
    files, skipped = photo_files([photos] if isinstance(photos, (str, Path)) else photos)
    answers = []
    for file in files:
        scores = classifier.runtime.predict_one(load_image(file, classifier.runtime.input_size))
        top_labels = [(classifier.labels[i], float(scores[i])) for i in top_classes(scores, top)]
        answers.append(Prediction(printable(str(file)), top_labels, bool(classifier.rejects(scores)),
                                  classifier.answer(scores, top)))
    return Predictions(str(model), str(classifier.labels_source), classifier.threshold, answers, skipped)
