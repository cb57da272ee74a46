"""How far does the test split's balanced accuracy move when whole sources are held out (--group-by)?

    .venv/bin/python benchmarks/group_split.py [DATA] [--seeds 0,1,2] [--pattern REGEX] [--cache DIR]

DATA (default: /work/shared/data/animals10-large) mixes photos of several sources, told by their file-name
prefix (pyis-, c101-, crit-, the rest Animals-10's own). For each seed, zoolite's head is trained on
efficientnet_lite0 features (as benchmarks/rejection.py does: features once, the head fitted as a run fits it) with
the ordinary split (duplicate groups kept whole, as `zoolite run` does) and with `--group-by` on the source
prefix, and the test split's balanced accuracy (mean per-class recall over the classes in it) is printed, with
its weakest class per seed:
mean (min-max) over the seeds, and the difference. With the group split, a source lands whole in one split,
so the figure estimates photos of a new source rather than new photos of sources seen in training.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rejection import SHARED, features, train_head  # noqa: E402  (sets the thread environment first)

import numpy as np  # noqa: E402

SOURCES = r"^[^/]+/(pyis|c101|crit)-"  # the brief's source prefix: one group per source, over all classes


def recalls(y, predicted) -> dict[int, float]:
    """Each class's share of its test photos answered right (the classes in the test split)."""
    return {int(c): float(np.mean(predicted[y == c] == c)) for c in np.unique(y)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "animals10-large"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pattern", default=SOURCES, help="the --group-by pattern (default: %(default)s)")
    parser.add_argument("--cache", help="folder for the cached features (default: a temporary one)")
    args = parser.parse_args()
    started = time.perf_counter()

    from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights
    from zoolite.config import DEFAULT_FRACTIONS
    from zoolite.dataset.scan import scan_dataset
    from zoolite.dataset.split import split_dataset
    from zoolite.dataset.duplicates import find_duplicates

    spec = get_backbone("efficientnet_lite0")
    extractor = functools.cache(lambda: build_feature_extractor(spec, resolve_weights(spec, None)))
    dataset = scan_dataset(args.data)
    photos = [p for p, _ in dataset.files]
    duplicates = find_duplicates(dataset.root, dataset.files)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        x_all = features(extractor, spec, "classes", dataset.root, photos, cache)
    print(f"{len(photos)} photos, {len(dataset.class_dirs)} classes; features in {time.perf_counter() - started:.0f} s")
    row_of, n = {p: i for i, p in enumerate(photos)}, len(dataset.class_dirs)
    scores: dict[str, list[float]] = {"ordinary": [], "group-by": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, pattern in (("ordinary", None), ("group-by", args.pattern)):
            split = split_dataset(dataset, DEFAULT_FRACTIONS, seed, duplicates, pattern)
            x, y = ({s: x_all[[row_of[p] for p, _ in split.subset(s)]] for s in ("train", "val", "test")},
                    {s: np.array([label for _, label in split.subset(s)]) for s in ("train", "val", "test")})
            head = train_head(x["train"], y["train"], x["val"], y["val"], n, seed)
            predicted = np.argmax(head.predict(x["test"].astype(np.float32), verbose=0), axis=1)
            recall = recalls(y["test"], predicted)
            scores[name].append(float(np.mean(list(recall.values()))))
            weakest = min(recall, key=recall.get)
            groups = f"; test groups: {', '.join(split.test_groups()) or 'none'}" if pattern else ""
            print(f"seed {seed} {name:<9} train/val/test {len(split.train)}/{len(split.val)}/{len(split.test)}, "
                  f"test classes {len(recall)}{groups}: balanced accuracy {scores[name][-1] * 100:.1f}%, weakest "
                  f"{dataset.labels[weakest]} {recall[weakest] * 100:.1f}% of {np.sum(y['test'] == weakest)}")
    for name, values in scores.items():
        v = np.array(values) * 100
        print(f"{name:<9} balanced accuracy {v.mean():.1f}% ({v.min():.1f}-{v.max():.1f})")
    moved = (np.array(scores["group-by"]) - np.array(scores["ordinary"])) * 100
    print(f"moved by --group-by {args.pattern}: {moved.mean():+.1f} pp ({moved.min():+.1f} to {moved.max():+.1f}); "
          f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
