"""Splitting a scanned dataset into train, val and test: stratified by class, seeded, saved as file lists.

Each group of copies of one photo (:mod:`zoolite.dataset.duplicates`) and each group that
``--group-by`` names lands whole in one split. The ``--other`` photos are split into halves
(:func:`split_other`), and :func:`even_sample` draws the integer modes' calibration sample evenly
over the classes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from zoolite.config import DEFAULT_FRACTIONS
from zoolite.dataset.duplicates import Duplicates, component_labels
from zoolite.dataset.scan import Dataset
from zoolite.errors import ZooliteError

SPLITS = ("train", "val", "test")
log = logging.getLogger(__name__)
MIN_CLASS_PHOTOS = 3  # one for each of train, val and test


@dataclass
class Split:
    """A stratified train/val/test split as file lists relative to the dataset root."""

    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]
    seed: int
    fractions: tuple[float, float, float]
    other: OtherSplit | None = None  # the --other photos, if given
    # The duplicate groups, each kept within one split (None: not looked for: --keep-duplicates, or a
    # split.json of before), and the photos of label conflicts, left out of every split.
    groups: list[list[str]] | None = None
    conflicts: list[tuple[str, int]] = field(default_factory=list)
    # --group-by: the pattern and the groups it named ({group name: sorted photos}; photos it does not match
    # are each their own group and are not listed), each kept within one split. None: not asked for.
    group_by: str | None = None
    user_groups: dict[str, list[str]] | None = None

    def subset(self, name: str) -> list[tuple[str, int]]:
        return getattr(self, name)

    def to_json(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions),
                **{name: [list(item) for item in self.subset(name)] for name in SPLITS},
                **({"other": asdict(self.other)} if self.other else {}),
                # extra keys, which older zoolite versions ignore
                **({"duplicate_groups": self.groups, "label_conflicts": [list(item) for item in self.conflicts]}
                   if self.groups is not None else {}),
                **({"user_groups": {"pattern": self.group_by, "groups": self.user_groups}}
                   if self.group_by is not None else {})}

    @classmethod
    def from_json(cls, obj: dict) -> "Split":
        return cls(*([tuple(item) for item in obj[name]] for name in SPLITS),
                   seed=obj["seed"], fractions=tuple(obj["fractions"]),
                   other=OtherSplit(**obj["other"]) if obj.get("other") else None,
                   groups=obj.get("duplicate_groups"),
                   conflicts=[tuple(item) for item in obj.get("label_conflicts", [])],
                   group_by=(obj.get("user_groups") or {}).get("pattern"),
                   user_groups=(obj.get("user_groups") or {}).get("groups"))

    def where(self) -> dict[str, str]:
        """Each split photo's split name."""
        return {path: name for name in SPLITS for path, _ in self.subset(name)}

    def group_counts(self) -> dict[str, tuple[int, int]]:
        """With --group-by: per split, (user groups, their photos) in it; photos in no group not counted."""
        where = self.where()
        counts = {name: [0, 0] for name in SPLITS}
        for photos in (self.user_groups or {}).values():
            placed = [where[p] for p in photos if p in where]  # label conflicts are in no split
            if placed:
                counts[placed[0]][0] += 1
                counts[placed[0]][1] += len(placed)
        return {name: tuple(n) for name, n in counts.items()}

    def test_groups(self) -> list[str]:
        """With --group-by: the names of the user groups in the test split, sorted."""
        where = self.where()
        return sorted(name for name, photos in (self.user_groups or {}).items()
                      if any(where.get(p) == "test" for p in photos))


@dataclass
class OtherSplit:
    """Photos of none of the classes (``--other``), relative to ``root``: the ``calibration`` half
    fits the rejection, the ``test`` half measures it."""

    root: str
    calibration: list[str]
    test: list[str]


def split_other(root: str | Path, photos: list[str], seed: int) -> OtherSplit:
    """Half the photos (rounded down) calibrate, the rest are held out; seeded, like the dataset's split."""
    order = [photos[i] for i in np.random.default_rng(seed).permutation(len(photos))]
    half = len(order) // 2
    return OtherSplit(str(root), sorted(order[:half]), sorted(order[half:]))


