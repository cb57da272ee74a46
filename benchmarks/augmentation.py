"""Which defaults for --class-weights and --augment / --augment-views: test balanced accuracy per choice.

For each seed, zoolite's split of DATA (stratified, 70/15/15, seeded). The features are the
pipeline's (``zoolite.model.features``: EfficientNet-Lite0 as a float32 LiteRT file): those of every
photo once (a photo's features do not depend on its split), and per seed those of up to max(K)
views of the training photos for each augmentation, made by ``augmentation.view_maker`` with
the pipeline's seeds (run seed * 1000 + k for view k), each view timed. Every configuration
-- class weights none/auto x augment none, flip (K in --views), standard (K in --views) -- trains
the head as ``zoolite.runs.stages.train`` does with ``--head`` (default logistic, zoolite's since 0.8: a
logistic regression on the original and K view features, each version of a photo weighing 1 / (1 + K); recipe, the
default up to 0.7, whose figures chose the defaults: seeded by the run seed, ``TrainConfig()``'s recipe,
``augmentation.Views`` over the original and K view features), with the class weights of the training labels.
Measured on the test split, kept out of training: accuracy and balanced accuracy
(``evaluation.classification_metrics``, 95% intervals) and the worst class recall.
The cost of K is K times the seconds one view's features take on the training photos (median).

    .venv/bin/python benchmarks/augmentation.py DATA [--seeds 0,1,2] [--views 1,2,4] [--cache DIR] [--head logistic]

--cache keeps the backbone file and the features across invocations (keyed by the photo lists;
empty it after changing zoolite's backbone or augmentation).

Its output on animals10-large with the defaults (seeds 0-2, the logistic head): benchmarks/augmentation.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rejection import cached_features, train_head  # noqa: E402  (sets the TensorFlow and thread environment first)

import numpy as np  # noqa: E402

AUGMENTS = ("flip", "standard")


class FeatureCache:
    """Features of photo lists under ``folder`` by the pipeline's backbone (LiteRT), each with the seconds it took,
    computed once and reused while the list is the same (``rejection.cached_features``)."""

    def __init__(self, folder: Path, root: Path):
        from zoolite.model.backbones import build_feature_extractor, get_backbone
        from zoolite.model.features import backbone_file, open_backbone

        self.folder, self.root = folder, root
        self.spec = get_backbone("efficientnet_lite0")
        self.runtime = open_backbone(backbone_file(build_feature_extractor(self.spec), folder))

    def get(self, name: str, photos: list[str], view=None) -> tuple[np.ndarray, float]:
        """The features of ``photos`` (each made a ``view``, if given) and the seconds they took."""
        from zoolite.model.features import extract

        def compute(paths, out):
            extract(self.runtime, paths, self.spec.input_size, out, view=view)
        return cached_features(compute, name, self.root, photos, self.folder, verbose=True)


def train_and_test(versions: list[np.ndarray], y_train, val, test, n_classes: int, weights: str, seed: int,
                   how: str) -> dict:
    """The head trained as the pipeline trains it (``--head how``, ``rejection.train_head``) on ``versions`` (original
    features first, then the views'), measured on ``test``: classification_metrics plus each class's recall."""
    from zoolite.measure.evaluation import classification_metrics

    head = train_head(versions[0], y_train, *val, n_classes, seed, how=how, weights=weights, views=versions[1:])
    x_test, y_test = test
    probabilities = head.predict(x_test, verbose=0)
    right = np.bincount(y_test[probabilities.argmax(1) == y_test], minlength=n_classes)
    return {**vars(classification_metrics(probabilities, y_test, n_classes)),
            "recalls": right / np.bincount(y_test, minlength=n_classes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder-per-class dataset, e.g. /work/shared/data/animals10-large")
    parser.add_argument("--seeds", default="0,1,2", help="run seeds: each is the split's and the training's")
    parser.add_argument("--views", default="1,2,4", help="the values of --augment-views to compare")
    parser.add_argument("--cache", help="folder for the backbone file and the features (default: a temporary one)")
    parser.add_argument("--head", choices=("logistic", "recipe"), default="logistic",
                        help="how the head is fitted, as zoolite run --head (default: %(default)s)")
    args = parser.parse_args()
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    ks = sorted(int(k) for k in args.views.split(","))

    import tensorflow as tf

    from zoolite.model.augmentation import view_maker
    from zoolite.config import DEFAULT_FRACTIONS
    from zoolite.dataset.scan import scan_dataset
    from zoolite.dataset.split import split_dataset
    from zoolite.runs.provenance import machine_info
    from zoolite.report.tables import plain_table

    tf.config.experimental.enable_op_determinism()  # as the pipeline's seeding does
    dataset = scan_dataset(args.data)
    n_classes = len(dataset.class_dirs)
    configs = [(weights, augment, k) for weights in ("none", "auto")
               for augment, k in [("none", 0), *((a, k) for a in AUGMENTS for k in ks)]]
    results = {config: [] for config in configs}  # config -> per-seed metrics
    view_seconds = {augment: [] for augment in AUGMENTS}
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(args.cache or tmp)
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache = FeatureCache(cache_dir, dataset.root)
        photos = [p for p, _ in dataset.files]
        x_all, _ = cache.get("photos", photos)
        row_of = {p: i for i, p in enumerate(photos)}
        for seed in seeds:
            split = split_dataset(dataset, seed=seed)
            train, val, test = ((x_all[[row_of[p] for p, _ in items]], np.array([label for _, label in items]))
                                for items in (split.train, split.val, split.test))
            train_photos = [p for p, _ in split.train]
            views = {}
            for augment in AUGMENTS:
                made = [cache.get(f"seed{seed}_{augment}{k}", train_photos, view_maker(augment, seed * 1000 + k))
                        for k in range(1, ks[-1] + 1)]
                views[augment] = [x for x, _ in made]
                view_seconds[augment] += [s for _, s in made]
            for weights, augment, k in configs:
                versions = [train[0], *views.get(augment, [])[:k]]
                results[weights, augment, k].append(train_and_test(versions, train[1], val, test, n_classes,
                                                                   weights, seed, args.head))
                print(f"seed {seed} {weights}/{augment}{k or ''}: balanced accuracy "
                      f"{results[weights, augment, k][-1]['balanced_accuracy']:.3f}", file=sys.stderr)

    def pct(values) -> str:
        return f"{100 * np.mean(values):.1f}"

    def with_low(per_seed: list[dict], metric: str) -> str:
        """The mean of ``metric`` over seeds and of its interval's lower bound."""
        return f"{pct([m[metric] for m in per_seed])} ({pct([m[metric + '_interval'].low for m in per_seed])})"

    baseline = [m["balanced_accuracy"] for m in results["none", "none", 0]]
    rows = []
    for (weights, augment, k), per_seed in results.items():
        balanced = [m["balanced_accuracy"] for m in per_seed]
        gains = 100 * (np.array(balanced) - baseline)
        worst = Counter(dataset.labels[int(np.argmin(m["recalls"]))] for m in per_seed).most_common(1)[0][0]
        seconds = k * np.median(view_seconds[augment]) if k else 0.0
        rows.append([weights, augment, str(k or "-"), *(pct(b) for b in balanced),
                     with_low(per_seed, "accuracy"), with_low(per_seed, "balanced_accuracy"),
                     f"{gains.mean():+.1f} ({gains.min():+.1f}..{gains.max():+.1f})",
                     f"{pct([m['recalls'].min() for m in per_seed])} ({worst})", f"{seconds:.0f}"])

    counts = dataset.counts()
    print(f"Protocol: {len(photos)} photos in {n_classes} classes ({args.data}; "
          f"{max(counts.values())} to {min(counts.values())} per class); zoolite's split "
          f"{'/'.join(str(round(f * 100)) for f in DEFAULT_FRACTIONS)} per seed, seeds "
          f"{seeds}: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test photos; "
          f"EfficientNet-Lite0 features (LiteRT float32); head: as --head {args.head} fits it.")
    print(f"CPU: {machine_info().cpu}, {len(os.sched_getaffinity(0))} cores. Features of one view of the training photos: "
          + ", ".join(f"{a} {np.median(s):.1f} s" for a, s in view_seconds.items()) + " (median over views and seeds).")
    print("Test split, %: bal sN = balanced accuracy of seed N; acc and bal = mean accuracy and balanced accuracy "
          "(mean lower bound of the 95% interval); Δbal = balanced accuracy minus that of weights none, augment "
          "none on the same seed, mean (min..max); worst recall = lowest class recall, mean over seeds (the class "
          "most often lowest); cost = seconds of view features (K x one view).\n")
    print(plain_table(["weights", "augment", "K", *(f"bal s{s}" for s in seeds), "acc (low)", "bal (low)",
                       "Δbal (min..max)", "worst recall", "cost s"], rows))
    print(f"\nRuntime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
