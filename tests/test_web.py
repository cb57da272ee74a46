"""The model in a browser: ``zoolite export --web`` and ``zoolite serve``, with the page in headless Chromium.

The sites are real exports of the session's ``small_run`` (float32 and uint8), served by the
real ``zoolite serve`` command in a subprocess; the browser is Debian's ``chromium``
(scripts/install-browser.sh), driven with pip ``playwright``. The page's top-1 labels are
compared with ``zoolite predict`` on the same exported file and the same photos, which the
run never saw. Set ZOOLITE_WEB_SCREENSHOT=path to save a screenshot of the page (docs/web-page.png).
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, error_line, predict_top1
from zoolite.cli import main
from zoolite.targets import TARGETS

CHROMIUM = Path(os.environ.get("ZOOLITE_CHROMIUM", "/usr/bin/chromium"))
RUN_CLASSES = ("cane", "gatto", "ragno")  # small_run's classes: dog, cat, spider
VARIANTS = ("float32", "uint8")
N_PHOTOS = 10
NONE = "none of these"  # the answer, page's or `zoolite predict`'s, for a photo the model rejects


def export_site(run_dir, to: Path, *options: str) -> Path:
    assert main(["export", str(run_dir), "--web", *options, "--to", str(to)]) == 0
    return to


class ZooliteServe:
    """``zoolite serve SITE --port 0`` in its own process; the URL it prints; Ctrl-C on exit,
    after which it must have stopped cleanly (exit 0, nothing on stderr)."""

    def __init__(self, site: Path):
        command = Path(sys.executable).with_name("zoolite")
        argv = [str(command)] if command.exists() else [sys.executable, "-m", "zoolite.cli"]
        # Started as from a terminal: a test session launched in the background (`make test &`) inherits an
        # ignored Ctrl-C, which Python keeps ignoring, so the Ctrl-C this test sends would never arrive.
        self.process = subprocess.Popen([*argv, "serve", str(site), "--port", "0"], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not found:
            self.process.kill()
            pytest.fail(f"zoolite serve printed {line!r}; stderr: {self.process.communicate()[1]!r}")
        self.url = found.group(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGINT)
        try:
            out, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # say what state the process was in
            status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
            self.process.kill()
            pytest.fail("zoolite serve did not stop within 10 s of Ctrl-C: "
                        + "; ".join(line for line in status if line.startswith(("State", "SigBlk", "SigIgn"))))
        if exc[0] is None:
            assert (self.process.returncode, out, err) == (0, "", ""), "zoolite serve did not stop cleanly on Ctrl-C"


# ---------------------------------------------------------------- photos and zoolite predict

@pytest.fixture
def web_photos(small_run, tmp_path) -> list[Path]:
    """10 photos of small_run's classes that its data did not include, then one undecodable '.jpg'."""
    used = {p.name for p in Path(small_run.dataset.root).rglob("*")}
    unseen = [[p for p in sorted((SAMPLE / name).iterdir()) if p.name not in used] for name in RUN_CLASSES]
    chosen = [photos[i] for i in range(N_PHOTOS) for photos in unseen if i < len(photos)][:N_PHOTOS]
    assert len(chosen) == N_PHOTOS
    folder = tmp_path / "photos"
    folder.mkdir()
    copies = []
    for src in chosen:  # the page knows a photo by its file name: make them unique
        copies.append(folder / f"{src.parent.name}-{src.name}")
        shutil.copyfile(src, copies[-1])
    bad = folder / "not-a-photo.jpg"
    bad.write_text("these are text bytes, not a JPEG\n")
    return copies + [bad]


# ---------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright; without either the tests fail (never skip), saying how to get it."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright missing: pip install -e '.[test]'", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: bash scripts/install-browser.sh (or sudo apt-get install -y chromium)",
                    pytrace=False)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, url: str, timeout_ms: int = 60_000, while_loading=None):
    """A new page at ``url`` once the model is loaded, with the requests and console errors it makes.
    ``while_loading(page)``, if given, is called while the model file's response is held back, so
    surely before the model is ready; the response goes on when it returns."""
    page = browser.new_page()
    log = {"requests": [], "errors": []}
    page.on("request", lambda request: log["requests"].append(request.url))
    page.on("console", lambda msg: log["errors"].append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: log["errors"].append(str(error)))
    if while_loading:
        def hold_model(route):
            try:
                while_loading(page)
            finally:  # an error in while_loading must not leave the page waiting for its model forever
                route.continue_()

        page.route("**/*.tflite", hold_model)  # the page fetches one .tflite file: its model
    page.goto(url)
    page.wait_for_selector("body[data-state]", timeout=timeout_ms)
    state = page.get_attribute("body", "data-state")
    assert state == "ready", f"page failed: {page.text_content('#status')} {log['errors']}"
    return page, log


