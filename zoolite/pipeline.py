"""The pipeline: dataset -> model -> variants -> measurements -> report, one stage after another.

Every stage writes its output atomically into the run directory, and a stage whose
output is already there is not run again, which is what ``--resume`` relies on. The
run directory is marked complete only at the very end.

Layout of a run directory::

    config.json  dataset.json  split.json  labels.txt  results.json  results.csv
    report.md  report.html  INCOMPLETE (while running) / COMPLETE (at the end)
    <backbone>/models/{model.keras, float32.tflite, ..., int8.tflite, labels.txt}
    <backbone>/history.json  <backbone>/measurements/  <backbone>/tensorboard/
    <backbone>/cache/  (decoded test images, features: reusable intermediate files)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tensorflow import errors as tf_errors

from zoolite import reporting, storage
from zoolite.backbones import BACKBONES, DEFAULT_BACKBONE, build_feature_extractor, describe_weights, get_backbone, \
    resolve_weights
from zoolite.conversion import INT8_MODES, QUANTIZATIONS, calibrate, check_quantization, convert, export_saved_model, \
    quantize_calibrated
from zoolite.data import DEFAULT_FRACTIONS, Split, cache_images, check_fractions, image_batches, \
    load_label_map, scan_dataset, split_dataset
from zoolite.errors import ZooliteError
from zoolite.evaluation import LatencyConfig, agreement, evaluate, measure_latency, per_class_report
from zoolite.progress import Progress
from zoolite.recommend import Budget, recommend
from zoolite.runtimes import KerasRuntime, open_runtime
from zoolite.training import TrainConfig, assemble, build_head, extract_features, fit, labelled_batches, \
    one_hot, set_base_trainable

log = logging.getLogger(__name__)

SAMPLE_DATA = Path(__file__).parent / "sample" / "animals10"
KERAS_VARIANT = "keras"


@dataclass
class RunConfig:
    """Everything a run depends on; saved as ``config.json`` so a run can be resumed."""

    data: str = str(SAMPLE_DATA)
    backbones: tuple[str, ...] = (DEFAULT_BACKBONE,)
    weights: str | None = None  # 'imagenet' (default), a local file, or 'none'
    runs_dir: str = "runs"
    seed: int = 0
    split: tuple[float, float, float] = DEFAULT_FRACTIONS
    labels: str | None = None  # JSON label map; default: Animals-10's Italian -> English
    representative_images: int = 200
    threads: int | None = None  # LiteRT threads; default: all cores
    quantizations: tuple[str, ...] = tuple(QUANTIZATIONS)
    tensorboard: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    budget: Budget = field(default_factory=Budget)  # what the report recommends

    def __post_init__(self):
        self.backbones = tuple(self.backbones)
        if not self.backbones:
            raise ZooliteError("--backbones: name at least one backbone")
        for name in self.backbones:
            get_backbone(name)
        self.quantizations = tuple(check_quantization(q) for q in self.quantizations)
        self.split = check_fractions(self.split)
        if self.representative_images < 1:
            raise ZooliteError(f"--representative-images {self.representative_images}: must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ZooliteError(f"--threads {self.threads}: must be at least 1")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "RunConfig":
        obj = dict(obj)
        obj["train"] = TrainConfig(**obj["train"])
        obj["latency"] = LatencyConfig(**obj["latency"])
        obj["budget"] = Budget(**obj.get("budget", {}))
        obj["split"] = tuple(obj["split"])
        return cls(**obj)


@contextlib.contextmanager
def _timed(timings: dict, name: str):
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)


def _seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _BackboneRun:
    """The model, variants and measurements stages for one backbone, in ``directory``."""

    def __init__(self, spec, weights, config: RunConfig, split: Split, root: Path, labels: list[str],
                 directory: Path, progress: Progress):
        self.spec, self.weights, self.config, self.split = spec, weights, config, split
        self.root, self.labels, self.dir, self.progress = root, labels, directory, progress
        self.models_dir = directory / "models"
        self.cache = directory / "cache"
        self.measurements = directory / "measurements"
        for d in (self.models_dir, self.cache, self.measurements):
            d.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.n_classes = len(labels)

    def _paths(self, subset: str) -> list[Path]:
        return [self.root / p for p, _ in self.split.subset(subset)]

    def _labels(self, subset: str) -> np.ndarray:
        return np.array([label for _, label in self.split.subset(subset)], dtype=int)

    def _images(self, name: str, paths: list[Path]) -> np.ndarray:
        out = self.cache / f"{name}_images.npy"
        if out.exists():
            return np.load(out, mmap_mode="r")
        with self.progress.bar(f"{self.spec.name}: decoding {name} images", len(paths)) as step:
            return cache_images(paths, self.spec.input_size, out, step)

    def _representative_paths(self) -> list[Path]:
        paths = self._paths("train")
        order = np.random.default_rng(self.config.seed).permutation(len(paths))
        return [paths[i] for i in order[:self.config.representative_images]]

    def _features(self, extractor, subset: str) -> np.ndarray:
        out = self.cache / f"{subset}_features.npy"
        if out.exists():
            return np.load(out, mmap_mode="r")
        paths = self._paths(subset)
        with _timed(self.timings, f"features_{subset}"), \
                self.progress.bar(f"{self.spec.name}: features of {subset} images", len(paths)) as step:
            return extract_features(extractor, image_batches(paths, self.spec.input_size),
                                    len(paths), out, step)

    def _fit(self, model, train, val, stage: str, learning_rate=None) -> dict:
        def fit_logging_to(log_dir):
            return fit(model, train, val, self.config.train, learning_rate=learning_rate, log_dir=log_dir,
                       verbose=2 if self.progress.enabled else 0)

        if not self.config.tensorboard:
            return fit_logging_to(None)
        # TensorBoard appends to its event files while training: they get their final name at the end.
        with storage.atomic_dir(self.dir / "tensorboard" / stage) as log_dir:
            return fit_logging_to(log_dir)

    def _image_data(self, subset: str, shuffle: bool):
        return labelled_batches(self.split.subset(subset), self.root, self.spec.input_size, self.n_classes,
                                self.config.train.batch_size, self.config.seed if shuffle else None)

    def train(self, extractor) -> tuple:
        """Return the trained Keras model, from ``models/model.keras`` when it already exists."""
        model_path = self.models_dir / "model.keras"
        history_path = self.dir / "history.json"
        if model_path.exists() and history_path.exists():
            from zoolite.runtimes import load_keras_model

            return load_keras_model(model_path), json.loads(history_path.read_text())
        _seed_everything(self.config.seed)
        train_cfg = self.config.train
        head = build_head(self.spec.feature_dim, self.n_classes, train_cfg.dropout)
        history = {}
        if self.spec.pretrained:
            features = {s: self._features(extractor, s) for s in ("train", "val")}
            with _timed(self.timings, "training"):
                history["head"] = self._fit(
                    head, (np.asarray(features["train"]), one_hot(self._labels("train"), self.n_classes)),
                    (np.asarray(features["val"]), one_hot(self._labels("val"), self.n_classes)), "head")
            model = assemble(extractor, head, name=f"{self.spec.name}_classifier")
        else:  # from scratch: the whole network learns, so it must see images
            set_base_trainable(extractor, None)
            model = assemble(extractor, head, name=f"{self.spec.name}_classifier")
            with _timed(self.timings, "training"):
                history["head"] = self._fit(model, self._image_data("train", True),
                                            self._image_data("val", False), "scratch")
        if train_cfg.fine_tune_layers and self.spec.pretrained:
            set_base_trainable(extractor, train_cfg.fine_tune_layers)
            with _timed(self.timings, "fine_tuning"):
                history["fine_tune"] = self._fit(model, self._image_data("train", True),
                                                 self._image_data("val", False), "fine_tune",
                                                 learning_rate=train_cfg.fine_tune_learning_rate)
            set_base_trainable(extractor, 0)
        storage.atomic_save_model(model, model_path)
        storage.write_json(history_path, history)
        return model, history

    def convert(self, model) -> dict[str, Path]:
        """Write every LiteRT variant that is not written yet; return variant -> path."""
        paths = {mode: self.models_dir / f"{mode}.tflite" for mode in self.config.quantizations}
        missing = [mode for mode, path in paths.items() if not path.exists()]
        if not missing:
            return paths
        saved_model = self.cache / "saved_model"
        shutil.rmtree(saved_model, ignore_errors=True)  # a partial export from an interrupted run
        with _timed(self.timings, "export_saved_model"):
            export_saved_model(model, saved_model)
        calibrated = None
        for mode in missing:
            if mode in INT8_MODES and calibrated is None:  # one calibration serves both int8 modes
                representative = self._images("representative", self._representative_paths())
                title = f"{self.spec.name}: calibrating int8 on {len(representative)} training images"
                with _timed(self.timings, "calibrate_int8"), self.progress.bar(title, len(representative)) as step:
                    calibrated = calibrate(saved_model, representative, step)
            with _timed(self.timings, f"convert_{mode}"), \
                    self.progress.bar(f"{self.spec.name}: converting to {mode}", 1, unit="model") as step:
                data = quantize_calibrated(calibrated, mode) if mode in INT8_MODES else convert(saved_model, mode)
                storage.write_bytes(paths[mode], data)
                step(1)
        shutil.rmtree(saved_model, ignore_errors=True)
        return paths

    def evaluate(self, variant_files: dict[str, Path]) -> list[dict]:
        """Measure every variant with the one evaluate routine; return its rows, Keras first."""
        images = self._images("test", self._paths("test"))
        labels = self._labels("test")
        rows, probabilities = [], {}
        for variant, path in variant_files.items():
            row_path = self.measurements / f"{variant}.json"
            probs_path = self.measurements / f"{variant}.probabilities.npy"
            if row_path.exists() and probs_path.exists():
                rows.append(json.loads(row_path.read_text()))
                probabilities[variant] = np.load(probs_path)
                continue
            with _timed(self.timings, f"evaluate_{variant}"):
                runtime, load_seconds = open_runtime(path, self.config.threads)
                latency = self.config.latency
                with self.progress.bar(f"{self.spec.name}: evaluating {variant}", len(images)) as step, \
                        self.progress.bar(f"{self.spec.name}: timing {variant} (up to {latency.runs} calls "
                                          f"or {latency.max_seconds:g} s)", latency.runs, unit="call") as timed:
                    metrics, probs = evaluate(runtime, images, labels, self.n_classes, latency,
                                              progress=step, timing_progress=timed)
                row = {"variant": variant, "file": str(path.relative_to(self.dir.parent)),
                       "size_bytes": path.stat().st_size, "load_ms": load_seconds * 1000.0, **metrics}
                if isinstance(runtime, KerasRuntime):
                    row["params"] = int(runtime.model.count_params())
                    # What a careful Python user would call: the model compiled as a tf.function.
                    row["latency_tf_function"] = measure_latency(
                        KerasRuntime(runtime.model, compiled=True).predict_one, images, self.config.latency)
                else:
                    row["input_dtype"] = np.dtype(runtime.input_dtype).name
            storage.write_npy(probs_path, probs)
            storage.write_json(row_path, row)
            rows.append(row)
            probabilities[variant] = probs
        reference = probabilities[KERAS_VARIANT]
        float32_size = next((r["size_bytes"] for r in rows if r["variant"] == "float32"), None)
        for row in rows:
            row["params"] = rows[0]["params"]  # every variant holds the same weights, differently stored
            row["agreement_with_keras"] = agreement(probabilities[row["variant"]], reference)
            row.update(per_class_report(probabilities[row["variant"]], labels, self.labels))
            if float32_size:
                row["size_vs_float32_tflite"] = row["size_bytes"] / float32_size
        return rows


def _describe_dataset(dataset) -> dict:
    return {"root": str(dataset.root), "class_dirs": dataset.class_dirs, "labels": dataset.labels,
            "counts": dataset.counts(), "images": len(dataset.files),
            "skipped": [{"file": f, "reason": r} for f, r in dataset.skipped]}


def _scan_and_split(config: RunConfig, timings: dict) -> tuple[dict, Split]:
    with _timed(timings, "scan"):
        dataset = scan_dataset(config.data, load_label_map(config.labels))
    for file, reason in dataset.skipped:
        log.warning("skipped %s: %s", Path(config.data, file), reason)
    return _describe_dataset(dataset), split_dataset(dataset, config.split, config.seed)


def _save_split(run_dir: Path, dataset_info: dict, split: Split) -> None:
    storage.write_json(run_dir / "dataset.json", dataset_info)
    storage.write_json(run_dir / "split.json", split.to_json())


def _new_run_dir(config: RunConfig, dataset_info: dict, split: Split) -> Path:
    for earlier in storage.incomplete_runs(config.runs_dir):
        log.warning("%s did not finish (unless it is still running); finish it with "
                    "`zoolite run --resume %s`", earlier, earlier)
    name = config.backbones[0] if len(config.backbones) == 1 else f"{len(config.backbones)}-backbones"
    run_dir = storage.new_run_dir(config.runs_dir, name)
    log.info("run folder: %s", run_dir)
    storage.write_json(run_dir / "config.json", config.to_json())
    _save_split(run_dir, dataset_info, split)
    return run_dir


def _resumable(run_dir: Path) -> RunConfig:
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ZooliteError(f"{run_dir}: not a zoolite run folder (no config.json); pass a folder "
                           "under runs/")
    if storage.is_complete(run_dir):
        raise ZooliteError(f"{run_dir}: this run is already complete; nothing to resume")
    try:
        config = RunConfig.from_json(json.loads(config_path.read_text()))
    except (ValueError, TypeError, KeyError) as e:
        raise ZooliteError(f"{config_path}: damaged run config ({e}); start a new run") from None
    storage.remove_partial_files(run_dir)
    return config


def _resumed_split(run_dir: Path, config: RunConfig, timings: dict) -> tuple[dict, Split]:
    """The split the interrupted run saved (made now if it was interrupted before), its images checked."""
    if not (run_dir / "split.json").exists():
        dataset_info, split = _scan_and_split(config, timings)
        _save_split(run_dir, dataset_info, split)
        return dataset_info, split
    dataset_info = json.loads((run_dir / "dataset.json").read_text())
    split = Split.from_json(json.loads((run_dir / "split.json").read_text()))
    root = Path(dataset_info["root"])
    missing = [p for name in ("train", "val", "test") for p, _ in split.subset(name) if not (root / p).is_file()]
    if missing:
        raise ZooliteError(f"{root / missing[0]}: an image of this run's split is gone ({len(missing)} "
                           "missing); put the data folder back to resume, or start a new run")
    return dataset_info, split


def run(config: RunConfig | None = None, resume: str | Path | None = None,
        progress: Progress | None = None, command: str | None = None) -> dict:
    """Run the whole pipeline (or finish the one in ``resume``); return the results dict.

    The results are also written into a new run directory, whose path is
    ``results["run_dir"]``. Unusable data or weights stop a new run before its directory is
    made. On Ctrl-C the KeyboardInterrupt carries the directory as ``run_dir``.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if resume is None:
        config = config or RunConfig()
        dataset_info, split = _scan_and_split(config, timings)
    else:
        run_dir = Path(resume)
        config = _resumable(run_dir)
    progress = progress or Progress()
    # Weights next: a backbone whose weights cannot be had stops the run before any work.
    specs = [get_backbone(name) for name in config.backbones]
    weights = {spec.name: resolve_weights(spec, config.weights) for spec in specs}
    extractors = {spec.name: build_feature_extractor(spec, weights[spec.name]) for spec in specs}
    if resume is None:
        run_dir = _new_run_dir(config, dataset_info, split)
    else:
        dataset_info, split = _resumed_split(run_dir, config, timings)

    try:
        labels = dataset_info["labels"]
        root = Path(dataset_info["root"])
        storage.write_text(run_dir / "labels.txt", "\n".join(labels) + "\n")

        backbones = {}
        for spec in specs:
            stages = _BackboneRun(spec, weights[spec.name], config, split, root, labels, run_dir / spec.name,
                                  progress)
            storage.write_text(stages.models_dir / "labels.txt", "\n".join(labels) + "\n")
            model, history = stages.train(extractors[spec.name])
            files = {KERAS_VARIANT: stages.models_dir / "model.keras", **stages.convert(model)}
            rows = stages.evaluate(files)
            weights_label = describe_weights(spec, weights[spec.name])
            if "fine_tune" in history:  # the report's caption says both training stages happened
                weights_label += (f"; top {config.train.fine_tune_layers} base layers fine-tuned "
                                  f"({history['fine_tune']['epochs_run']} epochs, learning rate "
                                  f"{config.train.fine_tune_learning_rate:g})")
            backbones[spec.name] = {
                "input_size": spec.input_size, "feature_dim": spec.feature_dim, "weights": weights_label,
                "weights_source": spec.weights_source, "pretrained": spec.pretrained,
                "training": history, "timings": stages.timings, "variants": rows,
            }
        timings["total"] = round(time.perf_counter() - started, 3)
        results = {
            "run_dir": str(run_dir), "machine": reporting.machine_info(command), "config": config.to_json(),
            "dataset": dataset_info,
            "split": {"seed": split.seed, **{name: len(split.subset(name)) for name in ("train", "val", "test")}},
            "timings": timings, "backbones": backbones,
        }
        results["recommendation"] = recommend(results, config.budget)
        reporting.write_reports(run_dir, results)
        storage.mark_complete(run_dir)
        return results
    except KeyboardInterrupt as interrupt:
        interrupt.run_dir = run_dir
        raise
    except tf_errors.OpError as e:  # the image pipeline: a file vanished or changed during the run
        # TensorFlow wraps the Python error of the decoding function; its last line names the file.
        causes = [line.strip() for line in e.message.splitlines() if re.match(r"\s*\w+(Error|Exception): ", line)]
        raise ZooliteError(f"reading an image failed mid-run ({(causes or [e.message])[-1][:200]}); if the "
                           f"data folder changed, restore it and finish with `zoolite run --resume {run_dir}`") \
            from None


__all__ = ["RunConfig", "run", "SAMPLE_DATA", "BACKBONES"]
