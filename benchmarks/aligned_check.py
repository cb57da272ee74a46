"""What does the duplicate search's aligned check cost, at a baseline revision and now, on the same pairs?

    .venv/bin/python benchmarks/aligned_check.py [--data DIR ...] [--baseline REV] [--repeats N]

:func:`zoolite.dataset.duplicates.find_duplicates` checks the pairs of photos that its first comparison found
close but not joined, aligned: the crop box of one photo is refined by coordinate descent (``_aligned_similarity``)
until it fits the other's whole frame best. For each ``--data`` folder (default ../shared/data/animals10-large and
../shared/data/animals10-dev), one search of the current code records the pairs it refines; each version's
``_aligned_similarity`` (the baseline's read from ``git show REV:zoolite/dataset/duplicates.py``, default
c0875d7, the last commit of 0.9.0's work) then refines those pairs --repeats times, the two alternating. Printed:
the pairs, the median seconds of each, their ratio, and whether the similarities are the same numbers.

Output (2-core AMD EPYC with AVX2, no AVX-512, 2026-12-08, default options):

    folder                pairs    c0875d7 s   now s  ratio  same numbers
    animals10-large         207        1.370   0.661   2.07  True
    animals10-dev             6        0.066   0.050   1.31  True

(A first invocation gave 2.07 and 1.10.) The refinement is about a sixth of the whole search on animals10-large
(8 s), and grows with the photos, as the pairs it refines do.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from zoolite.dataset import duplicates  # noqa: E402
from zoolite.dataset.scan import scan_dataset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def baseline_module(revision: str, folder: Path):
    """The duplicates module as it was at ``revision``, imported under another name."""
    path = folder / "duplicates_baseline.py"
    path.write_text(subprocess.run(["git", "show", f"{revision}:zoolite/dataset/duplicates.py"], cwd=ROOT,
                                   check=True, capture_output=True, text=True).stdout)
    spec = importlib.util.spec_from_file_location("duplicates_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def refined_pairs(data: Path) -> list[tuple]:
    """The arguments of every call the current search makes to ``_aligned_similarity`` on ``data``."""
    dataset, calls, refine = scan_dataset(data), [], duplicates._aligned_similarity

    def recording(pairs, boxes, integrals):
        calls.append((pairs, boxes.copy(), integrals))
        return refine(pairs, boxes, integrals)

    duplicates._aligned_similarity = recording
    try:
        duplicates.find_duplicates(dataset.root, dataset.files)
    finally:
        duplicates._aligned_similarity = refine
    return calls


def timed(refine, calls: list[tuple]) -> tuple[float, np.ndarray]:
    """The seconds ``refine`` takes over ``calls``, and the similarities it gives (now with the boxes beside)."""
    start = time.perf_counter()
    out = [refine(pairs, boxes.copy(), integrals) for pairs, boxes, integrals in calls]
    seconds = time.perf_counter() - start
    similarities = [result[0] if isinstance(result, tuple) else result for result in out]
    return seconds, np.concatenate(similarities) if similarities else np.zeros(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[SHARED / "animals10-large", SHARED / "animals10-dev"])
    parser.add_argument("--baseline", default="c0875d7")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        arms = {args.baseline: baseline_module(args.baseline, Path(folder))._aligned_similarity,
                "now": duplicates._aligned_similarity}
        print(f"{'folder':<20s} {'pairs':>6s} {args.baseline + ' s':>12s} {'now s':>7s} {'ratio':>6s}  same numbers")
        for data in args.data:
            calls = refined_pairs(data)
            seconds, outputs = {arm: [] for arm in arms}, {}
            for repeat in range(args.repeats):
                for arm in (list(arms) if repeat % 2 == 0 else list(arms)[::-1]):
                    spent, outputs[arm] = timed(arms[arm], calls)
                    seconds[arm].append(spent)
            old, new = (statistics.median(seconds[arm]) for arm in arms)
            same = np.array_equal(*outputs.values())
            pairs = sum(len(call[0]) for call in calls)
            print(f"{data.name:<20s} {pairs:6d} {old:12.3f} {new:7.3f} {old / new:6.2f}  {same}")


if __name__ == "__main__":
    main()
