"""Files on disk: the user cache, atomic writes and run directories.

Every file zoolite writes goes to a temporary name in the same folder and is renamed
into place, so an interrupted run never leaves a half-written file under a real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

COMPLETE_MARKER = "COMPLETE"
# Written when a run folder is created and removed once it is complete, so a run that was
# killed says so in its own folder.
INCOMPLETE_MARKER = "INCOMPLETE"
TEMPORARY_PREFIX = ".tmp-"
# mkstemp/mkdtemp create owner-only files; finished files get the usual permissions instead.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def cache_dir() -> Path:
    """``$ZOOLITE_CACHE``, else ``$XDG_CACHE_HOME/zoolite``, else ``~/.cache/zoolite``."""
    root = os.environ.get("ZOOLITE_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoolite"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def one_maker(path: Path):
    """Held while ``path`` (a file of the user cache) is made: another process that wants it at the same
    time waits here, then finds it made rather than making it again (concurrent runs and checks). Where
    there is no ``fcntl`` (Windows) each makes it, and the atomic writes keep the file whole."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path`` (ending in its name); rename it to ``path`` on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX, suffix=f"-{path.name}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (for files written
    by other libraries over time, such as TensorBoard event logs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=TEMPORARY_PREFIX, suffix=f"-{path.name}"))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)  # an earlier attempt's finished copy
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_partial_files(root: str | Path) -> None:
    """Delete the temporary files and folders an interrupted process left under ``root``."""
    for path in sorted(Path(root).rglob(f"{TEMPORARY_PREFIX}*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_npy(path: str | Path, array) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        np.save(tmp, array)  # the temporary name ends in .npy, so numpy adds no suffix
    return Path(path)


def write_npy_stream(path: str | Path, batches, n_rows: int, row_shape: tuple, dtype, progress=None):
    """Write ``batches`` (arrays of rows, ``n_rows`` in all) into a ``.npy`` on disk without holding
    them in memory; return the finished file memory-mapped."""
    import numpy as np

    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n_rows, *row_shape))
        start = 0
        for batch in batches:
            array[start:start + len(batch)] = batch
            start += len(batch)
            if progress:
                progress(len(batch))
        array.flush()
        del array
    return np.load(path, mmap_mode="r")


def atomic_save_weights(model, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.unlink()  # Keras refuses to overwrite silently in some versions
        model.save_weights(tmp)
    return Path(path)


def atomic_save_model(model, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.unlink()
        model.save(tmp)
    return Path(path)


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return a fresh ``root/<timestamp>-<name>[-N]`` folder; never reuse one.

    The folder starts with an ``INCOMPLETE`` marker that :func:`mark_complete` removes.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{stamp}-{name}" + (f"-{n}" if n else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        write_text(path / INCOMPLETE_MARKER, (
            f"This run has not finished (started {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by process "
            f"{os.getpid()}). Unless that process is still running, it was interrupted; finish it "
            f"with:\n\n    zoolite run --resume {path}\n"))
        return path
    raise RuntimeError(f"could not create a new run folder under {root}")


def mark_complete(run_dir: Path) -> None:
    write_text(run_dir / COMPLETE_MARKER, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
    (run_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)


def is_complete(run_dir: Path) -> bool:
    return (run_dir / COMPLETE_MARKER).exists()


def holds_runs(folder: Path) -> bool:
    """Whether ``folder`` holds zoolite run folders (a ``--out`` folder)."""
    return any(folder.glob(f"*/{COMPLETE_MARKER}")) or any(folder.glob(f"*/{INCOMPLETE_MARKER}"))


def incomplete_runs(root: str | Path) -> list[Path]:
    """The run folders under ``root`` that were started but not completed."""
    return sorted(marker.parent for marker in Path(root).glob(f"*/{INCOMPLETE_MARKER}")
                  if not is_complete(marker.parent))
