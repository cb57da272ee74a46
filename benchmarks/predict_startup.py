"""`zoolite predict model.tflite photo.jpg` as a whole process: zoolite's path (ai_edge_litert, NumPy
and Pillow only) side by side with the same prediction on a path that imports TensorFlow first, as
zoolite 0.1's did (its option parser imported the training module, and with it Keras).

    .venv/bin/python benchmarks/predict_startup.py MODEL PHOTO [--repeats 5]   (a .tflite, .onnx, OpenVINO .xml or .keras file)

Prints the median wall time of each over the repeats, and their ratio, on this machine's CPU.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

WITH_TENSORFLOW = "import sys, tensorflow; from zoolite.cli import main; sys.exit(main(sys.argv[1:]))"
ZOOLITE = "import sys; from zoolite.cli import main; sys.exit(main(sys.argv[1:]))"


def wall_seconds(code: str, argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("photo")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from zoolite.runs.provenance import machine_info

    argv = ["predict", args.model, args.photo]
    wall_seconds(ZOOLITE, argv)  # warm the file cache for both
    times = {"zoolite predict (no TensorFlow)": [], "the same after importing TensorFlow": [],
             "zoolite --help": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        times["zoolite predict (no TensorFlow)"].append(wall_seconds(ZOOLITE, argv))
        times["the same after importing TensorFlow"].append(wall_seconds(WITH_TENSORFLOW, argv))
        times["zoolite --help"].append(wall_seconds(ZOOLITE, ["--help"]))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{machine_info().cpu}, {args.repeats} runs each, median wall time of the whole process:")
    for name, seconds in medians.items():
        print(f"  {name:<38} {seconds:6.2f} s")
    ratio = medians["the same after importing TensorFlow"] / medians["zoolite predict (no TensorFlow)"]
    print(f"  zoolite's predict is {ratio:.1f}x faster to answer (target: at most 1 s)")


if __name__ == "__main__":
    main()
