"""The ``zoolite`` command: a thin layer over the Python API.

Flags, defaults, help and checks come from the option classes of :mod:`zoolite.config`.
Problems the user can fix are printed as one ``zoolite: error: ...`` line (exit 2),
never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

from zoolite.config import Budget, LatencyConfig, ModelOptions, PredictOptions, RunConfig, TrainConfig
from zoolite.constraints import fields_with_flags, flag_of
from zoolite.errors import ZooliteError

log = logging.getLogger("zoolite")


def _parser_type(f: dataclasses.Field):
    """What argparse calls on the flag's text: the field's own parser, else its default's type."""
    parse = f.metadata.get("parse")
    if parse is None:  # annotations are strings here (postponed evaluation)
        return float if "float" in f.type else int if "int" in f.type else str

    def parse_or_fail(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse_or_fail


def _add_options(parser: argparse.ArgumentParser, cls, metavars: dict | None = None) -> None:
    """One flag per option of ``cls``. Defaults are left out of the namespace (SUPPRESS), so the
    namespace holds exactly the options the user gave; the config classes fill in the rest."""
    for f in fields_with_flags(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "" if default in (None, ()) or "default" in f.metadata["help"] else \
            " (default: " + (",".join(map(str, default)) if isinstance(default, tuple) else str(default)) + ")"
        if isinstance(default, bool):
            parser.add_argument(f"--no-{f.name.replace('_', '-')}" if default else flag_of(f), dest=f.name,
                                action="store_false" if default else "store_true", default=argparse.SUPPRESS,
                                help=f"do not {f.metadata['help']}" if default else f.metadata["help"])
            continue
        parser.add_argument(flag_of(f), dest=f.name, type=_parser_type(f), default=argparse.SUPPRESS,
                            metavar=(metavars or {}).get(f.name, flag_of(f)[2:].upper().replace("-", "_")),
                            help=f"{f.metadata['help']}{shown}")
        if f.metadata.get("renamed_from"):
            parser.add_argument(f.metadata["renamed_from"], dest=f.name, type=_parser_type(f), help=argparse.SUPPRESS,
                                default=argparse.SUPPRESS, action=_RenamedFlag, new_flag=flag_of(f))


class _RenamedFlag(argparse.Action):
    """The old name of a renamed flag: still taken, with a line that gives the new one."""

    def __init__(self, *args, new_flag: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser, namespace, values, option_string=None):
        # Said once logging is set up (main), not while parsing.
        namespace.renamed_flags = [*getattr(namespace, "renamed_flags", []), (option_string, self.new_flag)]
        setattr(namespace, self.dest, values)


def _options(args, cls):
    """An option group of ``cls`` from the flags the user gave, checked by the option engine."""
    return cls(**{f.name: getattr(args, f.name) for f in fields_with_flags(cls) if hasattr(args, f.name)})


BUDGET_METAVARS = {"max_accuracy_drop_pp": "PP", "max_rejection_drop_pp": "PP", "max_latency_ms": "MS",
                   "max_size_mb": "MB"}
RUN_METAVARS = {**BUDGET_METAVARS, "group_by": "PATTERN"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoolite", description=(
        "Turn a folder of animal photos into small, fast image classifiers for LiteRT and other runtimes, "
        "and measure them."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--version", action="version", version=f"zoolite {version('zoolite')}",
                        help="show zoolite's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_commands(sub)
    _add_model_commands(sub)
    _add_check_command(sub)
    return parser


def _add_check_command(sub) -> None:
    """``check``: a report on a dataset folder before any training."""
    check = sub.add_parser("check", help="report on a dataset before training: unusable files, empty classes, "
                                         "class counts and imbalance, duplicate photos, the same photo in two "
                                         "class folders, and photos that are probably in the wrong class folder")
    check.add_argument("data", metavar="DATA", help="folder with one sub-folder of images per class, as for `run`")
    check.add_argument("--json", action="store_true", help="print the report as one JSON document on stdout "
                                                           "(and nothing else)")
    check.add_argument("--seed", type=int, default=0, help="seed of the folds that look for suspect labels "
                                                           "(default: 0)")
    check.add_argument("--no-suspects", dest="suspects", action="store_false",
                       help="do not look for suspect labels (no backbone features: seconds, not minutes)")
    check.add_argument("--show", type=int, default=10, metavar="N",
                       help="how many files of each list the text report names (default: 10; --json names all)")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(handler=_check)


def _add_run_commands(sub) -> None:
    """The commands on run folders: run, report, export, and serve for what export --web wrote."""
    from zoolite.targets import RUNTIMES

    run = sub.add_parser("run", help="scan, split, train, convert, evaluate and report")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run from its last finished stage, "
                                                         "with the options saved in it")
    for group in (RunConfig, TrainConfig, LatencyConfig, Budget):
        _add_options(run, group, RUN_METAVARS)
    run.add_argument("--quiet", action="store_true", help="no progress bars or training log")
    run.add_argument("--json", action="store_true", help="print the results as JSON on stdout (and nothing else)")
    run.set_defaults(handler=_run)

    report = sub.add_parser("report", help="re-render report.md/report.html and the recommendation of a finished "
                                           "run, without recomputing anything; budget options replace the last "
                                           "report's budget as a whole (one left out takes its default: no latency "
                                           "or size limit), and without any the last report's budget is kept")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (runs/<timestamp>-<backbone>)")
    report.add_argument("--runtime", help="recommend among the variants of one runtime only: "
                                          f"{', '.join(RUNTIMES)} (default: every runtime of the run)")
    _add_options(report, Budget, BUDGET_METAVARS)
    report.set_defaults(handler=_report)

    export = sub.add_parser("export", help="copy one model of a run (any runtime) into a folder with labels.txt "
                                           "and model.json (what an app needs)")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (runs/<timestamp>-<backbone>)")
    export.add_argument("--variant", help="which variant (default: the run's recommendation)")
    export.add_argument("--backbone", help="which backbone's model, when the run has several "
                                           "(default: the recommended one)")
    export.add_argument("--to", required=True, metavar="DIR", help="new or empty folder to write the bundle to")
    export.add_argument("--web", action="store_true", help="also write a static web page that runs the model in "
                                                           "a browser with LiteRT.js (open it with `zoolite serve`)")
    export.set_defaults(handler=_export)

    serve = sub.add_parser("serve", help="serve a folder written by `export --web` on 127.0.0.1, with the headers "
                                         "the page needs for threads; Ctrl-C stops it")
    serve.add_argument("directory", metavar="DIR", help="a folder written by `zoolite export --web`")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0: any free port)")
    serve.set_defaults(handler=_serve)


def _add_model_commands(sub) -> None:
    """The commands on a model file: predict and evaluate."""
    from zoolite.targets import FAMILIES

    model_files = ", ".join(f"{family.label} {family.suffix}" for family in FAMILIES.values())
    predict = sub.add_parser("predict", help=f"top-3 labels of images with a model file ({model_files}), or \"none "
                                             "of the N classes\" when the model's top score is below its threshold")
    predict.add_argument("model", help="the model file")
    predict.add_argument("images", nargs="+", help="image files, and folders searched recursively (files in them "
                                                   "that are not images are skipped and listed)")
    _add_options(predict, PredictOptions)
    predict.add_argument("--json", action="store_true", help="print the answers as one JSON document on stdout")
    predict.add_argument("--labels-file", help="the model's labels.txt (default: the one beside the model)")
    predict.set_defaults(handler=_predict)

    evaluate = sub.add_parser("evaluate", help=f"loss, accuracy and latency of a model file ({model_files}) "
                              "on a folder with one sub-folder of images per class")
    evaluate.add_argument("model", help="the model file")
    evaluate.add_argument("data", help="folder with one sub-folder of images per class, as for `run`")
    evaluate.add_argument("--labels-file", help="the model's labels.txt (default: the one beside the model)")
    evaluate.add_argument("--labels", help="JSON map from folder names to labels (default: Animals-10's)")
    _add_options(evaluate, ModelOptions)
    evaluate.add_argument("--json", action="store_true", help="print the figures as one JSON document on stdout")
    _add_options(evaluate, LatencyConfig)
    evaluate.set_defaults(handler=_evaluate)


_NOT_OPTIONS = {"command", "handler", "debug", "resume", "quiet", "json", "renamed_flags"}


def _given(args) -> dict:
    """The options the user gave (every other one was left out of the namespace)."""
    return {name: value for name, value in vars(args).items() if name not in _NOT_OPTIONS}


def _run(args) -> int:
    given = _given(args)
    contradicting = _contradicting(args.resume, given) if args.resume else []
    if contradicting:
        # A resumed run keeps the options saved in its config.json; others would contradict them.
        flags = {f.name: flag_of(f) for group in (RunConfig, TrainConfig, LatencyConfig, Budget)
                 for f in fields_with_flags(group)}
        raise ZooliteError(f"--resume {args.resume}: the run keeps the options saved in its config.json; "
                           f"drop {', '.join(flag for name, flag in flags.items() if name in contradicting)} "
                           "(or start a new run to change them)")
    config = None if args.resume else RunConfig.from_options(**given)
    from zoolite.runs.spares import run_spares

    with run_spares(config, args.resume) as spares:  # they import TensorFlow as this process does
        return _run_with(args, config, spares)


def _run_with(args, config: RunConfig | None, spares) -> int:
    start = time.perf_counter()
    from zoolite.runs.pipeline import run
    from zoolite.progress import Progress
    from zoolite.report.reporting import text_summary

    import_seconds = time.perf_counter() - start
    results = run(config, resume=args.resume, progress=Progress(not (args.quiet or args.json)),
                  command="zoolite " + " ".join(sys.argv[1:]), spares=spares)
    results.timings["import"] = round(import_seconds, 3)
    print(json.dumps(results.to_json(), indent=2) if args.json else text_summary(results))
    return 0


def _contradicting(run_dir: str, given: dict) -> list[str]:
    """The options given with ``--resume`` whose values differ from those the run saved (all of them if the
    folder has no options to compare with: the run then says what is wrong with it)."""
    from zoolite.runs.layout import RunLayout

    try:
        saved = RunConfig.load(RunLayout(Path(run_dir)).config)
    except (ZooliteError, OSError):
        return list(given)
    groups = ("train", "latency", "budget")
    options = {**{f.name: getattr(saved, f.name) for f in dataclasses.fields(saved) if f.name not in groups},
               **{name: value for group in groups for name, value in dataclasses.asdict(getattr(saved, group)).items()}}
    before, after = RunConfig.from_options(**options), RunConfig.from_options(**{**options, **given})

    def value(config: RunConfig, name: str):
        return next(getattr(part, name) for part in (config, config.train, config.latency, config.budget)
                    if hasattr(part, name))

    return [name for name in given if value(before, name) != value(after, name)]


def _report(args) -> int:
    from zoolite.report.reporting import rerender, text_summary

    given = _given(args)
    given.pop("run_dir")
    runtime = given.pop("runtime", None)
    print(text_summary(rerender(args.run_dir, Budget(**given) if given else None, runtime)))
    return 0


def _export(args) -> int:
    from zoolite.apps.export import export

    target = export(args.run_dir, args.to, variant=args.variant, backbone=args.backbone, web=args.web)
    print(f"{target}: " + ", ".join(sorted(p.name for p in target.iterdir())))
    if args.web:
        print(f"open it in a browser: zoolite serve {target}")
    return 0


def _serve(args) -> int:
    from zoolite.apps.serve import serve

    def ready(url: str) -> None:
        print(f"Serving {args.directory} at {url} (Ctrl-C to stop)", flush=True)

    try:
        serve(args.directory, args.port, on_ready=ready)
    except KeyboardInterrupt:  # before the server listened
        pass
    return 0


def _predict(args) -> int:
    from zoolite.apps.predict import predict

    options = _options(args, PredictOptions)
    answers = predict(args.model, args.images, args.labels_file, options.top, options.threads)
    for file, reason in answers.skipped:
        log.warning("skipped %s: %s", file, reason)
    if args.json:
        print(json.dumps(answers.to_json(), indent=2, ensure_ascii=False))
    else:
        for prediction in answers.predictions:
            print(f"{prediction.file}: {prediction.answer}")
    return 0


def _evaluate(args) -> int:
    from zoolite.apps.evaluate import evaluate_model

    threads = _options(args, ModelOptions).threads
    evaluation = evaluate_model(args.model, args.data, args.labels_file, args.labels, threads,
                                _options(args, LatencyConfig))
    for file, reason in evaluation.skipped:
        log.warning("skipped %s: %s", Path(args.data, file), reason)
    print(json.dumps(evaluation.to_json(), indent=2, ensure_ascii=False) if args.json else evaluation.summary())
    return 0


def _check(args) -> int:
    from zoolite.apps.check import check
    from zoolite.progress import Progress

    report = check(args.data, progress=Progress(not (args.quiet or args.json)), seed=args.seed,
                   suspects=args.suspects)
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else report.summary(args.show))
    return 0


