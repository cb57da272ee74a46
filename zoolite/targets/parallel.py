"""A run's targets converted in two processes at a time where the cores allow it.

Converting runs on one core (TFLiteConverter and its calibration, tf2onnx, OpenVINO's frontend), so on
two cores a second process nearly halves the wait. Targets that share work are converted by one
``Converter`` in one process, as a *group*, so nothing is converted twice: a family whose modes start
from one float conversion (ONNX Runtime, OpenVINO) is one group; LiteRT's modes convert from the
SavedModel each on its own, but its calibrated modes share one calibration, so its float modes make one
group and its calibrated modes another.

The run's process exports the SavedModel once (and decodes the calibration images) while spare
processes start and import TensorFlow. A spare process is ``python -m zoolite.targets.parallel``, not a
fork (TensorFlow's threads do not survive one) nor a multiprocessing spawn (which runs the caller's main
script again: a notebook's or an unguarded script's code would run twice). It converts one group, handed
over in a file, and on Linux ends with the run's process, so a killed run leaves nothing writing into its
folder. Spare processes take groups from the front of the list (the calibrated ones, the slowest), the
run's process from the back, until none is left. Either way a file is the same bytes (a test compares them).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from zoolite import storage
from zoolite.errors import ZooliteError
from zoolite.targets.base import About, ConversionSource

if TYPE_CHECKING:
    import numpy as np

    from zoolite.targets import Target

PARALLEL = "parallel_"  # names a step timed in a spare process, while the run's process went on with others
WAITING = "convert_waiting"  # the run's process waiting for the spare processes' last groups


def conversion_groups(targets) -> list[list[Target]]:
    """``targets`` in groups that share work, each in the order given, the groups with a calibrated target first."""
    groups: dict[tuple, list[Target]] = {}
    for target in targets:
        family = target.family
        groups.setdefault((family.name,) if family.modes_share_conversion else (family.name, target.calibrated),
                          []).append(target)
    return sorted(groups.values(), key=lambda group: not any(target.calibrated for target in group))


def spare_cores() -> int:
    """The cores this process may use, less the one it runs on."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) - 1


def convert_group(source: ConversionSource, group: list[Target], files: dict[Target, Path]) -> None:
    converter = group[0].family.implementation().Converter(source)
    for target in group:
        converter.convert(target, files[target])


class Spares:
    """The spare processes for converting ``targets``: one a spare core (or ``workers``), never more than the
    targets' groups but one. Made ahead, they import TensorFlow while the model trains; as a context
    manager, they end when it closes if no conversion took them."""

    def __init__(self, targets, workers: int | None = None):
        groups = len(conversion_groups(targets))
        self.workers = max(0, min(spare_cores() if workers is None else workers, groups - 1))
        self.idle = [SpareProcess() for _ in range(self.workers)]

    def take(self) -> SpareProcess:
        """A started spare process (a new one once those made ahead are taken)."""
        return self.idle.pop() if self.idle else SpareProcess()

    def __enter__(self) -> Spares:
        return self

    def __exit__(self, *exc) -> None:
        for spare in self.idle:
            spare.end()


def convert_targets(source: ConversionSource, files: dict[Target, Path], record: Callable[[dict[str, float]], None],
                    spares: Spares | None = None) -> None:
    """Write each target's file(s) to ``files[target]``, in this process and in ``spares`` (default: those
    of :class:`Spares`, started now). ``record`` gets the seconds of the steps timed in a spare process,
    their names prefixed with :data:`PARALLEL`."""
    pending = deque(conversion_groups(files))
    with contextlib.ExitStack() as stack:
        spares = spares or stack.enter_context(Spares(files))
        workers = min(spares.workers, len(pending) - 1)
        if workers < 1:
            for group in pending:
                convert_group(source, group, files)
            return
        _share(source, pending, files, record, spares, workers)