def even_sample(labels: list[int] | np.ndarray, n: int, seed: int) -> list[int]:
    """Indices of ``n`` items drawn evenly over the classes of ``labels`` (seeded): each class in turn
    gives one more, in a random order within the class, until ``n`` are drawn or all are."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=int)
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    drawn: list[int] = []
    while len(drawn) < min(n, len(labels)):
        for queue in queues:
            if queue and len(drawn) < n:
                drawn.append(int(queue.pop()))
    return drawn


def user_groups(paths, pattern: str) -> dict[str, list[str]]:
    """The groups ``--group-by PATTERN`` names among ``paths`` (relative to the data folder, with ``/``):
    the pattern is searched in each path, and its match (group 1 if it has a group, else the whole match)
    names the photo's group. Photos it does not match are left out (each is its own group)."""
    regex = re.compile(pattern)
    groups: dict[str, list[str]] = {}
    for path in paths:
        match = regex.search(path)
        if match is not None:
            name = match.group(1) if regex.groups else match.group(0)
            groups.setdefault(name if name is not None else match.group(0), []).append(path)
    return {name: sorted(photos) for name, photos in sorted(groups.items())}


def _units(paths: list[str], joined: list[list[str]]) -> list[list[str]]:
    """``paths`` partitioned so that each list of ``joined`` is within one part (the union that joins
    copies, :func:`zoolite.dataset.duplicates.component_labels`): sorted parts of sorted paths."""
    index = {path: i for i, path in enumerate(paths)}
    edges = []
    for members in joined:
        present = [index[p] for p in members if p in index]
        edges += [(present[0], other) for other in present[1:]]
    label = component_labels(len(paths), np.array(edges, int).reshape(-1, 2))
    parts: dict[int, list[str]] = {}
    for path, part in zip(paths, label):
        parts.setdefault(int(part), []).append(path)
    return sorted(sorted(part) for part in parts.values())


def split_dataset(dataset: Dataset, fractions=DEFAULT_FRACTIONS, seed: int = 0,
                  duplicates: Duplicates | None = None, group_by: str | None = None) -> Split:
    """Split per class (stratified), reproducibly for a given seed.

    Every class gets at least one test image, and one validation image when the
    validation fraction is above zero. With ``duplicates`` (:func:`zoolite.dataset.duplicates.find_duplicates`),
    each group of copies is one unit of its class and lands whole in one split, and the photos of a
    label conflict (a group in several class folders) are left out of every split; without, every
    photo is its own unit (as before duplicates were looked for).

    With ``group_by`` (a regular expression, :func:`user_groups`), the photos of each group it names
    land whole in one split too, as scikit-learn's group splitters do: a photo in a group of copies and
    in a user group joins both into one unit. A unit may then hold photos of several classes; it is
    split as a unit of its majority class (ties: the first class), each photo keeping its own label, and
    the fractions count units, not photos. A class whose photos all lie in one unit cannot be in both
    train and test, and is refused; one that has too few units of its own to fill every split is warned of
    when it ends up missing from train or test.
    """
    conflicted = set(duplicates.conflict_photos()) if duplicates else set()
    label_of = {path: label for path, label in dataset.files if path not in conflicted}
    named = user_groups(sorted(label_of), group_by) if group_by is not None else None
    units = _units(list(label_of), (duplicates.groups if duplicates else []) + list((named or {}).values()))
    if group_by is not None:
        _refuse_single_unit_classes(dataset, units, label_of, group_by, named)
    by_class: dict[int, list[list[str]]] = {}  # majority label -> units, sorted by their first photo
    for unit in units:
        labels = [label_of[p] for p in unit]
        by_class.setdefault(max(sorted(set(labels)), key=labels.count), []).append(unit)
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for label in range(len(dataset.class_dirs)):
        own = by_class.get(label, [])
        n = len(own)
        n_test = max(1, round(n * fractions[2]))
        n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
        if n - n_test - n_val < 1 and group_by is not None:
            # its photos lie in other classes' units too (checked above): fill train first, then test, then val
            n_test, n_val = (0, 0) if n < 2 else (1, 0) if n < 3 else (n_test, n_val)
        elif n - n_test - n_val < 1:
            distinct = " distinct" if duplicates and duplicates.groups else ""
            raise ZooliteError(
                f"{dataset.root / dataset.class_dirs[label]}: only {n} usable{distinct} image(s)"
                + (" (copies of one photo count once, label conflicts not at all)" if distinct else "")
                + f"; each class needs at least {MIN_CLASS_PHOTOS - (n_val == 0)} for the train/val/test split; "
                "add images")
        order = [own[i] for i in rng.permutation(n)]
        parts["test"] += [(p, label_of[p]) for unit in order[:n_test] for p in unit]
        parts["val"] += [(p, label_of[p]) for unit in order[n_test:n_test + n_val] for p in unit]
        parts["train"] += [(p, label_of[p]) for unit in order[n_test + n_val:] for p in unit]
    split = Split(parts["train"], parts["val"], parts["test"], seed, fractions,
                  groups=duplicates.groups if duplicates is not None else None,
                  conflicts=sorted((p, label) for p, label in dataset.files if p in conflicted),
                  group_by=group_by, user_groups=named)
    if group_by is not None:
        _warn_of_classes_missing_from_a_split(split, dataset.class_dirs)
        _warn_of_a_test_share_far_from_asked(split)
    return split


