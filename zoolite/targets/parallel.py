"""A run's targets converted in two processes at a time where the cores allow it.

Converting runs on one core (TFLiteConverter and its calibration, tf2onnx, OpenVINO's frontend), so on
two cores a second process nearly halves the wait. Targets that share work are converted by one
``Converter`` in one process, as a *group*, so nothing is converted twice: a family whose modes start
from one float conversion (ONNX Runtime, OpenVINO) is one group; LiteRT's modes convert from the
SavedModel each on its own, but its calibrated modes share one calibration, so its float modes make one
group and its calibrated modes another.

The run's process exports the SavedModel once (and decodes the calibration images) while spare
processes start and import TensorFlow. A spare process is a new Python with the caller's import path, not
a fork (TensorFlow's threads do not survive one) nor a multiprocessing spawn (which runs the caller's main
script again: an unguarded script's code would run twice). It converts one group, handed over in a file,
and on Linux ends with the run's process, so a killed run leaves nothing writing into its folder (elsewhere
an idle one ends, and a busy one finishes its group). Spare processes take groups from the front of the
list (those with calibrated targets first), the run's process from the back, and the last group left.
Either way a file is the same bytes (a test compares LiteRT's).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn

from zoolite import storage
from zoolite.errors import ZooliteError
from zoolite.targets.base import About, ConversionSource, usable_cores

if TYPE_CHECKING:
    import numpy as np

    from zoolite.targets import Target

log = logging.getLogger(__name__)
PARALLEL = "parallel_"  # names a step timed in a spare process, while the run's process went on with others
WAITING = "convert_waiting"  # the run's process waiting for the spare processes' last groups


def conversion_groups(targets) -> list[list[Target]]:
    """``targets`` in groups that share work, each in the order given, the groups with a calibrated target first."""
    groups: dict[tuple, list[Target]] = {}
    for target in targets:
        family = target.family
        groups.setdefault((family.name,) if family.modes_share_conversion else (family.name, target.calibrated),
                          []).append(target)
    return sorted(groups.values(), key=lambda group: not _calibrates(group))


def spare_cores() -> int:
    """The cores this process may use, less the one it runs on."""
    return usable_cores() - 1


def convert_group(source: ConversionSource, group: list[Target], files: dict[Target, Path]) -> None:
    """One group's files, by one converter of its family."""
    converter = group[0].family.implementation().Converter(source)
    for target in group:
        converter.convert(target, files[target])


def _calibrates(group: list[Target]) -> bool:
    return any(target.calibrated for target in group)


