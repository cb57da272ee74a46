"""zoolite: turn a folder of animal photos into small, fast on-device classifiers (LiteRT, ONNX Runtime,
OpenVINO), measured honestly.

The Python API mirrors the command line::

    from zoolite import RunConfig, run
    results = run(RunConfig(data="path/to/images", backbones=("efficientnet_lite0",)))
    results.backbones["efficientnet_lite0"].variants      # typed results (zoolite.results)

Stages, one package each, data flowing one way: :mod:`zoolite.dataset` (scan, split by copy
group) -> :mod:`zoolite.model` (backbones, training, features, "none of these", suspect labels)
-> :mod:`zoolite.targets` (the variants: every runtime and quantization mode) ->
:mod:`zoolite.measure` (one measuring routine, its intervals and statistics) ->
:mod:`zoolite.results` (the typed results and the recommendation) -> :mod:`zoolite.report`;
:mod:`zoolite.runs` runs them in order (each backbone's stages as plain functions in
:mod:`zoolite.runs.stages`), and :mod:`zoolite.apps` holds what users run on a dataset, a run or a
model file (check, predict, evaluate, export, serve).
"""

from zoolite.config import Budget, LatencyConfig, RunConfig, TrainConfig
from zoolite.errors import ZooliteError

__all__ = ["Budget", "LatencyConfig", "RunConfig", "TrainConfig", "ZooliteError", "run", "load_results",
           "rerender", "evaluate_model", "predict"]


def __getattr__(name):  # these import TensorFlow or matplotlib: only load them when asked for
    if name == "run":
        from zoolite.runs.pipeline import run

        return run
    if name == "load_results":
        from zoolite.results import load

        return load
    if name == "rerender":
        from zoolite.report.reporting import rerender

        return rerender
    if name == "predict":
        from zoolite.apps.predict import predict

        return predict
    if name == "evaluate_model":
        from zoolite.apps.evaluate import evaluate_model

        return evaluate_model
    raise AttributeError(name)
