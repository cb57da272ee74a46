"""Read a PyTorch legacy (pre-1.6) ``state_dict`` file into NumPy arrays, without torch.

The file is a run of pickles: magic number, protocol version, system info, the
state_dict (whose tensors point at storages by persistent id), the list of storage
keys, then each storage's raw bytes (an 8-byte little-endian element count, then the
data). Weights files come from the internet, so unpickling is restricted to the few
globals a state_dict needs; anything else (``os.system``, ...) is refused unrun.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoolite.errors import ZooliteError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

# torch storage class -> element dtype, as written by little-endian PyTorch.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickler that builds only OrderedDicts and tensor references."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a weights file never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        return _StorageRef(str(key), storage_type.dtype, int(numel))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return the tensors of a legacy PyTorch ``.pth`` state_dict as NumPy arrays, by key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _read(f)
    except FileNotFoundError:
        raise ZooliteError(f"{path}: weights file not found; reinstall the package that provides it") from None
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, TypeError, KeyError) as e:
        raise ZooliteError(f"{path}: not a loadable PyTorch state_dict ({e}); "
                           "use the original file from its package") from None


def _read(f) -> dict[str, np.ndarray]:
    def load():
        return _StateDictUnpickler(f).load()

    if load() != _MAGIC_NUMBER:
        raise ValueError("bad magic number (a zip-format or non-PyTorch file?)")
    if load() != _PROTOCOL_VERSION:
        raise ValueError("unsupported protocol version")
    load()  # system info: endianness and type sizes, little-endian assumed
    state = load()
    storage_keys = load()
    if not isinstance(state, dict) or not isinstance(storage_keys, list):
        raise ValueError("no state_dict in the file")

    refs = {}
    for value in state.values():
        if isinstance(value, _TensorRef):
            refs[value.storage.key] = value.storage
    buffers = {}
    for key in storage_keys:
        (numel,) = struct.unpack("<q", f.read(8))
        storage = refs.get(key)
        dtype = np.dtype(storage.dtype if storage else np.uint8)
        data = f.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
            raise ValueError("file is truncated")
        buffers[key] = np.frombuffer(data, dtype=dtype)

    arrays = {}
    for name, t in state.items():
        if not isinstance(t, _TensorRef):
            continue
        buffer = buffers[t.storage.key]
        itemsize = buffer.dtype.itemsize
        arrays[name] = np.lib.stride_tricks.as_strided(
            buffer[t.offset:], shape=t.shape, strides=[s * itemsize for s in t.stride]).copy()
    return arrays
