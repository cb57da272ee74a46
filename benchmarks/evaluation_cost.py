"""What does measuring a model file cost, and do its latency figures stay the same?

    .venv/bin/python benchmarks/evaluation_cost.py RUN_DIR [--rounds 3]

For every model file of a run folder's first backbone (LiteRT, ONNX Runtime, OpenVINO), on the run's
own test images, in one invocation, alternating within each round:

* ``before``: the test images predicted (each file's ``predict``: one call per image), then the
  latency timed apart (``measure_latency``: first call, warm-up, timed calls), as zoolite up to 0.3
  measured;
* ``after``: :func:`zoolite.measure.evaluation.predict_and_time`: the latency's single-image calls go through
  the test images and serve as their predictions too, the rest predicted after.

Printed per file: the seconds of each (median over the rounds), their ratio, the two median
latencies with their 95% intervals (pooled over the rounds), and whether the probabilities are
bit-identical. The latency figures may not move beyond their intervals.

Output (2-core AMD EPYC, quiet; a default run of animals10-large, 3 rounds):

    file                 before s  after s  ratio  median ms before [95%]  median ms after [95%]  same probabilities
    dynamic.tflite           6.60     5.54   1.19    12.97 [12.79, 13.05]   13.13 [13.03, 13.28]  True
    float16.tflite           2.92     2.45   1.19       5.89 [5.78, 5.95]      5.75 [5.71, 5.80]  True
    float32.tflite           2.77     2.28   1.22       5.66 [5.61, 5.69]      5.55 [5.40, 5.66]  True
    int8.tflite              1.57     1.48   1.06       4.38 [4.35, 4.40]      4.39 [4.37, 4.40]  True
    int8_fallback.tflite     1.30     1.05   1.23       2.66 [2.63, 2.70]      2.68 [2.64, 2.78]  True
    uint8.tflite             1.42     1.14   1.25       2.86 [2.83, 2.89]      2.51 [2.49, 2.58]  True

The six files cost 14.0 s after against 16.6 s before (1.19x), 36.6 ms a test photo against the sum
of their median latencies, 34.0 ms. The medians move by -12% to +1%, both ways, some beyond their
intervals (which count only the calls of one invocation, not the machine's drift between arms).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from zoolite.config import LatencyConfig  # noqa: E402
from zoolite.measure.evaluation import latency_stats, measure_latency, predict_all, predict_and_time  # noqa: E402
from zoolite.runs.layout import RunLayout  # noqa: E402
from zoolite.targets import open_model  # noqa: E402


def before(runtime, images, config):
    probabilities = predict_all(runtime, images)
    return probabilities, measure_latency(runtime.predict_one, images, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    layout = RunLayout(args.run_dir)
    backbone = next(p for p in sorted(args.run_dir.iterdir()) if (p / "cache" / "test_images.npy").exists())
    folder = layout.backbone(backbone.name)
    images = np.load(folder.images("test"))
    files = sorted(p for p in (backbone / "models").iterdir() if p.suffix in (".tflite", ".onnx", ".xml"))
    config = LatencyConfig()
    print(f"{args.run_dir}: {len(images)} test images, {len(files)} files, {args.rounds} rounds")
    print(f"{'file':28} {'before s':>9} {'after s':>8} {'ratio':>6}  {'median ms before [95%]':>26}  "
          f"{'median ms after [95%]':>26}  same probabilities")
    for path in files:
        runtime, _ = open_model(path)
        seconds = {"before": [], "after": []}
        samples = {"before": [], "after": []}
        outputs = {}
        for _ in range(args.rounds):
            for name, measure in (("before", before), ("after", lambda r, i, c: predict_and_time(r, i, c))):
                start = time.perf_counter()
                outputs[name], latency = measure(runtime, images, config)
                seconds[name].append(time.perf_counter() - start)
                samples[name] += latency.samples_ms
        pooled = {name: latency_stats(np.array(ms) / 1000.0) for name, ms in samples.items()}
        cells = [f"{pooled[n].median_ms:7.2f} [{pooled[n].median_interval.low:.2f}, {pooled[n].median_interval.high:.2f}]"
                 for n in ("before", "after")]
        b, a = np.median(seconds["before"]), np.median(seconds["after"])
        print(f"{path.name:28} {b:9.2f} {a:8.2f} {b / a:6.2f}  {cells[0]:>26}  {cells[1]:>26}  "
              f"{outputs['before'].tobytes() == outputs['after'].tobytes()}")


if __name__ == "__main__":
    main()