def results_in_page(page, count: int, timeout_ms: int = 60_000) -> list[dict]:
    """Wait for ``count`` results on the page; the attributes of each, in the page's order."""
    page.wait_for_function(f"document.querySelectorAll('#results > [data-file]').length >= {count}",
                           timeout=timeout_ms)
    return page.eval_on_selector_all(
        "#results > [data-file]",
        "els => els.map(e => ({file: e.dataset.file, label: e.dataset.label, rejected: e.dataset.rejected,"
        " p: e.dataset.p, ms: e.dataset.ms, error: e.dataset.error, text: e.textContent}))")


def classify_in_page(page, photos: list[Path], timeout_ms: int = 60_000) -> list[dict]:
    """Give the page ``photos`` through its file input; wait for one result per photo; their attributes."""
    before = page.locator("#results > [data-file]").count()
    page.set_input_files("#files", [str(p) for p in photos])
    return results_in_page(page, before + len(photos), timeout_ms)[before:]


def drop_in_page(page, photos: list[Path], target: str = "#drop") -> list[bool]:
    """Drag ``photos`` over ``target`` and drop them there (synthetic dragover and drop events with a
    DataTransfer holding them); for each event, whether the page cancelled it, as it must: a file
    drop the page does not cancel makes the browser leave the page to open the file."""
    return page.evaluate(
        """([target, files]) => {
             const data = new DataTransfer();
             for (const [name, b64] of files) {
               data.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name));
             }
             const node = document.querySelector(target);
             return ["dragover", "drop"].map((type) =>
               !node.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true})));
           }""",
        [target, [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in photos]])


def answer(result: dict) -> str:
    """The page's answer for one photo: its top-1 label, or NONE."""
    return NONE if result["rejected"] == "true" else result["label"]


@pytest.mark.slow
def test_exported_page_in_chromium(chromium, small_run, web_photos, tmp_path, capsys, record_property):
    """Both web-ready variants, exported and served by zoolite, agree with `zoolite predict`; without
    COOP/COEP the page still works, on 1 thread. One test: the browser and the exports are made once."""
    sites = {variant: export_site(small_run.run_dir, tmp_path / f"site-{variant}", "--variant", variant)
             for variant in VARIANTS}
    for variant in VARIANTS:
        check_page_against_predict(chromium, sites[variant], web_photos, capsys, record_property,
                                   screenshot=variant == "uint8" and os.environ.get("ZOOLITE_WEB_SCREENSHOT"))
    check_page_without_isolation(chromium, sites["uint8"], web_photos[:2])


def check_page_against_predict(chromium, site: Path, web_photos: list[Path], capsys, record_property,
                               screenshot=None):
    from zoolite.dataset.images import load_image

    card = json.loads((site / "model.json").read_text())
    photos, bad = web_photos[:-1], web_photos[-1]
    with ZooliteServe(site) as server:
        page, log = open_page(chromium, server.url)
        results = {r["file"]: r for r in classify_in_page(page, web_photos)}
        summary = page.locator("#summary")
        threads = summary.get_attribute("data-threads")
        summary_text = summary.text_content()
        # The page's model input for a few photos, against zoolite's (zoolite.dataset.images.load_image).
        size = card["input_size"]
        pixel_diffs = []
        for photo in photos[:3]:
            data = page.evaluate("async (b64) => Array.from(await zoolite.preprocess("
                                 "new Blob([Uint8Array.from(atob(b64), c => c.charCodeAt(0))])))",
                                 base64.b64encode(photo.read_bytes()).decode())
            page_pixels = np.array(data, dtype=np.float32).reshape(size, size, 3)
            pixel_diffs.append(float(np.abs(page_pixels - load_image(photo, size)).mean()))
        if screenshot:
            page.set_viewport_size({"width": 1000, "height": 1000})
            page.screenshot(path=screenshot, full_page=True)
        page.close()

    # The undecodable file: one line in its place; the others go on.
    assert results[bad.name]["error"] == "decode"
    assert "\n" not in results[bad.name]["text"].strip() and bad.name in results[bad.name]["text"]
    assert all(results[p.name]["error"] is None and answer(results[p.name]) for p in photos)

    expected = [NONE if said is None else said for said in predict_top1(capsys, site / card["model_file"], photos)]
    got = [answer(results[p.name]) for p in photos]
    disagreements = sum(a != b for a, b in zip(expected, got))
    variant = card["variant"]
    record_property(f"disagreements_{variant}", f"{disagreements}/{len(photos)}")
    with capsys.disabled():
        print(f"\n{variant}: top-1 disagreements, page vs zoolite predict: {disagreements}/{len(photos)}; "
              f"page: {summary_text}")
    assert disagreements <= 1, list(zip([p.name for p in photos], expected, got))
    assert len(set(expected)) >= 2, expected  # not all one class: the comparison means something

    assert max(pixel_diffs) < 4, pixel_diffs  # 0-255 levels: decoders and resamplers differ slightly
    expected_threads = min(2, os.cpu_count() or 1)
    assert threads == str(expected_threads), summary_text
    assert f"{expected_threads} thread" in summary_text and card["model_file"] in summary_text
    assert all(float(results[p.name]["ms"]) > 0 for p in photos)
    assert log["errors"] == []
    outside = [u for u in log["requests"] if not u.startswith(server.url) and not u.startswith(("blob:", "data:"))]
    assert outside == [], outside


