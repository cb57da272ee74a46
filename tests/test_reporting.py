"""Reports and the recommendation: report.html as a browser would parse it, the budget logic on
hand-made results, and ``zoolite report`` re-rendering a run without its models."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import struct
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import BACKBONE, error_line, made_run, made_variant
from zoolite.report import reporting, tables
from zoolite.cli import main
from zoolite.config import Budget, LatencyConfig
from zoolite.errors import ZooliteError
from zoolite.results.recommend import recommend
from zoolite.results import SCHEMA_VERSION, Run, load
from zoolite.targets.parallel import PARALLEL, WAITING, spare_cores
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tables (rows of cell texts, with each row's class) and images of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.links = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append((attrs.get("class"), []))
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag in ("link", "script"):
            self.links.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1][1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _png_size(src: str) -> tuple[int, int, int]:
    """(bytes, width, height) of a data-URI PNG; asserts it really is one."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return len(data), width, height


def _check_report(run_dir: Path, results: Run) -> _Page:
    page = _parse(run_dir / "report.html")
    assert not page.links  # self-contained: no stylesheet or script fetched from elsewhere
    header, *rows = page.tables[0]
    assert header[1] == tables.backbone_cells(results, BACKBONE)[0]
    assert [cells for _, cells in rows] == tables.backbone_cells(results, BACKBONE)[1]
    highlighted = [cells[0] for css, cells in rows if css == "recommended"]
    recommended = results.recommendation.variant
    assert highlighted == ([recommended] if recommended else [])
    # trade-off, none-of-these curves, training curves (of a head or fine-tuning that ran epochs), confusion
    # matrices (float model, and the recommended variant), prediction grid
    curves = sum(bool(backbone.training.epoch_stages) for backbone in results.backbones.values())
    assert len(page.images) == 4 + curves + (recommended is not None)
    for image in page.images:
        size, width, height = _png_size(image["src"])
        assert size > 10_000 and width > 300 and height > 200, image["alt"]
        assert image["alt"]
    return page


def test_report_html_has_the_tables_and_every_plot_embedded(small_run):
    run_dir = Path(small_run.run_dir)
    page = _check_report(run_dir, small_run)
    alts = " | ".join(image["alt"] for image in page.images)
    assert "accuracy vs latency" in alts and "float Keras model" in alts and "test images wrong" in alts
    assert "training curves" not in alts  # the head is a logistic regression: no epochs, its fit in words
    html = unescape((run_dir / "report.html").read_text(encoding="utf-8"))
    head = small_run.backbones[BACKBONE].training.head
    assert (f"The head is an L2-regularised logistic regression on the features scaled to unit length (C = 1, each "
            f"class's photos weighing as much in total), fitted to convergence in {head.iterations} L-BFGS") in html
    assert small_run.recommendation.reason in html
    assert small_run.machine.cpu in html
    assert "1 image per call, 1 warm-up + up to 3 timed calls" in html  # one warm-up call: no time limit to tell
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Recommendation" in markdown and small_run.recommendation.reason in markdown


def test_the_caption_tells_warm_ups_time_limit_where_it_can_apply():
    assert tables.warmup_caption(LatencyConfig()) == "10 warm-up (or 1 s of it)"
    assert tables.warmup_caption(LatencyConfig(warmup=1)) == "1 warm-up"  # the one call is made whatever it takes
    assert tables.warmup_caption(LatencyConfig(max_warmup_seconds=None)) == "10 warm-up"  # a run of zoolite 0.8


