"""A run's exported model in MediaPipe Tasks' ImageClassifier with default options (so the threshold in
the file's metadata decides), on photos kept out of training and of the threshold choice:

    .venv/bin/python benchmarks/none_of_these_clients.py RUN_DIR EXPORT_DIR [UNSEEN_OTHER_DIR]

RUN_DIR is a finished `zoolite run --other ...` folder, EXPORT_DIR what `zoolite export RUN_DIR --to
EXPORT_DIR` wrote. Prints the share of the run's test-split class photos kept (split by file-name
prefix: `pyis-`/`c101-` are animal photos from other sources in animals10-large), of the held-out
half of --other rejected, and of UNSEEN_OTHER_DIR (default ../shared/data/other-things-dev, a
collection the run never saw) rejected.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from zoolite.apps.model_card import read_card
from zoolite.dataset.split import Split
from zoolite.results import load

OTHER_SOURCES = ("pyis-", "c101-")


def main(run: Path, export: Path, unseen: Path) -> None:
    card = read_card(export / "model.json")
    results = load(run)
    class_of = {photo: results.labels[label] for photo, label in results.test_photos()}
    test = list(class_of)
    other = Split.from_json(json.loads((run / "split.json").read_text())).other
    photo_sets = [  # (name, photos, True: class photos, to be kept)
        ("Animals-10 photos (test split)", [p for p in test if not p.name.startswith(OTHER_SOURCES)], True),
        ("animal photos from other sources (test split)", [p for p in test if p.name.startswith(OTHER_SOURCES)], True),
        ("--other photos, held-out half", [Path(other.root) / p for p in other.test], False),
        (f"{unseen} (never seen)", sorted(p for p in unseen.rglob("*") if p.suffix.lower() in (".jpg", ".png")), False),
    ]
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(export / card.model_file)))
    print(f"{card.model_file}: threshold in its metadata {card.none_of_these.threshold:.4f}; MediaPipe Tasks "
          "ImageClassifier, default options")
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for name, photos, classes in photo_sets:
            if not photos:
                continue
            kept = np.array([bool(classifier.classify(mp.Image.create_from_file(str(p))).classifications[0].categories)
                             for p in photos])
            share = kept.mean() if classes else 1 - kept.mean()
            print(f"{name}: {'kept' if classes else 'rejected'} {share * 100:.1f}% of {len(photos)}")
            if classes:  # an overall share can hide a class that pays for it
                names = np.array([class_of[p] for p in photos])
                per_class = sorted((kept[names == c].mean(), c, int(np.sum(names == c))) for c in set(names))
                print("  kept per class, weakest first: "
                      + ", ".join(f"{c} {k * 100:.0f}% of {n}" for k, c, n in per_class))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) not in (2, 3):
        sys.exit(__doc__)
    main(Path(arguments[0]), Path(arguments[1]),
         Path(arguments[2]) if len(arguments) == 3 else Path(__file__).parents[1] / ".." / "shared" / "data" / "other-things-dev")