@contextlib.contextmanager
def _native_logs_aside():
    """Set aside what libraries' C++ code writes straight to the process's stderr (TensorFlow's
    absl and oneDNN notices, the MLIR quantizer's lines, XNNPACK's INFO): file descriptor 2 goes
    to a temporary file while the command runs. Python's ``sys.stderr`` (zoolite's messages,
    progress bars, errors) keeps the terminal."""
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    try:
        python_stderr.fileno()
        sys.stderr = open(terminal, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    except (AttributeError, OSError, ValueError):  # already captured elsewhere (a test, a notebook)
        pass
    with tempfile.TemporaryFile() as native:
        os.dup2(native.fileno(), 2)
        try:
            yield
        finally:
            if sys.stderr is not python_stderr:
                sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    with contextlib.nullcontext() if args.debug else _native_logs_aside():
        if not args.debug:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
            warnings.filterwarnings("ignore", module="tensorflow")  # converter notes, not the user's concern
        # "zoolite: " lines are what zoolite says: its own notes from INFO, a library's only when it fails (the ONNX
        # quantizer's notes on the nodes it leaves in float, TensorFlow's "Assets written to ..." are not the user's).
        said = logging.StreamHandler(sys.stderr)
        said.addFilter(lambda record: record.name.startswith("zoolite") or record.levelno >= logging.ERROR)
        logging.basicConfig(level=logging.WARNING, format="zoolite: %(message)s", handlers=[said], force=True)
        log.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes are not the user's concern
        for old, new in getattr(args, "renamed_flags", []):
            log.warning("%s is deprecated and will be removed; use %s", old, new)
        return _handle(args)


def script() -> None:
    """The ``zoolite`` command: :func:`main`, then, once TensorFlow is loaded, out without its teardown, a second
    of wall time after the last output is written and the spare processes have ended."""
    code = main()
    if "tensorflow" in sys.modules:
        from zoolite.targets.parallel import exit_without_teardown

        exit_without_teardown(code)
    sys.exit(code)


def _handle(args) -> int:
    try:
        return args.handler(args)
    except ZooliteError as e:
        print(f"zoolite: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`zoolite predict ... | head`): nothing more to say
        with contextlib.suppress(OSError, ValueError):  # and nothing for Python to flush into the pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as interrupt:
        run_dir = getattr(interrupt, "run_dir", None)  # set by the pipeline once the folder exists
        print("zoolite: interrupted; " + (f"earlier runs are untouched, and {run_dir} stays marked incomplete: "
                                          f"finish it with `zoolite run --resume {run_dir}`" if run_dir
                                          else "nothing was lost"), file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if args.debug:
            raise
        print(f"zoolite: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    script()