def test_report_html_with_two_backbones(small_run, tmp_path):
    """A second (made-up, faster) backbone: the combined table, and the recommended row in its section."""
    from zoolite.report.html_report import html_report

    run_dir = _copy_run(small_run, tmp_path / "run")
    results = copy.deepcopy(small_run)
    results.run_dir = str(run_dir)
    faster = copy.deepcopy(results.backbones[BACKBONE])
    faster.name = "faster"
    for v in faster.variants:
        v.latency.mean_ms, v.latency.median_ms = v.latency.mean_ms / 2, v.latency.median_ms / 2
        v.latency.samples_ms = [ms / 2 for ms in v.latency.samples_ms]
        v.file = v.file.replace(BACKBONE, "faster")
    results.backbones["faster"] = faster
    results.recommendation = recommend(results)
    assert results.recommendation.backbone == "faster"
    (run_dir / "report.html").write_text(html_report(results), encoding="utf-8")
    page = _parse(run_dir / "report.html")
    combined, *others = page.tables
    first, second = [t for t in others if "Accuracy [95% CI]" in t[0][1]]  # each backbone's main table
    assert sum("all images" in t[0][1] for t in others) == 2 * 2  # fidelity on test and unlabelled photos
    assert combined[0][1][1:] == [f"{name} {column}" for name in (BACKBONE, "faster")
                                  for column in ("acc (loss)", "ms", "MB")]
    assert [css for css, _ in first[1:]].count("recommended") == 0
    assert [cells[0] for css, cells in second[1:] if css == "recommended"] == [results.recommendation.variant]
    # trade-off; per backbone: none-of-these curves, float confusion matrix (no training curves: logistic heads);
    # the recommended variant's matrix; the prediction grid of efficientnet_lite0 ("faster" has no probabilities).
    assert len(page.images) == 1 + 2 * 2 + 1 + 1
    assert all(_png_size(image["src"])[0] > 10_000 for image in page.images)
    assert (run_dir / "report.html").read_text().count("No prediction grid") == 1


def test_run_stores_and_prints_the_recommendation(small_run):
    saved = json.loads((Path(small_run.run_dir) / "results.json").read_text())
    assert saved["recommendation"]["variant"] == small_run.recommendation.variant is not None
    assert saved["recommendation"]["budget"] == Budget().to_json()
    summary = reporting.text_summary(small_run)
    assert summary.index("Recommendation: ") > summary.index("int8_fallback")


# --- the recommendation logic on hand-made results ---------------------------------------------

def _results(backbones: dict[str, list[tuple[str, float, float, float]]]) -> Run:
    """Results with (variant, accuracy, mean ms, MB) rows per backbone; the first row is the Keras model."""
    return made_run({name: [made_variant(*row, role="reference" if i == 0 else "shippable")
                            for i, row in enumerate(rows)] for name, rows in backbones.items()}, 40)


ONE = _results({"b": [("keras", 0.90, 100.0, 14.0), ("float32", 0.90, 8.0, 13.5), ("float16", 0.895, 7.0, 6.8),
                      ("int8_fallback", 0.87, 3.0, 4.0), ("int8", 0.89, 4.0, 4.0)]})


def test_recommends_the_fastest_variant_within_the_accuracy_drop():
    r = recommend(ONE)  # int8_fallback is fastest but 3 pp worse; int8 is exactly 1 pp worse
    assert (r.backbone, r.variant) == ("b", "int8")
    assert r.reason.startswith("int8 (LiteRT): 4.00 ms median per image, 4.00 MB, accuracy 89.0%, -1.0 pp vs the float model. "
                               "Of the 3 (of 4) shippable variants the budget (accuracy drop ≤ 1 pp, no class lost) does "
                               "not rule out, it is clearly faster than the others.")
    assert recommend(ONE, Budget(max_accuracy_drop_pp=3)).variant == "int8_fallback"
    assert recommend(ONE, Budget(max_accuracy_drop_pp=0)).variant == "float32"


def test_latency_and_size_limits_narrow_the_choice():
    assert recommend(ONE, Budget(max_size_mb=10)).variant == "int8"
    assert recommend(ONE, Budget(max_accuracy_drop_pp=0.4, max_size_mb=10)).variant is None
    assert recommend(ONE, Budget(max_accuracy_drop_pp=0.5, max_latency_ms=7.5)).variant == "float16"
    limited = recommend(ONE, Budget(max_accuracy_drop_pp=0.5, max_latency_ms=7.0, max_size_mb=6.8))
    assert limited.variant == "float16"  # limits are inclusive
    assert limited.budget == Budget(0.5, 7.0, 6.8)


def test_nothing_satisfies_says_which_limits_ruled_the_variants_out():
    r = recommend(ONE, Budget(max_accuracy_drop_pp=0.2, max_latency_ms=3.5))
    assert r.backbone is None and r.variant is None
    assert r.reason == ("No variant satisfies the budget (accuracy drop ≤ 0.2 pp, no class lost, mean latency ≤ 3.5 ms): "
                        "of 4 shippable variants, 3 exceed the accuracy limit, 3 exceed the latency limit (with 40 "
                        "test images a drop below 12.5 pp cannot be detected); loosen the budget with "
                        "`zoolite report RUN_DIR --max-...`.")


