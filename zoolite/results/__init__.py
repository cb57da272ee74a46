"""The results model: what a run measured, as typed data with a schema version.

Every consumer (the recommendation, tables, plots, report.html, export, the CLI and
notebooks) reads these classes, never dicts by position. ``results.json`` is their JSON
form; :func:`load` is the one place that reads it: it upgrades files of older schema
versions and refuses anything else in one line.

Modules: :mod:`~zoolite.results.variant` (what one model file measured), :mod:`~zoolite.results.training` (how a
backbone's classifier was trained), :mod:`~zoolite.results.records` (the run's other records, up to :class:`Run`),
:mod:`~zoolite.results.upgrades` (reading results.json of any schema) and :mod:`~zoolite.results.recommend` (which
variant to ship).

    Run ── machine: Machine, dataset: Dataset, split: SplitSizes, unlabelled, other
        ├─ backbones: {name: Backbone} ── training: Training, rejection: Rejection
        │                              └─ variants: [Variant]  (the reference first)
        │                                   └─ latency, per_class, fidelity, rejection, paired ...
        └─ recommendation: Recommendation
"""

from zoolite.results.records import (IMBALANCE_RATIO, SCHEMA_VERSION, Backbone, ClassGate, Dataset, Machine,
                                     Normalisation, OtherPhotos, Recommendation, Recommended, Rejection, Run, Skipped,
                                     SplitSizes, SuspectLabel, SuspectLabels, UnlabelledPhotos, best_float_backbone,
                                     is_imbalanced)
from zoolite.results.training import LogisticFit, Training, TrainingStage
from zoolite.results.upgrades import load
from zoolite.results.variant import (MB, Agreement, BalancedComparison, ClassKept, ClassMeasure, Fidelity, Latency,
                                     RejectionMeasure, Variant)

__all__ = ["IMBALANCE_RATIO", "MB", "SCHEMA_VERSION", "Agreement", "Backbone", "BalancedComparison", "ClassGate",
           "ClassKept", "ClassMeasure", "Dataset", "Fidelity", "Latency", "LogisticFit", "Machine", "Normalisation",
           "OtherPhotos", "Recommendation", "Recommended", "Rejection", "RejectionMeasure", "Run", "Skipped",
           "SplitSizes", "SuspectLabel", "SuspectLabels", "Training", "TrainingStage", "UnlabelledPhotos", "Variant",
           "best_float_backbone", "is_imbalanced", "load"]
