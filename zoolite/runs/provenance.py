"""Where models and figures come from, in words and versions: the machine and packages a run measured
on, the weights a backbone started from, and the description every model file carries."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from zoolite.model.backbones import BackboneSpec, describe_weights
from zoolite.config import TrainConfig
from zoolite.results import Machine, Rejection, Training
from zoolite.targets import KERAS, RUNTIMES, About
from zoolite.targets.base import usable_cores


def package_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_packages(runtimes) -> dict[str, str | None]:
    """The versions of the packages of the Keras reference and of ``runtimes`` (None: not installed)."""
    return {name: package_version(name) for family in (KERAS, *(RUNTIMES[r] for r in runtimes))
            for name in family.packages}


def machine_info(command: str | None = None, runtimes=()) -> Machine:
    """What the figures were measured on, written beside them."""
    return Machine(cpu=_cpu_model(), cores=usable_cores(), os=platform.platform(), python=platform.python_version(),
                   packages=runtime_packages(runtimes), zoolite=package_version("zoolite"),
                   command=command or " ".join(sys.argv))


def weights_caption(spec: BackboneSpec, weights: str | None, train: TrainConfig, training: Training) -> str:
    """What a backbone's classifier started from and how its base was trained, as the reports say it."""
    caption = describe_weights(spec, weights)
    if training.fine_tune:
        caption += (f"; top {train.fine_tune_layers} base layers fine-tuned ({training.fine_tune.epochs_run} epochs, "
                    f"learning rate {train.fine_tune_learning_rate:g})")
    return caption


def model_about(spec: BackboneSpec, weights: str | None, labels: list[str], data: str | Path,
                rejection: Rejection) -> About:
    """What every model file of a backbone says about itself: what it takes, what it tells apart, where it comes
    from and when it means "none of these"."""
    zoolite = package_version("zoolite")
    return About(
        name=f"zoolite {spec.name} classifier",
        description=f"Classifies {spec.input_size}x{spec.input_size} RGB photos (raw 0-255 pixels; normalised inside "
                    f"the model) into {len(labels)} classes: {', '.join(labels)}. Transfer learning from {spec.name} "
                    f"({describe_weights(spec, weights)}) on {Path(data).name}, by zoolite {zoolite}. A top score "
                    f"below {rejection.threshold:.4f} means none of these classes ({rejection.chosen}; fitted "
                    f"on {rejection.calibrated_on}).",
        labels=list(labels), version=zoolite, score_threshold=rejection.threshold)
