"""Progress bars (counts and ETA, on stderr) for the long steps; silenced by ``--quiet``."""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


class Progress:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    @contextlib.contextmanager
    def bar(self, title: str, total: int, unit: str = "img"):
        """Yield a callable that advances the bar by n (no bar is shown for a ``total`` of 0).

        The rate and ETA count from the first step, not from when the bar is shown: a bar
        may wait for another one to finish first.
        """
        with tqdm(total=total, desc=title, unit=unit, file=sys.stderr, disable=not self.enabled or total == 0,
                  dynamic_ncols=True, leave=True) as bar:
            def advance(n: int = 1) -> None:
                if bar.n == 0:
                    bar.reset(total)  # restarts the clock
                bar.update(n)

            yield advance
