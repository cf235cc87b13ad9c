"""Read a legacy (pre-1.6, non-zip) PyTorch checkpoint into numpy arrays, without torch.

The legacy format is a stream of pickles followed by raw bytes:

1. the magic number, 2. the protocol version (1001), 3. a dict of system info (endianness, type sizes),
4. the object itself (here a state dict: an ``OrderedDict`` of name -> tensor), where each tensor is
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage is a
   *persistent id* ``("storage", <StorageClass>, key, location, numel, view_metadata)``,
5. the list of storage keys in the order their data follows,
6. for each key: an 8-byte little-endian element count, then the elements' raw bytes.

A pickle is a program: an ordinary ``pickle.load`` would import and call whatever the file names. The
unpickler here resolves exactly three kinds of global (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` and the ``torch.*Storage`` classes), each mapped to a small local
function or marker; any other global, and any persistent id that is not a storage, is refused.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rcyc_core.errors import ModelError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# Element types of the legacy storage classes (a "Long" is always 8 bytes on disk, whatever sys info says).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(ModelError):
    """A checkpoint that is not a legacy PyTorch state dict, or that asks for anything beyond one."""

    kind = "InvalidCheckpoint"


@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: only a name and an element type."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """A storage named by a persistent id; its bytes come after the pickles."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _PendingTensor:
    """A tensor whose storage has not been read yet."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_metadata):
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor's storage is not a storage reference")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)):
        raise CheckpointError(f"a tensor has an invalid layout (offset {storage_offset}, size {size}, stride {stride})")
    return _PendingTensor(storage, int(storage_offset), size, stride)


def _ordered_dict(*args):
    # Called with () for the state dict and for each tensor's (empty) backward hooks.
    return collections.OrderedDict(*args)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what a legacy state dict needs; everything else raises CheckpointError."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"the checkpoint names the global {module}.{name}, which rcyc refuses to load") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError(f"the checkpoint has a persistent id that is not a storage: {str(pid)[:80]}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError("the checkpoint has a malformed storage reference")
        if view_metadata is not None:
            raise CheckpointError("the checkpoint uses storage views, which this reader does not support")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, storage_type.dtype, numel)
        elif storage.dtype != storage_type.dtype or storage.numel != numel:
            raise CheckpointError(f"storage {key} is referenced with two different types or sizes")
        return storage


def _materialize(tensor: _PendingTensor) -> np.ndarray:
    data = tensor.storage.data
    if data is None:
        raise CheckpointError(f"storage {tensor.storage.key} is referenced but its data is not in the file")
    if any(s == 0 for s in tensor.size):
        return np.zeros(tensor.size, dtype=data.dtype)
    last = tensor.offset + sum((n - 1) * st for n, st in zip(tensor.size, tensor.stride))
    if last >= data.size:
        raise CheckpointError(f"a tensor reaches element {last} of storage {tensor.storage.key}, which has {data.size}")
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[tensor.offset :], shape=tensor.size, strides=tuple(st * itemsize for st in tensor.stride), writeable=False
    )
    return np.array(view, order="C")  # a C-contiguous copy, independent of the storage


def load_state_dict(path: Path) -> "collections.OrderedDict[str, np.ndarray]":
    """A legacy PyTorch state dict file -> OrderedDict of parameter name -> numpy array (a copy each)."""
    path = Path(path)
    size = path.stat().st_size
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as handle:
        try:
            magic = RestrictedUnpickler(handle, storages).load()
            if magic != MAGIC_NUMBER:
                raise CheckpointError(f"{path} is not a legacy PyTorch checkpoint (bad magic number)")
            protocol = RestrictedUnpickler(handle, storages).load()
            if protocol != PROTOCOL_VERSION:
                raise CheckpointError(f"{path} has PyTorch protocol version {protocol!r}, expected {PROTOCOL_VERSION}")
            sys_info = RestrictedUnpickler(handle, storages).load()
            if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
                raise CheckpointError(f"{path} was not written on a little-endian machine")
            state = RestrictedUnpickler(handle, storages).load()
            keys = RestrictedUnpickler(handle, storages).load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"{path} is not a readable legacy PyTorch checkpoint ({type(exc).__name__}: {exc})"[:300]) from None
        if not isinstance(state, collections.OrderedDict) or not all(
            isinstance(k, str) and isinstance(v, _PendingTensor) for k, v in state.items()
        ):
            raise CheckpointError(f"{path} does not hold a state dict of tensors")
        if not isinstance(keys, list) or sorted(keys) != sorted(storages) or len(set(keys)) != len(keys):
            raise CheckpointError(f"{path} lists storage keys that do not match the tensors' storages")
        for key in keys:
            storage = storages[key]
            header = handle.read(8)
            if len(header) != 8:
                raise CheckpointError(f"{path} ends before the data of storage {key}")
            (count,) = struct.unpack("<q", header)
            if count != storage.numel:
                raise CheckpointError(f"storage {key} holds {count} elements, the tensors said {storage.numel}")
            nbytes = count * storage.dtype.itemsize
            if nbytes > size - handle.tell():  # check before allocating
                raise CheckpointError(f"{path} is truncated inside storage {key}")
            raw = handle.read(nbytes)
            storage.data = np.frombuffer(raw, dtype=storage.dtype, count=count)
    return collections.OrderedDict((name, _materialize(tensor)) for name, tensor in state.items())
