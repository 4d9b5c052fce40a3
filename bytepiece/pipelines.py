"""Helpers for training pipelines: sampling seeds and flat token files.

* :func:`sampling_seed` turns ``(base_seed, epoch, index)`` into a well-mixed
  64-bit seed, so that subword sampling in data-loader workers is independent
  per example and per epoch, yet reproducible whatever the number of workers.
* :class:`TokenFileWriter` streams ids into a NumPy ``.npy`` file of unknown
  final length, with bounded memory, and only makes it appear at its path once
  it is complete (an error or Ctrl-C leaves no partial file).
* :func:`encode_to_token_file` encodes an iterable of documents into such a
  file, ``<eos>`` after each, reading ahead in a background thread while the
  compiled core encodes on native threads.
* :func:`encode_blocks_to_token_file` encodes independent blocks of input
  (e.g. byte ranges of a file) in worker processes, each doing the whole job
  for its blocks (read, decode, normalize, encode); the calling process only
  cuts the input and writes the results in order.
"""
from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .normalization import nfc_utf8
from .outputs import check_output, temporary_beside

__all__ = [
    "sampling_seed",
    "token_dtype",
    "TokenFileWriter",
    "encode_to_token_file",
    "encode_batches_to_token_file",
    "encode_blocks_to_token_file",
    "cpu_count",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Size of the ``.npy`` header we write: fixed, so it can be rewritten in place
#: once the number of ids is known (a multiple of 64, as NumPy recommends).
NPY_HEADER_BYTES = 128
#: Documents are handed to the core in batches of about this many bytes.
DEFAULT_BATCH_BYTES = 1 << 20
EOS_ID = 2


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def sampling_seed(base_seed: int, epoch: int = 0, index: int = 0) -> int:
    """A seed for sampling example ``index`` in ``epoch`` of a run seeded ``base_seed``.

    The three ints (any size, any sign) are hashed with BLAKE2b, so nearby
    inputs give unrelated seeds: ``(0, 1, 2)`` and ``(0, 2, 1)`` do not share a
    stream, and no arithmetic combination can collide by accident. The result
    is in ``[0, 2**63)`` (it fits an int64 column or tensor) and depends on
    nothing else, so every process computes the same seed for the same
    example::

        ids = tok.encode(text, alpha=0.1, seed=sampling_seed(base_seed, epoch, index))

    For a batch of consecutive examples starting at ``first``, one call covers
    all of them and gives results independent of the batch size::

        tok.encode_batch(texts, alpha=0.1, seed=sampling_seed(base_seed, epoch),
                         first_index=first)
    """
    values = (_as_int(base_seed, "base_seed"), _as_int(epoch, "epoch"), _as_int(index, "index"))
    data = ",".join(str(v) for v in values).encode("ascii")
    digest = hashlib.blake2b(data, digest_size=8, person=b"bytepiece.seed").digest()
    return int.from_bytes(digest, "little") >> 1


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
                 inputs: Iterable[Optional[PathLike]] = ()) -> None:
        self.path = os.fspath(path)
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

    def commit(self) -> None:
        """Write the final header, sync, and rename the file into place."""
        if not self._open:
            raise ValueError("token file already closed")
        try:
            self._handle.flush()
            self._handle.seek(0)
            self._handle.write(npy_header(self.dtype, self.count))
            self._handle.flush()
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


_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


