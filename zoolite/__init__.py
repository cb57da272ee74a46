"""zoolite: turn a folder of animal photos into small, fast on-device classifiers (LiteRT, ONNX Runtime,
OpenVINO), measured honestly.

The Python API mirrors the command line::

    from zoolite import RunConfig, run
    results = run(RunConfig(data="path/to/images", backbones=("efficientnet_lite0",)))
    results.backbones["efficientnet_lite0"].variants      # typed results (zoolite.results)

Stages, one module each, data flowing one way: :mod:`zoolite.data` (dataset) ->
:mod:`zoolite.backbones`, :mod:`zoolite.training` (model) -> :mod:`zoolite.targets`
(variants) -> :mod:`zoolite.evaluation` (measurements) -> :mod:`zoolite.recommend`,
:mod:`zoolite.reporting` (report); :mod:`zoolite.pipeline` runs them.
"""

from zoolite.config import Budget, LatencyConfig, RunConfig, TrainConfig
from zoolite.errors import ZooliteError

__all__ = ["Budget", "LatencyConfig", "RunConfig", "TrainConfig", "ZooliteError", "run", "load_results",
           "rerender", "evaluate_model", "predict"]


def __getattr__(name):  # these import TensorFlow or matplotlib: only load them when asked for
    if name == "run":
        from zoolite.pipeline import run

        return run
    if name == "load_results":
        from zoolite.results import load

        return load
    if name == "rerender":
        from zoolite.reporting import rerender

        return rerender
    if name == "predict":
        from zoolite.evaluation import predict

        return predict
    if name == "evaluate_model":
        from zoolite.evaluation import evaluate_model

        return evaluate_model
    raise AttributeError(name)
