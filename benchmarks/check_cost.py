"""What does `zoolite check DATA` add to a default `zoolite run` that follows it?

    .venv/bin/python benchmarks/check_cost.py DATA

In one invocation on one machine, each as a subprocess timed by its wall clock (Python start-up,
imports and all):

* arm A: a default ``zoolite run --data DATA --out TMP`` alone, from an empty features cache;
* arm B: ``zoolite check DATA`` then the same run, from the same empty starting cache.

Each arm gets its own user cache (``ZOOLITE_CACHE``) holding a copy of the ported weights and the
converted backbone of the user's cache (so neither pays for converting them), and no cached photo
features. Printed: both times, the ratio (check + run) / run alone, and the check's own share. The
run of arm B reads its train and validation features from the check's cache
(:func:`zoolite.model.features.cached_features`), so the check costs about its own extra work (hashing,
duplicates, the folds of the logistic regression) and the run gets cheaper by the features it reuses.

Measured (``check_cost.txt`` beside this file keeps the output).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fresh_cache(base: Path, folder: Path) -> Path:
    """A user cache with the weights and converted backbones of ``base`` and no photo features."""
    folder.mkdir(parents=True)
    for item in base.iterdir() if base.is_dir() else []:
        if item.name == "photo-features":
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    args = parser.parse_args()
    from zoolite import storage

    base = storage.cache_dir()
    zoolite = [str(Path(sys.executable).parent / "zoolite")]
    with tempfile.TemporaryDirectory(prefix="zoolite-check-cost-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env_a = {**env, "ZOOLITE_CACHE": str(fresh_cache(base, tmp / "cache-a"))}
        run_alone = timed([*zoolite, "run", "--data", args.data, "--out", str(tmp / "runs-a"), "--quiet"], env_a)
        env_b = {**env, "ZOOLITE_CACHE": str(fresh_cache(base, tmp / "cache-b"))}
        check = timed([*zoolite, "check", args.data, "--quiet"], env_b)
        run_after = timed([*zoolite, "run", "--data", args.data, "--out", str(tmp / "runs-b"), "--quiet"], env_b)
    print(f"{args.data}; {cpu()}, {os.cpu_count()} cores")
    print(f"run alone (empty features cache): {run_alone:.1f} s")
    print(f"check: {check:.1f} s, then run: {run_after:.1f} s; together {check + run_after:.1f} s")
    print(f"ratio (check + run) / run alone: {(check + run_after) / run_alone:.3f}")
    print(f"the check's share of check + run: {check / (check + run_after):.1%}; "
          f"the check alone / run alone: {check / run_alone:.1%}")


if __name__ == "__main__":
    main()
