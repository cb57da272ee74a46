"""What does measuring a model file cost, and do its latency figures stay the same?

    .venv/bin/python benchmarks/evaluation_cost.py RUN_DIR [--rounds 3]

For every model file of a run folder's first backbone (LiteRT, ONNX Runtime, OpenVINO), on the run's
own test images, in one invocation, alternating within each round:

* ``before``: the test images predicted (one call per image on the one interpreter), then the latency
  timed apart (``measure_latency``: first call, warm-up, timed calls), as zoolite up to 0.3 measured;
* ``one``: :func:`zoolite.measure.evaluation.predict_and_time`: the latency's single-image calls go through
  the test images and serve as their predictions too, the rest predicted after, one call per image on the
  one interpreter, as zoolite 0.4 to 0.7.0 measured;
* ``after``: the same, the rest predicted by the file's own ``predict`` (for LiteRT since 0.7.1, shared
  among single-threaded copies of the interpreter called at once).

Printed per file: the seconds of each (median over the rounds), the ratios of ``before`` and ``one`` to
``after``, the median latencies of ``before`` and ``after`` with their 95% intervals (pooled over the
rounds), and whether the three gave the same probabilities, bit for bit. The latency figures may not move
beyond their intervals.

Output (2-core AMD EPYC, 2026-12-07, zoolite 0.7.1; a default run of animals10-large, 381 test images,
3 rounds; the machine slower than at earlier stops, the same for all three arms, which alternate):

    file                          before s  one s  after s  before/after  one/after      median ms before [95%]       median ms after [95%]  same probabilities
    dynamic.tflite                    6.60   5.06     4.01          1.65       1.26        12.77 [12.67, 12.87]        11.95 [11.89, 12.01]  True
    float16.tflite                    2.82   2.29     2.12          1.33       1.08           5.63 [5.53, 5.79]           5.75 [5.70, 5.80]  True
    float32.tflite                    2.74   2.30     2.20          1.25       1.04           5.57 [5.54, 5.62]           5.53 [5.46, 5.61]  True
    int8.tflite                       1.51   1.14     1.10          1.37       1.03           3.03 [2.99, 3.09]           2.87 [2.79, 3.02]  True
    int8_fallback.tflite              1.28   1.16     1.06          1.21       1.10           2.55 [2.52, 2.58]           2.67 [2.59, 2.70]  True
    uint8.tflite                      1.84   1.39     1.12          1.65       1.24           2.98 [2.90, 4.03]           2.77 [2.76, 2.80]  True

The six files cost 11.6 s with 0.7.1's single-threaded copies against 13.3 s on the one interpreter (1.15x;
the dynamic-range file 1.26x) and 16.8 s as 0.3 measured: 30.5 ms a test photo, against the sum of their
median latencies, 31.5 ms. The probabilities are the same in all three. (0.4's invocation, when the files
were first measured by ``predict_and_time``: 14.0 s against 16.6 s before, 1.19x.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from zoolite.config import LatencyConfig  # noqa: E402
from zoolite.report.tables import latency_cell  # noqa: E402
from zoolite.measure.evaluation import latency_stats, measure_latency, predict_all, predict_and_time  # noqa: E402
from zoolite.runs.layout import RunLayout  # noqa: E402
from zoolite.targets import open_model  # noqa: E402


class OneInterpreter:
    """A runtime whose ``predict`` is one call per image on its one interpreter, whatever its own does."""

    def __init__(self, runtime):
        self.runtime = runtime

    def __getattr__(self, name):
        return getattr(self.runtime, name)

    def predict(self, images):
        return np.stack([self.runtime.predict_one(image) for image in images])


def before(runtime, images, config):
    probabilities = predict_all(OneInterpreter(runtime), images)
    return probabilities, measure_latency(runtime.predict_one, images, config)


ARMS = {"before": before, "one": lambda r, i, c: predict_and_time(OneInterpreter(r), i, c),
        "after": lambda r, i, c: predict_and_time(r, i, c)}


def run_and_rounds(description: str) -> tuple[argparse.Namespace, Path, np.ndarray]:
    """RUN_DIR and --rounds from the command line, the run's first backbone folder with test images, and them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    backbone = next(p for p in sorted(args.run_dir.iterdir()) if (p / "cache" / "test_images.npy").exists())
    return args, backbone, np.load(RunLayout(args.run_dir).backbone(backbone.name).images("test"))


def main() -> None:
    args, backbone, images = run_and_rounds(__doc__.split("\n")[0])
    files = sorted(p for p in (backbone / "models").iterdir() if p.suffix in (".tflite", ".onnx", ".xml"))
    config = LatencyConfig()
    print(f"{args.run_dir}: {len(images)} test images, {len(files)} files, {args.rounds} rounds")
    print(f"{'file':28} {'before s':>9} {'one s':>6} {'after s':>8} {'before/after':>13} {'one/after':>10}  "
          f"{'median ms before [95%]':>26}  {'median ms after [95%]':>26}  same probabilities")
    for path in files:
        runtime, _ = open_model(path)
        seconds, samples, outputs = {name: [] for name in ARMS}, {name: [] for name in ARMS}, {}
        for _ in range(args.rounds):
            for name, measure in ARMS.items():
                start = time.perf_counter()
                outputs[name], latency = measure(runtime, images, config)
                seconds[name].append(time.perf_counter() - start)
                samples[name] += latency.samples_ms
        pooled = {name: latency_stats(np.array(ms) / 1000.0) for name, ms in samples.items()}
        cells = [latency_cell(pooled[n]) for n in ("before", "after")]
        b, o, a = (np.median(seconds[name]) for name in ARMS)
        same = outputs["before"].tobytes() == outputs["one"].tobytes() == outputs["after"].tobytes()
        print(f"{path.name:28} {b:9.2f} {o:6.2f} {a:8.2f} {b / a:13.2f} {o / a:10.2f}  {cells[0]:>26}  {cells[1]:>26}  "
              f"{same}")


if __name__ == "__main__":
    main()
