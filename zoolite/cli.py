"""The ``zoolite`` command: a thin layer over the Python API.

Problems the user can fix are printed as one ``zoolite: error: ...`` line (exit 2),
never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from zoolite.errors import ZooliteError

log = logging.getLogger("zoolite")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _add_budget_options(parser: argparse.ArgumentParser, run_defaults: bool) -> None:
    from zoolite.recommend import Budget

    default_drop = Budget().max_accuracy_drop_pp
    unset = "" if run_defaults else " Without any of these three options, the run's own budget is kept."
    parser.add_argument("--max-accuracy-drop", type=float, metavar="PP", default=default_drop if run_defaults else None,
                        help="recommend only variants at most PP percentage points less accurate than the "
                             f"run's best float Keras model (default: {default_drop:g})")
    parser.add_argument("--max-latency-ms", type=float, metavar="MS",
                        help="recommend only variants with a mean latency per image of at most MS (default: no limit)")
    parser.add_argument("--max-size-mb", type=float, metavar="MB",
                        help="recommend only files of at most MB megabytes (default: no limit)." + unset)


def _budget(args):
    from zoolite.recommend import Budget

    return Budget(Budget().max_accuracy_drop_pp if args.max_accuracy_drop is None else args.max_accuracy_drop,
                  args.max_latency_ms, args.max_size_mb)


def _add_measurement_options(parser: argparse.ArgumentParser) -> None:
    from zoolite.evaluation import LatencyConfig

    latency = LatencyConfig()
    parser.add_argument("--threads", type=int, help="LiteRT threads (default: all cores)")
    parser.add_argument("--warmup", type=int, default=latency.warmup, help="untimed single-image calls")
    parser.add_argument("--runs", type=int, default=latency.runs, help="timed single-image calls (at most)")
    parser.add_argument("--max-latency-seconds", type=float, default=latency.max_seconds,
                        help="stop timing a variant after this long, once --min-runs calls are in")
    parser.add_argument("--min-runs", type=int, default=latency.min_runs)


def _latency_config(args):
    from zoolite.evaluation import LatencyConfig

    if args.threads is not None and args.threads < 1:
        raise ZooliteError(f"--threads {args.threads}: must be at least 1")
    return LatencyConfig(args.warmup, args.runs, args.max_latency_seconds, args.min_runs)


def _parser() -> argparse.ArgumentParser:
    from zoolite.conversion import QUANTIZATIONS
    from zoolite.training import TrainConfig

    parser = argparse.ArgumentParser(prog="zoolite", description=(
        "Turn a folder of animal photos into small, fast LiteRT image classifiers and measure them."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="scan, split, train, convert, evaluate and report")
    run.add_argument("--data", help="folder with one sub-folder of images per class (default: bundled sample)")
    run.add_argument("--backbones", type=_names, help="comma-separated backbone names, compared side by side "
                     "(default: efficientnet_lite0; the README lists them)")
    run.add_argument("--weights", help="'imagenet' (default), 'none' (random init, said so in the report) or "
                     "a local no-top .h5 weights file of a keras.applications backbone")
    run.add_argument("--out", default="runs", help="folder for run directories (default: runs)")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run from its last finished stage")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--split", type=_floats, default=(0.7, 0.15, 0.15), help="train,val,test fractions")
    run.add_argument("--labels", help="JSON map from folder names to labels (default: Animals-10's)")
    run.add_argument("--representative-images", type=int, default=200,
                     help="training images that calibrate int8 quantization (default: 200)")
    run.add_argument("--quantizations", type=_names, default=tuple(QUANTIZATIONS),
                     help=f"comma-separated subset of: {', '.join(QUANTIZATIONS)}")
    run.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                     help="do not write TensorBoard logs")
    defaults = TrainConfig()
    recipe_help = {"fine_tune_layers": "after the head, also train the top N layers of the base (counted as in "
                                       "the base model's layer list) on images; 0: no fine-tuning",
                   "fine_tune_learning_rate": "learning rate of fine-tuning"}
    for name, value in vars(defaults).items():
        run.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                         help=f"{recipe_help.get(name, 'training recipe')} (default: {value})")
    _add_measurement_options(run)
    run.add_argument("--quiet", action="store_true", help="no progress bars or training log")
    run.add_argument("--json", action="store_true", help="print the results as JSON on stdout (and nothing else)")
    _add_budget_options(run, run_defaults=True)
    run.set_defaults(handler=_run, parser=run)

    report = sub.add_parser("report", help="re-render report.md/report.html and the recommendation of a "
                                           "finished run, without recomputing anything")
    report.add_argument("run_dir", metavar="RUN_DIR")
    _add_budget_options(report, run_defaults=False)
    report.set_defaults(handler=_report)

    export = sub.add_parser("export", help="copy one LiteRT model of a run into a folder with labels.txt and "
                                           "model.json (what an app needs)")
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--variant", help=f"{', '.join(QUANTIZATIONS)} (default: the run's recommendation)")
    export.add_argument("--backbone", help="which backbone's model, when the run has several "
                                           "(default: the recommended one)")
    export.add_argument("--to", required=True, metavar="DIR", help="new or empty folder to write the bundle to")
    export.set_defaults(handler=_export)

    predict = sub.add_parser("predict", help="top-3 labels of images with a .keras or .tflite model")
    predict.add_argument("model")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top", type=int, default=3)
    predict.add_argument("--labels-file", help="the model's labels.txt (default: the one beside the model)")
    predict.set_defaults(handler=_predict)

    evaluate = sub.add_parser("evaluate", help="loss, accuracy and latency of a .keras or .tflite model "
                              "on a folder with one sub-folder of images per class")
    evaluate.add_argument("model")
    evaluate.add_argument("data", help="folder with one sub-folder of images per class, as for `run`")
    evaluate.add_argument("--labels-file", help="the model's labels.txt (default: the one beside the model)")
    evaluate.add_argument("--labels", help="JSON map from folder names to labels (default: Animals-10's)")
    _add_measurement_options(evaluate)
    evaluate.set_defaults(handler=_evaluate)
    return parser


def _run(args) -> int:
    start = time.perf_counter()
    from zoolite.pipeline import RunConfig, SAMPLE_DATA, run
    from zoolite.progress import Progress
    from zoolite.reporting import text_summary
    from zoolite.training import TrainConfig

    import_seconds = time.perf_counter() - start
    config = None
    if args.resume:
        # A resumed run keeps the options saved in its config.json; others would contradict them.
        flags = {action.dest: action.option_strings[0] for action in args.parser._actions if action.option_strings}
        given = [flag for dest, flag in flags.items() if dest not in ("resume", "quiet", "json", "help")
                 and getattr(args, dest) != args.parser.get_default(dest)]
        if given:
            raise ZooliteError(f"--resume {args.resume}: the run keeps the options saved in its config.json; "
                               f"drop {', '.join(given)} (or start a new run to change them)")
    else:
        train = TrainConfig(**{name: getattr(args, name) for name in vars(TrainConfig())})
        config = RunConfig(
            data=args.data or str(SAMPLE_DATA),
            backbones=RunConfig().backbones if args.backbones is None else args.backbones,
            weights=args.weights, runs_dir=args.out, seed=args.seed, split=args.split, labels=args.labels,
            representative_images=args.representative_images, threads=args.threads,
            quantizations=args.quantizations, tensorboard=args.tensorboard, train=train,
            latency=_latency_config(args),
            budget=_budget(args))
    results = run(config, resume=args.resume, progress=Progress(not (args.quiet or args.json)),
                  command="zoolite " + " ".join(sys.argv[1:]))
    results["timings"]["import"] = round(import_seconds, 3)
    print(json.dumps(results, indent=2) if args.json else text_summary(results))
    return 0


def _report(args) -> int:
    from pathlib import Path

    from zoolite.recommend import Budget, recommend
    from zoolite.reporting import load_results, text_summary, write_reports

    run_dir = Path(args.run_dir)
    given = (args.max_accuracy_drop, args.max_latency_ms, args.max_size_mb) != (None, None, None)
    budget = _budget(args) if given else None
    results = load_results(run_dir)
    if budget is None:  # the budget of the run's last report
        budget = Budget(**results.get("recommendation", {}).get("budget", results["config"].get("budget", {})))
    results["run_dir"] = str(run_dir)  # the folder may have moved since the run
    results["recommendation"] = recommend(results, budget)
    write_reports(run_dir, results)
    print(text_summary(results))
    return 0


def _export(args) -> int:
    from zoolite.export import export

    target = export(args.run_dir, args.to, variant=args.variant, backbone=args.backbone)
    print(f"{target}: " + ", ".join(sorted(p.name for p in target.iterdir())))
    return 0


def _open_model(model: str, labels_file: str | None, threads: int | None = None):
    """The model's runtime and labels (its labels.txt, or ``labels_file``), checked against each other."""
    from pathlib import Path

    from zoolite.runtimes import open_runtime

    runtime, _ = open_runtime(model, threads)
    labels_path = Path(labels_file) if labels_file else Path(model).parent / "labels.txt"
    if not labels_path.is_file():
        raise ZooliteError(f"{labels_path}: labels file not found" + (
            "; pass an existing labels.txt" if labels_file else
            " next to the model; keep labels.txt from the run folder beside it, or pass --labels-file"))
    try:
        labels = [line for line in labels_path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, UnicodeDecodeError) as e:
        raise ZooliteError(f"{labels_path}: not a readable labels file ({e}); pass the labels.txt of the "
                           "model's run") from None
    if runtime.n_classes != len(labels):
        raise ZooliteError(f"{model}: the model has {runtime.n_classes} outputs but {labels_path} lists "
                           f"{len(labels)} labels; use the labels.txt of the same run")
    return runtime, labels, labels_path