class Spares:
    """The spare processes for converting ``targets``: one a spare core (or ``workers``), never more than the
    targets' groups but one. Made ahead (:mod:`zoolite.runs.spares`), they import TensorFlow and wait; as a context
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
                    spares: Spares | None = None, meanwhile: Callable[[], object] = lambda: None) -> None:
    """Write each target's file(s) to ``files[target]``, in this process and in ``spares`` (default: those
    of :class:`Spares`, started now). ``record`` gets the seconds of the steps timed in a spare process,
    their names prefixed with :data:`PARALLEL`. ``meanwhile()`` is called once this process has converted its
    share, before it waits for the spare processes (work of the run's that would otherwise wait for a core)."""
    pending = deque(conversion_groups(files))
    with contextlib.ExitStack() as stack:
        spares = spares or stack.enter_context(Spares(files))
        workers = min(spares.workers, len(pending) - 1)
        if workers < 1:
            for group in pending:
                convert_group(source, group, files)
            meanwhile()
            return
        _share(source, pending, files, record, spares, workers, meanwhile)


def _share(source: ConversionSource, pending: deque, files: dict[Target, Path],
           record: Callable[[dict[str, float]], None], spares: Spares, workers: int,
           meanwhile: Callable[[], object]) -> None:
    """The groups converted here from the back of ``pending`` and in ``workers`` spare processes from the front;
    the last group left is always this process's (a spare started for it would first import TensorFlow). A
    spare that ends without a result (killed, or TensorFlow would not import) leaves its group to this process."""
    busy: list[SpareProcess] = []

    def collect(spare: SpareProcess) -> None:
        try:
            record(spare.timings())
        except SpareLost as lost:
            log.warning("%s; converting them in the run's process instead", lost)
            convert_group(source, spare.group, files)
        finally:
            spare.end()
            busy.remove(spare)

    try:
        saved_model = source.saved_model()
        while pending:
            for spare in [spare for spare in busy if spare.finished()]:
                collect(spare)
            while len(pending) > 1 and len(busy) < workers:
                group = pending.popleft()
                busy.append(spares.take())
                busy[-1].convert(group, files, saved_model, source.workdir,
                                 source.representative() if _calibrates(group) else None, source.about)
            convert_group(source, pending.pop(), files)
        meanwhile()
        if busy:
            names = ", ".join(spare.names for spare in busy)
            with source.stage(WAITING, len(busy), "process", title=f"converting {names} in a spare process") as done:
                for spare in list(busy):
                    spare.process.wait()
                    collect(spare)
                    done(1)
    finally:
        for spare in busy:
            spare.end()


# How a spare process starts: the caller's import path (a checkout, a copy of zoolite), sent on stdin, set before
# any import, so that nothing in the folder it starts in (another checkout, a tensorflow.py) stands in for it.
_BOOTSTRAP = ("import ast, sys; sys.path[:] = ast.literal_eval(sys.stdin.buffer.readline().decode('ascii')); "
              "from zoolite.targets.parallel import serve; serve({parent})")


class SpareLost(RuntimeError):
    """A spare process ended without a result: killed (out of memory?), or TensorFlow would not import."""


class SpareProcess:
    """A spare process, started ahead: it imports TensorFlow, then converts the one group it is handed
    (:meth:`convert`) and leaves its steps' seconds, or its error, in a file beside the task."""

    def __init__(self):
        path = [str(entry) or os.getcwd() for entry in sys.path if isinstance(entry, (str, os.PathLike))]
        # what it prints goes where this process's native logs go (set aside by the CLI), never into --json's output
        self.process = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP.format(parent=os.getpid())],
                                        stdin=subprocess.PIPE, stdout=2)
        self.group: list[Target] = []
        self.task: Path | None = None
        self._send(ascii(path).encode("ascii") + b"\n", close=False)

    def _send(self, line: bytes, close: bool) -> None:
        try:
            self.process.stdin.write(line)
            if close:
                self.process.stdin.close()
            else:
                self.process.stdin.flush()
        except OSError:  # it has ended: timings() says how
            pass

    @property
    def names(self) -> str:
        return ", ".join(target.name for target in self.group)

    def convert(self, group: list[Target], files: dict[Target, Path], saved_model: Path, workdir: Path,
                images: np.ndarray | None, about: About) -> None:
        self.group = group
        self.task = workdir / f"{storage.TEMPORARY_PREFIX}spare-{self.process.pid}.task"
        storage.write_bytes(self.task, pickle.dumps(
            (group, {target: files[target] for target in group}, saved_model, workdir, images, about)))
        self._send(os.fsencode(self.task) + b"\n", close=True)

    def finished(self) -> bool:
        return self.process.poll() is not None

    def timings(self) -> dict[str, float]:
        """The seconds of each step it timed, named with :data:`PARALLEL`; its error raised here."""
        try:
            outcome = pickle.loads(_result(self.task).read_bytes())
        except OSError:
            raise SpareLost(f"the spare process converting {self.names} ended with code {self.process.wait()} "
                            "and no result") from None
        if "error" in outcome:
            error, message, trace = outcome["error"]
            raise (ZooliteError(message) if error == ZooliteError.__name__ else RuntimeError(
                f"converting {self.names} in a spare process: {error}: {message}")) from SpareTraceback(trace)
        return {PARALLEL + name: seconds for name, seconds in outcome["timings"].items()}

    def end(self) -> None:
        """Stop it if it still runs (unused, or this process failed or was interrupted); remove its files."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if self.task is not None:
            for path in (self.task, _result(self.task)):
                path.unlink(missing_ok=True)


class SpareTraceback(Exception):
    """Where a spare process failed (its traceback, as text), the cause of the error raised in the run's process."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


def _result(task: Path) -> Path:
    return task.with_suffix(".result")


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


def serve(parent: int) -> None:
    """A spare process's life: end with ``parent`` (on Linux: PR_SET_PDEATHSIG), import TensorFlow, wait for the
    task's path on stdin, convert, leave the outcome beside the task, and exit at once (TensorFlow's teardown
    takes a second, which the run would wait for). Ctrl-C is the run's process's to answer: it stops this one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before that
        os._exit(0)
    import tensorflow  # noqa: F401 (while the run's process trains and exports)

    line = sys.stdin.buffer.readline().rstrip(b"\n")
    if line:  # else none was handed over
        task = Path(os.fsdecode(line))
        try:
            outcome = {"timings": _convert_elsewhere(*pickle.loads(task.read_bytes()))}
        except Exception as e:  # noqa: BLE001 - handed back to the run's process, which raises it
            outcome = {"error": (type(e).__name__, str(e), traceback.format_exc())}
        storage.write_bytes(_result(task), pickle.dumps(outcome))
    exit_without_teardown(0)


def exit_without_teardown(code: int) -> NoReturn:
    """Leave the process as Python leaves it, but for the interpreter's finalization, where TensorFlow spends
    about a second: the atexit handlers run (TensorFlow's removes its AutoGraph files, logging's flushes its
    handlers), then the standard streams are flushed; one that cannot be (a full disk, a closed pipe) makes
    the exit status 120, as in Python's own exit."""
    atexit._run_exitfuncs()  # what Python's exit runs first; no public name
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)
