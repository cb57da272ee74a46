"""Benchmark of the core pipeline (issue 2), everything measured in this one run.

1. `zoolite run` on the bundled sample, as a user runs it: wall time and where it goes.
2. The pipeline on DATA_DIR: the comparison table.
3. Head training on cached features vs the same head fitted through the frozen backbone,
   for the same epochs, same initial weights and same batch order: time ratio and val accuracy.

    .venv/bin/python benchmarks/pipeline.py /path/to/animals10-dev [--epochs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if TYPE_CHECKING:
    from zoolite.results import Run


def bundled_sample_run(out: Path) -> None:
    from zoolite.config import DEFAULT_BACKBONE
    from zoolite.results import load

    zoolite = Path(sys.executable).with_name("zoolite")
    start = time.perf_counter()
    subprocess.run([str(zoolite), "run", "--out", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    results = load(next(out.iterdir()))
    stages = results.backbones[DEFAULT_BACKBONE].timings
    print(f"`zoolite run` on the bundled sample: {wall:.1f} s wall (target <= 60 s)")
    print(f"  process start-up and imports ~{wall - results.timings['total']:.1f} s; "
          f"scan {results.timings.get('scan', 0):.1f} s")
    for name, seconds in stages.items():
        print(f"  {name:<24} {seconds:6.1f} s")


def head_training_ratio(results: Run, epochs: int) -> None:
    import keras
    import numpy as np

    from zoolite.model.backbones import build_feature_extractor, get_backbone
    from zoolite.config import DEFAULT_BACKBONE, TrainConfig
    from zoolite.dataset.split import Split
    from zoolite.runs.layout import RunLayout
    from zoolite.model.training import assemble, build_head, fit, labelled_batches, one_hot

    layout = RunLayout(Path(results.run_dir))
    split = Split.from_json(json.loads(layout.split.read_text()))
    root = Path(results.dataset.root)
    n_classes = len(results.labels)
    spec = get_backbone(DEFAULT_BACKBONE)
    backbone_layout = layout.backbone(spec.name)
    labels = {s: one_hot([label for _, label in split.subset(s)], n_classes) for s in ("train", "val")}
    # Same epochs for both: early stopping cannot cut either short.
    config = TrainConfig(epochs=epochs, patience=epochs)

    def train(make_data):
        keras.utils.set_random_seed(0)
        head = build_head(spec.feature_dim, n_classes, config.dropout)
        model, train_data, val_data = make_data(head)
        start = time.perf_counter()
        history = fit(model, train_data, val_data, config, verbose=0, shuffle=False)
        return time.perf_counter() - start, history.val_accuracy[-1]

    def cached(head):
        features = {s: np.load(backbone_layout.features(s)) for s in ("train", "val")}
        return head, (features["train"], labels["train"]), (features["val"], labels["val"])

    def through_backbone(head):
        extractor = build_feature_extractor(spec)
        extractor.trainable = False
        data = {s: labelled_batches(split.subset(s), root, spec.input_size, n_classes, config.batch_size)
                for s in ("train", "val")}
        return assemble(extractor, head), data["train"], data["val"]

    fast_seconds, fast_accuracy = train(cached)
    slow_seconds, slow_accuracy = train(through_backbone)
    print(f"\nHead training, {epochs} epochs, {len(split.train)} train / {len(split.val)} val images:")
    print(f"  {'':<28}{'seconds':>10}{'val accuracy':>14}")
    print(f"  {'cached features':<28}{fast_seconds:>10.2f}{fast_accuracy * 100:>13.1f}%")
    print(f"  {'through the frozen backbone':<28}{slow_seconds:>10.2f}{slow_accuracy * 100:>13.1f}%")
    print(f"  speed-up {slow_seconds / fast_seconds:.1f}x (target >= 10x), "
          f"val accuracy difference {abs(fast_accuracy - slow_accuracy) * 100:.1f} pp (target <= 0.5 pp)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder-per-class dataset, e.g. ../shared/data/animals10-dev")
    parser.add_argument("--epochs", type=int, default=9, help="epochs for the head-training comparison")
    args = parser.parse_args()

    from zoolite.config import RunConfig
    from zoolite.runs.pipeline import run
    from zoolite.progress import Progress
    from zoolite.report.reporting import text_summary

    with tempfile.TemporaryDirectory() as tmp:
        bundled_sample_run(Path(tmp) / "sample-runs")
        results = run(RunConfig(data=args.data, runs_dir=str(Path(tmp) / "runs")), progress=Progress(False))
        print(text_summary(results))
        head_training_ratio(results, args.epochs)


if __name__ == "__main__":
    main()
