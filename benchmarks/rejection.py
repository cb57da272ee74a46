"""Benchmark of "none of these" (open-set rejection): the method zoolite ships against the old one and the usual ones.

One run, on the features of --backbone (default EfficientNet-Lite0) computed once (zoolite's extractor, cached in
--cache), with those of one augmented view of each photo (``--augment standard``'s recipe: flip, rotation, zoom and
contrast).
animals10-large mixes sources, told apart by file-name prefix: ``crit-`` (Animals-10 cats, horses
and squirrels), ``pyis-`` (dogs from Dogs vs Cats), ``c101-`` (Caltech-101 butterflies, elephants
and roosters) and the rest (Animals-10 photos, 24 a class). Per seed, four scenarios (the first in
--folds folds), each fold with its own head fitted once as a run fits it (``train_head``: by default a logistic
regression, ``logistic.fit_logistic_head``; class weights "auto") shared by every method:

- *in-source*, cross-fitted over --folds folds of all photos (stratified by class, seeded): per fold,
  zoolite's stratified 70/15/15 split of the other folds' photos (``split.split_dataset``; its test part
  unused), measured on the fold's Animals-10 photos (``crit-`` and unprefixed), so that every Animals-10
  photo is measured once, by a head and gate that did not see it (a rare class's 24 photos, where one
  test split held 1 to 5), and on every photo of the two collections of other things (ImageNet photos,
  Caltech-101 photos; each fold's model's share, averaged). With --folds 1: one split, its test part;
- *held-out source* h in pyis, c101, crit: the same split of the photos NOT from h (its test part
  unused, so the head and gate see as many photos as zoolite would train on), measured on every
  photo of h: photos of the classes from a source the model never saw.

Each method's threshold keeps --keep-rate of the class photos by its own rule (the rule column).
Methods named "features + ImageNet view a:b" compare photos by their unit-length features and, weighed b
against a, the backbone's ImageNet probabilities scaled to unit length (``rejection.ImageNetView``), as
zoolite ships at 1.5:1. Methods ending "views of small classes" (or "of every class") add, to the prototypes of
the classes with fewer gate photos than the median class (or of every class), each photo's augmented view, in its
photo's fold (issue #24's candidate: prototypes enriched with augmented views of the small classes).
The shipped method is ``zoolite.model.rejection``'s ``score_class_photos`` (once a scenario), ``calibrate`` (per
keep rate and --other) and ``scores``, called on the head as a run calls them; the other methods are written
here. With --other (the old gate and the shipped one), the gate is also fitted on the calibration half of one
collection (``split.split_other``, seeded) and measured on the other collection entirely. Also:
each method's scores at a threshold that rejects 92% of the pooled collections (separability, whatever the
threshold rule), a sweep of the shipped method's keep rate, the winner by a stated rule, the kept share per class
(and the share kept and answered right), and the size the gate adds.

    .venv/bin/python benchmarks/rejection.py [DATA] [--imagenet DIR] [--caltech DIR]
        [--seeds 0,1,2] [--folds 5] [--keep-rate 0.90] [--keep-rates 0.85,0.9,0.92,0.95,0.97] [--cache DIR]
        [--backbone efficientnet_lite0]

Its output with the defaults: benchmarks/rejection.txt.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# OpenBLAS otherwise starts a thread per host core, not per core this process may use: a
# 1 x 1280 matmul then takes milliseconds instead of microseconds.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import numpy as np  # noqa: E402

from zoolite.model.logistic import softmax, unit  # noqa: E402
from zoolite.model.rejection import FEATURES_ANGLE, FOLDS, GATE_SLOPE, SHRINKAGE_PHOTOS, ImageNetView, choose_threshold, \
    fit_gate, fit_temperature, folds, kmeans, normalisation  # noqa: E402

SHARED = Path("/work/shared/data")
HELD_OUT = {"pyis": "Dogs vs Cats", "c101": "Caltech-101", "crit": "Animals-10 (crit-)"}  # sources left out in turn
ANIMALS10 = ("dev", "crit")  # the in-source test photos measured: Animals-10's own
COLLECTIONS = ("ImageNet", "Caltech")
IN_SOURCE = "in-source"
SEPARATION = 0.92  # separability: kept shares at the threshold that rejects this share of other things
BAR = 0.90  # the winner rule: methods rejecting at least this share of each collection (no --other)


def cached_features(compute, name: str, root: Path, photos: list[str], cache: Path,
                    verbose: bool = False) -> tuple[np.ndarray, float]:
    """The features of ``photos`` under ``root`` and the seconds they took, computed once by ``compute(paths, out)``
    (which writes the .npy ``out``) into ``cache``: ``name.npy``, listed with the photos and the seconds in
    ``name.json``, computed again when the list changes. With ``verbose``, the seconds are said on stderr."""
    out, listing = cache / f"{name}.npy", cache / f"{name}.json"
    if not (out.exists() and listing.exists() and json.loads(listing.read_text())["photos"] == photos):
        start = time.perf_counter()
        compute([root / p for p in photos], out)
        seconds = time.perf_counter() - start
        listing.write_text(json.dumps({"photos": photos, "seconds": seconds}))
        if verbose:
            print(f"features {name}: {seconds:.1f} s", file=sys.stderr)
    return np.load(out), json.loads(listing.read_text())["seconds"]


def features(extractor, spec, name: str, root: Path, photos: list[str], cache: Path, view=None) -> np.ndarray:
    """The features of ``photos`` under ``root`` (each made ``view``, if given) by the backbone ``spec``, Keras's
    ``extractor()``, computed once into ``cache`` as ``{spec.name}-{name}`` (``cached_features``)."""
    from zoolite.model.features import extract_keras

    def compute(paths, out):
        extract_keras(extractor(), paths, spec.input_size, out, view=view)
    return np.asarray(cached_features(compute, f"{spec.name}-{name}", root, photos, cache)[0], np.float64)


def source(path: str) -> str:
    """Where a class photo comes from, by its file-name prefix ('dev': Animals-10's own, unprefixed)."""
    name = Path(path).name
    return next((s for s in HELD_OUT if name.startswith(f"{s}-")), "dev")


def train_head(x, y, val_x, val_y, n_classes: int, seed: int, how: str | None = None, weights: str | None = None,
               views: Sequence[np.ndarray] = ()):
    """The head fitted on features as a run fits it (``--head`` ``how``, default: a run's; class weights ``weights``,
    default: as configured). ``views``: features of augmented views of the same photos (rows as ``x``), as
    ``--augment`` makes them: the logistic head fits each beside its photo, the recipe's draws one version of each
    photo an epoch (``augmentation.Views``)."""
    import keras

    from zoolite.config import TrainConfig
    from zoolite.model.augmentation import Views
    from zoolite.model.logistic import fit_logistic_head
    from zoolite.model.training import build_head, class_weights, fit, one_hot

    keras.utils.set_random_seed(seed)
    recipe = TrainConfig(head=how or TrainConfig().head)
    by_class = class_weights(y, n_classes, weights or recipe.class_weights)
    if recipe.head == "logistic":  # as zoolite.runs.stages._train_head fits it: every view beside its photo
        head = build_head(x.shape[1], n_classes, 0.0, unit_features=True)
        fit_logistic_head(head, (np.concatenate([x, *views]), np.tile(y, 1 + len(views))), (val_x, val_y),
                          recipe.head_c, by_class, len(views))
        return head
    head = build_head(x.shape[1], n_classes, recipe.dropout)
    labels, versions = one_hot(y, n_classes), [v.astype(np.float32) for v in (x, *views)]
    train = Views(versions, labels, recipe.batch_size, seed) if len(views) else (versions[0], labels)
    fit(head, train, (val_x.astype(np.float32), one_hot(val_y, n_classes)), recipe, verbose=0, weights=by_class)
    return head


# --- the methods' pieces (NumPy) -------------------------------------------------------------------

def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def logsumexp(z):
    top = z.max(1)
    return top + np.log(np.exp(z - top[:, None]).sum(1))


# Similarity builders: (unit-length gate features, labels, classes, rng) -> similarity(x): (photos, classes).

def by_means(u, y, n, rng):
    means = unit(np.stack([u[y == c].mean(0) for c in range(n)]))
    return lambda x: unit(x) @ means.T


def by_centroids(per_class):
    """Cosine similarity to each class's nearest centroid, ``per_class(photos)`` centroids a class."""
    def build(u, y, n, rng):
        found = [kmeans(u[y == c], per_class(int(np.sum(y == c))), rng) for c in range(n)]
        bank, owner = np.concatenate(found), np.repeat(np.arange(n), [len(f) for f in found])

        def similarity(x):
            s = unit(x) @ bank.T
            return np.stack([s[:, owner == c].max(1) for c in range(n)], 1)
        return similarity
    return build


by_16_centroids = by_centroids(lambda photos: 16)
by_sized_centroids = by_centroids(lambda photos: int(np.clip(photos // 12, 1, 16)))


def by_mix(u, y, n, rng):
    means, centroids = by_means(u, y, n, rng), by_16_centroids(u, y, n, rng)
    return lambda x: 0.5 * (means(x) + centroids(x))


def by_knn(u, y, n, rng, k: int = 5):
    def similarity(x):
        s = unit(x) @ u.T
        return np.stack([np.sort(s[:, y == c], 1)[:, -k:].mean(1) for c in range(n)], 1)
    return similarity


def by_mahalanobis(u, y, n, rng, dims: int = 128, shrinkage: float = 0.1):
    """Relative Mahalanobis (minus the class distance, plus the distance to all the photos' Gaussian) in
    the top ``dims`` principal components, covariances shrunk toward their mean variance."""
    centre = u.mean(0)
    z0 = u - centre
    basis = np.linalg.eigh(z0.T @ z0)[1][:, ::-1][:, :dims]
    z = z0 @ basis
    means = np.stack([z[y == c].mean(0) for c in range(n)])

    def whitening(rows):
        cov = rows.T @ rows / len(rows)
        cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / dims * np.eye(dims)
        return np.linalg.cholesky(np.linalg.inv(cov))
    within, overall = whitening(z - means[y]), whitening(z)
    white_means = means @ within

    def similarity(x):
        q = (unit(x) - centre) @ basis
        w = q @ within
        to_class = (w ** 2).sum(1)[:, None] - 2 * w @ white_means.T + (white_means ** 2).sum(1)[None]
        return ((q @ overall) ** 2).sum(1)[:, None] - to_class
    return similarity


def share_threshold(top, keep: float) -> float:
    """The highest threshold that keeps ``keep`` of these photos (the old rule)."""
    ordered = np.sort(top)
    return float(ordered[int(np.floor(len(ordered) * (1 - keep) + 1e-9))])


def old_gate_shape(similarity, other_similarity):
    """The old gate's (slope, centre): without --other, centred on the lowest 5% of the validation photos'
    raw similarities, as steep as their spread allows; with it, zoolite's logistic regression."""
    if other_similarity is not None:
        return fit_gate(similarity, other_similarity)
    return 4.0 / max(float(np.subtract(*np.percentile(similarity, [75, 25]))), 1e-3), float(np.percentile(similarity, 5))


# --- the methods: (scenario, keep rates, --other features or None) -> {keep: (score(x) -> (top, class), threshold)}

@dataclasses.dataclass
class Scenario:
    name: str  # IN_SOURCE or the held-out source
    seed: int
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_va: np.ndarray
    y_va: np.ndarray
    classifier: object  # keras.Model whose last layer is the head
    imagenet: ImageNetView  # the backbone's ImageNet classifier
    gate_views: np.ndarray  # the features of one augmented view of each gate photo (rows as gate_x)
    temperature: float = 1.0
    z_cache: dict = dataclasses.field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.classifier.output_shape[-1]

    @functools.cached_property
    def gate_x(self):
        return np.concatenate([self.x_tr, self.x_va])

    @functools.cached_property
    def gate_y(self):
        return np.concatenate([self.y_tr, self.y_va])

    @functools.cached_property
    def scored(self):
        """zoolite's prototypes and out-of-sample class-photo scores (``rejection.score_class_photos``, as
        the gate stage starts): the same for every keep rate and --other, so computed once."""
        from zoolite.model import rejection

        return rejection.score_class_photos(self.classifier, self.gate_x, self.gate_y, self.x_va, self.y_va,
                                            self.seed, self.imagenet)

    @functools.cached_property
    def logits(self):
        """The head's logits of features, as zoolite's gate computes them."""
        from zoolite.model import rejection

        return rejection._logits(self.classifier)

    def probabilities(self, x):
        return softmax(self.logits(x) / self.temperature)

    def vectors(self, x, imagenet_weight: float):
        """Unit-length features and, weighed ``imagenet_weight`` against them, the ImageNet view beside them."""
        if not imagenet_weight:
            return x
        return np.concatenate([unit(x), imagenet_weight * self.imagenet(x)], 1)

    def enriched(self, which: str | None) -> np.ndarray:
        """Which gate photos' augmented views join their class's prototypes: none, those of the classes with
        fewer gate photos than the median class ("small"), or all."""
        counts = np.bincount(self.gate_y, minlength=self.n)
        return {None: np.zeros(self.n, bool), "small": counts < np.median(counts),
                "all": np.ones(self.n, bool)}[which][self.gate_y]

    def z(self, build, imagenet_weight: float = 0.0, views: str | None = None):
        """Per-class normalised similarity: (out-of-fold z of the gate photos, z(x) by prototypes of all of them);
        prototypes of the photos and of the augmented views of those ``enriched(views)``, each view in its
        photo's fold."""
        key = (build, imagenet_weight, views)
        if key not in self.z_cache:
            rng, x, y, n = np.random.default_rng(self.seed), self.vectors(self.gate_x, imagenet_weight), self.gate_y, self.n
            extra = self.enriched(views)
            v = self.vectors(self.gate_views, imagenet_weight) if extra.any() else x

            def built(rows):
                joined = rows & extra
                return build(unit(np.concatenate([x[rows], v[joined]])), np.concatenate([y[rows], y[joined]]), n, rng)
            fold = folds(y, n, self.seed)
            oof = np.empty((len(y), n))
            for f in range(FOLDS):
                oof[fold == f] = built(fold != f)(x[fold == f])
            mean, sd = normalisation(oof[np.arange(len(y)), y], y, n)
            final = built(np.ones(len(y), bool))
            self.z_cache[key] = ((oof - mean) / sd,
                                 lambda features: (final(self.vectors(features, imagenet_weight)) - mean) / sd)
        return self.z_cache[key]


def old_gate(sc: Scenario, keeps, other):
    """The old shipped gate: one sigmoid of the similarity to the nearest of 16 centroids of each class
    (of the training photos), threshold keeping ``keep`` of the validation photos."""
    nearest = by_16_centroids(unit(sc.x_tr), sc.y_tr, sc.n, np.random.default_rng(sc.seed))
    slope, centre = old_gate_shape(nearest(sc.x_va).max(1), None if other is None else nearest(other).max(1))

    def score(x):
        p = sc.probabilities(x)
        return p.max(1) * sigmoid(slope * (nearest(x).max(1) - centre)), p.argmax(1)
    top = score(sc.x_va)[0]
    return {keep: (score, share_threshold(top, keep)) for keep in keeps}


def z_gate(build, imagenet_weight: float = 0.0, views: str | None = None):
    """Top probability x sigmoid(GATE_SLOPE * best class z), per-class threshold out of fold; with
    ``imagenet_weight``, z of the features and the ImageNet view beside them, weighed so against them; with
    ``views``, prototypes enriched with augmented views (``Scenario.z``)."""
    def method(sc: Scenario, keeps, other):
        oof, z = sc.z(build, imagenet_weight, views)

        def score(x):
            p = sc.probabilities(x)
            return p.max(1) * sigmoid(GATE_SLOPE * z(x).max(1)), p.argmax(1)
        top = sc.probabilities(sc.gate_x).max(1) * sigmoid(GATE_SLOPE * oof.max(1))
        return {keep: (score, choose_threshold(top, sc.gate_y, sc.n, keep)) for keep in keeps}
    return method


def from_logits(kind: str):
    """The head alone: top calibrated probability, max logit or energy; per-class threshold on the validation photos."""
    def method(sc: Scenario, keeps, other):
        def score(x):
            logits = sc.logits(x)
            top = {"probability": lambda: softmax(logits / sc.temperature).max(1), "logit": lambda: logits.max(1),
                   "energy": lambda: logsumexp(logits / sc.temperature)}[kind]()
            return top, logits.argmax(1)
        top = score(sc.x_va)[0]
        return {keep: (score, choose_threshold(top, sc.y_va, sc.n, keep)) for keep in keeps}
    return method


def z_plus_energy(sc: Scenario, keeps, other):
    """Best class z (mix, out of fold) + energy, each in its spread on the validation photos; per-class
    threshold on the validation photos."""
    oof, z = sc.z(by_mix)
    oof_va = oof[len(sc.y_tr):]
    energy_va = logsumexp(sc.logits(sc.x_va) / sc.temperature)
    scale_z, mean_e, scale_e = oof_va.max(1).std(), energy_va.mean(), energy_va.std()

    def score(x):
        logits = sc.logits(x)
        return z(x).max(1) / scale_z + (logsumexp(logits / sc.temperature) - mean_e) / scale_e, logits.argmax(1)
    top = oof_va.max(1) / scale_z + (energy_va - mean_e) / scale_e
    return {keep: (score, choose_threshold(top, sc.y_va, sc.n, keep)) for keep in keeps}


def shipped(sc: Scenario, keeps, other):
    """zoolite.model.rejection's calibrate / scores, unchanged, on the scenario's class-photo scores
    (``Scenario.scored``): one calibration per keep rate."""
    from zoolite.model import rejection

    out = {}
    for keep in keeps:
        fitted = rejection.calibrate(sc.scored, other, keep)

        def score(x, fitted=fitted):
            s = rejection.scores(sc.classifier, x, sc.scored.prototypes, fitted)
            return s.max(1), s.argmax(1)
        out[keep] = (score, fitted.threshold)
    return out


SHIPPED, OLD = "zoolite (shipped)", "old: 16 centroids, global"
RATIO = float(1 / np.tan(FEATURES_ANGLE))  # the shipped weights of the features and the ImageNet view
# name: (method, its threshold rule, uses --other)
METHODS = {
    OLD: (old_gate, "keep of val", True),
    "z: class means": (z_gate(by_means), "per class, oof", False),
    "z: 16 centroids": (z_gate(by_16_centroids), "per class, oof", False),
    "z: centroids by class size": (z_gate(by_sized_centroids), "per class, oof", False),
    "z: mix (mean + 16 centroids)": (z_gate(by_mix), "per class, oof", False),
    "z: kNN (k=5)": (z_gate(by_knn), "per class, oof", False),
    "z: rel. Mahalanobis (shrunk)": (z_gate(by_mahalanobis), "per class, oof", False),
    "z: ImageNet view alone, mix": (z_gate(by_mix, 1e6), "per class, oof", False),
    "z: features + ImageNet view 1:1, mix": (z_gate(by_mix, 1.0), "per class, oof", False),
    "z: features + ImageNet view 1:1.5, mix": (z_gate(by_mix, 1.5), "per class, oof", False),
    f"z: features + ImageNet view {RATIO:g}:1, kNN": (z_gate(by_knn, 1 / RATIO), "per class, oof", False),
    f"z: features + ImageNet view {RATIO:g}:1, mix": (z_gate(by_mix, 1 / RATIO), "per class, oof", False),
    f"z: features + ImageNet view {RATIO:g}:1, mix, views of small classes": (z_gate(by_mix, 1 / RATIO, "small"),
                                                                             "per class, oof", False),
    f"z: features + ImageNet view {RATIO:g}:1, mix, views of every class": (z_gate(by_mix, 1 / RATIO, "all"),
                                                                           "per class, oof", False),
    "top probability (T)": (from_logits("probability"), "per class, val", False),
    "max logit": (from_logits("logit"), "per class, val", False),
    "energy": (from_logits("energy"), "per class, val", False),
    "z (mix) + energy": (z_plus_energy, "per class, val", False),
    SHIPPED: (shipped, "zoolite's", True),
}


# --- measuring ---------------------------------------------------------------------------------------

def count_hits(record: dict, figure: str, key, hits: np.ndarray) -> None:
    """Count ``hits`` (booleans) into ``record[figure][key]``: [hits, photos], summed over the folds."""
    counted = record.setdefault(figure, {}).setdefault(key, [0, 0])
    counted[0] += int(np.sum(hits))
    counted[1] += len(hits)


def hit_share(counted) -> float:
    """hits / photos (NaN for none)."""
    return counted[0] / counted[1] if counted[1] else float("nan")


def measure(record: dict, scenario: str, score, threshold: float, sets: dict, memo: dict) -> None:
    """Add one scenario's figures to ``record`` (one method, direction, keep rate and seed)."""
    def scored(name):
        key = (id(score), name)
        if key not in memo:
            memo[key] = (score, score(sets[name][0]))  # the score function kept alive: its id stays unique
        return memo[key][1]

    negatives = np.concatenate([scored(c)[0] for c in COLLECTIONS])
    separating = np.quantile(negatives, SEPARATION)
    in_source = scenario == IN_SOURCE
    where = "A10" if in_source else "held"
    (top, predicted), labels = scored(where), sets[where][1]
    keep, sep_keep = top >= threshold, top >= separating
    right = keep & (predicted == labels)
    for c in np.unique(labels):
        key = c if in_source else (scenario, c)
        for figure, hits in (("kept", keep), ("right", right), ("sep", sep_keep)):
            count_hits(record, f"{where} {figure}", key, hits[labels == c])
    if in_source:
        for name in sets:
            if name != "A10":
                count_hits(record, "rejected", name, scored(name)[0] < threshold)


def hit_shares(record: dict, figure: str) -> list[float]:
    return [hit_share(counted) for counted in record[figure].values()]


CRITERIA = {
    "A10 bal kept": lambda r: np.mean(hit_shares(r, "A10 kept")),
    "A10 worst": lambda r: np.min(hit_shares(r, "A10 kept")),
    "A10 bal right": lambda r: np.mean(hit_shares(r, "A10 right")),
    "held bal kept": lambda r: np.mean(hit_shares(r, "held kept")),
    "held worst": lambda r: np.min(hit_shares(r, "held kept")),
    "held bal right": lambda r: np.mean(hit_shares(r, "held right")),
    "rej ImageNet": lambda r: hit_share(r["rejected"]["ImageNet"]),
    "rej Caltech": lambda r: hit_share(r["rejected"]["Caltech"]),
    "sep A10": lambda r: np.mean(hit_shares(r, "A10 sep")),
    "sep held": lambda r: np.mean(hit_shares(r, "held sep")),
}


def values(per_seed: dict, criterion) -> np.ndarray:
    pick = CRITERIA[criterion] if isinstance(criterion, str) else criterion
    return np.array([pick(r) for r in per_seed.values()])


def spread(v) -> str:
    v = 100 * np.asarray(v)
    return f"{v.mean():.1f} ({v.min():.1f}-{v.max():.1f})"


def mean(per_seed: dict, criterion) -> float:
    return float(values(per_seed, criterion).mean())


def main() -> None:
    from zoolite.config import RunConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "animals10-large"))
    parser.add_argument("--imagenet", default=str(SHARED / "unlabelled-photos"), help="other things, collection 1")
    parser.add_argument("--caltech", default=str(SHARED / "other-things-dev"), help="other things, collection 2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5, choices=range(1, 11), metavar="1-10",
                        help="in-source cross-fitting folds (1: one split)")
    parser.add_argument("--keep-rate", type=float, default=RunConfig().keep_rate,
                        help="of the main tables (default: zoolite's, %(default)s)")
    parser.add_argument("--keep-rates", default="0.85,0.90,0.92,0.95,0.97", help="the sweep")
    parser.add_argument("--cache", help="folder for the cached features (default: a temporary one)")
    parser.add_argument("--backbone", default="efficientnet_lite0",
                        choices=("efficientnet_lite0", "efficientnet_lite2"),
                        help="whose features (the backbones with an ImageNet classifier; default: %(default)s)")
    args = parser.parse_args()
    started = time.perf_counter()

    import keras

    from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights
    from zoolite.config import DEFAULT_FRACTIONS, TrainConfig
    from zoolite.dataset.scan import scan_dataset, scan_photos
    from zoolite.dataset.split import split_dataset, split_other
    from zoolite.model.augmentation import view_maker
    from zoolite.report.tables import plain_table

    seeds = [int(s) for s in args.seeds.split(",")]
    sweep = sorted({float(k) for k in args.keep_rates.split(",")})
    keeps = sorted({*sweep, args.keep_rate})
    spec = get_backbone(args.backbone)
    extractor = functools.cache(lambda: build_feature_extractor(spec, resolve_weights(spec, None)))
    imagenet = ImageNetView(*spec.imagenet_classifier())
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        dataset = scan_dataset(args.data)
        photos = [p for p, _ in dataset.files]
        x_all = features(extractor, spec, "classes", dataset.root, photos, cache)
        # one augmented view of each photo, by --augment standard's recipe ("views of ..." methods)
        x_views = features(extractor, spec, "classes-standard1", dataset.root, photos, cache,
                           view_maker("standard", seed=1))
        others = {}
        for name, root in zip(COLLECTIONS, (Path(args.imagenet), Path(args.caltech))):
            listed = scan_photos(root)[0]
            others[name] = (root, listed, features(extractor, spec, name, root, listed, cache))
    row_of = {p: i for i, p in enumerate(photos)}
    names, n = dataset.labels, len(dataset.class_dirs)
    sources = {p: source(p) for p in photos}

    def take(items):
        return x_all[[row_of[p] for p, _ in items]], np.array([label for _, label in items], int)

    # results[method, --other collection or None][keep][seed] -> record
    results: dict = {}
    temperatures, counts, timings = [], {}, {}
    # per seed: the heads' top-1 hits on the in-source photos measured (all, and per Animals-10 class)
    accuracy, head_a10 = {seed: {} for seed in seeds}, {seed: {} for seed in seeds}  # [hits, photos] by key
    for seed in seeds:
        fold_of = folds(np.array([label for _, label in dataset.files]), n, seed, args.folds)
        halves = {}
        for name, (root, listed, x_other) in others.items():
            split = split_other(root, listed, seed)
            index = {p: i for i, p in enumerate(listed)}
            halves[name] = tuple(x_other[[index[p] for p in half]] for half in (split.calibration, split.test))
        for held, fold in [(None, k) for k in range(args.folds)] + [(h, None) for h in HELD_OUT]:
            scenario = held or IN_SOURCE
            pool = [f for f, k in zip(dataset.files, fold_of) if k != fold] if held is None and args.folds > 1 \
                else [f for f in dataset.files if sources[f[0]] != held]
            split = split_dataset(dataclasses.replace(dataset, files=pool), DEFAULT_FRACTIONS, seed)
            (x_tr, y_tr), (x_va, y_va) = take(split.train), take(split.val)
            clock = time.perf_counter()
            head = train_head(x_tr, y_tr, x_va, y_va, n, seed)
            inputs = keras.Input((x_tr.shape[1],))
            classifier = keras.Model(inputs, head(inputs))  # rejection reads the head as the last layer
            timings["heads"] = timings.get("heads", 0) + time.perf_counter() - clock
            views = x_views[[row_of[p] for p, _ in split.train + split.val]]
            sc = Scenario(scenario, seed, x_tr, y_tr, x_va, y_va, classifier, imagenet, views)
            sc.temperature = fit_temperature(sc.logits(x_va), y_va)
            sets = {c: (others[c][2], None) for c in COLLECTIONS}
            if held is None:
                measured = split.test if args.folds == 1 else [f for f, k in zip(dataset.files, fold_of) if k == fold]
                sets["A10"] = take([f for f in measured if sources[f[0]] in ANIMALS10])
                sets.update({f"{c} half": (halves[c][1], None) for c in COLLECTIONS})
                x_te, y_te = take(measured)
                count_hits(accuracy[seed], "top-1", "all", sc.logits(x_te).argmax(1) == y_te)
                answers = sc.logits(sets["A10"][0]).argmax(1) == sets["A10"][1]
                for c in range(n):
                    count_hits(head_a10[seed], "top-1", c, answers[sets["A10"][1] == c])
                temperatures.append(sc.temperature)
            else:
                sets["held"] = take([f for f in dataset.files if sources[f[0]] == held])
            measured = sets["A10" if held is None else "held"][1]
            counts.setdefault(scenario, []).append((len(y_tr), len(y_va), len(measured)))
            memo: dict = {}
            for direction in (None, *COLLECTIONS):
                # with --other: every keep rate in-source (rejection), the main one for held-out sources
                rates = keeps if direction is None or held is None else [args.keep_rate]
                other = None if direction is None else halves[direction][0]
                for name, (method, _, uses_other) in METHODS.items():
                    if direction is not None and not uses_other:
                        continue
                    clock = time.perf_counter()
                    for keep, (score, threshold) in method(sc, rates, other).items():
                        record = results.setdefault((name, direction), {}).setdefault(keep, {}).setdefault(seed, {})
                        measure(record, scenario, score, threshold, sets, memo)
                    timings[name] = timings.get(name, 0) + time.perf_counter() - clock
            if held is None:
                prototypes = sc.scored.prototypes

    # --- report --------------------------------------------------------------------------------------
    a10_class = np.array([[head_a10[seed]["top-1"][c][1] for c in range(n)] for seed in seeds])  # photos a class
    a10_photos = a10_class.sum(1)
    head_alone = [[hit_share(head_a10[seed]["top-1"][c]) for c in range(n)] for seed in seeds]
    print(f"Protocol: {len(photos)} class photos ({args.data}), {n} classes; sources by file-name prefix: "
          + ", ".join(f"{s}- {sum(v == s for v in sources.values())}" for s in HELD_OUT)
          + f", Animals-10 dev {sum(v == 'dev' for v in sources.values())}. Seeds {seeds}; {spec.name} "
          f"features ({x_all.shape[1]}-d); "
          f"zoolite's split {'/'.join(str(round(f * 100)) for f in DEFAULT_FRACTIONS)}, one head per seed, scenario "
          "and fold "
          f"(--head {TrainConfig().head}, class weights auto). In-source head accuracy on the folds' photos "
          "(every source) "
          f"{spread([hit_share(accuracy[seed]['top-1']['all']) for seed in seeds])}%, temperature "
          f"{np.mean(temperatures):.2f} ({min(temperatures):.2f}-{max(temperatures):.2f}).")
    print(f"A10 = Animals-10 photos (dev + crit-), in-source, "
          + (f"cross-fitted over {args.folds} folds: each measured once" if args.folds > 1 else "of the test split")
          + f": {a10_photos.min()}-{a10_photos.max()} photos, {a10_class.min()}-{a10_class.max()} a class (a class "
          f"with {a10_class.min()} photos moves {100 / max(a10_class.min(), 1):.0f} points a photo). The head alone "
          f"(its top class, nothing rejected: what 'right' can reach) answers {spread(np.nanmean(head_alone, 1))}% of "
          f"them right, balanced; its lowest class {spread(np.nanmin(head_alone, 1))}%. held = every "
          "photo of a source the model never saw, per held-out class: "
          + "; ".join(f"{s} ({HELD_OUT[s]}): {counts[s][0][2]} photos, trained on {counts[s][0][0]}+{counts[s][0][1]}"
                      for s in HELD_OUT) + ".")
    print(f"Other things: {', '.join(f'{c} {len(others[c][1])} photos' for c in COLLECTIONS)}; without --other "
          "each is measured entirely. Figures: % mean over seeds (min-max); bal = mean over classes, worst = "
          "lowest class, right = kept and top-1 right (a rejected photo is a miss).")
    print("Threshold rules: keep of val = keeps --keep-rate of the validation photos; per class, oof/val = the "
          f"highest at which every class's kept share, shrunk toward the pooled one ({SHRINKAGE_PHOTOS} photos), is at least "
          "--keep-rate, out of fold over train+val (oof) or on the validation photos (val); z methods: "
          f"top probability x sigmoid({GATE_SLOPE:g} x best class z), z = similarity normalised per class by its "
          f"out-of-fold ({FOLDS} folds) mean and spread, shrunk.\n")

    plain = [name for name in METHODS]
    at = {name: results[name, None][args.keep_rate] for name in plain}
    print(f"1. Class photos kept and answered right, no --other; every threshold keeps {args.keep_rate:.0%} "
          "by its rule")
    columns = ["A10 bal kept", "A10 worst", "A10 bal right", "held bal kept", "held worst", "held bal right"]
    print(plain_table(["Method", "rule", *columns],
                      [[name, METHODS[name][1], *(spread(values(at[name], c)) for c in columns)] for name in plain]))
    print(f"\n2. Photos of other things rejected (same thresholds, no --other), and separability: kept shares at the "
          f"threshold that rejects {SEPARATION:.0%} of both collections pooled (per method and scenario)")
    columns = ["rej ImageNet", "rej Caltech", "sep A10", "sep held"]
    print(plain_table(["Method", "ImageNet rejected", "Caltech rejected", f"A10 bal kept @{SEPARATION:.0%}",
                       f"held bal kept @{SEPARATION:.0%}"],
                      [[name, *(spread(values(at[name], c)) for c in columns)] for name in plain]))

    print(f"\n3. With --other: the gate also fitted on the calibration half of one collection (threshold "
          f"keeps {args.keep_rate:.0%}); rejected: that collection's held-out half, and the other collection entirely")
    rows = []
    for name in (OLD, SHIPPED):
        for calibrated, unseen in (COLLECTIONS, COLLECTIONS[::-1]):
            r = results[name, calibrated][args.keep_rate]
            rows.append([name, f"{calibrated} half", *(spread(values(r, c)) for c in
                                                       ("A10 bal kept", "A10 worst", "held bal kept", "held worst")),
                         spread(values(r, lambda r: hit_share(r["rejected"][f"{calibrated} half"]))),
                         spread(values(r, lambda r: hit_share(r["rejected"][unseen])))])
    print(plain_table(["Method", "--other", "A10 bal kept", "A10 worst", "held bal kept", "held worst",
                       "same half rej", "other coll. rej"], rows))

    print(f"\n4. Sweep of the shipped method's keep rate (A10, held, ImageNet and Caltech: no --other; "
          "X->Y: --other = half of X, all of Y rejected)")
    rows = []
    for keep in sweep:
        r = results[SHIPPED, None][keep]
        rows.append([f"{keep:.2f}", *(spread(values(r, c)) for c in
                                      ("A10 bal kept", "A10 worst", "held bal kept", "held worst", "A10 bal right",
                                       "held bal right", "rej ImageNet", "rej Caltech")),
                     *(spread(values(results[SHIPPED, a][keep], lambda r, b=b: hit_share(r["rejected"][b])))
                       for a, b in (COLLECTIONS, COLLECTIONS[::-1]))])
    print(plain_table(["keep", "A10 bal kept", "A10 worst", "held bal kept", "held worst", "A10 right", "held right",
                       "ImageNet rej", "Caltech rej", "IN->CT rej", "CT->IN rej"], rows))

    print(f"\n5. Winner rule: the highest held-out-source balanced kept share among (method, keep rate) pairs of the "
          f"sweep that reject at least {BAR:.0%} of each collection without --other, means over seeds. Each method "
          "at its best qualifying keep rate:")
    best = {}
    for name in plain:
        passing = [k for k in sweep if all(mean(results[name, None][k], f"rej {c}") >= BAR for c in COLLECTIONS)]
        if passing:
            best[name] = max(passing, key=lambda k: mean(results[name, None][k], "held bal kept"))
    ranked = sorted(best, key=lambda m: -mean(results[m, None][best[m]], "held bal kept"))
    print(plain_table(["Method", "keep", "held bal kept", "held worst", "A10 bal kept", "A10 worst", "ImageNet rej",
                       "Caltech rej"],
                      [[m, f"{best[m]:.2f}", *(spread(values(results[m, None][best[m]], c)) for c in
                                               ("held bal kept", "held worst", "A10 bal kept", "A10 worst",
                                                "rej ImageNet", "rej Caltech"))] for m in ranked]
                      + [[m, "none", *["-"] * 6] for m in plain if m not in best]))
    if ranked:
        winner = ranked[0]
        top = mean(results[winner, None][best[winner]], "held bal kept")
        behind = [m for m in ranked[1:3]] + ([SHIPPED] if SHIPPED in ranked[3:] else [])
        print(f"Winner: {winner} at keep rate {best[winner]:.2f} ({100 * top:.1f}% held-out balanced kept)"
              + "".join(f"; {m} at {best[m]:.2f}: {100 * (top - mean(results[m, None][best[m]], 'held bal kept')):.1f}"
                        " points lower" for m in behind) + "."
              + ("" if SHIPPED in best else f" {SHIPPED} rejects less than {BAR:.0%} at every keep rate of the sweep."))
    else:
        print(f"Winner: none; no method rejects {BAR:.0%} of each collection at any keep rate of the sweep.")

    print(f"\n6. Kept share (and kept and answered right) per class at keep rate {args.keep_rate:.2f}, no --other "
          "(% mean over seeds (min-max); photos a seed)")
    rows = []
    for c, label in enumerate(names):
        held = [s for s in HELD_OUT if any(sources[p] == s and y == c for p, y in dataset.files)]
        a10 = [[hit_share(r[figure][c]) if c in r[figure] else np.nan
                for r in results[m, None][args.keep_rate].values()]
               for m, figure in ((SHIPPED, "A10 kept"), (SHIPPED, "A10 right"), (OLD, "A10 kept"))]
        lso = [[np.mean([hit_share(r["held kept"][s, c]) for s in held])
                for r in results[m, None][args.keep_rate].values()]
               for m in (SHIPPED, OLD)] if held else [[], []]
        a10_n = a10_class[:, c]
        rows.append([label, f"{min(a10_n)}-{max(a10_n)}", spread([seed_head[c] for seed_head in head_alone]),
                     *(spread(np.array(v)[~np.isnan(v)]) if not np.all(np.isnan(v)) else "-" for v in a10),
                     ", ".join(held) or "-",
                     str(sum(sources[p] in held and y == c for p, y in dataset.files)) if held else "-",
                     *(spread(v) if held else "-" for v in lso)])
    print(plain_table(["Class", "A10 photos", "A10 head right", f"A10 {SHIPPED}", "A10 its kept and right",
                       f"A10 {OLD}", "held-out source",
                       "photos",
                       f"held {SHIPPED}", f"held {OLD}"], rows))

    view = imagenet.kernel.size + imagenet.bias.size
    print(f"\n7. What the gate adds to the file ({x_all.shape[1]:,}-d features; the head itself is "
          f"{x_all.shape[1] + 1:,} weights a class). "
          "zoolite's, as fitted at 10 classes: " + ", ".join(f"{a} {np.shape(getattr(prototypes, a))}" for a in
                                                  ("means", "centroids", "mean", "spread")) + ", and the gate's slope "
          f"and centre, as many a class at 100 classes; and once, the ImageNet classifier ({view:,} weights)")
    per_class = sum(np.asarray(getattr(prototypes, a)).size for a in ("means", "centroids", "mean", "spread")) // n
    rows = []
    for classes in (10, 100):
        for label, params in ((SHIPPED, per_class * classes + 2 + view), (OLD, 16 * x_all.shape[1] * classes + 2)):
            rows.append([f"{classes}", label, f"{params:,}", f"{params * 4 / 1e6:.2f}", f"{params / 1e6:.2f}"])
    print(plain_table(["classes", "gate", "+params", "MB float32", "MB int8"], rows))
    print("\nTime: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if v >= 1)
          + f"; runtime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