# Not a ThreadPoolExecutor: its threads are joined at exit, so a producer blocked on input
# (stdin) would hang the process (measured: benchmarks/README.md, "Hand-written code, and why").
class Prefetcher:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead.

    Lets the main thread encode (the core releases the GIL) while the next
    batch is read, decoded and normalized. An exception of the iterable is
    raised in the consumer; leaving the ``with`` block early stops the thread.
    """

    def __init__(self, iterable: Iterable, depth: int = 2) -> None:
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterable,), daemon=True,
                                        name="bytepiece-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable: Iterable) -> None:
        try:
            for item in iterable:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer
            self._put(_Failure(error))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the background thread (it finishes the item it is producing)."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


Batch = Tuple[List[bytes], int]


def _document_bytes(document: Union[str, bytes]) -> bytes:
    if isinstance(document, str):
        return nfc_utf8(document)
    if isinstance(document, (bytes, bytearray, memoryview)):
        return bytes(document)
    raise TypeError(f"documents must be str or bytes, got {type(document).__name__}")


def _batched(documents: Iterable[Union[str, bytes]], batch_bytes: int) -> Iterator[Batch]:
    batch: List[bytes] = []
    size = 0
    for document in documents:
        data = _document_bytes(document)
        batch.append(data)
        size += len(data)
        if size >= batch_bytes:
            yield batch, size
            batch, size = [], 0
    if batch:
        yield batch, size


def encode_batches_to_token_file(
    tokenizer: Any,
    batches: Iterable[Batch],
    path: PathLike,
    dtype: str = "auto",
    alpha: float = -1.0,
    seed: Optional[int] = None,
    num_threads: int = 0,
    on_batch: Optional[Callable[[int, int, int], None]] = None,
    prefetch: int = 2,
    inputs: Iterable[Optional[PathLike]] = (),
    allowed_special: Any = None,
) -> Tuple[int, int]:
    """Encode ``(documents, input_bytes)`` batches into a ``.npy`` token file.

    ``documents`` are NFC UTF-8 bytes (taken as they are). The batches are
    produced in a background thread (``prefetch`` ahead) while the core
    encodes the current one on ``num_threads`` native threads. Document ``k``
    of the whole stream is sampled from the stream ``(seed, k)``, so the file
    does not depend on ``num_threads`` nor on how documents are batched.
    ``on_batch(input_bytes, tokens, documents)`` is called after each batch.
    ``path`` must not be one of the files ``inputs``.
    ``allowed_special`` is as for ``Tokenizer.encode``.
    Returns ``(tokens, documents)`` written.
    """
    file_dtype = token_dtype(tokenizer.vocab_size, dtype)
    if alpha >= 0 and seed is None:
        seed = tokenizer.next_seed()  # one draw: the whole file is one stream
    documents = 0
    with TokenFileWriter(path, file_dtype, inputs) as writer:
        with Prefetcher(batches, prefetch) as source:
            for texts, input_bytes in source:
                if not texts:
                    continue
                ids, _bounds = tokenizer.encode_batch_flat(
                    texts, add_eos=True, alpha=alpha, seed=seed, num_threads=num_threads,
                    first_index=documents, allowed_special=allowed_special)
                writer.write(ids)
                documents += len(texts)
                if on_batch is not None:
                    on_batch(input_bytes, len(ids), len(texts))
        tokens = writer.count
    return tokens, documents


def encode_to_token_file(
    tokenizer: Any,
    documents: Iterable[Union[str, bytes]],
    path: PathLike,
    dtype: str = "auto",
    alpha: float = -1.0,
    seed: Optional[int] = None,
    num_threads: int = 0,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    allowed_special: Any = None,
) -> Tuple[int, int]:
    """Encode ``documents`` (str or bytes) into one flat ``.npy`` array at ``path``.

    Each document's ids are followed by ``<eos>`` (id 2); ``dtype="auto"`` is
    uint16 when the vocabulary allows it, else uint32. Memory stays bounded
    (a few batches of ``batch_bytes``) whatever the corpus size, and ``path``
    only appears once complete. Returns ``(tokens, documents)``::

        encode_to_token_file(tok, open("corpus.txt", encoding="utf-8"), "tokens.npy")
        tokens = np.load("tokens.npy", mmap_mode="r")
    """
    if isinstance(documents, (str, bytes, bytearray, memoryview)):
        raise TypeError("documents must be an iterable of texts (a list, or an open file), "
                        f"not a single {type(documents).__name__}")
    if batch_bytes <= 0:
        raise ValueError(f"batch_bytes must be positive, got {batch_bytes}")
    source = getattr(documents, "name", None)  # an open file: the output must not replace it
    return encode_batches_to_token_file(tokenizer, _batched(documents, batch_bytes), path,
                                        dtype=dtype, alpha=alpha, seed=seed,
                                        num_threads=num_threads, allowed_special=allowed_special,
                                        inputs=[source] if isinstance(source, str) else ())


# -- blocks encoded in worker processes ------------------------------------------

Packed = Tuple[Any, np.ndarray]


def pack_documents(documents: Sequence[bytes]) -> Packed:
    """``(data, offsets)``: the documents back to back, document ``i`` being
    ``data[offsets[i]:offsets[i+1]]``."""
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    if documents:
        np.cumsum(np.fromiter(map(len, documents), dtype=np.int64, count=len(documents)),
                  out=offsets[1:])
    return b"".join(documents), offsets


def line_offsets(data: bytes) -> np.ndarray:
    """Offsets of the lines of ``data`` (split after each ``\\n``, a last line
    without one included): the ``offsets`` of ``data.splitlines(keepends=True)``
    when ``data`` holds no ``\\r``."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    last = 1 if data and data[-1:] != b"\n" else 0
    offsets = np.empty(len(ends) + 1 + last, dtype=np.int64)
    offsets[0] = 0
    offsets[1:len(ends) + 1] = ends + 1
    if last:
        offsets[-1] = len(data)
    return offsets


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _encode_block(tokenizer: Any, block: Any, first_index: int, alpha: float, seed: Optional[int],
                  dtype: np.dtype, allowed_special: Any = None) -> Tuple[np.ndarray, int, float, float]:
    """``(ids with <eos> after each document, documents, prepare s, encode s)`` of one block."""
    start = time.perf_counter()
    data, offsets = block.prepare()
    prepared = time.perf_counter()
    documents = len(offsets) - 1
    if documents:
        ids, _bounds = tokenizer._encode_packed(data, offsets, False, True, alpha, seed, 1, first_index,
                                                allowed_special)
        ids = ids.astype(dtype, copy=False)
    else:
        ids = np.empty(0, dtype=dtype)
    return ids, documents, prepared - start, time.perf_counter() - prepared


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError that describes it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return error


