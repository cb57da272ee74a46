"""Nothing lost, and reproducible: a killed run, `zoolite run --resume`, and the same seed twice.

A real run is started in a subprocess with the configuration of the session's ``small_run``
and in the same runs folder, and kills itself with SIGKILL right after the stage that writes
its first LiteRT model (so the kill always lands at the same point), then is finished with
``zoolite run --resume``. ``small_run`` is the uninterrupted run with
the same data, options and seed, trained in another process: the resumed run must match
it exactly (split, head weights, every variant's figures).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import BACKBONE, made_once
from zoolite import storage
from zoolite.cli import main
from zoolite.results import Run
from zoolite.targets.keras import load_keras_model

KILLED_AFTER = "convert_float32"
RESUMED_MODES = ["float32", "dynamic", "int8"]
# Written before the kill (head trained, first model converted): the resumed run must reuse them.
FINISHED_BEFORE_KILL = [f"{BACKBONE}/cache/train_features.npy", f"{BACKBONE}/models/model.keras",
                        f"{BACKBONE}/models/float32.tflite", "split.json", "config.json"]
START_RUN = ("import json, os, signal, sys\n"
             "from zoolite.config import RunConfig\n"
             "from zoolite.runs.pipeline import run\n"
             "from zoolite.progress import Progress\n"
             "def kill_after(stage):\n"
             "    if stage == sys.argv[2]:\n"
             "        os.kill(os.getpid(), signal.SIGKILL)\n"
             "run(RunConfig.from_json(json.load(open(sys.argv[1]))), progress=Progress(False), after_stage=kill_after)\n")


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def killed_and_resumed(small_run, shared_dir):
    """Made once for the session (one xdist worker kills and resumes; the others read its record)."""
    root = shared_dir / "resume"
    with made_once(root) as first:
        if first:
            root.mkdir(parents=True, exist_ok=True)
            (root / "record.json").write_text(json.dumps(_kill_and_resume(small_run, root)))
    record = json.loads((root / "record.json").read_text())
    return {**record, "earlier": Path(record["earlier"]), "run_dir": Path(record["run_dir"]),
            "results": Run.from_json(record["results"])}


def _kill_and_resume(small_run, work: Path) -> dict:
    earlier = Path(small_run.run_dir)
    runs = earlier.parent
    config = work / "config.json"
    # LiteRT only, and one mode of each kind (float, dynamic range, calibrated integer): resuming is the same
    # for every family and mode (a target is done once its files exist)
    config.write_text(json.dumps({**small_run.config.to_json(), "runtimes": ["litert"], "modes": RESUMED_MODES}))
    earlier_before = _digests(earlier)

    killed = subprocess.run([sys.executable, "-c", START_RUN, str(config), KILLED_AFTER], capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    [run_dir] = [d for d in runs.iterdir() if d != earlier]
    after_kill = {
        "earlier": _digests(earlier), "complete": storage.is_complete(run_dir),
        "marker": (run_dir / storage.INCOMPLETE_MARKER).read_text(),
        "incomplete_runs": [str(d) for d in storage.incomplete_runs(runs)],
        "finished": {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in FINISHED_BEFORE_KILL},
    }
    # What a kill in the middle of writing leaves behind, whether or not this kill happened to.
    (run_dir / BACKBONE / "models" / f"{storage.TEMPORARY_PREFIX}x1-dynamic.tflite").write_bytes(b"half")
    (run_dir / BACKBONE / "tensorboard" / f"{storage.TEMPORARY_PREFIX}x2-fine_tune" / "train").mkdir(parents=True)
    resumed = subprocess.run([sys.executable, "-m", "zoolite.cli", "run", "--resume", str(run_dir), "--json"],
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    return {"earlier": str(earlier), "earlier_before": earlier_before, "run_dir": str(run_dir),
            "after_kill": after_kill, "results": json.loads(resumed.stdout)}


def test_a_killed_run_leaves_earlier_runs_untouched_and_itself_marked_incomplete(killed_and_resumed):
    run = killed_and_resumed
    assert run["after_kill"]["earlier"] == run["earlier_before"]
    assert _digests(run["earlier"]) == run["earlier_before"]  # the resumed run did not touch it either
    assert not run["after_kill"]["complete"]
    assert f"zoolite run --resume {run['run_dir']}" in run["after_kill"]["marker"]
    assert run["after_kill"]["incomplete_runs"] == [str(run["run_dir"])]  # what a new run warns about


def test_resume_continues_from_the_last_finished_stage(killed_and_resumed):
    run_dir, results = killed_and_resumed["run_dir"], killed_and_resumed["results"]
    now = {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in FINISHED_BEFORE_KILL}
    assert now == killed_and_resumed["after_kill"]["finished"]  # reused, not redone
    timings = results.backbones[BACKBONE].timings
    assert "training" not in timings and "convert_float32" not in timings and "features_train" not in timings
    assert "convert_dynamic" in timings and "evaluate_float32" in timings
    assert storage.is_complete(run_dir) and not (run_dir / storage.INCOMPLETE_MARKER).exists()
    assert not list(run_dir.rglob(f"{storage.TEMPORARY_PREFIX}*"))
    assert not (run_dir / BACKBONE / "tensorboard" / "head").exists()  # a logistic regression's head: no epochs to log
    assert Run.from_json(json.loads((run_dir / "results.json").read_text())).backbones == results.backbones


def test_the_same_seed_gives_the_same_split_weights_and_figures(killed_and_resumed, small_run):
    """The killed-and-resumed run against the uninterrupted one, trained in different processes."""
    earlier, run_dir = killed_and_resumed["earlier"], killed_and_resumed["run_dir"]
    assert (run_dir / "split.json").read_bytes() == (earlier / "split.json").read_bytes()
    weights = [load_keras_model(d / BACKBONE / "models" / "model.keras").get_weights() for d in (earlier, run_dir)]
    assert len(weights[0]) == len(weights[1])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    figures = ["target", "loss", "accuracy", "top_k_accuracy", "confusion_matrix", "per_class", "agreement",
               "size_bytes"]
    got = killed_and_resumed["results"].backbones[BACKBONE].variants
    expected = [v for v in small_run.backbones[BACKBONE].variants
                if v.family == "keras" or (v.family == "litert" and v.mode in RESUMED_MODES)]
    assert [{k: getattr(v, k) for k in figures} for v in got] == [{k: getattr(v, k) for k in figures} for v in expected]


def test_ctrl_c_names_the_incomplete_run_to_resume(small_run, tmp_path, monkeypatch, capsys):
    """In-process: a KeyboardInterrupt once the run folder exists (during training)."""
    from zoolite.runs import stages

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "train", interrupted)
    runs = tmp_path / "runs"
    code = main(["run", "--data", small_run.dataset.root, "--out", str(runs), "--quiet"])
    err = capsys.readouterr().err
    [run_dir] = list(runs.iterdir())
    assert code == 130 and "Traceback" not in err
    assert f"earlier runs are untouched, and {run_dir} stays marked incomplete: finish it with " \
           f"`zoolite run --resume {run_dir}`" in err
    assert not storage.is_complete(run_dir) and (run_dir / storage.INCOMPLETE_MARKER).exists()
    assert storage.incomplete_runs(runs) == [run_dir]
