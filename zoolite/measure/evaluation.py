"""The measurements stage: one routine measures every variant, the Keras model included
(:func:`measure_variant`), and every model file a user evaluates (:mod:`zoolite.apps.evaluate`).

Accuracy and loss are computed over the whole test split in batches (Keras's own
``CategoricalCrossentropy`` and ``CategoricalAccuracy``, used standalone). Latency is
measured separately, the way an app sees it: one image at a time, after warm-up,
each call timed with ``time.perf_counter``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoolite.config import LatencyConfig
from zoolite.measure import intervals, stats
from zoolite.measure.intervals import Interval
from zoolite.results import Agreement, ClassMeasure, Latency, Variant
from zoolite.targets.base import Runtime

if TYPE_CHECKING:
    from zoolite.targets import Target


def latency_stats(seconds, first_inference_ms: float | None = None) -> Latency:
    """Summary of per-call times (seconds in, milliseconds out)."""
    ms = np.asarray(seconds, np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timings")
    return Latency(mean_ms=float(ms.mean()), median_ms=float(np.percentile(ms, 50)),
                   p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
                   std_ms=float(ms.std()), min_ms=float(ms.min()), runs=int(ms.size),
                   first_inference_ms=first_inference_ms, samples_ms=ms.tolist(),
                   median_interval=intervals.median_interval(ms), mean_interval=intervals.mean_interval(ms))


def measure_latency(predict_one, images: np.ndarray, config: LatencyConfig, progress=None, record=None) -> Latency:
    """Time ``predict_one`` on single images, going through them in order (and round again): the first
    call, then warm-up (:class:`~zoolite.config.LatencyConfig`), then timed calls.

    ``progress`` is told of each timed call, and ``record(index, output)`` given each call's output,
    outside the timed span.
    """
    n = len(images)
    calls = itertools.count()

    def call() -> float:
        index = next(calls) % n
        start = time.perf_counter()
        output = predict_one(images[index])
        seconds = time.perf_counter() - start
        if record:
            record(index, output)
        return seconds

    first = call()
    _calls(call, config.warmup, config.max_warmup_seconds, 1)
    return latency_stats(_calls(call, config.runs, config.max_seconds, config.min_runs, progress), first * 1000.0)


def _calls(call, count: int, max_seconds: float | None, minimum: int, progress=None) -> list[float]:
    """The seconds of up to ``count`` calls, stopping once they have taken more than ``max_seconds`` (None: no
    limit) with at least ``minimum`` made; ``progress`` told of each."""
    times, spent = [], 0.0
    for _ in range(count):
        times.append(call())
        spent += times[-1]
        if progress:
            progress(1)
        if max_seconds is not None and spent > max_seconds and len(times) >= minimum:
            break
    return times


def predict_all(runtime: Runtime, images: np.ndarray, batch_size: int = 32, progress=None) -> np.ndarray:
    """Probabilities for every image, computed ``batch_size`` at a time."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size])
        out.append(runtime.predict(batch))
        if progress:
            progress(len(batch))
    return np.concatenate(out).astype(np.float32)


@dataclass
class Scores:
    """How well a model's probabilities classify labelled images."""

    loss: float
    accuracy: float
    accuracy_interval: Interval  # 95% Wilson
    top_k: int
    top_k_accuracy: float
    top_k_interval: Interval
    balanced_accuracy: float  # the mean recall over the classes with images
    balanced_accuracy_interval: Interval


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, n_classes: int, top_k: int = 3) -> Scores:
    """Loss, top-1 and top-k accuracy (with 95% Wilson intervals), computed as Keras's ``CategoricalCrossentropy``,
    ``CategoricalAccuracy`` and ``TopKCategoricalAccuracy`` do (probabilities renormalised and
    clipped to [1e-7, 1 - 1e-7]; a tie at the k-th place counts as in the top k), in NumPy so
    that evaluating a ``.tflite`` file needs no TensorFlow; and the balanced accuracy (mean recall
    over the classes with test images), which a large class cannot hide a small one's losses in."""
    p = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, dtype=int)
    answered = stats.answers(p)
    totals = p.sum(axis=1, keepdims=True)
    # A row of zeros names no class (stats.answers): a miss, whose loss is that of knowing nothing.
    p = np.clip(np.where(totals > 0, p / np.where(totals > 0, totals, 1), 1 / p.shape[1]), 1e-7, 1 - 1e-7)
    target = p[np.arange(len(labels)), labels]
    k = min(top_k, n_classes)
    correct = answered == labels
    right, in_top_k = int(np.sum(correct)), int(np.sum(((p > target[:, None]).sum(1) < k) & (answered >= 0)))
    balanced = intervals.balanced_accuracy_interval(np.bincount(labels[correct], minlength=n_classes),
                                                    np.bincount(labels, minlength=n_classes))
    return Scores(loss=float(np.mean(-np.log(target))), accuracy=right / len(labels),
                  accuracy_interval=intervals.proportion_interval(right, len(labels)), top_k=k,
                  top_k_accuracy=in_top_k / len(labels), top_k_interval=intervals.proportion_interval(in_top_k, len(labels)),
                  balanced_accuracy=balanced.estimate, balanced_accuracy_interval=balanced)


@dataclass
class Measurement:
    """One runtime measured on labelled images by the one routine: scores over all of them (in
    batches), then single-image latency as an app sees it."""

    scores: Scores
    latency: Latency
    other_latency: dict[str, Latency]  # other ways to call the same model (Runtime.other_calls)
    eval_seconds: float  # predicting every image, in batches
    probabilities: np.ndarray


