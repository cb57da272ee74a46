"""Which classifier on the frozen features answers the rare classes and new sources right (issue #24's ceiling)?

    .venv/bin/python benchmarks/head_fit.py [DATA] [--seeds 0,1,2] [--folds 5] [--cache DIR] [--backbone NAME]

What the head answers right bounds what any "none of these" gate can leave answered right
(benchmarks/rejection.py at zoolite 0.7: 88.8% of the Animals-10 photos, balanced, cow and sheep far below). This
compares, on the same photos, the recipe's head (``rejection.train_head`` as ``--head recipe`` trains it:
``training.build_head`` and ``training.fit``, class weights "auto", Adam with its learning-rate decay and early
stopping on the validation split) with an L2-regularised logistic regression fitted to convergence (scikit-learn's
L-BFGS, as ``logistic.fit_multinomial`` runs it for ``--head logistic``; class weights "auto", scikit-learn's
"balanced") on the unit-length features of the same training photos, at several regularisation strengths C
(smaller: stronger), and at the C among them whose fit has the lowest class-weighted log-loss on the validation split
(a rule a run could apply: the linear-probe protocol of Radford et al. 2021, which sweeps C on validation photos).
Nothing is rejected. zoolite 0.8 ships the logistic regression at C = 1, scikit-learn's default, as ``--head logistic``
(the default).

The protocol of benchmarks/rejection.py (its features, cached in --cache; its folds and scenarios):

- *in-source*: every Animals-10 photo of DATA (``crit-`` and unprefixed) measured once, by the classifier of the
  fold that left it out (cross-fitted over --folds folds of every photo, zoolite's split of the rest);
- *held-out source*: every photo of one source (``pyis-``, ``c101-``, ``crit-``), by a classifier trained
  without that source: photos from a camera or collection the model never saw.

Printed: balanced accuracy (the mean over the classes of the share answered right) and the lowest class, mean
over seeds (min-max), and each class's share for the head and for the C chosen on the validation split. The grid
of C ends at 10, where that choice mostly lands: a weaker regularisation might fit the validation photos better.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rejection import ANIMALS10, HELD_OUT, IN_SOURCE, SHARED, features, source, spread, train_head  # noqa: E402

import numpy as np  # noqa: E402

from zoolite.model.logistic import MAX_ITERATIONS, fit_multinomial, softmax, unit  # noqa: E402
from zoolite.model.rejection import folds  # noqa: E402

STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0)  # C, scikit-learn's inverse regularisation strength
HEAD, CHOSEN = "zoolite's head (recipe)", "logistic, C chosen on val"


def logistic(x, y, n: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of zoolite's logistic regression (``fit_multinomial``) on the unit-length features, each photo
    weighing its class's weight "auto" (scikit-learn's "balanced")."""
    from zoolite.model.training import class_weights

    weights = class_weights(y, n)
    kernel, bias, iterations = fit_multinomial(unit(x), y, n, c, np.array([weights[label] for label in y]))
    if iterations >= MAX_ITERATIONS:  # fit_multinomial keeps scikit-learn's warning quiet
        print(f"logistic regression at C={c:g}: not converged in {iterations} iterations", file=sys.stderr)
    return kernel, bias


def logits(fitted, x) -> np.ndarray:
    kernel, bias = fitted
    return unit(x) @ kernel + bias


def weighted_log_loss(fitted, x, y) -> float:
    """The validation photos' log-loss, each class weighing as much in total (as the balanced fit weighs them); a
    class the fit never saw has a probability near 0 (``fit_multinomial``'s bias)."""
    p = softmax(logits(fitted, x))[np.arange(len(y)), y]
    counts = np.bincount(y)
    return float(np.sum(-np.log(np.maximum(p, 1e-12)) / counts[y]) / np.count_nonzero(counts))


def answers(x_tr, y_tr, x_va, y_va, x_te, n: int, seed: int) -> dict[str, np.ndarray]:
    """Each classifier's top class for the photos ``x_te``."""
    out = {HEAD: train_head(x_tr, y_tr, x_va, y_va, n, seed, how="recipe").predict(x_te.astype(np.float32),
                                                                                  verbose=0).argmax(1)}
    fitted = {c: logistic(x_tr, y_tr, n, c) for c in STRENGTHS}
    for c, model in fitted.items():
        out[f"logistic, C={c:g}"] = logits(model, x_te).argmax(1)
    best = min(STRENGTHS, key=lambda c: weighted_log_loss(fitted[c], x_va, y_va))
    out[CHOSEN] = out[f"logistic, C={best:g}"]
    return out


