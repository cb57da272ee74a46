"""What every stage shares: skip a step whose output is already in the run folder (what ``--resume``
relies on), time the others, and show their progress."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import numpy as np

from zoolite.progress import Progress


class Steps:
    """The timed steps of one backbone: ``timings`` gets each step's seconds, and
    ``after_step`` (if given) the name of each step once it has finished."""

    def __init__(self, progress: Progress, timings: dict[str, float], prefix: str = "",
                 after_step: Callable[[str], None] | None = None):
        self.progress, self.timings, self.prefix, self.after_step = progress, timings, prefix, after_step

    @contextlib.contextmanager
    def step(self, name: str, total: int = 0, unit: str = "img", title: str | None = None):
        """Time the block as ``name`` with a progress bar of ``total`` units (none if 0); yields
        the bar's advance callable."""
        start = time.perf_counter()
        with self.progress.bar(f"{self.prefix}{title or name.replace('_', ' ')}", total, unit) as advance:
            yield advance
        self.record({name: round(time.perf_counter() - start, 3)})

    def record(self, timings: dict[str, float]) -> None:
        """Steps that have just finished (here, or in a spare process) and their seconds."""
        for name, seconds in timings.items():
            self.timings[name] = seconds
            if self.after_step:
                self.after_step(name)

    def produce(self, name: str, outputs: list[Path], make: Callable, load: Callable, total: int = 0,
                unit: str = "img", title: str | None = None):
        """``load()`` the step's ``outputs`` if all exist; else ``make(advance)`` them in a timed step."""
        if all(path.exists() for path in outputs):
            return load()
        with self.step(name, total, unit, title) as advance:
            return make(advance)


def load_npy(path: Path) -> Callable[[], np.ndarray]:
    """A loader of a saved array, memory-mapped: large image caches are read as they are used."""
    return lambda: np.load(path, mmap_mode="r")
