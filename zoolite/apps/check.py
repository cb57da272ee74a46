"""``zoolite check DATA``: a report on a folder-per-class dataset before any training.

It lists what would spoil a run or its measurements:

* files that cannot be used (the scan's skipped list), empty class folders, class counts and imbalance;
* duplicate photos (:mod:`zoolite.dataset.duplicates`) and the duplicate groups spread over more than one
  class folder (label conflicts: the same photo with two labels, or one photo in train and test);
* photos that are probably in the wrong class folder, found by confident learning (:mod:`zoolite.model.suspects`)
  on every photo's backbone features (EfficientNet-Lite0 through the fast LiteRT path of
  :mod:`zoolite.model.features`).

Features are cached per photo content (a SHA-256 of the file) in the user cache, so checking the
same folder again, or a folder with the same photos, does not compute them again; a default
``zoolite run`` reads its train and validation features from the same cache (and fills it), through
the same code (:func:`zoolite.model.features.cached_features`), so a check before a run costs little
(``benchmarks/check_cost.py``).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from zoolite import storage
from zoolite.dataset.scan import shared_labels
from zoolite.dataset.split import MIN_CLASS_PHOTOS
from zoolite.model.rejection import FOLDS
from zoolite.model.suspects import MAX_SUSPECT_SHARE, find_suspects, suspect_candidates
from zoolite.results import SuspectLabel, is_imbalanced

BACKBONE = "efficientnet_lite0"
SUSPECT_METHOD = (f"confident learning: out-of-fold probabilities of a multinomial logistic regression on "
                  f"{BACKBONE} features ({FOLDS} folds stratified by class); a photo is suspect when its best "
                  "class j with p_j >= t_j (t_j = 0.8 x mean p_j over the photos labelled j) is not its label and "
                  f"p_j > p_label; score = p_j - p_label; at most {MAX_SUSPECT_SHARE:.0%} of the photos named")


@dataclass
class ClassCount:
    folder: str
    label: str
    photos: int


@dataclass
class UnusableFile:
    file: str  # relative to the dataset folder
    reason: str


@dataclass
class CheckReport:
    data: str
    photos: int
    classes: list[ClassCount]
    unusable: list[UnusableFile]
    empty_classes: list[str]
    imbalance_ratio: float | None  # largest class / smallest non-empty class
    imbalanced: bool
    duplicates: list[list[str]] = field(default_factory=list)
    label_conflicts: list[list[str]] = field(default_factory=list)
    suspect_labels: list[SuspectLabel] = field(default_factory=list)
    suspects_checked: bool = False  # False: too few photos or classes to look for suspect labels
    suspects_found: int = 0  # before the cap of MAX_SUSPECT_SHARE
    suspect_method: str = SUSPECT_METHOD
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"data": self.data, "photos": self.photos, "class_count": len(self.classes),
                "classes": [asdict(c) for c in self.classes],
                "per_class": {c.folder: c.photos for c in self.classes},
                "unusable": [asdict(u) for u in self.unusable], "empty_classes": self.empty_classes,
                "imbalance_ratio": self.imbalance_ratio, "imbalanced": self.imbalanced,
                "duplicates": self.duplicates, "duplicate_files": sum(len(g) for g in self.duplicates),
                "label_conflicts": self.label_conflicts,
                "suspect_labels": [asdict(s) for s in self.suspect_labels],
                "suspects_checked": self.suspects_checked, "suspects_found": self.suspects_found,
                "suspect_method": self.suspect_method, "notes": self.notes}

    def summary(self, show: int = 10) -> str:
        counts = ", ".join(f"{c.folder} {c.photos}" for c in self.classes)
        lines = [f"{self.data}: {self.photos} photos in {len(self.classes)} classes ({counts})"]
        if self.imbalance_ratio is not None:
            lines.append(f"imbalance: largest class / smallest = {self.imbalance_ratio:.1f}"
                         + (" (imbalanced: zoolite weights the classes and judges balanced accuracy)"
                            if self.imbalanced else ""))
        if self.empty_classes:
            lines.append(f"empty classes (no usable photo): {', '.join(self.empty_classes)}")
        lines.append(f"unusable files: {len(self.unusable)}")
        lines += [f"  {u.file}: {u.reason}" for u in self.unusable[:show]]
        lines += _more(self.unusable, show)
        lines.append(f"duplicate groups: {len(self.duplicates)}"
                     + (f" ({sum(len(g) for g in self.duplicates)} files)" if self.duplicates else ""))
        lines += ["  " + _group_line(group, show) for group in self.duplicates[:show]]
        lines += _more(self.duplicates, show)
        lines.append(f"label conflicts (duplicates in more than one class folder): {len(self.label_conflicts)}")
        lines += ["  " + _group_line(group, show) for group in self.label_conflicts[:show]]
        lines += _more(self.label_conflicts, show)
        if not self.suspects_checked:
            lines.append("suspect labels: not checked")
        else:
            capped = f", the {len(self.suspect_labels)} most suspect named" \
                if self.suspects_found > len(self.suspect_labels) else ""
            lines.append(f"suspect labels: {self.suspects_found}{capped} (label -> suggested, score)")
            lines += [f"  {s.file}: {s.label} -> {s.suggested} ({s.score:.2f})" for s in self.suspect_labels[:show]]
            lines += _more(self.suspect_labels, show)
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _group_line(group: list[str], show: int) -> str:
    """A group of copies on one line: its files, or the first ``show`` of them and how many more (thousands
    of frames of one video make one group)."""
    if len(group) <= show:
        return " = ".join(group)
    return " = ".join(group[:show]) + f" = ... ({len(group) - show} more, {len(group)} files in all; --json lists them)"


def _more(items: list, show: int) -> list[str]:
    return [f"  ... {len(items) - show} more (--json lists them all)"] if len(items) > show else []


# --- scanning ---------------------------------------------------------------------------------------

def _scan(root: Path):
    """Class folders, usable photos (relative path, class index) and skipped files, like
    :func:`zoolite.dataset.scan.scan_dataset`, but an empty class is reported, not refused."""
    from zoolite.dataset.scan import skipped_files, scan_class_folders

    class_dirs, files, skipped = scan_class_folders(root, "a folder")
    return class_dirs, sorted(files), skipped_files(skipped)


# --- features, cached per photo content ----------------------------------------------------------

def photo_features(root: Path, files: list[str], progress=None, threads: int | None = None) -> np.ndarray:
    """(photos, features) of ``files`` (relative to ``root``): read from the cache by content, the
    missing ones computed once (identical photos once) with the fast LiteRT backbone and cached
    (:func:`zoolite.model.features.cached_features`, the code a run's features stage runs)."""
    from zoolite.model import features
    from zoolite.model.backbones import build_feature_extractor, get_backbone, resolve_weights
    from zoolite.progress import Progress

    progress = progress or Progress(False)
    paths = [root / file for file in files]
    cache = features.features_cache(BACKBONE)
    with progress.bar("hashing photos", len(files)) as step:
        hashes, missing = features.missing_from_cache(paths, cache, step)
    runtime = None
    if missing:
        spec = get_backbone(BACKBONE)
        with progress.bar("converting the backbone for fast features (once)", 1, "model") as step:
            extractor = build_feature_extractor(spec, resolve_weights(spec, None))
            runtime = features.open_backbone(features.backbone_file(extractor, storage.cache_dir() / "backbones"),
                                             threads)
            step(1)
    with tempfile.TemporaryDirectory(prefix="zoolite-check-") as tmp, \
            progress.bar(f"features of {len(files)} photos ({len(missing)} not cached)", len(files)) as step:
        rows = features.cached_features(paths, hashes, cache, runtime, get_backbone(BACKBONE).input_size,
                                        Path(tmp) / "features.npy", step)
        return np.array(rows, np.float32)


# --- the report ----------------------------------------------------------------------------------

def _what_stops_a_run(classes: list[ClassCount]) -> list[str]:
    """What ``zoolite run`` would refuse in these classes, which a check reports rather than refuses."""
    with_photos = [c for c in classes if c.photos]
    notes = [f"`zoolite run` needs photos in two classes or more; here {len(with_photos)} ("
             + (", ".join(c.folder for c in with_photos) or "none") + ")"] if len(with_photos) < 2 else []
    notes += [f"`zoolite run` stops at {c.folder}: {c.photos} photo(s), and a class needs at least "
              f"{MIN_CLASS_PHOTOS} for the default train/val/test split"
              for c in with_photos if c.photos < MIN_CLASS_PHOTOS]
    return notes + [f"`zoolite run` stops: the folders {' and '.join(folders)} both get the label {label!r}" for
                    label, folders in shared_labels([c.folder for c in classes], [c.label for c in classes]).items()]


def check(data: str | Path, progress=None, seed: int = 0, suspects: bool = True,
          threads: int | None = None) -> CheckReport:
    """What ``zoolite check DATA`` reports (``suspects=False``: without the suspect labels, so no backbone)."""
    from zoolite.dataset.duplicates import find_duplicates
    from zoolite.progress import Progress

    root = Path(data)
    progress = progress or Progress(False)
    class_dirs, files, skipped = _scan(root)
    counts = dict.fromkeys(class_dirs, 0)
    for _, label in files:
        counts[class_dirs[label]] += 1
    from zoolite.dataset.scan import ANIMALS10_LABELS

    non_empty = [n for n in counts.values() if n]
    ratio = max(non_empty) / min(non_empty) if non_empty else None
    report = CheckReport(
        data=str(root), photos=len(files),
        classes=[ClassCount(name, ANIMALS10_LABELS.get(name, name), n) for name, n in counts.items()],
        unusable=[UnusableFile(file, reason) for file, reason in skipped],
        empty_classes=[name for name, n in counts.items() if n == 0],
        imbalance_ratio=round(ratio, 3) if ratio else None, imbalanced=is_imbalanced(list(counts.values())))
    report.notes += _what_stops_a_run(report.classes)
    if not files:
        report.notes.append("no usable photos")
        return report

    with progress.bar("looking for duplicate photos", 2 * len(files)) as step:
        duplicates = find_duplicates(root, files, progress=step)
    report.duplicates = [list(group) for group in duplicates.groups]
    report.label_conflicts = [list(group) for group in duplicates.conflicts]

    used = [files[i] for i in suspect_candidates(files)]
    if not suspects:
        report.notes.append("suspect labels not looked for (--no-suspects)")
    elif not used:
        report.notes.append("suspect labels need at least two classes with two photos or more")
    else:
        feats = photo_features(root, [file for file, _ in used], progress, threads)
        report.suspects_found, report.suspect_labels = find_suspects(feats, used, class_dirs, seed)
        report.suspects_checked = True
    return report


__all__ = ["CheckReport", "ClassCount", "SuspectLabel", "UnusableFile", "check"]
