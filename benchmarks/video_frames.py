"""Does finding copies stay fast and right on thousands of near-identical frames of one video?

    .venv/bin/python benchmarks/video_frames.py [--frames 10000] [--others 100]

Makes a folder with one class of ``--frames`` frames of a "video" (a 320x240 window panning slowly
over a sample photo scaled to 1280x960, each frame re-encoded as JPEG with a little noise, so that
neighbouring frames are near-copies and far-apart ones are not copies of one another, only joined
through the frames between) and one class of ``--others`` distinct sample photos. Then it times
:func:`zoolite.dataset.duplicates.find_duplicates` and ``zoolite check --no-suspects``, and prints the groups
found (right: one group of every frame, nothing else), the check's duplicates line, and the peak RSS.

Output (2-core AMD EPYC, quiet):

    10000 frames + 100 other photos made in 11 s
    find_duplicates: 39.7 s (3.93 ms a photo); every frame in one group, and nothing else in it: True;
      groups among the other photos: 1 (the sample holds one real pair of copies)
    peak RSS of this process: 1602 MB
    zoolite check --no-suspects: 43.3 s, exit 0, 9 lines, longest 296 characters; its duplicates lines:
        duplicate groups: 2 (10002 files)
          photos/OIP-JWUV6Zu7rNgxUUPXDNw80gHaE9.jpg = photos/OIP-Junvfw6M-f5CciCfImQHRgAAAA.jpg
          video/frame-00000.jpg = video/frame-00001.jpg = ... = video/frame-00009.jpg = ... (9990 more,
          10000 files in all; --json lists them)
        label conflicts (duplicates in more than one class folder): 0
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))

from zoolite.dataset.scan import scan_dataset  # noqa: E402
from zoolite.dataset.duplicates import find_duplicates  # noqa: E402

SAMPLE = Path(__file__).parents[1] / "zoolite" / "sample" / "animals10"


def make_frames(dest: Path, frames: int, others: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photos = sorted(SAMPLE.glob("*/*"))
    with Image.open(photos[0]) as scene:
        scene = np.asarray(scene.convert("RGB").resize((1280, 960)), np.int16)
    (dest / "video").mkdir(parents=True)
    path = np.linspace(0, 1, frames)
    for i, t in enumerate(path):
        x, y = int(t * (1280 - 320)), int((0.5 + 0.5 * np.sin(6 * t)) * (960 - 240))
        frame = scene[y:y + 240, x:x + 320] + rng.integers(-4, 5, (240, 320, 3))
        out = io.BytesIO()
        Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
        (dest / "video" / f"frame-{i:05d}.jpg").write_bytes(out.getvalue())
    (dest / "photos").mkdir()
    for photo in photos[1:others + 1]:
        (dest / "photos" / photo.name).write_bytes(photo.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--others", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        make_frames(root, args.frames, args.others)
        print(f"{args.frames} frames + {args.others} other photos made in {time.perf_counter() - start:.0f} s")
        files = scan_dataset(root).files
        start = time.perf_counter()
        groups = find_duplicates(root, files).groups
        seconds = time.perf_counter() - start
        with_frames = [g for g in groups if any(p.startswith("video/") for p in g)]
        whole = len(with_frames) == 1 and len(with_frames[0]) == args.frames and \
            all(p.startswith("video/") for p in with_frames[0])
        print(f"find_duplicates: {seconds:.1f} s ({seconds / len(files) * 1000:.2f} ms a photo); "
              f"every frame in one group, and nothing else in it: {whole}; groups among the other photos: "
              f"{len(groups) - len(with_frames)} (the sample holds one real pair of copies)")
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        start = time.perf_counter()
        check = subprocess.run([sys.executable, "-m", "zoolite.cli", "check", str(root), "--no-suspects", "--quiet"],
                               capture_output=True, text=True)
        lines = check.stdout.splitlines()
        print(f"zoolite check --no-suspects: {time.perf_counter() - start:.1f} s, exit {check.returncode}, "
              f"{len(lines)} lines, longest {max(map(len, lines))} characters; its duplicates lines:")
        print("\n".join("    " + line for line in lines if "duplicate" in line or " = " in line))


if __name__ == "__main__":
    main()