def _predict(args) -> int:
    from pathlib import Path

    import numpy as np

    from zoolite.data import check_image, load_image

    if args.top < 1:
        raise ZooliteError(f"--top {args.top}: must be at least 1")
    runtime, labels, _ = _open_model(args.model, args.labels_file)
    for image in args.images:
        problem = check_image(Path(image)) if Path(image).is_file() else "file not found"
        if problem:
            raise ZooliteError(f"{image}: {problem}; pass an image file (JPEG, PNG, ...)")
        probs = runtime.predict_one(load_image(image, runtime.input_size))
        top = np.argsort(-probs)[:args.top]
        print(f"{image}: " + ", ".join(f"{labels[i]} {probs[i]:.3f}" for i in top))
    return 0


def _evaluate(args) -> int:
    import tempfile
    from pathlib import Path

    import numpy as np

    from zoolite.data import cache_images, load_label_map, scan_dataset
    from zoolite.evaluation import evaluate

    latency = _latency_config(args)
    runtime, labels, labels_path = _open_model(args.model, args.labels_file, args.threads)
    dataset = scan_dataset(args.data, load_label_map(args.labels))
    for file, reason in dataset.skipped:
        log.warning("skipped %s: %s", Path(args.data, file), reason)
    if sorted(dataset.labels) != sorted(labels):
        raise ZooliteError(f"{args.data}: its classes ({', '.join(dataset.labels)}) are not the model's "
                           f"({', '.join(labels)}, from {labels_path}); pass a folder with one sub-folder "
                           "per class the model was trained on")
    model_index = [labels.index(label) for label in dataset.labels]
    targets = np.array([model_index[label] for _, label in dataset.files])
    with tempfile.TemporaryDirectory(prefix="zoolite-evaluate-") as tmp:  # decoded once, on disk
        images = cache_images([dataset.root / p for p, _ in dataset.files], runtime.input_size,
                              Path(tmp) / "images.npy")
        metrics, _ = evaluate(runtime, images, targets, len(labels), latency)
        del images
    top_k = next(name for name in metrics if name.startswith("top"))  # top3_accuracy, fewer classes: top2
    times = metrics["latency"]
    print(f"{args.model}: {len(targets)} images in {len(labels)} classes, {len(dataset.skipped)} file(s) skipped")
    print(f"loss {metrics['loss']:.4f}  accuracy {metrics['accuracy'] * 100:.1f}%  "
          f"{top_k.replace('top', 'top-').replace('_', ' ')} {metrics[top_k] * 100:.1f}%  "
          f"latency mean {times['mean_ms']:.2f} ms, p90 {times['p90_ms']:.2f} ms "
          f"({times['runs']} single-image calls, threads: {runtime.threads})")
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="zoolite: %(message)s", stream=sys.stderr)
    # zoolite's own notes at INFO; libraries' (TensorFlow's "Assets written to ...") from WARNING up.
    log.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes are not the user's concern
    try:
        return args.handler(args)
    except ZooliteError as e:
        print(f"zoolite: error: {e}", file=sys.stderr)
        return 2
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
    sys.exit(main())
