"""Encoding a corpus into token files (see :mod:`bytepiece.token_files`).

* :func:`encode_to_token_file` encodes an iterable of documents into one
  ``.npy`` file, ``<eos>`` after each, reading ahead in a background thread
  (:class:`Prefetcher`) while the compiled core encodes on native threads.
* :func:`encode_blocks_to_token_file` encodes independent blocks of input
  (e.g. byte ranges of a file) in worker processes, each doing the whole job
  for its blocks (read, decode, normalize, encode); the calling process only
  cuts the input and writes the results in order.
* :func:`encode_with_engine` does the same with an engine's tasks (local
  processes or a Ray cluster, :mod:`bytepiece.ray_engine`), into one ``.npy``
  or into a shard directory.
"""
from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import pickle
import queue
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .normalization import nfc_utf8
from .outputs import check_output
from .token_files import (
    SHARD_FORMAT,
    SHARD_INDEX,
    PathLike,
    TokenFileWriter,
    _check_shard_file,
    _remove_strays,
    _replace_directory,
    check_shard_directory,
    is_shard_directory_path,
    shard_name,
    token_dtype,
)

#: Documents are handed to the core in batches of about this many bytes.
DEFAULT_BATCH_BYTES = 1 << 20
EOS_ID = 2


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


# -- token files encoded by an engine (local processes or a Ray cluster) ---------
#
# The input's blocks are grouped into shards of about ``shard_bytes``; an
# engine's ``map`` runs one task per shard. For a single ``.npy`` the tasks
# return their ids and the driver writes them in input order; for a shard
# directory each task writes its own shard file (atomically, under a name set
# by its position in the input, so that a retried task replaces its own file
# and never adds one), the driver writes the index last and only then moves
# the directory into place.

#: Input bytes per shard of a shard directory, unless told otherwise.
DEFAULT_SHARD_BYTES = 64 << 20


class ShardTask(NamedTuple):
    """Shard ``index``: consecutive ``blocks`` of the input, its first document
    being document ``first_index`` of the whole input (for sampling)."""

    index: int
    blocks: List[Any]
    first_index: int


def shard_tasks(blocks: Iterable[Any], shard_bytes: int, sampling: bool) -> Iterator[ShardTask]:
    """Group ``blocks`` (see :func:`encode_blocks_to_token_file`) into shards of
    about ``shard_bytes`` input bytes; ``sampling`` needs every block's count."""
    group: List[Any] = []
    size = index = first_index = documents = 0
    for block in blocks:
        if sampling and block.count is None:
            raise ValueError("sampling needs the document count of every block")
        group.append(block)
        size += block.size
        documents += block.count or 0
        if size >= shard_bytes:
            yield ShardTask(index, group, first_index)
            index, first_index = index + 1, first_index + documents
            group, size, documents = [], 0, 0
    if group or index == 0:
        yield ShardTask(index, group, first_index)


class ShardEncoder:
    """The task of an engine: encode a :class:`ShardTask`.

    Without ``directory`` it returns ``(ids, documents, input bytes)``; with
    one, it writes ``directory/shard-NNNNNN.npy`` atomically and returns
    ``(file name, tokens, documents, input bytes)``. With ``handoff`` the
    directory only hands the ids over to the driver (no fsync), and a task
    that does not see it (on a node without the driver's file system)
    returns the ids instead. Picklable (it carries the tokenizer).
    """

    def __init__(self, tokenizer: Any, dtype: np.dtype, alpha: float = -1.0, seed: Optional[int] = None,
                 directory: Optional[str] = None, allowed_special: Any = None, handoff: bool = False) -> None:
        self.tokenizer = tokenizer
        self.allowed_special = allowed_special
        self.dtype = np.dtype(dtype)
        self.alpha = alpha
        self.seed = seed
        self.directory = directory
        self.handoff = handoff

    def _encoded(self, task: ShardTask) -> Iterator[Tuple[np.ndarray, int, int]]:
        first = task.first_index
        for block in task.blocks:
            ids, count, _prepare_s, _encode_s = _encode_block(self.tokenizer, block, first, self.alpha,
                                                              self.seed, self.dtype, self.allowed_special)
            if block.count is not None and count != block.count:
                raise RuntimeError(f"a block of {block.size} bytes had {block.count} documents "
                                   f"when counted, {count} when encoded")
            first += count
            yield ids, count, block.size

    def __call__(self, task: ShardTask):
        if self.directory is None or (self.handoff and not os.path.isdir(self.directory)):
            parts, documents, size = [], 0, 0
            for ids, count, nbytes in self._encoded(task):
                parts.append(ids)
                documents += count
                size += nbytes
            ids = np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)
            return ids, documents, size
        name = shard_name(task.index)
        documents = size = 0
        with TokenFileWriter(os.path.join(self.directory, name), self.dtype, durable=not self.handoff) as writer:
            for ids, count, nbytes in self._encoded(task):
                writer.write(ids)
                documents += count
                size += nbytes
        return name, writer.count, documents, size


