"""How fast can the features stage go, and how long does a whole run take? (issue 16)

    .venv/bin/python benchmarks/features.py DATA [--photos N] [--skip-run]

1. The ways to compute the frozen backbone's features of DATA's photos, each in its own process
   (so its peak memory is its own), one after another on the same photos: images/s of the
   stage (decoding included, after a one-time set-up that is timed apart), peak resident
   memory, and the largest difference from Keras's features as a fraction of the largest
   feature (the pipeline's tolerance is zoolite.model.features.TOLERANCE):
   - keras-tf.data: zoolite 0.2's way, a tf.data pipeline into Keras's predict_on_batch;
   - keras-threads: Keras's predict_on_batch, photos decoded on a thread pool ahead of it;
   - keras-xla: the same with the extractor compiled by XLA (jit_compile), compilation apart;
   - litert-batch32: the backbone as a float32 LiteRT file resized to batches of 32;
   - litert (the pipeline's): the same file, one photo per call, all cores.
2. `zoolite run --data DATA` with default options, as a user runs it: wall time, where it goes,
   and the features stage's images/s as the run reports it; first as on a machine's first run
   (an empty user cache: weights ported and backbone converted), then as every later run.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WAYS = ["keras-tf.data", "keras-threads", "keras-xla", "litert-batch32", "litert"]


def measure_way(way: str, listing: Path, out: Path) -> dict:
    """Run in a child process: set up ``way``, then time the features of the listed photos."""
    import resource

    import numpy as np

    from zoolite.model import features

    from zoolite import storage
    from zoolite.model.backbones import build_feature_extractor, get_backbone
    from zoolite.config import DEFAULT_BACKBONE
    from zoolite.dataset.images import decoded_batches, image_batches

    paths = listing.read_text().splitlines()
    spec = get_backbone(DEFAULT_BACKBONE)
    start = time.perf_counter()
    extractor = build_feature_extractor(spec)
    if way.startswith("litert"):
        runtime = features.open_backbone(features.backbone_file(extractor, out.parent / way))  # a fresh conversion
        if way == "litert-batch32":  # one resize, then whole batches (the last one padded)
            interpreter = runtime.interpreter
            pixels_in = interpreter.get_input_details()[0]["index"]
            features_out = interpreter.get_output_details()[0]["index"]
            interpreter.resize_tensor_input(pixels_in, [32, spec.input_size, spec.input_size, 3])
            interpreter.allocate_tensors()
    elif way == "keras-xla":
        import tensorflow as tf

        compiled = tf.function(lambda x: extractor(x, training=False), jit_compile=True)
        compiled(np.zeros((32, spec.input_size, spec.input_size, 3), np.float32))
    set_up = time.perf_counter() - start

    def batched_litert(pixels):
        padded = np.zeros((32, *pixels.shape[1:]), np.float32)
        padded[:len(pixels)] = pixels
        interpreter.set_tensor(pixels_in, padded)
        interpreter.invoke()
        return interpreter.get_tensor(features_out)[:len(pixels)]

    start = time.perf_counter()
    if way == "keras-tf.data":
        batches = (extractor.predict_on_batch(np.asarray(b, np.float32)) for b in image_batches(paths, spec.input_size))
    elif way == "keras-threads":
        batches = (extractor.predict_on_batch(b.astype(np.float32)) for b in decoded_batches(paths, spec.input_size))
    elif way == "keras-xla":
        batches = (np.asarray(compiled(np.pad(b.astype(np.float32), ((0, 32 - len(b)), (0, 0), (0, 0), (0, 0))))
                              )[:len(b)] for b in decoded_batches(paths, spec.input_size))
    elif way == "litert-batch32":
        batches = (batched_litert(b) for b in decoded_batches(paths, spec.input_size))
    else:
        features.extract(runtime, paths, spec.input_size, out)
        batches = None
    if batches is not None:
        storage.write_npy_stream(out, batches, len(paths), (spec.feature_dim,), np.float32)
    seconds = time.perf_counter() - start
    return {"way": way, "set_up_s": set_up, "seconds": seconds, "images_per_s": len(paths) / seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def compare_ways(data: Path, n_photos: int | None, work: Path) -> None:
    import numpy as np

    from zoolite.dataset.scan import scan_dataset
    from zoolite.model.features import TOLERANCE, max_difference

    dataset = scan_dataset(data)
    paths = [str(dataset.root / p) for p, _ in dataset.files][:n_photos]
    listing = work / "photos.txt"
    listing.write_text("\n".join(paths))
    rows = []
    for way in WAYS:
        child = subprocess.run([sys.executable, __file__, "--way", way, str(listing), str(work / f"{way}.npy")],
                               capture_output=True, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    reference = np.load(work / "keras-threads.npy")
    print(f"Features of {len(paths)} photos of {data} ({_cpu()}, {os.cpu_count()} cores); every way in its own "
          f"process, one after another; set-up (building, converting or compiling) timed apart.")
    print(f"{'way':<16}{'set-up s':>9}{'stage s':>9}{'images/s':>10}{'vs Keras':>9}{'peak MB':>9}"
          f"{'max diff':>10}  within {TOLERANCE:g}")
    base = next(r for r in rows if r["way"] == "keras-tf.data")["images_per_s"]
    for r in rows:
        diff = max_difference(np.load(work / f"{r['way']}.npy"), reference)
        print(f"{r['way']:<16}{r['set_up_s']:9.1f}{r['seconds']:9.1f}{r['images_per_s']:10.0f}"
              f"{r['images_per_s'] / base:8.2f}x{r['peak_mb']:9.0f}{diff:10.1e}  {'yes' if diff <= TOLERANCE else 'NO'}")


def whole_run(data: Path, work: Path, cache: Path | None) -> None:
    """`zoolite run --data DATA` as a user runs it; with ``cache`` (an empty folder) as zoolite's user
    cache, as on a machine's first run (weights ported, backbone converted), else with the user's."""
    from zoolite.config import DEFAULT_BACKBONE
    from zoolite.results import load

    zoolite = Path(sys.executable).with_name("zoolite")
    out = work / ("runs-first" if cache else "runs")
    start = time.perf_counter()
    subprocess.run([str(zoolite), "run", "--data", str(data), "--out", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, **({"ZOOLITE_CACHE": str(cache)} if cache else {})})
    wall = time.perf_counter() - start
    results = load(next(out.iterdir()))
    backbone = results.backbones[DEFAULT_BACKBONE]
    print(f"\n`zoolite run --data {data}` (default options{', first run on the machine' if cache else ''}): "
          f"{wall:.1f} s wall (target <= 40 s); features at {backbone.features_per_second:.0f} images/s "
          f"(target >= 300)")
    print(f"  process start-up, imports and reports ~{wall - results.timings['total']:.1f} s; "
          f"scan {results.timings.get('scan', 0):.1f} s")
    for name, seconds in backbone.timings.items():
        print(f"  {name:<28} {seconds:6.1f} s")


def _cpu() -> str:
    from zoolite.runs.provenance import machine_info

    return machine_info().cpu


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--way":
        print(json.dumps(measure_way(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--photos", type=int, help="only the first N photos (default: all)")
    parser.add_argument("--skip-run", action="store_true", help="only compare the ways")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoolite-features-") as tmp:
        compare_ways(args.data, args.photos, Path(tmp))
        if not args.skip_run:
            whole_run(args.data, Path(tmp), Path(tmp) / "empty-cache")
            whole_run(args.data, Path(tmp), None)


if __name__ == "__main__":
    main()
