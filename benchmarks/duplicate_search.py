"""What do the duplicate search's two costly steps take, at a baseline revision and now, on the same input?

    .venv/bin/python benchmarks/duplicate_search.py [--photos N ...] [--data DIR ...] [--baseline REV] [--repeats N]

:func:`zoolite.dataset.duplicates.find_duplicates` spends most of its time, beyond reading the photos, in two
steps, compared here with the baseline's (its duplicates module read from ``git show
REV:zoolite/dataset/duplicates.py``, default c0875d7, the last commit of 0.9.0's work), the arms alternating,
--repeats times each (the median printed, and whether the two give the same numbers):

* the coarse pass (``_near_copies``), which compares every photo with every photo's whole frame and crops by matrix
  products, so it grows with the square of the photos: on random unit descriptors of --photos photos, 1% of them
  made copies of others and 1% made near others, so that it finds pairs to compare (the copies and the candidates
  for the aligned check it returns are counted); its peak allocation too, by ``tracemalloc``, in a call of each
  apart from the timed ones;
* the aligned check's refinement (``_aligned_similarity``), which moves a crop box by coordinate descent until it
  fits: on the pairs the current search refines in each --data folder (default ../shared/data/animals10-large and
  ../shared/data/animals10-dev), recorded from the current version's search there; and the groups of copies each
  version's whole search finds there.

Output (2-core AMD EPYC with AVX2, no AVX-512, 2026-12-08, default options):

    coarse pass   photos   c0875d7 s   now s  ratio  MB then  MB now  same (copies, candidates)
                    2528        1.12    1.16   0.97      122     126  True (50, 50)
                   26179       70.66   60.39   1.17      436     443  True (522, 519)
    refinement   folder            pairs   c0875d7 s   now s  ratio  same  groups (same)
                 animals10-large     207       1.132   0.593   1.91  True  16 (True)
                 animals10-dev         6       0.072   0.067   1.08  True  1 (True)

The coarse pass gains where it matters, at scale: at 2,528 photos two timings of it differ by more than the change
(an earlier invocation, on descriptors without made copies, gave 1.05 / 1.07 s there and 71.73 / 58.78 s at 26,179
photos; the refinement 1.234 / 0.594 s). The refinement's share grows with the photos, as the pairs it refines do.
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


def current_search(dataset) -> tuple[duplicates.Duplicates, list[tuple]]:
    """The current search's groups of copies in ``dataset``, and the arguments of every call it made to
    ``_aligned_similarity``."""
    calls, refine = [], duplicates._aligned_similarity

    def recording(pairs, boxes, integrals):
        calls.append((pairs, boxes.copy(), integrals))
        return refine(pairs, boxes, integrals)

    duplicates._aligned_similarity = recording
    try:
        return duplicates.find_duplicates(dataset.root, dataset.files), calls
    finally:
        duplicates._aligned_similarity = refine


def compared(arms: dict, calls: list[tuple], repeats: int, numbers) -> tuple[list[float], bool, list]:
    """Each arm's median seconds over ``calls`` of its function, alternating, whether both give the same
    ``numbers(result)`` (a list of arrays) for every call, and the last arm's numbers."""
    seconds, outputs = {arm: [] for arm in arms}, {}
    for repeat in range(repeats):
        for arm in (list(arms) if repeat % 2 == 0 else list(arms)[::-1]):
            start = time.perf_counter()
            outputs[arm] = [numbers(arms[arm](*call)) for call in calls]
            seconds[arm].append(time.perf_counter() - start)
    old, new = outputs.values()
    same = all(np.array_equal(a, b) for in_old, in_new in zip(old, new, strict=True)
               for a, b in zip(in_old, in_new, strict=True))
    return [statistics.median(seconds[arm]) for arm in arms], same, new


def similarities(refined) -> list[np.ndarray]:
    """The refinement's similarities (it now returns its boxes beside them)."""
    return [refined[0] if isinstance(refined, tuple) else refined]


def peak_mb(function, *args) -> float:
    """The peak of what NumPy allocated during one call (traced apart from the timed calls: tracing slows them)."""
    tracemalloc.start()
    function(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def descriptors_with_copies(n: int) -> np.ndarray:
    """Random unit descriptors of ``n`` photos (at least 4), 1% of them another's with a little noise (copies) and 1%
    another's with as much noise as signal (for the aligned check), so that the coarse pass's outputs are not empty."""
    rng = np.random.default_rng(n)
    descriptors = rng.standard_normal((n, len(duplicates._windows()), duplicates.SIZE ** 2), np.float32)
    planted = rng.permutation(n)[:4 * max(1, n // 100)].reshape(2, -1, 2)  # (copies, others) x pairs x (made, its own)
    for pairs, noise in zip(planted, (0.1, 1.0)):
        made, own = pairs.T
        descriptors[made] = descriptors[own] + noise * rng.standard_normal(descriptors[own].shape, np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=2, keepdims=True)
    return descriptors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, nargs="*", default=[2528, 26179])
    parser.add_argument("--data", type=Path, nargs="*", default=[SHARED / "animals10-large", SHARED / "animals10-dev"])
    parser.add_argument("--baseline", default="c0875d7")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        baseline = baseline_module(args.baseline, Path(folder))
    label = f"{args.baseline} s"
    print(f"coarse pass  {'photos':>7s} {label:>11s} {'now s':>7s} {'ratio':>6s} {'MB then':>8s} {'MB now':>7s}  same "
          "(copies, candidates)")
    for n in args.photos:
        descriptors = descriptors_with_copies(n)
        arms = {args.baseline: baseline._near_copies, "now": duplicates._near_copies}
        (old, new), same, ((copies, candidates),) = compared(arms, [(descriptors,)], args.repeats, list)
        old_mb, new_mb = (peak_mb(function, descriptors) for function in arms.values())
        print(f"{'':12s} {n:7d} {old:11.2f} {new:7.2f} {old / new:6.2f} {old_mb:8.0f} {new_mb:7.0f}  {same} "
              f"({len(copies)}, {len(candidates)})")
    print(f"refinement   {'folder':<16s} {'pairs':>6s} {label:>11s} {'now s':>7s} {'ratio':>6s}  same  groups (same)")
    for data in args.data:
        dataset = scan_dataset(data)
        found, calls = current_search(dataset)
        then = baseline.find_duplicates(dataset.root, dataset.files)
        arms = {args.baseline: baseline._aligned_similarity, "now": duplicates._aligned_similarity}
        (old, new), same, _ = compared(arms, calls, args.repeats, similarities)
        pairs = sum(len(call[0]) for call in calls)
        print(f"{'':12s} {data.name:<16s} {pairs:6d} {old:11.3f} {new:7.3f} {old / new:6.2f}  {same!s:5s} "
              f"{len(found.groups)} ({vars(then) == vars(found)})")  # two modules' classes: compare fields


if __name__ == "__main__":
    main()
