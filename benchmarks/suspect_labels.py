"""Does `zoolite check` find photos put in the wrong class folder, without naming too many good ones?

    .venv/bin/python benchmarks/suspect_labels.py DATA [--noise 0.05] [--seeds 0,1,2] [--end-to-end]

For each seed, ``--noise`` of DATA's photos (5%) get a random wrong class, as if moved to a wrong
folder; the suspect labels of `zoolite check` (the features of :mod:`zoolite.apps.check`; the out-of-fold
probabilities, confident joint and cap of :mod:`zoolite.model.suspects`) are computed on those labels.
Moving a file changes only its label (the features are cached per photo content), so this is what
`zoolite check` computes on the moved folder;
``--end-to-end`` also copies DATA with the moves made for real and runs `zoolite check --json` on the
copy (first seed), to show that. Printed per seed: recall of the moved photos among the named ones,
the right suggested class among those found, the share of all photos named, how many moved photos
are named first (precision); and on the clean folder (no moves), the share of photos named.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def named(probabilities, labels, n_photos):
    import math

    from zoolite.model.suspects import MAX_SUSPECT_SHARE, confident_suspects

    found = confident_suspects(probabilities, labels)
    cap = max(1, math.floor(MAX_SUSPECT_SHARE * n_photos))
    return found.indices[:cap], found.suggested[:cap], len(found.indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder with one sub-folder of photos per class")
    parser.add_argument("--noise", type=float, default=0.05, help="share of photos moved to a wrong folder")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--end-to-end", action="store_true", help="also run `zoolite check` on a moved copy")
    args = parser.parse_args()

    import numpy as np

    from zoolite.apps.check import _scan, photo_features
    from zoolite.model.suspects import out_of_fold_probabilities
    from zoolite.progress import Progress

    root = Path(args.data)
    class_dirs, files, _ = _scan(root)
    labels = np.array([label for _, label in files])
    n, k = len(files), len(class_dirs)
    started = time.perf_counter()
    features = photo_features(root, [f for f, _ in files], Progress(True))
    print(f"{root}: {n} photos, {k} classes; features in {time.perf_counter() - started:.1f} s "
          "(cached per photo content after the first time)")

    started = time.perf_counter()
    clean = out_of_fold_probabilities(features, labels, k, seed=0)
    clean_named, _, clean_found = named(clean, labels, n)
    print(f"clean folder: {len(clean_named)} named ({len(clean_named) / n:.1%} of photos; {clean_found} found "
          f"before the cap); out-of-fold accuracy {np.mean(clean.argmax(1) == labels):.1%}; "
          f"{time.perf_counter() - started:.1f} s")

    recalls, shares = [], []
    for seed in map(int, args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        moved = rng.choice(n, size=max(1, round(args.noise * n)), replace=False)
        noisy = labels.copy()
        noisy[moved] = (labels[moved] + rng.integers(1, k, len(moved))) % k  # a random wrong class
        probabilities = out_of_fold_probabilities(features, noisy, k, seed=seed)
        indices, suggested, found = named(probabilities, noisy, n)
        hit = {i: s for i, s in zip(indices, suggested) if i in set(moved.tolist())}
        right = sum(labels[i] == s for i, s in hit.items())
        recalls.append(len(hit) / len(moved))
        shares.append(len(indices) / n)
        print(f"seed {seed}: {len(moved)} moved; named {len(indices)} ({len(indices) / n:.1%} of photos, {found} "
              f"found before the cap); moved photos named {len(hit)}/{len(moved)} (recall {len(hit) / len(moved):.1%}),"
              f" right class suggested for {right}/{len(hit)}; precision {len(hit) / max(1, len(indices)):.1%}")
        if args.end_to_end and seed == int(args.seeds.split(",")[0]):
            end_to_end(root, files, class_dirs, moved, noisy, seed)
    print(f"mean over seeds: recall {np.mean(recalls):.1%}, share of photos named {np.mean(shares):.1%} "
          f"(clean folder: {len(clean_named) / n:.1%})")


def end_to_end(root: Path, files, class_dirs, moved, noisy, seed: int) -> None:
    """Copy DATA with the moves made for real and compare `zoolite check --json` with the simulation."""
    import contextlib
    import io

    from zoolite.cli import main as zoolite

    with tempfile.TemporaryDirectory(prefix="suspect-labels-") as tmp:
        copy = Path(tmp) / "data"
        for name in class_dirs:
            (copy / name).mkdir(parents=True)
        moved_files = set()
        for i, (file, _) in enumerate(files):
            target = Path(class_dirs[noisy[i]]) / Path(file).name
            shutil.copy(root / file, copy / target)
            if i in set(moved.tolist()):
                moved_files.add(target.as_posix())
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = zoolite(["check", str(copy), "--json", "--seed", str(seed)])
        report = json.loads(out.getvalue())
        found = {s["file"] for s in report["suspect_labels"]} & moved_files
        print(f"  end to end (zoolite check --json on the moved copy, exit {code}, "
              f"{time.perf_counter() - started:.1f} s): {len(report['suspect_labels'])} named, moved photos named "
              f"{len(found)}/{len(moved_files)}")


if __name__ == "__main__":
    sys.exit(main())
