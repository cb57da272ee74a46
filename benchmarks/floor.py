"""Benchmark of measurement (issue 4): each variant's latency against LiteRT's own floor.

In one run:
1. LiteRT's int8 and float32 throughput (multiply-accumulates per second) on a large
   matrix multiply, a one-layer model, with the same threads as the variants;
2. the floor of the default backbone = its multiply-accumulates / that throughput, and
   every variant's single-image latency as a multiple of it (targets: integer-only
   <= 3x its floor, >= 5x faster than the Keras model called eagerly);
3. evaluation of the test split the way zoolite does it (Keras: compiled batches of 32;
   LiteRT: batch-1 calls) vs one image at a time, and for LiteRT also the interpreter
   resized to batches of 32, the alternative zoolite measured and rejected.

    .venv/bin/python benchmarks/floor.py /path/to/animals10-dev [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from zoolite.results import Backbone

ROWS, DEPTH, COLUMNS = 256, 1024, 1024  # one matmul: 268M multiply-accumulates


def matmul_throughput(directory: Path, threads: int) -> dict[str, float]:
    """MAC/s of LiteRT on (ROWS x DEPTH) @ (DEPTH x COLUMNS), float32 and integer-only int8."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from zoolite.config import LatencyConfig
    from zoolite.measure.evaluation import measure_latency
    from zoolite.targets.base import export_saved_model
    from zoolite.targets.litert import convert

    keras.utils.set_random_seed(0)
    inputs = keras.Input((ROWS, DEPTH), batch_size=1)
    model = keras.Model(inputs, keras.layers.Dense(COLUMNS, use_bias=False)(inputs))
    saved = export_saved_model(model, directory / "matmul")
    sample = np.random.default_rng(0).uniform(-1, 1, (8, ROWS, DEPTH)).astype(np.float32)
    throughput = {}
    for mode in ("float32", "int8"):
        # Not an image classifier, so the bare interpreter (same threads, default XNNPACK delegate).
        interpreter = Interpreter(model_content=convert(saved, mode, sample), num_threads=threads)
        interpreter.allocate_tensors()
        tensor = interpreter.get_input_details()[0]
        x = sample[0].astype(tensor["dtype"])[None] if mode == "float32" else \
            np.random.default_rng(0).integers(-128, 128, (1, ROWS, DEPTH), dtype=np.int8)
        interpreter.set_tensor(tensor["index"], x)
        stats = measure_latency(lambda _, run=interpreter.invoke: run(), sample,
                                LatencyConfig(warmup=10, runs=100, max_warmup_seconds=None))
        throughput[mode] = ROWS * DEPTH * COLUMNS / (stats.median_ms / 1000)
    return throughput


def resized_batch_seconds(path: Path, images: np.ndarray, threads: int, batch: int = 32) -> float:
    """Seconds to run ``images`` through a LiteRT interpreter resized to ``batch`` (last batch padded)."""
    from ai_edge_litert.interpreter import Interpreter

    from zoolite.targets.litert import quantize

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    tensor = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(tensor["index"], [batch, *tensor["shape"][1:]])
    interpreter.allocate_tensors()
    padded = np.concatenate([images, images[:(-len(images)) % batch]]).astype(np.float32)
    if np.issubdtype(tensor["dtype"], np.integer):
        padded = quantize(padded, *tensor["quantization"], tensor["dtype"])
    chunks = [padded[i:i + batch] for i in range(0, len(padded), batch)]
    interpreter.set_tensor(tensor["index"], chunks[0])
    interpreter.invoke()  # warm-up: the delegate plans for this batch size
    start = time.perf_counter()
    for chunk in chunks:
        interpreter.set_tensor(tensor["index"], chunk)
        interpreter.invoke()
    return time.perf_counter() - start


