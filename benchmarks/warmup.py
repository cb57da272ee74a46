"""Does warm-up's time limit (``--max-warmup-seconds``, zoolite 0.9) change a latency figure, and what does it save?

    .venv/bin/python benchmarks/warmup.py RUN_DIR [--rounds 3]

For the Keras model of a run folder's first backbone (called eagerly as an app calls it, and as a compiled
``tf.function``: :meth:`zoolite.targets.keras.KerasRuntime.other_calls`) and each of its LiteRT files, on the
run's own test images, in one invocation, alternating within each round (which arm goes first alternates too):

* ``before``: :func:`zoolite.measure.evaluation.measure_latency` with every warm-up call made (``--warmup``, 10),
  as zoolite up to 0.8 timed;
* ``after``: the same with warm-up stopping once it has taken ``--max-warmup-seconds`` (1 s), after one call.

Printed per call: the seconds the timing took (median over the rounds) and their ratio, the median latency of
each arm with its 95% interval (the timed calls pooled over the rounds) and the median of the rounds'
differences, after less before. A figure that moved would show as intervals apart.

Output (2-core AMD EPYC with AVX2, no AVX-512, 2026-12-07, on a default run of animals10-large at 8eb05c6, 381 test
images, 3 rounds). Only the eager call's warm-up reaches the limit; the other arms are timed the same way in both, so
their differences (up to 2.4 ms between pooled medians, intervals apart) are the machine's drift between two timings of one procedure:

    call                          before s  after s  ratio     median ms before [95%]     median ms after [95%]  after - before, ms
    model.keras (eager)              13.16    10.04   1.31    394.72 [382.43, 418.28]   403.00 [392.47, 417.47]                5.47
    model.keras (tf_function)         2.49     2.42   1.03       33.95 [33.30, 35.03]      36.33 [35.29, 37.59]                1.81
    dynamic.tflite                    2.01     2.02   1.00       18.10 [17.66, 18.99]      17.95 [17.74, 18.06]                0.21
    float16.tflite                    1.10     1.09   1.01          9.32 [9.02, 9.42]         8.97 [8.72, 9.20]               -0.83
    float32.tflite                    0.99     1.09   0.90          8.56 [8.30, 8.73]         9.66 [9.57, 9.82]                0.52
    int8.tflite                       1.01     1.09   0.92          8.97 [8.86, 9.09]         9.60 [9.43, 9.70]                0.54
    int8_fallback.tflite              0.96     0.98   0.98          8.65 [8.47, 8.75]         8.79 [8.67, 8.85]                0.23
    uint8.tflite                      1.11     0.99   1.11        10.12 [9.96, 10.18]         8.90 [8.81, 8.98]               -1.42
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from evaluation_cost import run_and_rounds  # noqa: E402
from zoolite.config import LatencyConfig  # noqa: E402
from zoolite.measure.evaluation import latency_stats, measure_latency  # noqa: E402
from zoolite.report.tables import latency_cell  # noqa: E402
from zoolite.targets import open_model  # noqa: E402

ARMS = {"before": replace(LatencyConfig(), max_warmup_seconds=None), "after": LatencyConfig()}


def calls(models: Path) -> dict:
    """Each single-image call to time: the Keras model's two, then every LiteRT file's."""
    keras, _ = open_model(models / "model.keras")
    found = {"model.keras (eager)": keras.predict_one,
             **{f"model.keras ({name})": call for name, call in keras.other_calls().items()}}
    for path in sorted(models.glob("*.tflite")):
        found[path.name] = open_model(path)[0].predict_one
    return found


def main() -> None:
    args, backbone, images = run_and_rounds(__doc__.split("\n")[0])
    print(f"{'call':28s} {'before s':>9s} {'after s':>8s} {'ratio':>6s} {'median ms before [95%]':>26s} "
          f"{'median ms after [95%]':>25s} {'after - before, ms':>19s}")
    for name, call in calls(backbone / "models").items():
        seconds = {arm: [] for arm in ARMS}
        samples = {arm: [] for arm in ARMS}
        for round_ in range(args.rounds):
            for arm in list(ARMS)[::1 if round_ % 2 == 0 else -1]:
                start = time.perf_counter()
                samples[arm].append(measure_latency(call, images, ARMS[arm]).samples_ms)
                seconds[arm].append(time.perf_counter() - start)
        pooled = {arm: latency_stats(np.concatenate(samples[arm]) / 1000.0) for arm in ARMS}
        shift = statistics.median(np.median(a) - np.median(b) for a, b in zip(samples["after"], samples["before"]))
        before, after = (statistics.median(seconds[arm]) for arm in ARMS)
        interval = {arm: latency_cell(pooled[arm]) for arm in ARMS}
        print(f"{name:28s} {before:9.2f} {after:8.2f} {before / after:6.2f} {interval['before']:>26s} "
              f"{interval['after']:>25s} {shift:19.2f}")


if __name__ == "__main__":
    main()
