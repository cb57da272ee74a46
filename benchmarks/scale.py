"""What does a default `zoolite run` cost, stage by stage, and how does it grow with the photos?

    .venv/bin/python benchmarks/scale.py [--data-small DIR] [--data-large DIR] [--repeats N]
                                         [--baseline REV] [--keep DIR] [--json]

In one invocation on one machine, a default ``zoolite run --data DATA --out TMP --quiet`` of the
current checkout and of the previous release (--baseline, default b2e6549, checked out by ``git
worktree add --detach /tmp/zoolite-REV REV``, reused if there) on two folders (default
../shared/data/animals10-dev, 240 photos, and ../shared/data/animals10-large, 2,528 photos),
interleaved: old small, new small, old large, new large (times --repeats), so machine noise hits
both versions alike. Each run is a subprocess timed by its wall clock (Python start-up, imports, exit
and all), started as that version's ``zoolite`` script starts it (its pyproject.toml's entry point) with
the same Python and that version's folder first on ``PYTHONPATH`` (the code it imports is printed; the
current one a copy of zoolite/ and pyproject.toml taken at the start, which edits made meanwhile do not
reach), and with its own user cache (``ZOOLITE_CACHE``): the ported weights and converted backbone of
the user's cache, no cached photo features (as benchmarks/check_cost.py does).

Every step the run timed (results.json ``timings`` and each backbone's) gets a fixed cost and a
cost per photo, fitted over the two sizes, per the photos that drive it (from reading
zoolite/runs/pipeline.py, stages.py and inputs.py):

* every photo of the folder (results.json ``dataset.images``): ``scan``, ``duplicates``. A line understates
  ``duplicates`` beyond the large folder: its coarse pass compares every pair of photos' descriptors, so it grows
  with the square of the photos. So each version's coarse pass is also timed alone, in a subprocess of that
  version, on random unit descriptors of the two folders' photo counts and of the projected count (as
  benchmarks/coarse_search.py times it), and what it takes at the projected count above the line through the
  other two is added to the projection (nothing for a version without the search);
* the training + validation photos (``split``): ``hash_*`` and ``features_*`` (each photo through
  the backbone), ``training`` and ``fine_tuning`` (epochs over them), ``rejection`` (the gate fitted
  on their features), ``suspect_labels`` (out-of-fold logistic regression on their features: in the
  run's process once it has converted its share, while a spare process converts the rest; at 0.8 after
  the last measurement, before the reports);
* the test photos: ``decode_test``, ``evaluate_*`` (each variant predicts every test photo; its
  latency timing, at most --runs calls, and its loading are the fixed part);
* none (a fixed cost, the mean of the runs): ``convert_backbone`` (reads the cached backbone),
  ``export_saved_model``, ``convert_*``, ``calibrate_*`` and ``decode_representative`` (the
  calibration sample has --representative-images photos however many the folder holds). The steps
  a spare process did meanwhile (``parallel_*``) are left out: the run's wait for them
  (``convert_waiting``) is what they cost its wall time.

A step a version lacks costs it 0 s (b2e6549 has no ``duplicates``, ``hash_*`` or
``suspect_labels``). Three parts of the wall time no step times, taken as fixed: the reports
(results.json, CSV, Markdown, and HTML with its plots: from the last file of ``measurements/`` to
the ``COMPLETE`` marker, by their times, less ``suspect_labels`` at 0.8); start-up and exit (the wall time
less ``total`` and the reports: Python, the imports, TensorFlow's exit; the CLI times the imports as
``import`` but adds the key after results.json is written); and the rest of ``total`` (weights,
building the Keras backbone, the run folder, and any step that no rule above names). So the stages
sum to the wall time.

Projected: a run on 26,179 photos (Animals-10), split by zoolite's default fractions (test 3,927).
Printed also: each run's wall time, the machine's load average as it ended (2 cores: above 2, other
work shared them), the recommended variant and its test accuracy; the old / new ratio of the mean
wall times per folder; and, for issue #27, the fitted evaluation cost per test photo of the Keras
reference (``evaluate_keras``) against that of the features per training or validation photo; the same
two measured in the larger folder's runs (the reference's ``eval_seconds``, its predictions of every test
photo without the latency timing or the loading, per test photo; the ``features_*`` steps per training or
validation photo), which a second of noise in a fixed cost does not move as it moves the fit; and the
LiteRT variants together against the sum of their median latencies (the mean over the runs).

Output
------

Measured with ``--repeats 1`` on a cloud VM (AMD EPYC, 2 cores), 2026-12-07, the current checkout at 633e4fa
(0.7.0: the Keras reference predicts its test photos from the backbone's LiteRT features, as the head's
training photos were; the ``zoolite`` script leaves without TensorFlow's teardown; the duplicate search's
shared products; 0.6.0's spare process converts the calibrated modes while the run's process converts the
float ones), on a quiet machine. One run of each: a step of a few seconds moves by a second or so between
runs, so the fitted per-photo figures move by 1-3 ms between invocations, the old version's as much as the new
one's. Invocations during 0.6.0's work (e86edc8, 377b27d, c5ffa5c) gave the ratios 1.37, 1.34 and 1.39 on
animals10-dev and 1.08, 1.10 and 1.15 on animals10-large, and b2e6549's projection 303, 320 and 370 s. Those
during 0.7.0's gave 1.52, 1.50 and 1.54 (1f5ca27, a891ec8, dbfef4c) and 1.20, 1.25 and 1.20; the Keras
evaluation's fitted cost 4.7, 3.6 and 7.8 ms a test photo, against 6.2, 7.0 and 6.6 ms for the features: the
two-point fit lets a second of noise in its fixed part (loading, latency timing) move it by 3 ms, hence the
figures measured in the large runs, added since.

    AMD EPYC, 2 cores; each run a subprocess, default options, no cached photo features
    b2e6549: /tmp/zoolite-b2e6549/zoolite/__init__.py
    current (633e4fa): /tmp/zoolite-scale-…/current/zoolite/__init__.py
    4 runs in 3.6 min
      b2e6549            animals10-dev     240 photos (train+val 200, test 40):  48.3 s, load 1.1; recommended int8_fallback, test accuracy 85.0%
      current (633e4fa)  animals10-dev     240 photos (train+val 201, test 39):  30.9 s, load 1.3; recommended int8_fallback, test accuracy 84.6%
      b2e6549            animals10-large 2,528 photos (train+val 2,146, test 382):  77.3 s, load 1.3; recommended int8_fallback, test accuracy 97.1%
      current (633e4fa)  animals10-large 2,528 photos (train+val 2,147, test 381):  59.8 s, load 1.6; recommended int8_fallback, test accuracy 97.4%
    wall time old / new on animals10-dev: 48.3 / 30.9 s = 1.56
    wall time old / new on animals10-large: 77.3 / 59.8 s = 1.29

    old = b2e6549, new = current (633e4fa). Per stage, fitted: fixed s, and ms per photo of the photos that drive it; projected on 26,179 photos (train+val 22,252, test 3,927)
                                                     fixed s       ms per photo  26,179 photos, s
    stage                              photos         old     new     old     new     old     new
    start-up, imports, exit            fixed          5.0     3.7                       5       4
    scan + duplicates                  all            0.0     0.1    0.23    1.63       6      43
    features                           train+val      0.2     0.5    5.60    5.64     125     126
    head training + gate               train+val      2.3     2.7    0.39    0.82      11      21
    suspect labels                     train+val      0.0     0.2    0.00    0.37       0       8
    export + conversions               fixed         23.7     8.3                      24       8
    Keras evaluation, test decoding    test           8.0     6.9   14.39    6.98      65      34
    variant evaluation                 test           3.1     2.4   30.24   24.91     122     100
    reports                            fixed          1.8     2.0                       2       2
    other (weights, backbone, folder)  fixed          1.9     1.6                       2       2
    total                                            46.0    28.4                     361     348

    issue #27, ms per photo                           old     new
    Keras evaluation per test photo, fitted         13.68    6.13
      target: <= features per photo, fitted          5.60    5.64
    Keras predictions per test photo, large         13.21    5.19
      target: <= features_* steps per photo, large   5.59    5.79
    LiteRT evaluations per test photo               30.24   24.91
      target: <= sum of their median latencies      27.61   28.91

At 0.7.1 (the head's 32 steps per call, LiteRT batches on single-threaded copies: the same outputs) three
invocations, on the same VM when it ran slower and less steadily (b2e6549's large run: 86.0, 99.4, and
86.0 and 99.6 s with --repeats 2, against 75.5-77.3 s at 0.7.0), gave animals10-dev 1.56x, 1.50x and 1.73x,
animals10-large 1.44x, 1.58x and 1.32x, and 331, 301 and 395 s projected for 26,179 photos (b2e6549: 390,
437 and 376 s): its fitted per-photo costs moved by several milliseconds between them (the Keras
evaluation's from -4 to 11 ms), so they decide nothing. Each change's gain is measured side by side in
benchmarks/head_training.py and benchmarks/evaluation_cost.py.

On another VM of the same name, 2026-12-07 (AMD EPYC, 2 cores, AVX2 without AVX-512, about half as fast: b2e6549's
large run 163-191 s), three invocations of 0.7.1 at 5e1e662 with --repeats 1 gave animals10-dev 1.85x, 2.11x and
1.90x, animals10-large 1.52x, 1.66x and 1.62x, and 605, 642 and 609 s projected for 26,179 photos against
b2e6549's 688, 729 and 757 s (0.88, 0.88 and 0.80 of it). On animals10-large the recommended files: float16 at
96.9% against b2e6549's float16 at 97.1% (two invocations), int8 at 97.4% against float16 at 97.1% (the third);
the test splits differ (381 and 382 photos: since 0.4.0 copies of a photo stay in one split). The projection's
largest parts, at 26,179 photos: the features of the training and validation photos (224-247 s, about 10 ms a
photo, as b2e6549's), the six LiteRT files' evaluation (161-202 s: 39-50 ms a test photo, within the sum of their
median latencies, 58-62 ms) and the Keras reference's (55-66 s: its test photos' features); those three alone come
to about 460-500 s here, whatever the rest costs. Keras evaluation per test photo, fitted: 10.09, 11.52 and 9.09
ms against the features' 10.03, 10.34 and 11.10; measured in the large runs: 9.97, 9.54 and 9.04 ms against 10.09,
10.27 and 10.98.

On the same VM at 0.8 (c650226: the logistic head, the gate on its unit-length features), one invocation with
--repeats 1: animals10-dev 127.1 / 61.2 s = 2.08x, animals10-large 174.7 / 121.1 s = 1.44x (b2e6549's large run
took 163-191 s in earlier invocations: at 191 s the ratio is 1.58), and 716 s projected for 26,179 photos against
b2e6549's 746 s. The recommended files: float16 at 97.1% against b2e6549's int8_fallback at 97.1%. Of the 716 s, the
steps b2e6549 lacks or did faster come to about 156 s at that scale: the duplicate search 92 s (3.51 ms a photo,
its quadratic part growing beyond the line), the head and the gate 41 s (1.74 ms a training or validation photo
against 0.49) and the suspect labels 23 s (1.03 ms).

On the same VM, 2026-12-08, one invocation each with --repeats 1: at 8eb05c6 (the gate's faster k-means) animals10-dev
2.28x and animals10-large 1.68x (199.3 / 118.3 s), 689 s projected against b2e6549's 783 s; at 0.9 (39fd048: warm-up's
time limit, the suspect labels during the spare's conversions, the duplicate search's bounded chunks) 2.32x and 1.80x
(212.4 / 118.0 s), 711 s against 963 s, and at 736cec9 (a withdrawn draft of 39fd048, whose code runs the same on
these folders) 2.47x and 1.63x (192.9 / 118.7 s), 728 s against 782 s. b2e6549's large run took 193-212 s in them (its
features 10-17 ms a photo), against 163-191 s before, while the current one's took 118.0-118.7 s: at b2e6549's fastest
large run yet the ratio would be 1.38. The fitted costs at 0.9, per test photo: the Keras evaluation 10.61 ms against
the features' 11.44 (measured in the large runs: 9.69 against 11.45), and the six LiteRT files 57.12 ms against the
sum of their median latencies, 72.65. Of the 711 s projected, the features take 255 s, the six files' evaluation 230 s
and the Keras reference's 62 s: 547 s at the machine's rate, above the 240 s goal before anything else; the duplicate
search's 85 s is a straight line's, which understates its coarse pass (84 s alone at 26,179 photos:
benchmarks/coarse_search.py).

Since then the projection adds the coarse pass's growth above the line, timed alone (see above). Two invocations on
the same VM, 2026-12-08, with --repeats 1: at 9507827 (the aligned check's refinement 2x faster) animals10-dev 141.9 /
61.1 s = 2.32x, animals10-large 204.4 / 121.4 s = 1.68x, and 777 s projected for 26,179 photos against b2e6549's 823 s,
of which the duplicate search 144 s (its coarse pass 76 s there, 62 s of it above the line); at 742383d (the coarse
pass into one reused buffer) 115.9 / 62.9 s = 1.84x, 181.5 / 100.7 s = 1.80x, and 590 s against 779 s, the duplicate
search 117 s (its coarse pass 55 s, 44 s above the line). The second invocation ran faster throughout, in steps this
code does not touch too (the six LiteRT files' evaluation 33.6 ms a test photo against 47.8 in the first), so the two
projections differ by more than the change. The recommended files on animals10-large: int8_fallback at 96.6% against
b2e6549's int8 at 97.1% (the first); float32 at 97.1% against int8_fallback at 97.1% (the second).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from check_cost import fresh_cache  # noqa: E402
from zoolite import storage  # noqa: E402
from zoolite.config import DEFAULT_FRACTIONS  # noqa: E402
from zoolite.targets.parallel import PARALLEL  # noqa: E402

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "data"
REFERENCE_PHOTOS = 26_179  # Animals-10
FIXED = "fixed"

DUPLICATES = "scan + duplicates"
# (stage, the photos that drive its steps, the step-name prefixes), first match wins.
RULES = [
    (DUPLICATES, "all", ("scan", "duplicates")),
    ("features", FIXED, ("convert_backbone", "convert_trained_backbone")),
    ("features", "train+val", ("hash_", "features_")),
    ("head training + gate", "train+val", ("training", "fine_tuning", "rejection")),
    ("suspect labels", "train+val", ("suspect_labels",)),
    ("export + conversions", FIXED, ("export_", "convert_", "calibrate_", "decode_representative")),
    ("Keras evaluation, test decoding", "test", ("decode_test", "evaluate_keras")),
    ("variant evaluation", "test", ("evaluate_",)),
]
# timed steps that ran after the last measurement was written, before the reports (inside ``total``), in the runs
# of zoolite 0.8 (results schema 8); later ones find the suspect labels as the spare process converts
BEFORE_REPORTS, BEFORE_REPORTS_UP_TO_SCHEMA = ("suspect_labels",), 8
START_UP, REPORTS, OTHER = "start-up, imports, exit", "reports", "other (weights, backbone, folder)"
DUPLICATE_SEARCH = Path("zoolite", "dataset", "duplicates.py")
# Run with a version's PYTHONPATH: the file of its duplicate search, then the seconds of its coarse pass on random
# unit descriptors (no copies among them, so one round, as on a real folder) of each photo count in argv: after one
# call that warms it up, the median of three at each but the last, which is timed once.
COARSE_PASS = """
import statistics, sys, time
import numpy as np
from zoolite.dataset import duplicates
print(duplicates.__file__)

