"""Token files on disk: their format and how they are written and read.

* :func:`token_dtype` and :func:`npy_header` describe a flat ``.npy`` array of ids.
* :class:`TokenFileWriter` streams ids into such a file of unknown final
  length, with bounded memory, and only makes it appear at its path once it is
  complete (an error or Ctrl-C leaves no partial file).
* A shard directory holds a shard file per input shard plus an index
  (``index.json``); the helpers here name, check and replace it, and
  :class:`TokenShards` reads it as one memory-mapped sequence.
"""
from __future__ import annotations

import os
import struct
import tempfile
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np

from .outputs import check_output, temporary_beside

PathLike = Union[str, "os.PathLike[str]"]

#: Size of the ``.npy`` header we write: fixed, so it can be rewritten in place
#: once the number of ids is known (a multiple of 64, as NumPy recommends).
NPY_HEADER_BYTES = 128

#: Name of the index of a shard directory.
SHARD_INDEX = "index.json"
SHARD_FORMAT = "bytepiece-token-shards"


def token_dtype(vocab_size: int, dtype: str = "auto") -> np.dtype:
    """The little-endian dtype of a token file: ``auto`` is uint16 when every
    id fits (``vocab_size <= 65536``), else uint32. An explicit dtype too small
    for the vocabulary is a ``ValueError``."""
    if dtype == "auto":
        chosen = np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")
    else:
        try:
            chosen = np.dtype(dtype).newbyteorder("<")
        except TypeError:
            raise ValueError(f"unknown dtype {dtype!r}") from None
        if chosen.kind not in "iu":
            raise ValueError(f"a token file needs an integer dtype, got {dtype!r}")
    if vocab_size - 1 > np.iinfo(chosen).max:
        raise ValueError(
            f"dtype {chosen.name} holds ids up to {np.iinfo(chosen).max}, "
            f"but the vocabulary has {vocab_size} ids (use uint32 or auto)"
        )
    return chosen


