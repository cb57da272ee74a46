"""A run's spare processes (:mod:`zoolite.targets.parallel`), started as soon as the run knows its targets.

They import TensorFlow while the run's process imports it too and then scans the folder, when a core
would be idle anyway, and wait. Started later, they slowed the stage they overlapped: the features
(XNNPACK's threads wait for one that was preempted) or the gate's fit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from zoolite.config import RunConfig
from zoolite.errors import ZooliteError
from zoolite.runs.layout import RunLayout
from zoolite.targets import chosen_targets
from zoolite.targets.parallel import Spares


def run_spares(config: RunConfig | None, resume: str | Path | None = None) -> Spares:
    """The spare processes for the targets of ``config`` (or of the run folder ``resume``), started now."""
    if config is None and resume is not None:
        with contextlib.suppress(ZooliteError, OSError):  # the run itself says what is wrong with the folder
            config = RunConfig.load(RunLayout(Path(resume)).config)
    return Spares(chosen_targets(config.runtimes, config.modes) if config else [])
