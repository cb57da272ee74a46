"""What does training the head cost per photo: one training step per call of Keras's compiled function,
against zoolite's STEPS_PER_EXECUTION steps per call?

    .venv/bin/python benchmarks/head_training.py [DATA] [--copies 1,10] [--rounds 3] [--cache DIR]

The EfficientNet-Lite0 features of DATA's photos (default ../shared/data/animals10-large; computed once
into --cache, as benchmarks/rejection.py does), zoolite's default split of them, and for each of --copies
the training photos that many times over (each copy past the first with a little noise: a folder that many
times larger). On each, ``zoolite.model.training.fit`` with the recipe's defaults and class weights "auto",
from the same seed, one step per call and STEPS_PER_EXECUTION steps per call in turn, in --rounds rounds.
Printed: the median seconds of each, the milliseconds per training photo, their ratio, and whether the two
ended with the same history and weights, bit for bit.

Output (2-core AMD EPYC, 2026-12-07, zoolite 0.7.1):

    AMD EPYC; 1,764 training and 382 validation photos of /work/shared/data/animals10-large, 10 classes; the recipe's defaults, class weights auto; 3 rounds
     training photos  1 step/call s 32 steps/call s  ms/photo  ms/photo  ratio  same history and weights
               1,764           3.38            2.27      1.91      1.29   1.49  True (12 epochs)
              17,640          14.92            6.65      0.85      0.38   2.24  True (12 epochs)

At the larger folder's milliseconds per photo, the reference dataset's 18,325 training photos (70% of
26,179) take about 7 s instead of 16.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
from rejection import SHARED, features  # benchmarks/rejection.py: the cached features


def train_once(x, y, val, n_classes: int, steps: int):
    """Seconds, history and weights of one fit of a fresh head with ``steps`` steps per call."""
    import keras

    from zoolite.config import TrainConfig
    from zoolite.model import training

    training.STEPS_PER_EXECUTION = steps
    keras.utils.set_random_seed(0)
    head = training.build_head(x.shape[1], n_classes, TrainConfig().dropout)
    start = time.perf_counter()
    history = training.fit(head, (x, training.one_hot(y, n_classes)), (val[0], training.one_hot(val[1], n_classes)),
                           TrainConfig(), verbose=0, weights=training.class_weights(y, n_classes))
    return time.perf_counter() - start, history, head.get_weights()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "animals10-large"))
    parser.add_argument("--copies", default="1,10")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", help="folder for the cached features (default: a temporary one)")
    args = parser.parse_args()

    from zoolite.config import DEFAULT_FRACTIONS
    from zoolite.dataset.scan import scan_dataset
    from zoolite.dataset.split import split_dataset
    from zoolite.model import training
    from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights
    from zoolite.runs.provenance import machine_info

    default_steps = training.STEPS_PER_EXECUTION
    spec = get_backbone("efficientnet_lite0")
    extractor = functools.cache(lambda: build_feature_extractor(spec, resolve_weights(spec, None)))
    dataset = scan_dataset(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        x_all = features(extractor, spec, "classes", dataset.root, [p for p, _ in dataset.files], cache)
    row = {path: i for i, (path, _) in enumerate(dataset.files)}
    split = split_dataset(dataset, DEFAULT_FRACTIONS, 0)

    def take(items):
        return x_all[[row[p] for p, _ in items]].astype(np.float32), np.array([label for _, label in items], int)

    (x, y), val = take(split.train), take(split.val)
    n_classes, rng = len(dataset.class_dirs), np.random.default_rng(0)
    print(f"{machine_info(None, []).cpu}; {len(y):,} training and {len(val[1]):,} validation photos of {args.data}, "
          f"{n_classes} classes; the recipe's defaults, class weights auto; {args.rounds} rounds")
    print(f"{'training photos':>16} {'1 step/call s':>14} {f'{default_steps} steps/call s':>15} {'ms/photo':>9} "
          f"{'ms/photo':>9} {'ratio':>6}  same history and weights")
    for copies in (int(c) for c in args.copies.split(",")):
        xs = np.concatenate([x] + [x + rng.normal(0, 0.05, x.shape).astype(np.float32) for _ in range(copies - 1)])
        ys = np.tile(y, copies)
        seconds, ends = {1: [], default_steps: []}, {}
        for _ in range(args.rounds):
            for steps in seconds:
                spent, history, weights = train_once(xs, ys, val, n_classes, steps)
                seconds[steps].append(spent)
                ends[steps] = (history, weights)
        (one, one_weights), (many, many_weights) = ends[1], ends[default_steps]
        same = one == many and all(np.array_equal(a, b) for a, b in zip(one_weights, many_weights))
        slow, fast = np.median(seconds[1]), np.median(seconds[default_steps])
        print(f"{len(ys):>16,} {slow:>14.2f} {fast:>15.2f} {1000 * slow / len(ys):>9.2f} {1000 * fast / len(ys):>9.2f} "
              f"{slow / fast:>6.2f}  {same} ({many.epochs_run} epochs)")


if __name__ == "__main__":
    main()