def test_ties_on_latency_go_to_the_smaller_file():
    tied = _results({"b": [("keras", 0.9, 50.0, 14.0), ("float16", 0.9, 5.0, 6.8), ("dynamic", 0.9, 5.0, 3.8),
                           ("float32", 0.9, 5.0, 13.5)]})
    r = recommend(tied)
    assert r.variant == "dynamic"
    assert "as fast as float16, float32 within timing noise, and the smallest of them" in r.reason


def test_the_keras_model_is_never_recommended_and_drops_count_from_the_best_float_model():
    results = _results({
        "small": [("keras", 0.60, 1.0, 1.0), ("int8", 0.595, 2.0, 0.5)],
        "large": [("keras", 0.95, 90.0, 30.0), ("int8", 0.80, 3.0, 8.0), ("float16", 0.945, 20.0, 15.0)],
    })
    r = recommend(results)  # small int8 is close to its own float model, but 35.5 pp below the best one
    assert (r.backbone, r.variant) == ("large", "float16")
    assert r.reason.startswith("large float16 (LiteRT): 20.00 ms median per image")
    assert "-0.5 pp vs the best float model" in r.reason and "Of the 1 (of 3) shippable variants" in r.reason
    assert recommend(results, Budget(max_accuracy_drop_pp=40)).variant == "int8"
    assert recommend(results, Budget(max_latency_ms=10)).variant is None


@pytest.mark.parametrize("budget, message", [
    (dict(max_accuracy_drop_pp=-1), "--max-accuracy-drop -1"),
    (dict(max_latency_ms=0), "--max-latency-ms 0"),
    (dict(max_size_mb=-2.5), "--max-size-mb -2.5"),
])
def test_budget_rejects_impossible_limits(budget, message):
    with pytest.raises(ZooliteError, match=message):
        Budget(**budget)


# --- zoolite report --------------------------------------------------------------------------------

def _copy_run(small_run, dest: Path, keep_models: bool = False) -> Path:
    ignore = None if keep_models else shutil.ignore_patterns("models")
    return Path(shutil.copytree(small_run.run_dir, dest, ignore=ignore))


def test_report_rerenders_without_models_and_with_another_budget(small_run, tmp_path, capsys):
    run_dir = _copy_run(small_run, tmp_path / "run")
    shutil.rmtree(run_dir / BACKBONE / "cache")  # the prediction grid then decodes the dataset's files
    (run_dir / "report.html").unlink()
    measurements = {p: p.stat().st_mtime_ns for p in (run_dir / BACKBONE / "measurements").iterdir()}

    assert main(["report", str(run_dir), "--max-size-mb", "0.001"]) == 0
    out = capsys.readouterr().out
    assert ("Recommendation: No variant satisfies the budget (accuracy drop ≤ 1 pp, no class lost, rejection drop "
            "≤ 2 pp, size ≤ 0.001 MB)") in out
    results = load(run_dir)
    assert results.recommendation.variant is None and results.run_dir == str(run_dir)
    assert results.backbones == small_run.backbones  # nothing recomputed
    _check_report(run_dir, results)
    assert not (run_dir / BACKBONE / "models").exists()
    assert {p: p.stat().st_mtime_ns for p in (run_dir / BACKBONE / "measurements").iterdir()} == measurements

    # Without budget options the last report's budget is kept; budget options replace it as a whole.
    assert main(["report", str(run_dir)]) == 0
    assert json.loads((run_dir / "results.json").read_text())["recommendation"]["budget"]["max_size_mb"] == 0.001
    assert main(["report", str(run_dir), "--max-accuracy-drop", "100"]) == 0
    results = load(run_dir)
    assert results.recommendation.variant is not None and results.recommendation.budget.max_size_mb is None
    _check_report(run_dir, results)
    assert not list(run_dir.glob(".tmp-*"))


def test_report_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    assert "run folder not found" in error_line(capsys, ["report", str(tmp_path / "nope")])
    assert "not a zoolite run folder" in error_line(capsys, ["report", str(tmp_path)])
    (tmp_path / "config.json").write_text("{}")
    assert "did not finish; finish it with `zoolite run --resume" in error_line(capsys, ["report", str(tmp_path)])
    (tmp_path / "COMPLETE").write_text("")
    (tmp_path / "results.json").write_text("{not json")
    assert "damaged results file" in error_line(capsys, ["report", str(tmp_path)])
    assert "--max-latency-ms 0.0: must be above 0" in error_line(capsys, ["report", str(tmp_path),
                                                                           "--max-latency-ms", "0"])


