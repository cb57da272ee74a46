"""How many representative images does int8 calibration need, and should they be drawn evenly over the classes?

    .venv/bin/python benchmarks/calibration.py RUN_DIR [--sizes 10,25,50,100,200,300] [--seeds 0,1,2]

On a finished run (made with --unlabelled): for each size n and seed, n photos of the run's train
split drawn evenly over the classes (``split.even_sample``) with scrambled photos that show none of
the classes (``calibration.calibration_sample``, the pipeline's sample: a fifth as many, at least 10, and as many plain ones),
and for comparison the same n without them, and n drawn uniformly at random (as zoolite 0.2 drew
them). Each sample calibrates the run's model.keras once (``litert.calibrate``, timed; a one-image
calibration first pays TensorFlow's start-up costs), which is quantized to uint8 and int8_fallback
(``litert.quantize_calibrated``; no metadata, which measuring does not need). Each file is measured
on the run's test images: top-1 agreement with the run's float32.tflite, accuracy, balanced accuracy
(mean per-class recall) and the share of photos kept as one of the classes by the run's "none of
these" threshold; and on the --unlabelled photos: agreement with float32.tflite and the share kept.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

DRAWS = ("even+scrambled", "even", "random")
MODES = ("uint8", "int8_fallback")
COLUMNS = ["test agree", "accuracy", "balanced", "test kept", "unl agree", "unl kept"]


def draw(kind: str, train: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A calibration sample of ``n`` training photos (see the module's docstring for the kinds)."""
    from zoolite.dataset.split import even_sample
    from zoolite.model.calibration import calibration_sample

    if kind == "random":
        return train[sorted(np.random.default_rng(seed).choice(len(labels), min(n, len(labels)), replace=False))]
    photos = train[sorted(even_sample(labels, n, seed))]
    return calibration_sample(photos, seed) if kind == "even+scrambled" else photos


def figures(probabilities: dict, reference: dict, labels: np.ndarray, threshold: float) -> dict:
    """The table's columns for one file, from its probabilities and the float model's on the same photos."""
    test, unlabelled = probabilities["test"], probabilities["unlabelled"]
    recalls = [np.mean(test[labels == c].argmax(1) == c) for c in np.unique(labels)]
    return dict(zip(COLUMNS, [np.mean(test.argmax(1) == reference["test"].argmax(1)),
                              np.mean(test.argmax(1) == labels), np.mean(recalls),
                              np.mean(test.max(1) >= threshold),
                              np.mean(unlabelled.argmax(1) == reference["unlabelled"].argmax(1)),
                              np.mean(unlabelled.max(1) >= threshold)]))


def spread(values) -> str:
    """Percentages over the seeds: mean ± standard deviation."""
    values = 100 * np.asarray(values)
    return f"{values.mean():.1f}±{values.std(ddof=1) if len(values) > 1 else 0.0:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--sizes", default="10,25,50,100,200,300")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    started = time.perf_counter()

    from zoolite.config import RunConfig
    from zoolite.dataset.images import cache_images
    from zoolite.dataset.split import Split
    from zoolite.measure.evaluation import predict_all
    from zoolite.runs.layout import RunLayout
    from zoolite.runs.provenance import machine_info
    from zoolite.results import Dataset
    from zoolite.report.tables import plain_table
    from zoolite.targets import REFERENCE, TARGETS, open_model
    from zoolite.targets.keras import load_keras_model
    from zoolite.targets.base import export_saved_model
    from zoolite.targets.litert import calibrate, quantize_calibrated

    sizes, seeds = [int(s) for s in args.sizes.split(",")], [int(s) for s in args.seeds.split(",")]
    run = RunLayout(Path(args.run_dir))
    layout = run.backbone(RunConfig.load(run.config).backbones[0])
    split = Split.from_json(json.loads(run.split.read_text()))
    root = Path(Dataset.from_json(json.loads(run.dataset.read_text())).root)
    train_labels, test_labels = (np.array([label for _, label in items]) for items in (split.train, split.test))
    photos = {subset: np.load(layout.images(subset), mmap_mode="r") for subset in ("test", "unlabelled")}

    float32 = layout.model(TARGETS["float32"])
    runtime, _ = open_model(float32)
    reference = {subset: predict_all(runtime, images) for subset, images in photos.items()}
    threshold = runtime.score_threshold()
    seconds: dict = {}  # (n, draw) -> calibration seconds per seed
    measured: dict = {}  # (mode, n, draw) -> figures per seed
    with tempfile.TemporaryDirectory(prefix="zoolite-calibration-") as tmp:
        tmp = Path(tmp)
        train = cache_images([root / p for p, _ in split.train], runtime.input_size, tmp / "train.npy")
        saved_model = export_saved_model(load_keras_model(layout.model(REFERENCE)), tmp / "saved_model")
        calibrate(saved_model, train[:1])
        for n in sizes:
            for kind in DRAWS:
                for seed in seeds:
                    sample = draw(kind, train, train_labels, n, seed)
                    start = time.perf_counter()
                    calibrated = calibrate(saved_model, sample)
                    seconds.setdefault((n, kind), []).append(time.perf_counter() - start)
                    for mode in MODES:
                        path = tmp / f"{mode}.tflite"
                        path.write_bytes(quantize_calibrated(calibrated, mode))
                        quantized, _ = open_model(path)
                        probabilities = {subset: predict_all(quantized, images) for subset, images in photos.items()}
                        measured.setdefault((mode, n, kind), []).append(
                            figures(probabilities, reference, test_labels, threshold))

    info = machine_info()
    print(f"{info.cpu}, {info.cores} cores; run {args.run_dir}")
    print(f"Train split {len(split.train)} photos, per class {np.bincount(train_labels).tolist()}; test "
          f"{len(split.test)} photos, unlabelled {len(photos['unlabelled'])}; seeds {seeds}.")
    print("float32.tflite: " + ", ".join(f"{c} {v * 100:.1f}%" for c, v in figures(
        reference, reference, test_labels, threshold).items()) + f" (threshold {threshold:.3f})")
    print("Columns: % mean±sd over the seeds; agree = same top-1 class as float32.tflite; balanced = mean "
          "per-class recall; kept = top score at or above the threshold; unl = the --unlabelled photos; "
          "s = calibration seconds (mean).")
    for mode in MODES:
        print(f"\n{mode}")
        print(plain_table(["n", "draw", *COLUMNS, "s"],
                          [[str(n), kind, *(spread([f[c] for f in measured[mode, n, kind]]) for c in COLUMNS),
                            f"{np.mean(seconds[n, kind]):.1f}"] for n in sizes for kind in DRAWS]))
    print(f"\nRuntime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
