"""Memory benchmark (issue 6): peak RSS of the whole pipeline on 20,000 vs 2,000 images.

Generates DIR/images-20000 (10 classes x 2,000 small JPEGs: noise plus a class-specific
shape, seeded) and DIR/images-2000 (the first 200 of each class, hard links), runs
`zoolite run` on each in its own process, and reads that process's peak RSS (children
included) from ``os.wait4``. Target: under 3 GB for 20,000 images. If the pipeline held
the decoded dataset in memory, 10x the images would need about 10x the memory (20,000
images at 224x224 px are 3 GB as uint8); streaming keeps the two peaks close.

Epochs, latency runs and calibration images are cut so it finishes in about 15 minutes on
2 cores; none of them changes how images are held. Images are generated once and reused.

    .venv/bin/python benchmarks/memory.py /tmp/zoolite-memory [--images 20000] [--compare 2000]

Output (2-core AMD EPYC, 2026-12-07, zoolite 0.7.1; 9.7 minutes with the images made, run with an empty user
cache, ``ZOOLITE_CACHE=DIR``, so the 2,000-image run also ported the weights and converted the backbone; the
machine slower that day than at 0.7.0):

      images   wall s  peak RSS GB  features s  images/s
       2,000       83         1.88          11      24.2
      20,000      498         2.37         107      40.2
    10.0x the images: 1.26x the peak RSS, 6.0x the wall time
    target: peak RSS under 3 GB for 20,000 images: met (2.37 GB)

(0.7.0, at 633e4fa, with the weights and backbone in the user cache: 1.60 and 2.27 GB, 59 and 397 s.) A LiteRT
file's batch predictions run, since 0.7.1, on one copy of the interpreter a core, each with its own packed weights.

Of the 20,000-image run's 490 s (the total in its results.json; 498 s wall), the duplicate search took 211 s (11
s at 2,000; the ``duplicates`` timing of the run folders it prints). Its coarse search compares every pair of
photos, so a part of it grows with their square; and these made images, one of three shapes on noise, look alike
in grey, so its aligned check has far more pairs to refine than real photos give, and the run flagged 631 of its
photos as copies across classes (its log).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zoolite.config import DEFAULT_BACKBONE  # light: neither of these imports TensorFlow
from zoolite.results import load

TARGET_GB = 3.0
CLASSES = ["cane", "cavallo", "elefante", "farfalla", "gallina", "gatto", "mucca", "pecora", "ragno", "scoiattolo"]
SIZE = 96
RUN_OPTIONS = ["--quiet", "--epochs", "3", "--validation-freq", "1", "--warmup", "2", "--runs", "20",
               "--min-runs", "5", "--max-latency-seconds", "2", "--representative-images", "100"]


def _image(rng: np.random.Generator, label: int) -> Image.Image:
    """Noise, plus the class's shape in the class's colour at a random place and size."""
    image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    colour = ((label * 97) % 256, (label * 53 + 80) % 256, (label * 31 + 160) % 256)
    size = int(rng.integers(30, 70))
    x, y = (int(v) for v in rng.integers(0, SIZE - size, 2))
    box = [x, y, x + size, y + size]
    draw = ImageDraw.Draw(image)
    if label % 3 == 0:
        draw.ellipse(box, fill=colour)
    elif label % 3 == 1:
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(x, y + size), (x + size // 2, y), (x + size, y + size)], fill=colour)
    return image


def generate(root: Path, n_images: int, seed: int) -> Path:
    """``n_images`` JPEGs in 10 class folders under ``root`` (kept if already complete)."""
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    per_class = n_images // len(CLASSES)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _image(rng, label).save(root / name / f"{i:05d}.jpg", quality=85)
    done.write_text("")
    return root


def subset(source: Path, root: Path, per_class: int) -> Path:
    """The first ``per_class`` images of each class of ``source``, as hard links."""
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / name).iterdir())[:per_class]:
            if not (root / name / path.name).exists():
                os.link(path, root / name / path.name)
    return root


def measure(data: Path, out: Path, log: Path) -> dict:
    """Run the pipeline on ``data`` in a child process: its wall time, peak RSS and results."""
    command = [sys.executable, "-m", "zoolite.cli", "run", "--data", str(data), "--out", str(out), *RUN_OPTIONS]
    before = set(out.iterdir()) if out.exists() else set()
    start = time.perf_counter()
    with log.open("w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"zoolite run failed on {data} (exit {os.waitstatus_to_exitcode(status)}); see {log}")
    [run_dir] = set(out.iterdir()) - before
    results = load(run_dir)
    return {"images": results.dataset.images, "wall_s": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,
            "timings": results.backbones[DEFAULT_BACKBONE].timings, "run_dir": run_dir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="work folder: generated images and run folders go here")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--compare", type=int, default=2_000, help="the smaller run's image count")
    parser.add_argument("--seed", type=int, default=20_000)
    args = parser.parse_args()

    start = time.perf_counter()
    large = generate(args.dir / f"images-{args.images}", args.images, args.seed)
    small = subset(large, args.dir / f"images-{args.compare}", args.compare // len(CLASSES))
    print(f"generated {args.images:,} {SIZE}x{SIZE} JPEGs in {time.perf_counter() - start:.0f} s "
          f"({sum(p.stat().st_size for p in large.rglob('*.jpg')) / 1e6:.0f} MB)", flush=True)

    rows = [measure(data, args.dir / "runs", args.dir / f"run-{data.name}.log") for data in (small, large)]
    print(f"\n`zoolite run {' '.join(RUN_OPTIONS)}` ({DEFAULT_BACKBONE}, 224 px), one process per run:")
    print(f"{'images':>8} {'wall s':>8} {'peak RSS GB':>12} {'features s':>11} {'images/s':>9}")
    for row in rows:
        features = sum(v for k, v in row["timings"].items() if k.startswith("features_"))
        print(f"{row['images']:>8,} {row['wall_s']:>8.0f} {row['peak_rss_gb']:>12.2f} {features:>11.0f} "
              f"{row['images'] / row['wall_s']:>9.1f}")
    small_row, large_row = rows
    print(f"\n{large_row['images'] / small_row['images']:.1f}x the images: "
          f"{large_row['peak_rss_gb'] / small_row['peak_rss_gb']:.2f}x the peak RSS, "
          f"{large_row['wall_s'] / small_row['wall_s']:.1f}x the wall time")
    verdict = "met" if large_row["peak_rss_gb"] < TARGET_GB else "MISSED"
    print(f"target: peak RSS under {TARGET_GB:.0f} GB for {large_row['images']:,} images: {verdict} "
          f"({large_row['peak_rss_gb']:.2f} GB)")
    print(f"run folders: {small_row['run_dir']}, {large_row['run_dir']}")


if __name__ == "__main__":
    main()