def test_json_output_is_only_json(small_run, tmp_path):
    """``--json`` in a real process: stdout parses as JSON, bars and logs go to stderr."""
    run_dir = _copy_run(small_run, tmp_path / "run", keep_models=True)
    for name in ("COMPLETE", "results.json", "report.html"):  # an interrupted run, to resume cheaply
        (run_dir / name).unlink()
    result = subprocess.run([sys.executable, "-m", "zoolite.cli", "run", "--resume", str(run_dir), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert printed["schema_version"] == SCHEMA_VERSION
    assert printed["recommendation"]["variant"] == small_run.recommendation.variant
    assert (run_dir / "report.html").exists()


def test_the_plot_draws_the_budget_floor_from_the_best_float_model(monkeypatch):
    """With two backbones, the dashed accuracy floor is the one the recommendation applies: one line,
    below the *best* float model, not one per backbone from its own float model."""
    from matplotlib.axes import Axes

    from zoolite.report import plots

    results = _results({"small": [("keras", 0.60, 1.0, 1.0), ("int8", 0.595, 2.0, 0.5)],
                        "large": [("keras", 0.95, 90.0, 30.0), ("float16", 0.945, 20.0, 15.0)]})
    results.recommendation = recommend(results, Budget(max_accuracy_drop_pp=2))
    floors = []
    monkeypatch.setattr(Axes, "axhline", lambda self, y=0, **kw: floors.append((y, kw.get("label"))))
    plots.tradeoff(results)
    assert floors == [(pytest.approx(93.0), "accuracy floor (2 pp below the best float model)")]
    assert results.recommendation.budget.accuracy_floor(results.best_reference_accuracy) == pytest.approx(0.93)


def test_labels_the_font_cannot_draw_cost_no_warning():
    """Class names in any script, or with emoji, are the user's own: the plot is drawn without a word."""
    import warnings

    from zoolite.report import plots

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = plots.confusion_matrix([[3, 1], [0, 4]], ["猫", "sloth 🦥"], "efficientnet_lite0: int8")
    assert png.startswith(b"\x89PNG")


# Real run folders written by earlier versions (tests/data/README.md says how each was made), and
# the sections each schema added: fidelity from 2, "none of these" from 3, balanced accuracy from 4,
# the target under "target" from 5 (and "none of these" per class from 6, which none of them has).
OLD_RUNS = {"run-v0.1": 1, "run-schema2": 2, "run-schema3": 3, "run-schema4": 4, "run-schema5": 5}


@pytest.mark.parametrize("folder", OLD_RUNS)
def test_results_of_every_older_schema_are_read_and_re_rendered(folder, tmp_path):
    run_dir = Path(shutil.copytree(Path(__file__).parent / "data" / folder, tmp_path / folder))
    written = json.loads((run_dir / "results.json").read_text())
    schema = OLD_RUNS[folder]
    assert written.get("schema_version", 1) == schema
    results = load(run_dir)
    backbone = results.backbones[BACKBONE]
    assert backbone.reference.target == "keras" and [v.role for v in backbone.variants].count("reference") == 1
    assert [v.target for v in backbone.variants] == [row["target" if schema >= 5 else "variant"]
                                                     for row in written["backbones"][BACKBONE]["variants"]]
    int8 = backbone.variant("int8")
    assert int8.agreement.top1_agreement > 0 and int8.top_k == 3 and int8.latency.median_ms > 0
    assert backbone.training.head.epochs_run == len(backbone.training.head.loss) > 0
    assert results.config.train.head == "recipe"  # as every head was before --head
    assert results.config.latency.max_warmup_seconds is None  # every warm-up call made, as before its time limit
    assert results.machine.cpu and results.dataset.labels == results.labels and results.split.test > 0
    assert (int8.fidelity is not None) == (schema >= 2)
    if schema >= 2:
        assert int8.fidelity.test[0].n == results.split.test and results.unlabelled.photos > 0
    assert (backbone.rejection is not None) == (results.other is not None) == (schema >= 3)
    assert (int8.balanced_accuracy is not None) == (schema >= 4)
    if schema >= 3:  # measured before "none of these" was measured per class: none of its new figures
        assert int8.rejection.kept > 0 and int8.rejection.per_class is None and int8.rejection.balanced_kept is None
        assert int8.rejection.balanced_answered_right is None and int8.rejection.fewest_kept() is None
    assert results.recommendation.variant == written["recommendation"]["variant"]

    assert main(["report", str(run_dir)]) == 0  # re-rendered, and saved in the current schema
    assert json.loads((run_dir / "results.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert load(run_dir).backbones[BACKBONE].variant("int8").latency == int8.latency
    html = (run_dir / "report.html").read_text()
    assert "<h3>Per class</h3>" in html and ("<h3>None of these</h3>" in html) == (schema >= 3)
    assert f"{results.config.latency.warmup} warm-up +" in html
    assert "; kept " not in html and "gate keeps" not in html  # no per-class kept share to show
    if schema >= 3:
        header, rows = tables.rejection_cells(results, BACKBONE)
        assert header[2:4] == ["Balanced kept [95% CI]", "Balanced answered right [95% CI]"]
        assert {cell for row in rows for cell in row[2:4]} == {"-"}


def test_a_run_trained_for_fewer_epochs_than_validation_freq_loads_and_plots(tmp_path):
    """Keras records no validation figures when no epoch was validated (e.g. --epochs 2, --validation-freq 3)."""
    run_dir = Path(shutil.copytree(Path(__file__).parent / "data" / "run-schema4", tmp_path / "run"))
    saved = json.loads((run_dir / "results.json").read_text())
    head = saved["backbones"][BACKBONE]["training"]["head"]
    del head["val_loss"], head["val_accuracy"]
    (run_dir / "results.json").write_text(json.dumps(saved))
    assert load(run_dir).backbones[BACKBONE].training.head.val_loss == []
    assert main(["report", str(run_dir)]) == 0 and "training curves" in (run_dir / "report.html").read_text()


def test_results_of_a_newer_schema_are_refused_in_one_line(tmp_path, capsys):
    run_dir = Path(shutil.copytree(Path(__file__).parent / "data" / "run-schema4", tmp_path / "newer"))
    saved = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**saved, "schema_version": 99}))
    assert "written by a newer zoolite (results schema 99" in error_line(capsys, ["report", str(run_dir)])


def test_the_report_says_where_the_time_went_stage_by_stage(small_run):
    from zoolite.report.tables import TIME_STAGES, time_rows, time_stage

    rows = {stage: (float(seconds), share) for stage, seconds, share in time_rows(small_run)}
    total = small_run.timings["total"]
    assert rows["run"] == (pytest.approx(total, abs=0.05), "100%")
    assert [stage for stage in rows][:len(TIME_STAGES)] == [stage for stage, _ in TIME_STAGES]
    assert all(rows[stage][0] > 0 for stage in ("features", "export and conversions", "evaluation"))
    assert sum(rows[stage][0] for stage in rows if stage != "run") == pytest.approx(total, abs=0.5)
    evaluated = sum(seconds for name, seconds in small_run.backbones[BACKBONE].timings.items()
                    if name.startswith(("evaluate_", "decode_")) and name != "decode_representative")
    assert rows["evaluation"][0] == pytest.approx(evaluated, abs=0.05)
    assert "## Time" in (Path(small_run.run_dir) / "report.md").read_text()
    steps = [name for name in small_run.timings if name not in ("total", "import")] + \
        list(small_run.backbones[BACKBONE].timings)
    # every timed step counted in its stage, but those a spare process did meanwhile: the run's wait for them is
    done_meanwhile = [step for step in steps if step.startswith(PARALLEL)]
    assert [step for step in steps if time_stage(step) is None] == done_meanwhile
    assert (f"{PARALLEL}calibrate_int8" in done_meanwhile) == (spare_cores() > 0)
    assert time_stage(WAITING) == "export and conversions"


def test_a_markdown_table_shows_each_cell_as_written():
    """A class folder may be named with a bar, markup or a line break: each stays in its cell and shows as text."""
    table = tables.markdown_table(["Class", "Recall"], [["cat|dog", "<b>50%</b> & more"], ["two\nlines", "1"],
                                                        ["back\\|slash", "carriage\rreturn"]])
    header, rule, *rows = table.splitlines()
    assert [len(line.replace("\\\\", "").replace("\\|", "").split("|")) for line in (header, rule, *rows)] == [4] * 5
    assert rows == ["| cat\\|dog | &lt;b>50%&lt;/b> &amp; more |", "| two lines | 1 |",
                    "| back\\\\\\|slash | carriage return |"]