def seconds(n):
    descriptors = np.random.default_rng(n).standard_normal((n, len(duplicates._windows()), duplicates.SIZE ** 2),
                                                            np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=2, keepdims=True)
    start = time.perf_counter()
    duplicates._near_copies(descriptors)
    return time.perf_counter() - start

*counts, last = map(int, sys.argv[1:])
seconds(counts[0])
for n in counts:
    print(statistics.median(seconds(n) for _ in range(3)))
print(seconds(last))
"""
STAGES = [START_UP, *dict.fromkeys(stage for stage, _, _ in RULES), REPORTS, OTHER]


@dataclass
class Run:
    """One measured run: its wall time, its steps' seconds (with the three derived ones), its photos."""

    version: str
    data: str
    wall: float
    load: float  # the machine's 1-minute load average as the run ended (other work shows above the run's own)
    steps: dict[str, float]
    photos: dict[str, int]  # "all", "train+val", "test"
    recommended: str
    accuracy: float | None
    litert_targets: list[str]
    litert_latency_ms: float  # the sum of the LiteRT variants' median latencies
    keras_eval_s: float  # the Keras reference predicting every test photo (Variant.eval_seconds: no timing or loading)


@dataclass
class Fit:
    stage: str
    driver: str
    fixed: float  # seconds
    per_photo: float  # seconds per photo of ``driver``


