"""What do the duplicate search's two costly steps take, at a baseline revision and now, on the same input?

    .venv/bin/python benchmarks/duplicate_search.py [--photos N ...] [--data DIR ...] [--baseline REV] [--repeats N]

:func:`zoolite.dataset.duplicates.find_duplicates` spends most of its time, beyond reading the photos, in two
steps, compared here with the baseline's (its duplicates module read from ``git show
REV:zoolite/dataset/duplicates.py``, default c0875d7, the last commit of 0.9.0's work), the arms alternating,
--repeats times each (the median printed, and whether the two give the same numbers):

* the coarse pass (``_near_copies``), which compares every photo with every photo's whole frame and crops by matrix
  products, so it grows with the square of the photos: on random unit descriptors of --photos photos (no copies
  among them, so one round, as on a real folder; its peak allocation too, by ``tracemalloc``);
* the aligned check's refinement (``_aligned_similarity``), which moves a crop box by coordinate descent until it
  fits: on the pairs the current search refines in each --data folder (default ../shared/data/animals10-large and
  ../shared/data/animals10-dev), recorded from one search; and the groups of copies each version's whole search
  finds there.

Output (2-core AMD EPYC with AVX2, no AVX-512, 2026-12-08, default options):

    coarse pass   photos   c0875d7 s   now s  ratio  MB then  MB now  same
                    2528        1.05    1.07   0.99      122     126  True
                   26179       71.73   58.78   1.22      436     443  True
    refinement   folder            pairs   c0875d7 s   now s  ratio  same  groups (same)
                 animals10-large     207       1.234   0.594   2.08  True  16 (False)
                 animals10-dev         6       0.064   0.060   1.06  True  1 (False)

(The groups' "False" was this script's: it compared the two modules' ``Duplicates`` objects, of two classes, as
wholes; their fields are compared since. ``--photos 2528``, again: coarse pass 1.29 / 1.14 s at 2,528 photos,
refinement 0.870 / 0.440 s on animals10-large and 0.048 / 0.045 s on animals10-dev, the same numbers, and the same
groups of copies, 16 and 1.) The coarse pass gains where it matters, at scale: at 2,528 photos two timings of it
differ by more than the change. The refinement's share grows with the photos, as the pairs it refines do.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
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


def refined_pairs(dataset) -> list[tuple]:
    """The arguments of every call the current search makes to ``_aligned_similarity`` on ``dataset``."""
    calls, refine = [], duplicates._aligned_similarity

    def recording(pairs, boxes, integrals):
        calls.append((pairs, boxes.copy(), integrals))
        return refine(pairs, boxes, integrals)

    duplicates._aligned_similarity = recording
    try:
        duplicates.find_duplicates(dataset.root, dataset.files)
    finally:
        duplicates._aligned_similarity = refine
    return calls


def compared(arms: dict, calls: list[tuple], repeats: int, numbers, memory: bool = False) -> tuple[list[float], bool]:
    """Each arm's median seconds (and, with ``memory``, peak MB allocated) over ``calls`` of its function,
    alternating, and whether both give the same ``numbers(result)`` (a list of arrays) for every call."""
    seconds, peaks, outputs = {arm: [] for arm in arms}, {arm: 0.0 for arm in arms}, {}
    for repeat in range(repeats):
        for arm in (list(arms) if repeat % 2 == 0 else list(arms)[::-1]):
            if memory:
                tracemalloc.start()
            start = time.perf_counter()
            outputs[arm] = [numbers(arms[arm](*call)) for call in calls]
            seconds[arm].append(time.perf_counter() - start)
            if memory:
                peaks[arm] = max(peaks[arm], tracemalloc.get_traced_memory()[1] / 1e6)
                tracemalloc.stop()
    old, new = outputs.values()
    same = all(np.array_equal(a, b) for in_old, in_new in zip(old, new) for a, b in zip(in_old, in_new))
    return [statistics.median(seconds[arm]) for arm in arms] + ([peaks[arm] for arm in arms] if memory else []), same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, nargs="*", default=[2528, 26179])
    parser.add_argument("--data", type=Path, nargs="*", default=[SHARED / "animals10-large", SHARED / "animals10-dev"])
    parser.add_argument("--baseline", default="c0875d7")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        baseline = baseline_module(args.baseline, Path(folder))
    windows, dim = len(duplicates._windows()), duplicates.SIZE ** 2
    label = f"{args.baseline} s"
    print(f"coarse pass  {'photos':>7s} {label:>11s} {'now s':>7s} {'ratio':>6s} {'MB then':>8s} {'MB now':>7s}  same")
    for n in args.photos:
        descriptors = np.random.default_rng(n).standard_normal((n, windows, dim), np.float32)
        descriptors /= np.linalg.norm(descriptors, axis=2, keepdims=True)
        arms = {args.baseline: baseline._near_copies, "now": duplicates._near_copies}
        (old, new, old_mb, new_mb), same = compared(arms, [(descriptors,)], args.repeats, list, memory=True)
        print(f"{'':12s} {n:7d} {old:11.2f} {new:7.2f} {old / new:6.2f} {old_mb:8.0f} {new_mb:7.0f}  {same}")
    print(f"refinement   {'folder':<16s} {'pairs':>6s} {label:>11s} {'now s':>7s} {'ratio':>6s}  same  groups (same)")
    for data in args.data:
        dataset = scan_dataset(data)
        found = [module.find_duplicates(dataset.root, dataset.files) for module in (baseline, duplicates)]
        calls = refined_pairs(dataset)
        arms = {args.baseline: baseline._aligned_similarity, "now": duplicates._aligned_similarity}
        # the similarities: the refinement now returns its boxes beside them
        (old, new), same = compared(arms, calls, args.repeats, lambda out: [out[0] if isinstance(out, tuple) else out])
        pairs = sum(len(call[0]) for call in calls)
        print(f"{'':12s} {data.name:<16s} {pairs:6d} {old:11.3f} {new:7.3f} {old / new:6.2f}  {same!s:5s} "
              f"{len(found[1].groups)} ({vars(found[0]) == vars(found[1])})")  # two modules' classes: compare fields


if __name__ == "__main__":
    main()
