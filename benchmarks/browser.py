"""Benchmark of the web page: in-browser latency beside native LiteRT, same file, same threads.

    .venv/bin/python benchmarks/browser.py DATA RUN_OR_SITE... [--variants float32 uint8] [-n 50]

DATA is a folder of photos (searched recursively; ``n`` are taken evenly over its sorted files).
Each RUN_OR_SITE is a run folder, whose ``--variants`` are exported with ``zoolite export --web``
into a temporary folder (and its default export too, marked "default", when it is another
variant), or a folder already written by ``zoolite export --web``. For each model and for 1 and
2 threads:

- browser: the page in headless Chromium (Debian's ``chromium``, driven by Playwright), served
  by ``zoolite.apps.serve`` with COOP/COEP and opened with ``?threads=N``; the photos go through its
  file input, and the median of the per-photo inference times it reports (``data-ms``: input
  tensor, run, output read) is shown, beside the median of 50 back-to-back runs on one image;
- native: zoolite's own LiteRT runtime and latency routine (``zoolite.measure.evaluation.measure_latency``,
  as a run measures) with N threads, one call per photo after one warm-up call, on the same
  photos preprocessed the zoolite way;
- answers: how many photos get the same top-1 answer (a class, or none of them) in the page as
  from ``zoolite.predict`` on the same file: a fast page that answers differently is no good.

Target: <= 10 ms per photo for the default model (EfficientNet-Lite0) at 2 threads in Chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def pick_photos(folder: Path, n: int) -> list[Path]:
    """``n`` photos spread evenly over the sorted files of ``folder`` (all its classes)."""
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(photos) < n:
        sys.exit(f"{folder}: {len(photos)} photos; need {n}")
    return [photos[i * len(photos) // n] for i in range(n)]


def sites_of(path: Path, variants: list[str], workdir: Path) -> list[tuple[Path, bool]]:
    """(site folder, is the default export) for each model to measure from ``path``."""
    if (path / "index.html").is_file():
        return [(path, False)]
    if not (path / "results.json").is_file():
        sys.exit(f"{path}: neither a run folder nor a folder written by `zoolite export --web`")
    from zoolite.errors import ZooliteError
    from zoolite.apps.export import export
    from zoolite.apps.model_card import read_card

    out = workdir / path.name
    try:
        default = export(path, out / "default", web=True)
        default_variant = read_card(default / "model.json").variant
    except ZooliteError as e:  # no recommendation, or one the page cannot run
        print(f"  {path}: no default web export ({e})", file=sys.stderr)
        default, default_variant = None, None
    sites = [(export(path, out / v, variant=v, web=True), False) for v in variants if v != default_variant]
    if default is None:
        return sites
    return [(default, True)] + sites if default_variant in variants else sites + [(default, True)]


class Served:
    """A site served by zoolite.apps.serve.serve in a thread (any free port)."""

    def __init__(self, site: Path):
        from zoolite.apps.serve import serve

        self.url, self._stop, ready = None, threading.Event(), threading.Event()

        def on_ready(url):
            self.url = url
            ready.set()

        self._thread = threading.Thread(target=serve, args=(site, 0), daemon=True,
                                        kwargs={"on_ready": on_ready, "stop": self._stop})
        self._thread.start()
        if not ready.wait(10):
            sys.exit("the server did not start")

    def close(self):
        self._stop.set()
        self._thread.join(10)


def browser_times(browser, url: str, photos: list[Path]) -> dict:
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-state]", timeout=120_000)
    if page.get_attribute("body", "data-state") != "ready":
        sys.exit(f"{url}: {page.text_content('#status')}")
    page.set_input_files("#files", [str(p) for p in photos])
    page.wait_for_function(f"document.querySelectorAll('#results > [data-file]').length >= {len(photos)}",
                           timeout=600_000)
    results = page.eval_on_selector_all(  # in the order given; a rejected photo's label is ""
        "#results > [data-ms]", "els => els.map(e => ({ms: Number(e.dataset.ms), label: e.dataset.label || null}))")
    if len(results) != len(photos):
        sys.exit(f"{url}: {len(photos) - len(results)} photo(s) not classified")
    loop = page.evaluate("zoolite.benchmark(50)")
    info = page.evaluate("({threads: zoolite.threads, wasm: zoolite.wasm})")
    page.close()
    return {"photos": statistics.median(r["ms"] for r in results), "loop": statistics.median(loop),
            "answers": [r["label"] for r in results], **info}


def predicted(model_file: Path, photos: list[Path]) -> list[str | None]:
    """zoolite.predict's top-1 answer for each photo, as the page gives it: a class, or None."""
    from zoolite import predict

    return [None if p.none_of_these else p.top[0][0] for p in predict(model_file, photos, top=1).predictions]


def native_median_ms(model_file: Path, photos: list[Path], threads: int) -> float:
    from zoolite.config import LatencyConfig
    from zoolite.dataset.images import load_image
    from zoolite.measure.evaluation import measure_latency
    from zoolite.targets import open_model

    runtime, _ = open_model(model_file, threads)
    images = np.stack([load_image(p, runtime.input_size) for p in photos])
    config = LatencyConfig(warmup=1, runs=len(images), max_seconds=1e9, min_runs=len(images))
    return measure_latency(runtime.predict_one, images, config).median_ms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, help="a folder of photos (searched recursively)")
    parser.add_argument("models", type=Path, nargs="+", help="run folders or folders written by `export --web`")
    parser.add_argument("--variants", nargs="+", default=["float32", "uint8"], help="what to export from a run")
    parser.add_argument("--photos-count", "-n", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chromium", default=os.environ.get("ZOOLITE_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from zoolite.apps.model_card import read_card
    from zoolite.runs.provenance import machine_info

    photos = pick_photos(args.photos, args.photos_count)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for path in args.models:
            for site, default in sites_of(path, args.variants, Path(tmp)):
                card = read_card(site / "model.json")
                name = f"{card.backbone} {card.variant}" + (" (default)" if default else "")
                expected = predicted(site / card.model_file, photos)
                server = Served(site)
                try:
                    for threads in args.threads:
                        page = browser_times(browser, f"{server.url}?threads={threads}", photos)
                        native = native_median_ms(site / card.model_file, photos, threads)
                        same = sum(a == b for a, b in zip(page["answers"], expected))
                        rows.append((name, threads, page, native, same))
                        print(f"  {name}, {threads} thread(s): browser {page['photos']:.1f} ms, "
                              f"native {native:.1f} ms, {same}/{len(photos)} answers as zoolite.predict's",
                              file=sys.stderr)
                finally:
                    server.close()
        version = browser.version
        browser.close()

    machine = machine_info(runtimes=["litert"])
    load = " ".join(f"{x:.2f}" for x in load_before), " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nIn-browser vs native LiteRT latency, median ms per photo over {len(photos)} photos of {args.photos}")
    print(f"CPU: {machine.cpu} ({machine.cores} cores); load average (1, 5, 15 min) {load[0]} before, "
          f"{load[1]} after; Chromium {version}; ai-edge-litert {machine.packages['ai-edge-litert']}\n")
    print("| model | threads | browser, photos | browser, loop | native LiteRT | browser / native | "
          "same answer as zoolite.predict | wasm |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, threads, page, native, same in rows:
        used = f", {page['threads']} used" if page["threads"] != threads else ""
        print(f"| {name} | {threads} | {page['photos']:.1f} | {page['loop']:.1f} | {native:.1f} | "
              f"{page['photos'] / native:.1f}x | {same}/{len(photos)} | {page['wasm']}{used} |")


if __name__ == "__main__":
    main()