def cpu() -> str:
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")


def rule(step: str) -> tuple[str, str]:
    """(stage, driver) of a timed step; (OTHER, FIXED) if no rule names it."""
    return next(((stage, driver) for stage, driver, prefixes in RULES if step.startswith(prefixes)), (OTHER, FIXED))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def checkouts(baseline: str, folder: Path) -> dict[str, Path]:
    """Label -> folder of each version: the baseline's worktree (made if missing), and a copy in ``folder``
    of this checkout's zoolite/ as it is now, so that edits made while the runs go on do not reach them."""
    worktree = Path(tempfile.gettempdir()) / f"zoolite-{baseline}"
    if not worktree.exists():
        git("worktree", "add", "--detach", str(worktree), baseline)
    changed = git("status", "--porcelain", "--", "zoolite", "pyproject.toml")
    current = git("rev-parse", "--short", "HEAD") + (" + uncommitted" if changed else "")
    shutil.copytree(ROOT / "zoolite", folder / "current" / "zoolite", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", folder / "current")
    return {baseline: worktree, f"current ({current})": folder / "current"}


def launch(checkout: Path) -> str:
    """What the ``zoolite`` script of ``checkout`` runs (its pyproject.toml's entry point; ``zoolite.cli:main``
    if it names none), as ``python -c`` code."""
    found = re.search(r'^zoolite\s*=\s*"([\w.]+):(\w+)"', (checkout / "pyproject.toml").read_text(), re.MULTILINE)
    module, function = found.groups() if found else ("zoolite.cli", "main")
    return f"import sys; from {module} import {function}; sys.exit({function}())"


def environment(checkout: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "ZOOLITE_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}


def imported_from(checkout: Path) -> str:
    """The file of zoolite that a run of ``checkout`` imports (checked to be the checkout's)."""
    out = subprocess.run([sys.executable, "-c", "import zoolite; print(zoolite.__file__)"], cwd=checkout,
                         env={**os.environ, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, check=True)
    path = out.stdout.strip()
    if not Path(path).is_relative_to(checkout):
        raise SystemExit(f"{checkout}: zoolite imported from {path}, not from the checkout")
    return path


def run(version: str, checkout: Path, data: Path, folder: Path) -> Run:
    """One default ``zoolite run`` of ``checkout`` on ``data`` in ``folder``, timed by its wall clock."""
    env = environment(checkout, fresh_cache(storage.cache_dir(), folder / "cache"))
    argv = [sys.executable, "-c", launch(checkout), "run", "--data", str(data), "--out", str(folder / "runs"),
            "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True)
    wall, load = time.perf_counter() - start, os.getloadavg()[0]
    if done.returncode:
        raise SystemExit(f"{version} on {data} failed:\n{done.stderr[-2000:]}")
    run_dir = next((folder / "runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    return measured(version, data.name, wall, load, run_dir, results)


def measured(version: str, data: str, wall: float, load: float, run_dir: Path, results: dict) -> Run:
    """The figures of one run folder: every step's seconds with the three derived ones, photos, accuracy."""
    steps = {name: s for name, s in results["timings"].items() if name not in ("total", "import")}
    for backbone in results["backbones"].values():  # a spare process's steps: the run's wait for them counts
        steps.update({name: s for name, s in backbone["timings"].items() if not name.startswith(PARALLEL)})
    total = results["timings"]["total"]
    last_measurement = max(p.stat().st_mtime for p in run_dir.glob("*/measurements/*"))
    after_total = (run_dir / storage.COMPLETE_MARKER).stat().st_mtime - last_measurement
    before_reports = BEFORE_REPORTS if results.get("schema_version", 1) <= BEFORE_REPORTS_UP_TO_SCHEMA else ()
    reports = after_total - sum(s for name, s in steps.items() if name in before_reports)
    steps |= {START_UP: wall - total - reports, REPORTS: reports, OTHER: total - sum(steps.values())}
    split, recommendation = results["split"], results["recommendation"]
    variants = {v["target"]: v for v in results["backbones"][recommendation["backbone"]]["variants"]}
    litert = [v for v in variants.values() if v["family"] == "litert"]
    chosen = variants.get(recommendation["variant"])
    return Run(version, data, wall, load, steps,
               {"all": results["dataset"]["images"], "train+val": split["train"] + split["val"], "test": split["test"]},
               recommendation["variant"] or "none", chosen["accuracy"] if chosen else None,
               [v["target"] for v in litert], sum(v["latency"]["median_ms"] for v in litert),
               variants["keras"]["eval_seconds"])


def fit_steps(runs: list[Run]) -> dict[str, Fit]:
    """Each step's fixed cost and cost per photo over the runs of one version (a step a run lacks cost it 0 s)."""
    fits = {}
    for step in dict.fromkeys(name for r in runs for name in r.steps):
        stage, driver = (step, FIXED) if step in (START_UP, REPORTS, OTHER) else rule(step)
        seconds = [r.steps.get(step, 0.0) for r in runs]
        if driver == FIXED:
            fits[step] = Fit(stage, driver, statistics.mean(seconds), 0.0)
        else:
            slope, intercept = statistics.linear_regression([r.photos[driver] for r in runs], seconds)
            fits[step] = Fit(stage, driver, intercept, slope)
    return fits


def reference_photos() -> dict[str, int]:
    """The photos of a run on Animals-10's 26,179, split by zoolite's default fractions."""
    test = round(REFERENCE_PHOTOS * DEFAULT_FRACTIONS[2])
    return {"all": REFERENCE_PHOTOS, "train+val": REFERENCE_PHOTOS - test, "test": test}


def coarse_growth(checkout: Path, counts: list[int]) -> dict[str, float]:
    """The coarse pass of ``checkout``'s duplicate search timed at ``counts`` photos and at the reference's, and how
    far the reference's time is above the line through the others' (what a line fitted to whole runs misses of it:
    the part that grows with the square of the photos); zeros for a version without the search."""
    if not (checkout / DUPLICATE_SEARCH).exists():
        return {"seconds": 0.0, "above_line_s": 0.0}
    reference = reference_photos()["all"]
    done = subprocess.run([sys.executable, "-c", COARSE_PASS, *map(str, [*counts, reference])], cwd=checkout,
                          env={**os.environ, "PYTHONPATH": str(checkout)}, capture_output=True, text=True, check=True)
    imported, *lines = done.stdout.splitlines()
    if Path(imported).resolve() != (checkout / DUPLICATE_SEARCH).resolve():
        raise SystemExit(f"{checkout}: the duplicate search imported from {imported}, not from the checkout")
    seconds = [float(line) for line in lines]
    slope, intercept = statistics.linear_regression(counts, seconds[:-1])
    return {"seconds": seconds[-1], "above_line_s": seconds[-1] - (intercept + slope * reference)}


def stages(fits: dict[str, Fit], coarse_above_line: float = 0.0) -> dict[str, dict]:
    """Per stage, and in total: the photos that drive it, fixed seconds, seconds per photo, and the
    projection on Animals-10's photos (the duplicate search's with ``coarse_above_line`` added)."""
    photos, out = reference_photos(), {}
    for stage in STAGES:
        mine = [f for f in fits.values() if f.stage == stage]
        driver = next((driver for name, driver, _ in RULES if name == stage and driver != FIXED), FIXED)
        fixed, per_photo = sum(f.fixed for f in mine), sum(f.per_photo for f in mine)
        out[stage] = {"driver": driver, "fixed_s": fixed, "per_photo_s": per_photo,
                      "projected_s": fixed + per_photo * photos.get(driver, 0)
                      + (coarse_above_line if stage == DUPLICATES else 0.0)}
    out["total"] = {"driver": "", "fixed_s": sum(s["fixed_s"] for s in out.values()), "per_photo_s": 0.0,
                    "projected_s": sum(s["projected_s"] for s in out.values())}
    return out


def targets(fits: dict[str, Fit], runs: list[Run]) -> dict[str, float]:
    """Issue #27's figures, ms per photo: the Keras reference's evaluation against the features', fitted and as
    measured in the largest folder's runs (where the fit's two points let a second of fixed-cost noise move the
    per-photo figure by milliseconds); and the LiteRT variants' evaluations together against the sum of their
    median latencies."""
    largest = [r for r in runs if r.photos["all"] == max(r.photos["all"] for r in runs)]
    return {"keras_eval_ms_per_test_photo": fits["evaluate_keras"].per_photo * 1000,
            "keras_predict_ms_per_test_photo": statistics.mean(r.keras_eval_s / r.photos["test"] for r in largest)
            * 1000,
            "features_ms_per_photo": sum(f.per_photo for f in fits.values() if f.stage == "features") * 1000,
            "features_step_ms_per_photo": statistics.mean(
                sum(s for name, s in r.steps.items() if name.startswith("features_")) / r.photos["train+val"]
                for r in largest) * 1000,
            "litert_eval_ms_per_test_photo": sum(fits[f"evaluate_{t}"].per_photo for t in runs[0].litert_targets)
            * 1000, "litert_median_latencies_ms": statistics.mean(r.litert_latency_ms for r in runs)}


def report(header: list[str], runs: list[Run], model: dict[str, dict]) -> None:
    old, new = model
    print("\n".join(header))
    for r in runs:
        accuracy = "-" if r.accuracy is None else f"{r.accuracy:.1%}"
        print(f"  {r.version:<{len(new)}}  {r.data:<15} {r.photos['all']:>5,} photos (train+val "
              f"{r.photos['train+val']:,}, test {r.photos['test']:,}): {r.wall:5.1f} s, load {r.load:.1f}; "
              f"recommended {r.recommended}, test accuracy {accuracy}")
    for data in dict.fromkeys(r.data for r in runs):
        walls = [statistics.mean(r.wall for r in runs if r.version == v and r.data == data) for v in model]
        print(f"wall time old / new on {data}: {walls[0]:.1f} / {walls[1]:.1f} s = {walls[0] / walls[1]:.2f}")
    photos = reference_photos()
    print(f"\nold = {old}, new = {new}. Per stage, fitted: fixed s, and ms per photo of the photos that drive it; "
          f"projected on {photos['all']:,} photos (train+val {photos['train+val']:,}, test {photos['test']:,})")
    projected = f"{photos['all']:,} photos, s"
    print(f"{'':<45}{'fixed s':^16}{'ms per photo':^16}{projected:^16}")
    print(f"{'stage':<35}{'photos':<10}" + f"{'old':>8}{'new':>8}" * 3)
    for stage in [*STAGES, "total"]:
        a, b = model[old]["stages"][stage], model[new]["stages"][stage]
        per_photo = (f"{a['per_photo_s'] * 1000:8.2f}{b['per_photo_s'] * 1000:8.2f}" if a["driver"] not in (FIXED, "")
                     else " " * 16)
        print(f"{stage:<35}{a['driver']:<10}{a['fixed_s']:8.1f}{b['fixed_s']:8.1f}{per_photo}"
              f"{a['projected_s']:8.0f}{b['projected_s']:8.0f}")
    print(f"{DUPLICATES}, projected: the line, plus what the coarse pass takes at {photos['all']:,} photos above its "
          "own line (timed alone): " + ", ".join(f"{v} {model[v]['coarse_pass']['above_line_s']:.0f} s of "
                                                 f"{model[v]['coarse_pass']['seconds']:.0f} s" for v in model))
    print(f"\n{'issue #27, ms per photo':<45}{'old':>8}{'new':>8}")
    for key, label in (("keras_eval_ms_per_test_photo", "Keras evaluation per test photo, fitted"),
                       ("features_ms_per_photo", "  target: <= features per photo, fitted"),
                       ("keras_predict_ms_per_test_photo", "Keras predictions per test photo, large"),
                       ("features_step_ms_per_photo", "  target: <= features_* steps per photo, large"),
                       ("litert_eval_ms_per_test_photo", "LiteRT evaluations per test photo"),
                       ("litert_median_latencies_ms", "  target: <= sum of their median latencies")):
        print(f"{label:<45}" + "".join(f"{model[v]['targets'][key]:8.2f}" for v in model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-small", metavar="DIR", default=str(SHARED / "animals10-dev"),
                        help="the smaller photo folder (default: %(default)s)")
    parser.add_argument("--data-large", metavar="DIR", default=str(SHARED / "animals10-large"),
                        help="the larger photo folder (default: %(default)s)")
    parser.add_argument("--repeats", type=int, metavar="N", default=1,
                        help="runs of each version on each folder (default: 1)")
    parser.add_argument("--baseline", metavar="REV", default="b2e6549",
                        help="the git revision compared (default: %(default)s)")
    parser.add_argument("--keep", metavar="DIR",
                        help="folder that keeps the run folders (default: a temporary one, removed)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = parser.parse_args()
    started = time.perf_counter()
    machine, runs = f"{cpu()}, {os.cpu_count()} cores", []
    with tempfile.TemporaryDirectory(prefix="zoolite-scale-") as tmp:
        base = Path(args.keep or tmp).resolve()
        versions = checkouts(args.baseline, base)
        code = {label: imported_from(folder) for label, folder in versions.items()}
        for repeat in range(args.repeats):
            for data in (Path(args.data_small).resolve(), Path(args.data_large).resolve()):
                for i, (label, folder) in enumerate(versions.items()):
                    runs.append(run(label, folder, data, base / f"{data.name}-{repeat}-{i}-{label.split()[0]}"))
        counts = sorted({r.photos["all"] for r in runs})
        coarse = {label: coarse_growth(folder, counts) for label, folder in versions.items()}
    model = {}
    for label in versions:
        mine = [r for r in runs if r.version == label]
        fits = fit_steps(mine)
        model[label] = {"steps": {name: asdict(f) for name, f in fits.items()}, "coarse_pass": coarse[label],
                        "stages": stages(fits, coarse[label]["above_line_s"]), "targets": targets(fits, mine)}
    minutes = (time.perf_counter() - started) / 60
    if args.json:
        print(json.dumps({"machine": machine, "code": code, "minutes": minutes, "runs": [asdict(r) for r in runs],
                          "model": model, "reference_photos": reference_photos()}, indent=2))
    else:
        header = [f"{machine}; each run a subprocess, default options, no cached photo features",
                  *(f"{label}: {path}" for label, path in code.items()), f"{len(runs)} runs in {minutes:.1f} min"]
        report(header, runs, model)


if __name__ == "__main__":
    main()