# Not numpy.lib.format.write_array_header_1_0: fixed size checked on NumPy 2.4 only, and
# pyproject allows 1.23 (benchmarks/README.md, "Hand-written code, and why").
def npy_header(dtype: np.dtype, length: int) -> bytes:
    """A version 1.0 ``.npy`` header for a 1-D C array, exactly ``NPY_HEADER_BYTES`` long."""
    described = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                      "fortran_order": False, "shape": (int(length),)})
    room = NPY_HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
    if len(described) + 1 > room:
        raise ValueError(f"npy header too long for {length} items")
    body = (described.ljust(room - 1) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


class TokenFileWriter:
    """Write a flat ``.npy`` array of ids whose length is only known at the end.

    Ids are appended raw to a temporary file beside ``path`` behind a
    fixed-size header; :meth:`commit` writes the real header (final length),
    syncs and renames the file into place. Used as a context manager it
    commits on success and discards the temporary file on any exception
    (including ``KeyboardInterrupt``), so ``path`` is either untouched or
    complete. ``np.load(path, mmap_mode="r")`` reads the result.
    """

    def __init__(self, path: PathLike, dtype: Union[str, np.dtype] = "<u4",
                 inputs: Iterable[Optional[PathLike]] = (), durable: bool = True) -> None:
        self.path = os.fspath(path)
        self.durable = durable  # False: no fsync (a file that only hands ids over)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        if self.dtype.kind not in "iu":
            raise ValueError(f"a token file needs an integer dtype, got {self.dtype}")
        self._info = np.iinfo(self.dtype)
        self.count = 0
        self._real = check_output(self.path, inputs)  # a symlink is written through
        fd, self._tmp = temporary_beside(self._real)
        self._handle = os.fdopen(fd, "wb")
        self._open = True
        try:
            self._handle.write(npy_header(self.dtype, 0))
        except BaseException:
            self.discard()
            raise

    def write(self, ids: Any) -> None:
        """Append ``ids`` (any integer array-like); values must fit the dtype."""
        if not self._open:
            raise ValueError("token file already closed")
        array = np.asarray(ids)
        if array.size:
            if array.dtype.kind not in "iu":
                raise TypeError(f"ids must be integers, got {array.dtype}")
            low, high = array.min(), array.max()
            if low < self._info.min or high > self._info.max:
                raise ValueError(f"id {high if high > self._info.max else low} does not fit {self.dtype.name}")
        data = np.ascontiguousarray(array.ravel(), dtype=self.dtype)
        self._handle.write(memoryview(data).cast("B"))
        self.count += data.size

    @property
    def directory(self) -> str:
        """The directory the file is written in (its temporary file's, the real path's)."""
        return os.path.dirname(self._tmp)

    def append_file(self, path: PathLike, tokens: int) -> None:
        """Append the ids of the token file ``path`` (written with this dtype and
        holding ``tokens`` ids, as :func:`_check_shard_file` checks), copied by
        the kernel (``os.copy_file_range`` where there is one) rather than read
        into this process."""
        if not self._open:
            raise ValueError("token file already closed")
        length = tokens * self.dtype.itemsize
        self._handle.flush()
        out = self._handle.fileno()
        with open(path, "rb", buffering=0) as source:  # unbuffered: reads follow the kernel's offset
            source.seek(NPY_HEADER_BYTES)
            left = length
            copy = getattr(os, "copy_file_range", None)
            while left and copy is not None:
                try:
                    step = copy(source.fileno(), out, left)
                except OSError:  # not between these file systems: copied by hand below
                    break
                if step == 0:
                    break
                left -= step
            self._handle.seek(0, os.SEEK_END)  # the buffered writer's position after the kernel's copy
            while left:
                chunk = source.read(min(left, 1 << 22))
                if not chunk:
                    raise ValueError(f"{os.fspath(path)}: ends {left} bytes short of {tokens} ids")
                self._handle.write(chunk)
                left -= len(chunk)
        self.count += tokens

    def commit(self) -> None:
        """Write the final header, sync, and rename the file into place."""
        if not self._open:
            raise ValueError("token file already closed")
        try:
            self._handle.flush()
            self._handle.seek(0)
            self._handle.write(npy_header(self.dtype, self.count))
            self._handle.flush()
            if self.durable:
                os.fsync(self._handle.fileno())
            self._handle.close()
            self._open = False
            os.replace(self._tmp, self._real)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        self._open = False
        try:
            self._handle.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "TokenFileWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self._open:
                self.commit()
        else:
            self.discard()


def shard_name(index: int) -> str:
    """The file name of shard ``index`` of a shard directory."""
    return f"shard-{index:06d}.npy"


def is_shard_directory_path(path: PathLike) -> bool:
    """Whether ``path`` names a shard directory: it ends with a path separator
    (a directory named without one is refused as a token file's path)."""
    return os.fspath(path).endswith(("/", os.sep))


def check_shard_directory(path: PathLike, inputs: Iterable[Optional[PathLike]] = ()) -> str:
    """Check that the shard directory ``path`` can be written: its parent is
    a writable directory, and ``path`` is absent, empty, or a shard directory
    made before (which is replaced) that holds none of ``inputs``. Returns
    the real path of the directory."""
    name = os.fspath(path)
    real = os.path.realpath(name.rstrip("/" + os.sep) or name)
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{name}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: directory {parent} is not writable")
    if not os.path.exists(real):
        return real
    if not os.path.isdir(real):
        raise FileExistsError(f"{name}: exists and is not a directory")
    for source in inputs:
        if source is not None and os.fspath(source) != "-":
            if os.path.realpath(os.fspath(source)).startswith(real + os.sep):
                raise ValueError(f"{name}: holds an input ({os.fspath(source)}); write the output elsewhere")
    names = set(os.listdir(real))
    if names and (SHARD_INDEX not in names
                  or not all(n == SHARD_INDEX or (n.startswith("shard-") and n.endswith(".npy"))
                             for n in names)):
        raise FileExistsError(f"{name}: exists and is not a token shard directory (it holds other files)")
    return real


def _remove_strays(directory: str, keep: set) -> None:
    """Remove what tasks that died mid-write left (their temporary files)."""
    for name in os.listdir(directory):
        if name not in keep:
            os.unlink(os.path.join(directory, name))


def _check_shard_file(path: str, dtype: np.dtype, tokens: int) -> None:
    """The shard a task reported is there, as reported (on a cluster, the
    directory must be on a file system that the workers and this process share)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: a task wrote this shard but it is not here; on a cluster, "
                                "the output directory must be on a file system shared by every node") from None
    if size != NPY_HEADER_BYTES + tokens * dtype.itemsize:
        raise RuntimeError(f"{path}: {size} bytes, expected {tokens} ids of {dtype.name}")


def _replace_directory(staging: str, target: str, inputs: List[Optional[PathLike]]) -> None:
    """Move the complete ``staging`` directory to ``target`` (replacing an empty
    directory or an earlier shard directory there)."""
    import shutil

    if not os.path.exists(target):
        os.rename(staging, target)
        return
    check_shard_directory(target, inputs)  # again: it may have changed while encoding
    old = tempfile.mkdtemp(prefix=".old-", suffix="-" + os.path.basename(target), dir=os.path.dirname(target))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


class TokenShards:
    """A shard directory read as one flat sequence of ids.

    Each shard is memory-mapped (nothing is read until it is used); ``len``
    is the number of ids of all shards, and an int or a slice (with any step,
    across shard boundaries) gives NumPy values::

        tokens = TokenShards("tokens/")
        window = tokens[i:i + 2048]        # np.ndarray, even across two shards

    ``documents``, ``dtype`` and ``shards`` (the index entries) describe it;
    :meth:`to_numpy` gives the whole sequence as one array (in memory).
    """

    def __init__(self, path: PathLike) -> None:
        import json

        self.path = os.fspath(path)
        index_path = os.path.join(self.path, SHARD_INDEX)
        try:
            with open(index_path, "rb") as handle:
                index = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: not a token shard directory (no {SHARD_INDEX})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{index_path}: not valid JSON ({exc})") from None
        if not isinstance(index, dict) or index.get("format") != SHARD_FORMAT:
            raise ValueError(f"{index_path}: not the index of a token shard directory")
        try:
            self.dtype = np.dtype(index["dtype"]).newbyteorder("<")
            self.shards: List[Dict[str, Any]] = list(index["shards"])
            self.documents = int(index["documents"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{index_path}: malformed index ({exc})") from None
        self._arrays: List[np.ndarray] = []
        for entry in self.shards:
            name, count = entry.get("file"), entry.get("tokens")
            if not isinstance(name, str) or os.path.basename(name) != name or not isinstance(count, int):
                raise ValueError(f"{index_path}: malformed shard entry {entry!r}")
            file = os.path.join(self.path, name)
            array = np.load(file, mmap_mode="r") if count else np.empty(0, dtype=self.dtype)
            if array.ndim != 1 or len(array) != count or array.dtype != self.dtype:
                raise ValueError(f"{file}: holds {array.shape} {array.dtype}, the index says {count} "
                                 f"{self.dtype.name}")
            self._arrays.append(array)
        self._starts = np.zeros(len(self._arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in self._arrays], out=self._starts[1:])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _span(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts = []
        while start < stop:
            base = int(self._starts[first])
            take = min(stop, int(self._starts[first + 1])) - base
            parts.append(self._arrays[first][start - base:take])
            start = base + take
            first += 1
        if len(parts) == 1:
            return np.asarray(parts[0])
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._span(start, max(start, stop))
            low, high = (start, stop) if step > 0 else (stop + 1, start + 1)
            return self._span(low, max(low, high))[::step]  # a negative step starts at the end
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"token shards are indexed by int or slice, got {type(key).__name__}")
        position = int(key) + len(self) if key < 0 else int(key)
        if not 0 <= position < len(self):
            raise IndexError(f"index {key} out of range for {len(self)} tokens")
        return self._span(position, position + 1)[0]

    def to_numpy(self) -> np.ndarray:
        """All ids as one array (read into memory)."""
        return self._span(0, len(self))

    def __repr__(self) -> str:
        return f"TokenShards({self.path!r}: {len(self)} {self.dtype.name} ids, {len(self.shards)} shards)"
