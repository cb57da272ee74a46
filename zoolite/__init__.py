"""zoolite: turn a folder of animal photos into small, fast LiteRT classifiers, measured honestly.

The Python API mirrors the command line::

    from zoolite import RunConfig, run
    results = run(RunConfig(data="path/to/images", backbones=("efficientnet_lite0",)))

Stages, one module each: :mod:`zoolite.data`, :mod:`zoolite.backbones`,
:mod:`zoolite.training`, :mod:`zoolite.conversion`, :mod:`zoolite.runtimes`,
:mod:`zoolite.evaluation`, :mod:`zoolite.reporting`; :mod:`zoolite.pipeline` runs them.
"""

from zoolite.errors import ZooliteError

__all__ = ["RunConfig", "run", "ZooliteError"]


def __getattr__(name):  # the pipeline imports TensorFlow: only load it when asked for
    if name in ("RunConfig", "run"):
        from zoolite import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
