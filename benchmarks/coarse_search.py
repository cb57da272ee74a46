"""What does the duplicate search's coarse pass take, in time and memory, as the photos grow, at 0.8 and now?

    .venv/bin/python benchmarks/coarse_search.py [--photos 2528 10000 26179] [--data DIR ...]

The coarse pass of :func:`zoolite.dataset.duplicates.find_duplicates` compares every photo's whole frame (and its
mirror image) with every photo's whole frame and crops, by matrix products: the one part of a run that grows with
the square of the photos. For each ``--photos`` count, in one invocation, the arms alternating: the seconds of
``_near_copies`` on that many random unit descriptors (float32, as a folder's; no copies among them, so one round,
as on a real folder) and the peak of what NumPy allocated meanwhile (``tracemalloc``), with 256 photos compared at
once whatever their number, as 0.8 did, and as now (fewer at once beyond 6,898 photos, so that a chunk's products
stay within ``COARSE_BYTES``). For each ``--data`` folder: whether the two give the same groups of copies.

Output (2-core AMD EPYC with AVX2, no AVX-512, 2026-12-08; ``--data ../shared/data/animals10-large
../shared/data/animals10-dev``). At 2,528 photos the two arms are the same procedure, so 1.18 is the machine's
noise between two timings of it; at 26,179 photos the bounded chunks keep 831 MB less for 9 s more, of a run's
10-12 minutes there:

     photos   0.8 s   now s  ratio  0.8 MB  now MB
       2528    1.29    1.09   1.18     122     122
      10000   11.44   11.94   0.96     484     350
      26179   75.16   84.26   0.89    1267     436
    ../shared/data/animals10-large: 2528 photos, 16 groups of copies; the same groups in both: True
    ../shared/data/animals10-dev: 240 photos, 1 groups of copies; the same groups in both: True
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from zoolite.dataset import duplicates  # noqa: E402
from zoolite.dataset.scan import scan_dataset  # noqa: E402

# arm -> the bytes a chunk's products may take
ARMS = {"0.8": 2 ** 62, "now": duplicates.COARSE_BYTES}


def use(arm: str) -> None:
    duplicates.COARSE_BYTES = ARMS[arm]


def measured(arm: str, descriptors: np.ndarray) -> tuple[float, float]:
    """The seconds of the coarse pass of ``arm`` and the peak of what it allocated, in MB."""
    use(arm)
    tracemalloc.start()
    start = time.perf_counter()
    duplicates._near_copies(descriptors)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, nargs="+", default=[2528, 10000, 26179])
    parser.add_argument("--data", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    windows, dim = len(duplicates._windows()), duplicates.SIZE ** 2
    print(f"{'photos':>7s} {'0.8 s':>7s} {'now s':>7s} {'ratio':>6s} {'0.8 MB':>7s} {'now MB':>7s}")
    for i, n in enumerate(args.photos):
        descriptors = np.random.default_rng(n).standard_normal((n, windows, dim), np.float32)
        descriptors /= np.linalg.norm(descriptors, axis=2, keepdims=True)
        got = {arm: measured(arm, descriptors) for arm in (list(ARMS) if i % 2 == 0 else list(ARMS)[::-1])}
        (old, old_mb), (new, new_mb) = got["0.8"], got["now"]
        print(f"{n:7d} {old:7.2f} {new:7.2f} {old / new:6.2f} {old_mb:7.0f} {new_mb:7.0f}")
    for data in args.data:
        dataset = scan_dataset(data)
        found = {}
        for arm in ARMS:
            use(arm)
            found[arm] = duplicates.find_duplicates(dataset.root, dataset.files)
        print(f"{data}: {len(dataset.files)} photos, {len(found['now'].groups)} groups of copies; the same "
              f"groups in both: {found['now'] == found['0.8']}")


if __name__ == "__main__":
    main()