def _share(source: ConversionSource, pending: deque, files: dict[Target, Path],
           record: Callable[[dict[str, float]], None], spares: Spares, workers: int) -> None:
    """The groups converted here from the back of ``pending`` and in ``workers`` spare processes from the front."""
    busy: list[SpareProcess] = []
    try:
        saved_model = source.saved_model()
        while pending:
            for spare in [spare for spare in busy if spare.finished()]:
                busy.remove(spare)
                record(spare.timings())
            while pending and len(busy) < workers:
                group = pending.popleft()
                images = source.representative() if any(target.calibrated for target in group) else None
                busy.append(spares.take().convert(group, files, saved_model, source.workdir, images, source.about))
            if pending:
                convert_group(source, pending.pop(), files)
        if busy:
            names = ", ".join(target.name for spare in busy for target in spare.group)
            with source.stage(WAITING, len(busy), "process", title=f"converting {names} in a spare process") as done:
                for spare in busy:
                    spare.process.wait()
                    done(1)
        for spare in busy:
            record(spare.timings())
    finally:
        for spare in busy:
            spare.end()


class SpareProcess:
    """A spare process (``python -m zoolite.targets.parallel``), started ahead: it imports TensorFlow,
    then converts the one group it is handed (:meth:`convert`) and leaves its steps' seconds, or its error,
    in a file beside the task."""

    def __init__(self):
        # the caller's import path (a checkout, a copy of zoolite) is the spare process's too; what it prints
        # goes where this process's native logs go (set aside by the CLI), never into --json's output
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        self.process = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid())], stdin=subprocess.PIPE,
                                        stdout=2, env=env, text=True)
        self.group: list[Target] = []
        self.task = self.result = None

    def convert(self, group: list[Target], files: dict[Target, Path], saved_model: Path, workdir: Path,
                images: np.ndarray | None, about: About) -> SpareProcess:
        self.group = group
        self.task = workdir / f"{storage.TEMPORARY_PREFIX}spare-{self.process.pid}.task"
        self.result = self.task.with_suffix(".result")
        storage.write_bytes(self.task, pickle.dumps(
            (group, {target: files[target] for target in group}, saved_model, workdir, images, about)))
        self.process.stdin.write(f"{self.task}\n")
        self.process.stdin.close()
        return self

    def finished(self) -> bool:
        return self.process.poll() is not None

    def timings(self) -> dict[str, float]:
        """The seconds of each step it timed, named with :data:`PARALLEL`; its error raised here."""
        names = ", ".join(target.name for target in self.group)
        try:
            outcome = pickle.loads(self.result.read_bytes())
        except OSError:
            raise RuntimeError(f"the spare process converting {names} ended with code {self.process.returncode} "
                               "and no result") from None
        if "error" in outcome:
            error, message = outcome["error"]
            raise ZooliteError(message) if error == ZooliteError.__name__ else \
                RuntimeError(f"converting {names} in a spare process: {error}: {message}")
        return {PARALLEL + name: seconds for name, seconds in outcome["timings"].items()}

    def end(self) -> None:
        """Stop it if it still runs (unused, or this process failed or was interrupted); remove its files."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not self.process.stdin.closed:
            self.process.stdin.close()
        for path in (self.task, self.result):
            if path is not None:
                path.unlink(missing_ok=True)


def _convert_elsewhere(group: list[Target], files: dict[Target, Path], saved_model: Path, workdir: Path,
                       images: np.ndarray | None, about: About) -> dict[str, float]:
    """A spare process's share: one group converted from the SavedModel the run's process exported;
    the seconds of each step it timed."""
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(name: str, total: int = 0, unit: str = "", title: str | None = None):
        start = time.perf_counter()
        yield lambda n=1: None
        timings[name] = round(time.perf_counter() - start, 3)

    convert_group(ConversionSource.exported(saved_model, workdir, images, stage, about), group, files)
    return timings


def _serve(parent: int) -> None:
    """The spare process: end with ``parent`` (Linux's PR_SET_PDEATHSIG), import TensorFlow, wait for the
    task's path on stdin, convert, and leave the outcome beside the task. Ctrl-C is the run's process's
    to answer: it stops this one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before that
        return
    import tensorflow  # noqa: F401 (while the run's process trains and exports)

    task = Path(sys.stdin.readline().strip())
    if not task.name:  # none was handed over
        return
    try:
        outcome = {"timings": _convert_elsewhere(*pickle.loads(task.read_bytes()))}
    except Exception as e:  # noqa: BLE001 - handed back to the run's process, which raises it
        outcome = {"error": (type(e).__name__, str(e))}
    storage.write_bytes(task.with_suffix(".result"), pickle.dumps(outcome))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # now: the run waits for this process's end, and TensorFlow's teardown takes a second