def check_page_without_isolation(chromium, site: Path, photos: list[Path]):
    """Served without COOP/COEP (not by zoolite serve), the page falls back to one thread and says so."""
    import functools
    import http.server

    class Plain(http.server.SimpleHTTPRequestHandler):  # no COOP/COEP headers
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".wasm": "application/wasm", ".js": "text/javascript"}

        def log_message(self, *args):
            pass

    handler = functools.partial(Plain, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            page, log = open_page(chromium, f"http://127.0.0.1:{server.server_address[1]}/")
            results = classify_in_page(page, photos)
            summary = page.text_content("#summary")
            page.close()
        finally:
            server.shutdown()
    assert all(answer(r) for r in results)
    assert "1 thread" in summary and "not cross-origin isolated" in summary
    assert log["errors"] == []


@pytest.mark.slow
def test_page_says_none_of_these(chromium, small_run, web_photos, tmp_path, capsys):
    """A photo whose top score is below model.json's "none_of_these" threshold is shown as "none of
    the N classes (top: LABEL 0.31)", with data-rejected="true" and an empty data-label, beside kept
    class photos; for every photo the page decides as zoolite's rule does on the native LiteRT
    scores (rejected iff the top score < the threshold).

    Which photos the session's small model rejects at its shipped threshold depends on its
    training, so the page is served from a copy of the export whose model.json threshold (the page
    reads it from there, not from the .tflite) is moved to the middle of the widest gap between
    the batch's native top scores that lies above the shipped threshold and below the best class
    photo's score: at least one photo is then surely rejected and a class photo kept, every photo
    the shipped threshold rejects stays rejected, and no score sits near the threshold, where the
    browser's slightly different decoding and resizing could flip it. A flat grey and a
    random-noise image go in the batch as natural negatives, which the test does not rely on.
    """
    from PIL import Image

    from zoolite.dataset.images import load_image
    from zoolite.targets import open_model

    site = export_site(small_run.run_dir, tmp_path / "site", "--variant", "uint8")
    card = json.loads((site / "model.json").read_text())
    assert card["none_of_these"] is not None
    shipped = card["none_of_these"]["threshold"]
    class_photos, grey, noise = web_photos[:-1], tmp_path / "grey.png", tmp_path / "noise.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(grey)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)).save(noise)
    photos = [*class_photos, grey, noise]
    runtime, _ = open_model(site / card["model_file"])
    scores = {p.name: float(runtime.predict_one(load_image(p, card["input_size"])).max()) for p in photos}

    best_class = max(scores[p.name] for p in class_photos)
    ordered = sorted(set(scores.values()))
    gaps = [(high - low, low, high) for low, high in zip(ordered, ordered[1:]) if shipped < high <= best_class]
    assert gaps, (shipped, scores)
    _, low, high = max(gaps)
    threshold = (low + high) / 2
    moved = tmp_path / "moved"
    shutil.copytree(site, moved)
    card["none_of_these"]["threshold"] = threshold
    (moved / "model.json").write_text(json.dumps(card))

    with ZooliteServe(moved) as server:
        page, log = open_page(chromium, server.url)
        results = {r["file"]: r for r in classify_in_page(page, photos)}
        note = page.text_content("#model")
        page.close()

    expected = {p.name: str(scores[p.name] < threshold).lower() for p in photos}
    assert {p.name: results[p.name]["rejected"] for p in photos} == expected, (threshold, scores)
    assert "true" in expected.values() and any(expected[p.name] == "false" for p in class_photos)
    verdict = re.compile(rf"none of the {len(card['classes'])} classes \(top: (.+) (\d\.\d\d)\)")
    for name, result in results.items():
        found = verdict.search(result["text"])
        if result["rejected"] == "true":
            assert result["label"] == "" and found, result
            assert found[1] in card["classes"] and abs(float(found[2]) - float(result["p"])) <= 0.0051, result
        else:
            assert result["label"] in card["classes"] and not found, result
    shown = re.search(r'Says "none of these" below a top score of (\d\.\d\d)\.', note)
    assert shown and abs(float(shown[1]) - threshold) <= 0.005, note
    assert log["errors"] == []
    with capsys.disabled():
        natural = [p.name for p in (grey, noise) if scores[p.name] < shipped]
        print(f"\nnone of these: threshold {shipped:.3f} moved to {threshold:.3f}; page rejected "
              f"{sorted(n for n, r in results.items() if r['rejected'] == 'true')}; "
              f"the shipped threshold rejects {natural or 'neither'} of the grey and noise images")


@pytest.mark.slow
def test_every_table_of_the_report_fits_a_1200_px_window(chromium, small_run):
    """The widest report there is here, three runtimes' variants side by side, read in a 1,200 px window:
    no table is wider than the page (a cut last column would need sideways scrolling to read)."""
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    page.goto((Path(small_run.run_dir) / "report.html").as_uri())
    widths = page.eval_on_selector_all("div.wide", "boxes => boxes.map(b => [b.scrollWidth, b.clientWidth])")
    page.close()
    assert len(widths) >= 5 and all(width <= room for width, room in widths), widths


def test_page_queues_photos_given_while_the_model_loads(chromium, small_run, web_photos, tmp_path):
    """A photo chosen and two dropped on the drop target before the model is ready wait, and the
    status says so; once it is ready each gets its result, in the order given. Every drop, on the
    target or beside it, is cancelled from the start, so the browser stays on the page; one beside
    the target is not classified. The model file's response is held back until the photos have
    been given: they surely come first, whatever the machine's speed."""
    site = export_site(small_run.run_dir, tmp_path / "site", "--variant", "uint8")
    chosen, dropped, beside = web_photos[:1], web_photos[1:3], web_photos[3]
    seen = {}

    def give_photos(page):  # no assertion here: an error in a route handler is only logged
        page.set_input_files("#files", [str(p) for p in chosen])
        seen["cancelled"] = drop_in_page(page, dropped) + drop_in_page(page, [beside], "h1")
        seen["status"] = page.text_content("#status")
        seen["state"] = page.get_attribute("body", "data-state")

    with ZooliteServe(site) as server:
        page, log = open_page(chromium, server.url, while_loading=give_photos)
        assert seen == {"cancelled": [True] * 4, "status": "Loading the model… 3 photos waiting.", "state": None}
        results = results_in_page(page, len(chosen + dropped))
        status, url = page.text_content("#status"), page.url
        page.close()

    assert [r["file"] for r in results] == [p.name for p in chosen + dropped]
    assert all(r["error"] is None and answer(r) for r in results), results
    assert status == "Done: 3 classified."  # and not still at work on the photo dropped beside the target
    assert url == server.url
    assert log["errors"] == []


# ---------------------------------------------------------------- no browser needed

@pytest.mark.parametrize("recommended", ["int8", "openvino_int8"])
def test_export_web_writes_the_site_around_the_recommended_model(small_run, tmp_path, capsys, recommended):
    """The recommended file, as a plain export ships it (int8 as its uint8 twin); a file of a runtime
    the page cannot run gives way to the recommendation among LiteRT's files, under the same budget."""
    import copy

    from zoolite.report import reporting
    from zoolite.apps.export import chosen_variant
    from zoolite.results.recommend import recommend
    from zoolite.results import Recommendation

    results = copy.deepcopy(small_run)
    results.run_dir = str(shutil.copytree(small_run.run_dir, tmp_path / "run"))
    results.recommendation = Recommendation(results.config.budget, "made up", "efficientnet_lite0", recommended)
    reporting.write_reports(results)
    site = export_site(results.run_dir, tmp_path / "site")
    out = capsys.readouterr().out.strip().splitlines()
    if recommended == "openvino_int8":  # the page runs LiteRT files: the recommendation among those
        results.recommendation = recommend(results, results.config.budget, "litert")
    _, shipped = chosen_variant(results)  # as a plain export of that recommendation: it, or its app twin
    assert shipped.target in (results.recommendation.variant, TARGETS[results.recommendation.variant].app_twin)
    files = sorted(["app.js", "index.html", "labels.txt", "litertjs", "model.json", Path(shipped.file).name])
    assert out == [f"{site}: {', '.join(files)}", f"open it in a browser: zoolite serve {site}"]
    assert (site / "litertjs" / "core" / "index.js").is_file()


def test_export_web_refuses_int8_and_writes_nothing(small_run, tmp_path, capsys):
    target = tmp_path / "site"
    line = error_line(capsys, ["export", str(small_run.run_dir), "--web", "--variant", "int8", "--to", str(target)])
    working = [v.target for v in small_run.backbones["efficientnet_lite0"].shippable
               if v.family == "litert" and v.target != "int8"]
    assert "--variant int8: LiteRT.js cannot run this LiteRT file (int8 input) in the web page" in line
    assert line.endswith(f"for --web choose from: {', '.join(working)}") and "uint8" in working
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_a_folder_without_page(tmp_path, capsys):
    line = error_line(capsys, ["serve", str(tmp_path)])
    assert line == f"zoolite: error: {tmp_path}: no index.html; pass a folder written by `zoolite export --web`"


def test_serve_refuses_a_port_in_use(tmp_path, capsys):
    (tmp_path / "index.html").write_text("<!doctype html>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(capsys, ["serve", str(tmp_path), "--port", str(port)])
    assert line == f"zoolite: error: --port {port}: already in use; pick another port"


def test_serve_sends_isolation_headers_and_types(tmp_path):
    import urllib.request

    (tmp_path / "index.html").write_text("<!doctype html>")
    for name in ("a.wasm", "a.js", "a.mjs", "a.tflite"):
        (tmp_path / name).write_bytes(b"\0")
    types = {}
    with ZooliteServe(tmp_path) as server:
        for name in ("index.html", "a.wasm", "a.js", "a.mjs", "a.tflite"):
            with urllib.request.urlopen(server.url + name) as response:
                types[name] = response.headers["Content-Type"].split(";")[0]
                assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
                assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert types == {"index.html": "text/html", "a.wasm": "application/wasm", "a.js": "text/javascript",
                     "a.mjs": "text/javascript", "a.tflite": "application/octet-stream"}


def _card(name: str) -> dict:
    """A model.json as an earlier zoolite wrote it (tests/data/model-cards)."""
    return json.loads((Path(__file__).parent / "data" / "model-cards" / f"{name}.json").read_text())


@pytest.mark.parametrize("card, said", [
    # a card of zoolite 0.2 (no "web" field): its int8 tensors decide
    (_card("zoolite-0.2-int8"), "variant int8 (LiteRT, int8 input) cannot run in the page"),
    # another runtime's file takes float32, but export says the page cannot run it
    (_card("zoolite-0.3-openvino_float32"), "variant openvino_float32 (OpenVINO, float32 input) cannot run in the page"),
])
def test_write_site_refuses_what_litertjs_cannot_run(tmp_path, card, said):
    from zoolite.apps.model_card import read_card
    from zoolite.apps.web import WEB_INPUT_DTYPES, web_can_run, write_site
    from zoolite.errors import ZooliteError

    (tmp_path / card["model_file"]).write_bytes(b"\0")
    (tmp_path / "model.json").write_text(json.dumps(card))
    assert not web_can_run(read_card(tmp_path / "model.json")) and WEB_INPUT_DTYPES == {"uint8", "float32"}
    with pytest.raises(ZooliteError, match=re.escape(said)):
        write_site(tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_write_site_adds_page_and_runtime_only(tmp_path):
    from zoolite.apps.web import write_site

    card = _card("zoolite-0.3-uint8")
    (tmp_path / "uint8.tflite").write_bytes(b"\0")
    (tmp_path / "model.json").write_text(json.dumps(card))
    write_site(tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["app.js", "index.html", "litertjs/LICENSE", "litertjs/VERSION", "litertjs/core/index.js",
                     "litertjs/wasm-utils/index.js", "litertjs/wasm/litert_wasm_compat_internal.js",
                     "litertjs/wasm/litert_wasm_compat_internal.wasm",
                     "litertjs/wasm/litert_wasm_threaded_internal.js",
                     "litertjs/wasm/litert_wasm_threaded_internal.wasm", "model.json", "uint8.tflite"]
    # No CDN: the page and runtime name no other host.
    page = (tmp_path / "index.html").read_text() + (tmp_path / "app.js").read_text()
    assert "https://" not in page and "http://" not in page