_WORKER_TOKENIZER: Any = None


def _worker_init(tokenizer: Any) -> None:
    """Runs once in each worker process (forked: the tokenizer is inherited, not pickled)."""
    global _WORKER_TOKENIZER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _WORKER_TOKENIZER = tokenizer


def _worker_block(block: Any, first_index: int, alpha: float, seed: Optional[int],
                  dtype: np.dtype, allowed_special: Any) -> Tuple[np.ndarray, int, float, float]:
    """:func:`_encode_block` in a worker; its exception reaches the parent (with
    the worker's traceback as its cause, which ``concurrent.futures`` attaches)."""
    try:
        return _encode_block(_WORKER_TOKENIZER, block, first_index, alpha, seed, dtype, allowed_special)
    except BaseException as error:
        raise _portable(error) from None


def _new_pool(tokenizer: Any, workers: int) -> Any:
    """``workers`` forked processes (``concurrent.futures``; it matched or beat the
    hand-written pipe pool it replaced: benchmarks/README.md, "Hand-written code, and why")."""
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_init, initargs=(tokenizer,))
    # Fork the workers now, before the output's temporary file exists: a SIGTERM that
    # lands during a fork is lost in the fork handlers, so none may happen while writing.
    pool.submit(os.getpid).result()
    return pool


