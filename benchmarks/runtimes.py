"""Which runtime to ship on this CPU: each family's fastest shippable variant, timed side by side.

    .venv/bin/python benchmarks/runtimes.py RUN_DIR [--rounds 5] [--calls 100] [--threads N]

RUN_DIR is a finished run made with ``--runtimes litert,onnxruntime,openvino``. Every
shippable file of its first backbone is opened again with the same thread count and timed
with the pipeline's own routine (one test image per call, after warm-up), in ``--rounds``
rounds that visit the files in turn, so drifts of the machine's speed touch them all alike.
It prints each file's median with its 95% interval, then each family's fastest variant, its
accuracy and whether the run's budget rules it out, and its speed ratio to the fastest
variant of the other families (above 1: faster), all from this one run, with the CPU named.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="timed calls per file and round")
    parser.add_argument("--threads", type=int, default=None, help="default: the run's own")
    args = parser.parse_args()

    from zoolite.config import LatencyConfig
    from zoolite.measure.evaluation import latency_stats, measure_latency
    from zoolite.runs.layout import RunLayout
    from zoolite.results.recommend import MIN_TEST_IMAGES, failures
    from zoolite.runs.provenance import machine_info
    from zoolite.results import load
    from zoolite.report.tables import runtime_label
    from zoolite.targets import open_model

    results = load(args.run_dir)
    name, backbone = next(iter(results.backbones.items()))
    images = np.load(RunLayout(Path(results.run_dir)).backbone(name).images("test"))
    threads = args.threads or results.config.threads
    runtimes = {v.target: open_model(Path(results.run_dir) / v.file, threads)[0] for v in backbone.shippable}
    timing = LatencyConfig(warmup=10, runs=args.calls, max_seconds=float("inf"), min_runs=1,
                           max_warmup_seconds=None)
    samples: dict[str, list[float]] = {variant: [] for variant in runtimes}
    for _ in range(args.rounds):
        for variant, runtime in runtimes.items():
            samples[variant] += measure_latency(runtime.predict_one, images, timing).samples_ms
    latency = {variant: latency_stats(np.asarray(ms) / 1000.0) for variant, ms in samples.items()}

    machine = machine_info()
    print(f"{machine.cpu}, {machine.cores} cores; {next(iter(runtimes.values())).threads} threads; "
          f"{args.rounds} rounds x {args.calls} calls per file, 1 image per call\n")
    for v in backbone.shippable:
        median = latency[v.target].median_interval
        print(f"{v.target:<22} {runtime_label(v):<13} {latency[v.target].median_ms:7.3f} ms "
              f"[{median.low:.3f}, {median.high:.3f}]  {runtimes[v.target].backend}")

    budget = results.recommendation.budget if results.recommendation else results.config.budget
    floor = budget.accuracy_floor(results.best_reference_accuracy)
    fastest = {}
    for v in backbone.shippable:
        if v.family not in fastest or latency[v.target].median_ms < latency[fastest[v.family].target].median_ms:
            fastest[v.family] = v
    print("\nEach runtime's fastest shippable variant:")
    for family, v in fastest.items():
        others = [o for f, o in fastest.items() if f != family]
        best_other = min(others, key=lambda o: latency[o.target].median_ms) if others else None
        ratio = "" if best_other is None else (
            f"{latency[best_other.target].median_ms / latency[v.target].median_ms:.2f}x the speed of "
            f"{best_other.target}")
        broken = failures(v, backbone, floor, budget, results.split.test >= MIN_TEST_IMAGES, results.balanced)
        print(f"  {runtime_label(v):<13} {v.target:<22} {latency[v.target].median_ms:7.3f} ms  "
              f"{results.accuracy_name} {v.judged_accuracy(results.balanced) * 100:.1f}%  "
              f"{'outside the budget: ' + ', '.join(broken) if broken else 'within the budget'}  {ratio}")


if __name__ == "__main__":
    main()
