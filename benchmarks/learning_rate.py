"""Why the head's default learning rate is 3e-3: test loss and accuracy per learning rate and seed.

Features are computed once with the default backbone; each head is trained with the
recipe (early stopping, decay) on the same split, then measured on the test split.

    .venv/bin/python benchmarks/learning_rate.py /path/to/animals10-dev [--rates 1e-3,3e-3,1e-2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder-per-class dataset, e.g. ../shared/data/animals10-dev")
    parser.add_argument("--rates", default="1e-3,3e-3,1e-2")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()

    import keras
    import numpy as np

    from zoolite.model.backbones import build_feature_extractor, get_backbone
    from zoolite.config import DEFAULT_BACKBONE, TrainConfig
    from zoolite.dataset.scan import scan_dataset
    from zoolite.dataset.split import split_dataset
    from zoolite.measure.evaluation import classification_metrics
    from zoolite.model.features import extract_keras
    from zoolite.model.training import build_head, fit, one_hot

    dataset = scan_dataset(args.data)
    split = split_dataset(dataset, seed=0)
    spec = get_backbone(DEFAULT_BACKBONE)
    extractor = build_feature_extractor(spec)
    n_classes = len(dataset.class_dirs)
    features, labels = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for subset in ("train", "val", "test"):
            items = split.subset(subset)
            features[subset] = np.asarray(extract_keras(extractor, [dataset.root / p for p, _ in items],
                                                        spec.input_size, Path(tmp, f"{subset}.npy")))
            labels[subset] = np.array([label for _, label in items])
    print(f"{DEFAULT_BACKBONE} head on {args.data}: {len(labels['train'])}/{len(labels['val'])}/"
          f"{len(labels['test'])} train/val/test images")
    print(f"{'learning rate':>14}{'seed':>6}{'epochs':>8}{'best':>6}{'test loss':>11}{'test acc':>10}")
    for rate in (float(r) for r in args.rates.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            keras.utils.set_random_seed(seed)
            config = TrainConfig(learning_rate=rate)
            head = build_head(spec.feature_dim, n_classes, config.dropout)
            history = fit(head, (features["train"], one_hot(labels["train"], n_classes)),
                          (features["val"], one_hot(labels["val"], n_classes)), config, verbose=0)
            metrics = classification_metrics(np.asarray(head(features["test"])), labels["test"], n_classes)
            print(f"{rate:>14g}{seed:>6}{history.epochs_run:>8}{history.best_epoch or '-':>6}"
                  f"{metrics.loss:>11.3f}{metrics.accuracy * 100:>9.1f}%")


if __name__ == "__main__":
    main()
