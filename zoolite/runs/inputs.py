"""What one backbone's stages read: the photos as typed sets, decoded once, and their features through
the backbone's fastest runtime (:mod:`zoolite.model.features`), each saved in the run folder so that a
resumed run reads them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from zoolite import storage
from zoolite.config import RunConfig
from zoolite.dataset.images import cache_images
from zoolite.dataset.split import OtherSplit, Split, even_sample
from zoolite.model import features
from zoolite.model.backbones import BackboneSpec
from zoolite.model.calibration import calibration_sample
from zoolite.runs.layout import BackboneLayout
from zoolite.runs.steps import Steps, load_npy


@dataclass(frozen=True)
class LabelledPhotos:
    """Photos of the classes, as the split lists them (relative to the dataset's ``root``), with labels."""

    root: Path
    items: list[tuple[str, int]]

    @cached_property
    def paths(self) -> list[Path]:
        return [self.root / path for path, _ in self.items]

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.items], dtype=int)


@dataclass(frozen=True)
class PhotoSets:
    """The photos a run's stages read, by what they are for."""

    train: LabelledPhotos
    val: LabelledPhotos
    test: LabelledPhotos
    unlabelled: list[Path]  # --unlabelled: fidelity to the float model, without labels
    other_calibration: list[Path]  # --other: the half that fits "none of these"
    other_test: list[Path]  # --other: the half held out to measure it
    other: OtherSplit | None  # where the --other halves come from (None: not given)

    @classmethod
    def of(cls, split: Split, root: Path, unlabelled: list[Path]) -> "PhotoSets":
        other = split.other
        calibration, test = ([Path(other.root) / p for p in half] for half in (other.calibration, other.test)) \
            if other else ([], [])
        return cls(*(LabelledPhotos(root, split.subset(name)) for name in ("train", "val", "test")), unlabelled,
                   calibration, test, other)


@dataclass
class BackboneRun:
    """One backbone's part of a run: what its stages read (typed inputs, the options, where its files go),
    and the images and features they share, each computed once."""

    spec: BackboneSpec
    weights: str | None
    extractor: object  # its Keras feature extractor (pixels -> features)
    config: RunConfig
    class_names: list[str]
    photos: PhotoSets
    layout: BackboneLayout
    steps: Steps
    # What the stages share, made as they need it: the features this attempt computed (name -> photos), and
    # the fast features runtime of the backbone, frozen and trained.
    extracted: dict[str, int] = field(default_factory=dict, init=False)
    _runtimes: dict[bool, object] = field(default_factory=dict, init=False, repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def images(self, name: str, paths: list[Path]) -> np.ndarray:
        """``paths`` decoded at the backbone's input size, cached as ``name``."""
        out = self.layout.images(name)
        return self.steps.produce(f"decode_{name}", [out], lambda step: cache_images(paths, self.spec.input_size,
                                                                                     out, step),
                                  load_npy(out), len(paths), title=f"decoding {name} images")

    def representative(self) -> np.ndarray:
        """The integer modes' calibration sample: training photos drawn evenly over the classes, and
        scrambled and plain ones that show none of them (:func:`zoolite.model.calibration.calibration_sample`)."""
        train = self.photos.train
        drawn = even_sample(train.labels, self.config.representative_images, self.config.seed)
        return calibration_sample(self.images("representative", [train.paths[i] for i in drawn]),
                                            self.config.seed)

    def features_runtime(self, extractor, trained: bool):
        """The fast features runtime of ``extractor`` (:mod:`zoolite.model.features`), converted once: a frozen
        backbone once per machine (in the user cache, like its weights), a trained one once per run."""
        if trained not in self._runtimes:
            folder = self.layout.cache if trained else storage.cache_dir() / "backbones"
            with self.steps.step(f"convert_{'trained_' if trained else ''}backbone", 1, "model",
                                 title="converting the backbone for fast features (once)") as step:
                self._runtimes[trained] = features.open_backbone(features.backbone_file(extractor, folder),
                                                                 self.config.threads)
                step(1)
        return self._runtimes[trained]

    def features(self, extractor, name: str, paths: list[Path], trained: bool = False, view=None) -> np.ndarray:
        """Features of ``paths``, cached as ``name``; ``trained``: of the backbone as training left it;
        ``view``: of the views it makes of the photos."""
        out = self.layout.features(name)
        if out.exists():
            return load_npy(out)()
        if not trained and view is None and self.spec.pretrained and self.weights == "imagenet":
            return self._cached_features(extractor, name, paths, out)
        runtime = self.features_runtime(extractor, trained)  # converted (and timed) outside the features step
        computed = self.steps.produce(
            f"features_{name}", [out],
            lambda step: features.extract(runtime, paths, self.spec.input_size, out, step, view),
            load_npy(out), len(paths), title=f"features of {name.replace('_', ' ')} images")
        self.extracted[name] = len(paths)
        return computed

    def _cached_features(self, extractor, name: str, paths: list[Path], out: Path) -> np.ndarray:
        """The frozen backbone's features of ``paths`` through the per-photo cache that ``zoolite check``
        fills (:func:`zoolite.model.features.cached_features`): those it holds are copied, the others computed
        (the backbone converted only then) and added to it, so a check before or after a run costs little."""
        cache = features.features_cache(self.spec.name)
        with self.steps.step(f"hash_{name}", title=f"hashing {name.replace('_', ' ')} images"):
            hashes, missing = features.missing_from_cache(paths, cache)
        runtime = self.features_runtime(extractor, False) if missing else None
        computed = self.steps.produce(
            f"features_{name}", [out],
            lambda step: features.cached_features(paths, hashes, cache, runtime, self.spec.input_size, out, step),
            load_npy(out), len(paths), title=f"features of {name.replace('_', ' ')} images"
            + ("" if missing else " (cached by zoolite check)"))
        if missing:
            self.extracted[name] = len(missing)
        return computed

    def features_per_second(self) -> float | None:
        """Photos per second of the features steps this attempt ran (None if it ran none)."""
        seconds = sum(self.steps.timings[f"features_{name}"] for name in self.extracted)
        return sum(self.extracted.values()) / seconds if seconds else None