def encode_with_engine(tokenizer: Any, blocks: Iterable[Any], output: PathLike, engine: Any,
                       dtype: str = "auto", alpha: float = -1.0, seed: Optional[int] = None,
                       shard_bytes: int = DEFAULT_SHARD_BYTES,
                       on_block: Optional[Callable[[int, int, int], None]] = None,
                       inputs: Iterable[Optional[PathLike]] = (),
                       allowed_special: Any = None) -> Tuple[int, int]:
    """Encode ``blocks`` with ``engine`` (one task per shard of about
    ``shard_bytes``) into the token file ``output``, or, when ``output`` ends
    with a path separator, into a shard directory (see
    :class:`TokenShards`). The result is the same as
    :func:`encode_blocks_to_token_file`'s, whatever the engine and the shard
    size. ``on_block(input bytes, tokens, documents)`` is called per shard.
    ``output`` must be none of the files ``inputs`` (nor hold one).
    ``allowed_special`` is as for ``Tokenizer.encode``. Returns ``(tokens, documents)``.
    """
    if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, int) or shard_bytes < 1:
        raise ValueError(f"shard_bytes must be a positive int, got {shard_bytes!r}")
    file_dtype = token_dtype(tokenizer.vocab_size, dtype)
    sampling = alpha >= 0
    if sampling and seed is None:
        seed = tokenizer.next_seed()  # one draw: the whole output is one stream
    inputs = list(inputs)
    if allowed_special is not None and not isinstance(allowed_special, str):
        allowed_special = frozenset(allowed_special)  # shipped with the tasks
    tokenizer._matcher(allowed_special)  # fail on an unknown special token before any work
    tasks = shard_tasks(blocks, shard_bytes, sampling)
    if is_shard_directory_path(output):
        check_shard_directory(output, inputs)
        return _encode_to_directory(tokenizer, tasks, os.fspath(output), engine, file_dtype, alpha, seed,
                                    on_block, inputs, allowed_special)
    documents = 0
    with TokenFileWriter(output, file_dtype, inputs) as writer, _handoff_directory(engine, writer) as handoff_dir:
        encoder = ShardEncoder(tokenizer, file_dtype, alpha, seed, handoff_dir, allowed_special, handoff=True)
        for result in engine.map(encoder, tasks):
            if isinstance(result[0], str):  # a shard file in the handoff directory
                name, tokens, count, size = result
                shard = os.path.join(handoff_dir, name)
                _check_shard_file(shard, file_dtype, tokens)
                writer.append_file(shard, tokens)
                os.unlink(shard)
            else:
                ids, count, size = result
                tokens = len(ids)
                writer.write(ids)
            documents += count
            if on_block is not None:
                on_block(size, tokens, count)
        tokens = writer.count
    return tokens, documents


@contextlib.contextmanager
def _handoff_directory(engine: Any, writer: TokenFileWriter) -> Iterator[Optional[str]]:
    """A directory beside the output where tasks in other processes leave
    their shards' ids for the driver to append (removed after); ``None`` for
    an engine whose tasks run in this process (they return the ids).

    At 120 MB on a 2-CPU Ray cluster, the ids shipped back as task results
    took 0.48 s of the driver's time in a 1.40 s run; through these files,
    0.05-0.06 s in 1.05-1.19 s (``python benchmarks/ray_scale.py --sizes 120
    --no-train``, 2026-12-05).
    """
    if getattr(engine, "in_process", False):
        yield None
        return
    directory = tempfile.mkdtemp(prefix=".tmp-", suffix="-handoff", dir=writer.directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _encode_to_directory(tokenizer: Any, tasks: Iterable[ShardTask], path: str, engine: Any,
                         file_dtype: np.dtype, alpha: float, seed: Optional[int],
                         on_block: Optional[Callable[[int, int, int], None]],
                         inputs: List[Optional[PathLike]], allowed_special: Any) -> Tuple[int, int]:
    import json

    from .outputs import atomic_write

    target = check_shard_directory(path, inputs)
    parent = os.path.dirname(target)
    staging = tempfile.mkdtemp(prefix=".tmp-", suffix="-" + os.path.basename(target), dir=parent)
    try:
        encoder = ShardEncoder(tokenizer, file_dtype, alpha, seed, staging, allowed_special)
        shards = []
        tokens = documents = 0
        for name, count, docs, size in engine.map(encoder, tasks):
            _check_shard_file(os.path.join(staging, name), file_dtype, count)
            shards.append({"file": name, "tokens": count, "documents": docs})
            tokens += count
            documents += docs
            if on_block is not None:
                on_block(size, count, docs)
        _remove_strays(staging, {entry["file"] for entry in shards})
        index = {"format": SHARD_FORMAT, "version": 1, "dtype": file_dtype.name, "eos_id": EOS_ID,
                 "tokens": tokens, "documents": documents, "shards": shards}
        text = json.dumps(index, indent=1) + "\n"
        atomic_write(os.path.join(staging, SHARD_INDEX), lambda handle: handle.write(text.encode("ascii")))
        _replace_directory(staging, target, inputs)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return tokens, documents