def _fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def encode_blocks_to_token_file(
    tokenizer: Any,
    blocks: Iterable[Any],
    path: PathLike,
    dtype: str = "auto",
    alpha: float = -1.0,
    seed: Optional[int] = None,
    workers: int = 1,
    on_block: Optional[Callable[[int, int, int], None]] = None,
    in_flight: Optional[int] = None,
    stats: Optional[Dict[str, float]] = None,
    inputs: Iterable[Optional[PathLike]] = (),
    allowed_special: Any = None,
) -> Tuple[int, int]:
    """Encode independent blocks of input into a ``.npy`` token file.

    A block is a picklable object with ``size`` (input bytes, for
    ``on_block``), ``count`` (its number of documents, or ``None`` if not
    known in advance) and ``prepare()``, which reads, decodes and normalizes
    it into ``(data, offsets)``: document ``i`` is the NFC UTF-8
    ``data[offsets[i]:offsets[i+1]]``.

    With ``workers == 1`` (or where processes cannot be forked) everything
    runs in the calling thread. Otherwise ``workers`` forked processes each
    prepare and encode whole blocks on one core, at most ``in_flight`` blocks
    (default ``4 * workers``) are out at a time, and the calling process
    writes their ids in input order. An exception of a block (or of
    ``blocks`` itself) is raised once the blocks before it are written, as
    with one worker. With sampling, document ``k`` of the stream uses the
    random stream ``(seed, k)``: every block's ``count`` must then be known
    for ``workers > 1``, and the file is the same whatever ``workers``.
    ``on_block(input_bytes, tokens, documents)`` is called after each block
    is written; ``stats``, if given, receives the seconds spent in each
    phase (``prepare`` and ``encode`` summed over the workers). ``path``
    must not be one of the files ``inputs``.
    phase (``prepare`` and ``encode`` summed over the workers).
    ``allowed_special`` is as for ``Tokenizer.encode``.
    Returns ``(tokens, documents)``.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    file_dtype = token_dtype(tokenizer.vocab_size, dtype)
    inputs = list(inputs)
    check_output(path, inputs)  # before any worker starts
    if allowed_special is not None and not isinstance(allowed_special, str):
        allowed_special = frozenset(allowed_special)  # sent to the workers with each block
    tokenizer._matcher(allowed_special)  # fail on an unknown special token before any work
    sampling = alpha >= 0
    if sampling and seed is None:
        seed = tokenizer.next_seed()  # one draw: the whole file is one stream
    times = {"start": 0.0, "read": 0.0, "prepare": 0.0, "encode": 0.0, "wait": 0.0, "write": 0.0}
    started = time.perf_counter()
    pool = _new_pool(tokenizer, int(workers)) if workers > 1 and _fork_available() else None
    times["start"] = time.perf_counter() - started
    try:
        with TokenFileWriter(path, file_dtype, inputs) as writer:
            if pool is None:
                documents = _encode_here(tokenizer, iter(blocks), writer, alpha, seed, on_block, times,
                                         allowed_special)
            else:
                documents = _encode_in_pool(pool, iter(blocks), writer, alpha, seed, sampling,
                                            in_flight or 4 * int(workers), on_block, times, allowed_special)
                pool.shutdown(wait=False)  # the workers exit while the file is committed
            tokens = writer.count
            tick = time.perf_counter()
        times["commit"] = time.perf_counter() - tick
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # after an error: the running blocks finish
    times["total"] = time.perf_counter() - started
    if stats is not None:
        stats.update(times)
    return tokens, documents


def _encode_here(tokenizer: Any, source: Iterator[Any], writer: TokenFileWriter, alpha: float,
                 seed: Optional[int], on_block: Optional[Callable[[int, int, int], None]],
                 times: Dict[str, float], allowed_special: Any = None) -> int:
    documents = 0
    while True:
        tick = time.perf_counter()
        block = next(source, None)
        times["read"] += time.perf_counter() - tick
        if block is None:
            return documents
        documents += _write_block(writer, block, *_encode_block(tokenizer, block, documents, alpha, seed,
                                                                writer.dtype, allowed_special),
                                  on_block, times)


def _write_block(writer: TokenFileWriter, block: Any, ids: np.ndarray, count: int, prepare_s: float,
                 encode_s: float, on_block: Optional[Callable[[int, int, int], None]],
                 times: Dict[str, float]) -> int:
    """Write the ids of one block (blocks come in input order), account for it; its documents."""
    times["prepare"] += prepare_s
    times["encode"] += encode_s
    tick = time.perf_counter()
    writer.write(ids)
    if on_block is not None:
        on_block(block.size, len(ids), count)
    times["write"] += time.perf_counter() - tick
    return count


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _encode_in_pool(pool: Any, source: Iterator[Any], writer: TokenFileWriter, alpha: float,
                    seed: Optional[int], sampling: bool, limit: int,
                    on_block: Optional[Callable[[int, int, int], None]], times: Dict[str, float],
                    allowed_special: Any = None) -> int:
    from concurrent.futures.process import BrokenProcessPool

    pending: "collections.deque" = collections.deque()  # (future or _Failed, block), in input order
    first_index = documents = 0
    exhausted = False
    while True:
        while not exhausted and len(pending) < limit:
            tick = time.perf_counter()
            try:
                block = next(source)
                if sampling and block.count is None:
                    raise ValueError("sampling with several workers needs the document count of every block")
            except StopIteration:
                exhausted = True
                break
            except Exception as error:  # raised in its turn, after the blocks before it
                pending.append((_Failed(error), None))
                exhausted = True
                break
            finally:
                times["read"] += time.perf_counter() - tick
            pending.append((pool.submit(_worker_block, block, first_index, alpha, seed, writer.dtype,
                                        allowed_special), block))
            if sampling:
                first_index += block.count
        if not pending:
            return documents
        item, block = pending.popleft()
        if isinstance(item, _Failed):
            raise item.error
        tick = time.perf_counter()
        try:
            ids, count, prepare_s, encode_s = item.result()
        except BrokenProcessPool:
            raise ChildProcessError("a worker process died unexpectedly") from None
        times["wait"] += time.perf_counter() - tick
        if block.count is not None and count != block.count:
            raise RuntimeError(f"a block of {block.size} bytes had {block.count} documents "
                               f"when counted, {count} when encoded")
        documents += _write_block(writer, block, ids, count, prepare_s, encode_s, on_block, times)