def predict_and_time(runtime: Runtime, images: np.ndarray, latency: LatencyConfig, progress=None,
                     timing_progress=None) -> tuple[np.ndarray, Latency]:
    """Every image's probabilities and the single-image latency, from the same calls, for a runtime whose
    :meth:`~zoolite.targets.base.Runtime.predict` is one call per image anyway (every model file): the
    latency's calls go through the test images (:func:`measure_latency`), and the images they did not
    reach are predicted after, so each image costs one call rather than two."""
    probabilities = np.zeros((len(images), runtime.n_classes), np.float32)
    predicted = np.zeros(len(images), bool)

    def record(index: int, output: np.ndarray) -> None:
        if not predicted[index]:
            probabilities[index], predicted[index] = output, True
            if progress:
                progress(1)

    timed = measure_latency(runtime.predict_one, images, latency, timing_progress, record)
    rest = np.flatnonzero(~predicted)
    if len(rest):
        probabilities[rest] = predict_all(runtime, images[rest], progress=progress)
    return probabilities, timed


def measure(runtime: Runtime, images: np.ndarray, labels: np.ndarray, n_classes: int,
            latency: LatencyConfig | None = None, batch_size: int = 32, progress=None,
            timing_progress=None) -> Measurement:
    """Measure one runtime on the test images. ``progress`` advances per predicted image,
    ``timing_progress`` per timed call. A runtime that predicts in batches (Keras) predicts the images
    so, and is timed apart, one image a call; the others' single-image calls serve both."""
    latency = latency or LatencyConfig()
    start = time.perf_counter()
    if runtime.batched:
        probabilities = predict_all(runtime, images, batch_size, progress)
        eval_seconds = time.perf_counter() - start
        timed = measure_latency(runtime.predict_one, images, latency, timing_progress)
    else:
        probabilities, timed = predict_and_time(runtime, images, latency, progress, timing_progress)
        eval_seconds = time.perf_counter() - start
    return Measurement(classification_metrics(probabilities, labels, n_classes), timed,
                       {name: measure_latency(call, images, latency) for name, call in runtime.other_calls().items()},
                       eval_seconds, probabilities)


def measure_variant(runtime: Runtime, target: Target, path: Path, images: np.ndarray, labels: np.ndarray,
                    n_classes: int, latency: LatencyConfig | None = None, *, recorded_as: str | None = None,
                    load_ms: float = 0.0, progress=None, timing_progress=None) -> tuple[Variant, np.ndarray]:
    """A model file of ``target`` measured by :func:`measure`, as the :class:`~zoolite.results.Variant` the
    results record (``recorded_as``: its path there, default ``path``), and its probabilities."""
    m = measure(runtime, images, labels, n_classes, latency, progress=progress, timing_progress=timing_progress)
    s = m.scores
    variant = Variant(
        target=target.name, family=target.family.name, mode=target.mode, role=target.role,
        file=recorded_as or str(path), size_bytes=target.family.size_bytes(path), load_ms=load_ms, loss=s.loss,
        accuracy=s.accuracy, accuracy_interval=s.accuracy_interval, top_k=s.top_k, top_k_accuracy=s.top_k_accuracy,
        top_k_interval=s.top_k_interval, balanced_accuracy=s.balanced_accuracy,
        balanced_accuracy_interval=s.balanced_accuracy_interval, latency=m.latency, other_latency=m.other_latency,
        threads=runtime.threads, backend=runtime.backend, eval_seconds=m.eval_seconds, input_dtype=runtime.input_dtype,
        params=runtime.params())
    return variant, m.probabilities


def agreement(probabilities: np.ndarray, reference: np.ndarray) -> Agreement:
    """How closely a variant's answers and probabilities follow the reference (float) model's on the same images:
    the top-1 agreement as :func:`zoolite.measure.stats.agreement_by_confidence` counts it, over every image, and the
    mean absolute difference of the probabilities."""
    every_image = stats.agreement_by_confidence(probabilities, reference, bins=())[0]
    return Agreement(top1_agreement=every_image.agreement,
                     mean_abs_prob_diff=float(np.mean(np.abs(probabilities - reference))))


def per_class_report(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                     reference: np.ndarray | None = None) -> tuple[list[list[int]], dict[str, ClassMeasure]]:
    """The confusion matrix (rows: true, columns: predicted) and each class's precision, recall
    (with its Wilson interval) and F1; with the ``reference`` model's probabilities on the same
    images, also the photos of each class won and lost against it, and the one-sided exact test
    that the class is lost, Holm-corrected for the number of classes."""
    n = len(class_names)
    labels = np.asarray(labels, int)
    predicted = stats.answers(probabilities)
    confusion = np.zeros((n, n), dtype=int)  # a photo answered with no class is in no column
    np.add.at(confusion, (labels[predicted >= 0], predicted[predicted >= 0]), 1)
    losses = [{}] * n if reference is None else [vars(loss) for loss in stats.class_losses(
        predicted == labels, stats.answers(reference) == labels, labels, n)]
    supports = np.bincount(labels, minlength=n)
    per_class = {}
    for i, name in enumerate(class_names):
        tp, support, claimed = int(confusion[i, i]), int(supports[i]), int(confusion[:, i].sum())
        precision = tp / claimed if claimed else 0.0
        recall = tp / support if support else 0.0
        per_class[name] = ClassMeasure(
            precision=precision, recall=recall,
            f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            support=support, recall_interval=intervals.proportion_interval(tp, support), **losses[i])
    return confusion.tolist(), per_class