def _warn_of_a_test_share_far_from_asked(split: Split) -> None:
    """The fractions count groups, at least one per class: few groups, or groups of very different sizes, can
    leave the test split far smaller (its figures rest on few photos) or far larger (training loses them) than
    asked, which the user should know."""
    photos = len(split.train) + len(split.val) + len(split.test)
    share, asked = len(split.test) / photos, split.fractions[2]
    if not asked / 2 <= share <= 2 * asked:
        log.warning("--group-by %s: the test split holds %d of the %d photos (%.0f%%, asked %g%%) with seed %d: the "
                    "fractions count groups, at least one per class, and these are few or differ in size; a finer "
                    "pattern or another --seed may come closer", split.group_by, len(split.test), photos,
                    100 * share, 100 * asked, split.seed)


def _warn_of_classes_missing_from_a_split(split: Split, class_dirs: list[str]) -> None:
    present = {name: {label for _, label in split.subset(name)} for name in SPLITS}
    for label, name in enumerate(class_dirs):
        missing = [s for s in SPLITS if label not in present[s]]
        if missing:  # without validation photos its gate takes the pooled figures and training cannot stop on it
            log.warning("--group-by %s: class %s has no photos in %s with seed %d (its photos lie in few groups)%s; "
                        "try another --seed or a finer pattern", split.group_by, name, " or ".join(missing), split.seed,
                        "; its figures are not measured" if "test" in missing else
                        "; its \"none of these\" (and the recipe's early stopping) go without it" if "val" in missing
                        else "")


def _refuse_single_unit_classes(dataset: Dataset, units: list[list[str]], label_of: dict[str, int],
                                group_by: str, named: dict[str, list[str]]) -> None:
    """One line for the first class whose photos all lie in one unit (one --group-by group, with its copies)."""
    unit_of = {p: i for i, unit in enumerate(units) for p in unit}
    for label, class_dir in enumerate(dataset.class_dirs):
        touched = {unit_of[p] for p, l in label_of.items() if l == label}
        if len(touched) == 1:
            unit = set(units[touched.pop()])
            names = [name for name, photos in named.items() if unit.intersection(photos)]
            raise ZooliteError(
                f"--group-by {group_by}: all photos of the class {class_dir} are in one group"
                + (f" ({', '.join(names[:3])})" if names else "")
                + ", so it cannot be in both train and test; use a pattern that splits its photos into "
                  "several groups, add photos of other groups, or leave out --group-by")