def batched_vs_single(run_dir: Path, backbone: Backbone, threads: int) -> None:
    from zoolite.measure.evaluation import predict_all
    from zoolite.runs.layout import RunLayout
    from zoolite.targets import open_model

    images = np.load(RunLayout(run_dir).backbone(backbone.name).images("test"))
    print(f"\nEvaluating the {len(images)} test images: zoolite's evaluation vs one image at a time")
    print(f"  {'variant':<14}{'zoolite s':>11}{'single s':>11}{'speed-up':>10}{'resized-32 s':>14}  same predictions")
    totals = [0.0, 0.0]
    for row in backbone.variants:
        runtime, _ = open_model(run_dir / row.file, threads)
        runtime.predict_one(images[0])
        start = time.perf_counter()
        single = np.stack([runtime.predict_one(image) for image in images])
        single_s = time.perf_counter() - start
        runtime.predict(images[:32])  # warm: Keras compiles its batch function once
        start = time.perf_counter()
        batched = predict_all(runtime, images, batch_size=32)
        batched_s = time.perf_counter() - start
        resized = "" if row.family == "keras" else \
            f"{resized_batch_seconds(run_dir / row.file, images, threads):.2f}"
        totals[0] += batched_s
        totals[1] += single_s
        same = bool((batched.argmax(1) == single.argmax(1)).all())
        print(f"  {row.target:<14}{batched_s:>11.2f}{single_s:>11.2f}{single_s / batched_s:>9.1f}x{resized:>14}  "
              f"{'yes' if same else 'NO'} (max prob diff {np.abs(batched - single).max():.1e})")
    print(f"  {'all variants':<14}{totals[0]:>11.2f}{totals[1]:>11.2f}{totals[1] / totals[0]:>9.1f}x  "
          "(target >= 3x)")


def multiply_accumulates(model) -> int:
    """Multiply-accumulates of one inference (batch 1) of a Keras model: its convolutions and
    dense layers, nested models included; what bounds latency from below."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_accumulates(layer)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            _, h, w, c = layer.output.shape
            total += kh * kw * h * w * c
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, c = layer.output.shape
            total += kh * kw * layer.input.shape[-1] // layer.groups * h * w * c
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder-per-class dataset, e.g. ../shared/data/animals10-dev")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from zoolite.config import DEFAULT_BACKBONE, RunConfig
    from zoolite.runs.pipeline import run
    from zoolite.progress import Progress
    from zoolite.targets.keras import load_keras_model

    with tempfile.TemporaryDirectory() as tmp:
        throughput = matmul_throughput(Path(tmp), args.threads)
        results = run(RunConfig(data=args.data, runs_dir=str(Path(tmp) / "runs"), threads=args.threads),
                      progress=Progress(False))
        run_dir = Path(results.run_dir)
        backbone = results.backbones[DEFAULT_BACKBONE]
        reference = backbone.reference
        macs = multiply_accumulates(load_keras_model(run_dir / reference.file))

        print(f"LiteRT matmul ({ROWS}x{DEPTH} @ {DEPTH}x{COLUMNS}), {args.threads} threads: "
              f"float32 {throughput['float32'] / 1e9:.1f} GMAC/s, int8 {throughput['int8'] / 1e9:.1f} GMAC/s")
        floors = {kind: macs / throughput[kind] * 1000 for kind in throughput}
        print(f"{backbone.name}: {macs / 1e6:.0f} M multiply-accumulates; floor float32 {floors['float32']:.2f} ms, "
              f"int8 {floors['int8']:.2f} ms\n")
        keras_ms = reference.latency.mean_ms
        print(f"  {'variant':<14}{'mean ms':>9}{'p90 ms':>9}{'floor':>8}{'x floor':>9}{'vs Keras':>10}  accuracy")
        for row in backbone.variants:
            kind = "int8" if row.target.startswith("int8") else "float32"
            mean = row.latency.mean_ms
            print(f"  {row.target:<14}{mean:>9.2f}{row.latency.p90_ms:>9.2f}{kind:>8}"
                  f"{mean / floors[kind]:>8.1f}x{keras_ms / mean:>9.1f}x  {row.accuracy * 100:.1f}%")
        tf_function = reference.other_latency["tf_function"].mean_ms
        print(f"  {'keras (tf.function)':<14}{tf_function:>9.2f}")
        int8 = backbone.variant("int8").latency.mean_ms
        print(f"\nTargets: int8 at {int8 / floors['int8']:.1f}x its floor (<= 3x); "
              f"int8 {keras_ms / int8:.1f}x faster than Keras eager (>= 5x; reference project: 2.1x), "
              f"{tf_function / int8:.1f}x faster than Keras tf.function")
        batched_vs_single(run_dir, backbone, args.threads)
        print("\nMachine:", json.dumps(results.machine))


if __name__ == "__main__":
    main()