def measure(dataset, x_all: np.ndarray, seeds: list[int], fold_count: int) -> dict:
    """shares[classifier][scenario][seed]: each class's share answered right (NaN: no photo of it there)."""
    from zoolite.config import DEFAULT_FRACTIONS
    from zoolite.dataset.split import split_dataset

    row_of, n = {p: i for i, (p, _) in enumerate(dataset.files)}, len(dataset.class_dirs)

    def take(items):
        return x_all[[row_of[p] for p, _ in items]], np.array([label for _, label in items], int)

    shares: dict = {}
    for seed in seeds:
        fold_of = folds(np.array([label for _, label in dataset.files]), n, seed, fold_count)
        measured: dict = {}  # scenario -> [(classifier -> answers, labels)]
        for held, fold in [(None, k) for k in range(fold_count)] + [(h, None) for h in HELD_OUT]:
            pool = [f for f, k in zip(dataset.files, fold_of) if k != fold] if held is None \
                else [f for f in dataset.files if source(f[0]) != held]
            split = split_dataset(dataclasses.replace(dataset, files=pool), DEFAULT_FRACTIONS, seed)
            (x_tr, y_tr), (x_va, y_va) = take(split.train), take(split.val)
            x_te, y_te = take([f for f, k in zip(dataset.files, fold_of) if k == fold and source(f[0]) in ANIMALS10]
                              if held is None else [f for f in dataset.files if source(f[0]) == held])
            measured.setdefault(held or IN_SOURCE, []).append((answers(x_tr, y_tr, x_va, y_va, x_te, n, seed), y_te))
        for scenario, parts in measured.items():
            labels = np.concatenate([y for _, y in parts])
            for name in parts[0][0]:
                right = np.concatenate([given[name] for given, _ in parts]) == labels
                shares.setdefault(name, {}).setdefault(scenario, {})[seed] = np.array(
                    [right[labels == c].mean() if np.any(labels == c) else np.nan for c in range(n)])
    return shares


def report(shares: dict, class_names: list[str], seeds: list[int]) -> None:
    from zoolite.report.tables import plain_table

    rows = []
    for group, scenarios in {"Animals-10 photos, in-source": [IN_SOURCE],
                             "held-out sources (each class of each)": list(HELD_OUT)}.items():
        for name in shares:
            per_seed = [np.concatenate([shares[name][s][seed] for s in scenarios]) for seed in seeds]
            per_seed = [v[~np.isnan(v)] for v in per_seed]
            rows.append([group, name, spread([v.mean() for v in per_seed]), spread([v.min() for v in per_seed])])
    print(plain_table(["photos", "classifier", "balanced accuracy", "lowest class"], rows))
    print()
    shown = [HEAD, CHOSEN]
    class_rows = [[scenario, name, *(spread([shares[shown_as][scenario][seed][c] for seed in seeds])
                                     for shown_as in shown)]
                  for scenario in [IN_SOURCE, *HELD_OUT] for c, name in enumerate(class_names)
                  if not np.isnan(shares[HEAD][scenario][seeds[0]][c])]
    print(plain_table(["photos", "class", *shown], class_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "animals10-large"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5, choices=range(2, 11), metavar="2-10")
    parser.add_argument("--cache", help="folder for the cached features (default: a temporary one)")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="whose features (default: %(default)s)")
    args = parser.parse_args()
    started = time.perf_counter()

    from zoolite.dataset.scan import scan_dataset
    from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights

    spec = get_backbone(args.backbone)
    dataset = scan_dataset(args.data)
    photos = [p for p, _ in dataset.files]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        x_all = features(lambda: build_feature_extractor(spec, resolve_weights(spec, None)), spec, "classes",
                         dataset.root, photos, cache)
    seeds = [int(s) for s in args.seeds.split(",")]
    shares = measure(dataset, x_all, seeds, args.folds)
    print(f"{len(photos)} photos of {args.data}, {len(dataset.class_dirs)} classes; {spec.name} features; "
          f"seeds {seeds}; in-source cross-fitted over {args.folds} folds; held-out sources {', '.join(HELD_OUT)}. "
          "% mean over seeds (min-max); nothing rejected.\n")
    report(shares, dataset.labels, seeds)
    print(f"\nruntime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
