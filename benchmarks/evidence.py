"""Does the recommendation survive noise, and does it still reject a variant that really loses accuracy?

    .venv/bin/python benchmarks/evidence.py DATA UNLABELLED [--seeds 0,1,2,3,4] [--out DIR]

For each seed: a full `zoolite run --data DATA --unlabelled UNLABELLED --seed S`, then its
recommendation and the int8 (and uint8) paired evidence against the float model. Then the
altered-variant cases on the first seed's run: uint8 models quantized per tensor instead of
per channel, calibrated on four training photos darkened to a quarter of their brightness
(unrepresentative: real photos overflow the recorded ranges), and calibrated on four flat
grey images. Each is measured with the same routine and added to the run's results as the
fastest and smallest file; the recommendation is asked again and must reject every one
that really loses accuracy or fidelity, and only those.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np


def _evidence(variant) -> str:
    p = variant.paired
    fidelity = {name: next(r for r in rows if r.confident) for name, rows in variant.fidelity.sets().items()}
    confident = ", ".join(f"{name} {r.agreement * 100:.1f}% of {r.n}" if r.n else f"{name} none"
                          for name, r in fidelity.items())
    return (f"{variant.target:<8} acc {variant.accuracy * 100:5.1f}%  won/lost {p.only_variant_right}/"
            f"{p.only_reference_right}  Δ {p.difference * 100:+.1f} pp [{p.difference_interval.low * 100:+.1f}, "
            f"{p.difference_interval.high * 100:+.1f}]  McNemar p {p.mcnemar_p:.2g}  "
            f"median {variant.latency.median_ms:.2f} ms  agreement where the float model is confident: {confident}")


def damaged_case(results, out: Path):
    """Altered uint8 models, measured and judged like the others."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    from zoolite.measure.evaluation import measure_variant, predict_all
    from zoolite.measure.evidence import BestFloat, ImageSets, with_evidence
    from zoolite.runs.layout import RunLayout
    from zoolite.targets.metadata import add_metadata
    from zoolite.results.recommend import recommend
    from zoolite.targets import TARGETS, About
    from zoolite.targets.keras import load_keras_model
    from zoolite.targets.base import export_saved_model
    from zoolite.targets.litert import LiteRTRuntime, calibrate, quantize_calibrated

    name = next(iter(results.backbones))
    backbone = results.backbones[name]
    layout = RunLayout(Path(results.run_dir)).backbone(name)
    grey = np.full((4, backbone.input_size, backbone.input_size, 3), 128, np.uint8)
    dark = (np.load(layout.images("representative"))[:4] // 4).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(load_keras_model(layout.model(TARGETS["keras"])), Path(tmp) / "saved_model")
        calibrated = calibrate(saved, np.load(layout.images("representative")))
        damaged = {
            "uint8_per_tensor": bytes(tflite_convert.mlir_quantize(calibrated, disable_per_channel=True,
                                                                   input_data_type=tf.uint8,
                                                                   output_data_type=tf.uint8)),
            "uint8_dark_calibration": quantize_calibrated(calibrate(saved, dark), "uint8"),
            "uint8_grey_calibration": quantize_calibrated(calibrate(saved, grey), "uint8"),
        }
    images = np.load(layout.images("test"))
    labels = np.array([label for _, label in results.test_photos()])
    unlabelled = layout.unlabelled_probabilities("keras")
    reference = ImageSets(np.load(layout.probabilities("keras")), np.load(unlabelled) if unlabelled.exists() else None)
    # Judged against this backbone's float model, as the run judged its own files.
    float_model = BestFloat(reference.test.argmax(1) == labels, backbone.reference.balanced_accuracy)
    fastest = min((v.latency for v in backbone.shippable), key=lambda latency: latency.median_ms)
    smallest = min(v.size_bytes for v in backbone.shippable)
    for variant_name, model in damaged.items():
        path = out / f"{variant_name}.tflite"
        path.write_bytes(add_metadata(model, About(variant_name, "damaged on purpose", results.labels, "benchmark")))
        runtime = LiteRTRuntime(path, results.config.threads)
        measured, probs = measure_variant(runtime, TARGETS["uint8"], path, images, labels, len(results.labels),
                                          results.config.latency)
        outputs = ImageSets(probs, None if reference.unlabelled is None else
                            predict_all(runtime, np.load(layout.images("unlabelled"))))
        variant = with_evidence(measured, outputs, reference, float_model, labels, results.labels,
                                backbone.rejection.threshold, backbone.reference.params)
        print(f"\nAltered variant {variant_name}, seed {results.split.seed}:")
        print("  " + _evidence(variant))
        # A uint8 file named after its damage, made the fastest and smallest file, so that only the evidence
        # can keep it out.
        variant = replace(variant, target=variant_name, latency=fastest, size_bytes=smallest - 1)
        backbone.variants.append(variant)
        recommendation = recommend(results, results.config.budget)
        backbone.variants.remove(variant)
        print(f"  recommended with it in the pool (as the fastest and smallest file): {recommendation.variant} -> "
              f"{'REJECTED' if recommendation.variant != variant_name else 'kept: no evidence that it is worse'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("unlabelled")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    args = parser.parse_args()
    from zoolite.config import RunConfig
    from zoolite.runs.pipeline import run
    from zoolite.progress import Progress
    from zoolite.runs.provenance import machine_info

    out = Path(args.out or tempfile.mkdtemp(prefix="zoolite-evidence-"))
    print(f"{machine_info().cpu}; runs in {out}")
    first = None
    for seed in map(int, args.seeds.split(",")):
        results = run(RunConfig.from_options(data=args.data, unlabelled=args.unlabelled, seed=seed,
                                             runs_dir=str(out / "runs")), progress=Progress(False))
        first = first or results
        backbone = next(iter(results.backbones.values()))
        print(f"\nseed {seed}: {results.split.test} test images; float model "
              f"{backbone.reference.accuracy * 100:.1f}%; recommended: {results.recommendation.variant}")
        for name in ("int8", "uint8"):
            print("  " + _evidence(backbone.variant(name)))
        print(f"  {results.recommendation.reason}")
    damaged_case(first, out)


if __name__ == "__main__":
    main()
