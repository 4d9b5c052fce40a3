"""Running training passes: a map over shards plus a merge of partial results.

Every pass over a corpus is written as ``fn(item) -> partial`` for each shard
(:class:`bytepiece.inputs.Shard`) and an associative ``merge(a, b) -> partial``.
An engine decides where the calls run. :class:`LocalEngine` runs them on
threads of this process (the compiled core releases the GIL); another engine
(for example one on a Ray cluster) runs the same functions elsewhere, which is
why ``fn`` must always be picklable: a module-level function, or a
``functools.partial`` of one with picklable arguments.

Partial results are merged in input order, so with an associative ``merge`` the
result does not depend on the number of workers, nor on which call finished
first.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Iterable, Iterator, Optional, TypeVar

from .progress import progress_bar

__all__ = ["LocalEngine", "Engine", "run_pass"]

T = TypeVar("T")
R = TypeVar("R")


class LocalEngine:
    """Runs passes over shards in this process on ``workers`` threads (the
    compiled core releases the GIL).

    ``workers=0`` means one per CPU. At most ``2 * workers`` calls are in flight
    (submitted but not yet consumed), so a long list of shards never holds more
    than a few partial results in memory at once.
    """

    #: Calls run in this process: their results need no shipping.
    in_process = True

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, got {type(workers).__name__}")
        if workers < 0:
            raise ValueError(f"workers must be at least 0, got {workers}")
        self.workers: int = workers or (os.cpu_count() or 1)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._closed = False

    def _executor(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError("this engine is closed")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bytepiece")
        return self._pool

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for each item, results yielded in input order.

        Items are drawn from ``items`` lazily, with a bounded number of calls in
        flight. The first error raised by a call is raised here (the calls
        still in flight are cancelled or waited for).
        """
        if self.workers == 1:
            if self._closed:
                raise RuntimeError("this engine is closed")
            for item in items:
                yield fn(item)
            return
        pool = self._executor()
        limit = 2 * self.workers
        pending: Deque["Future[R]"] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    try:
                        future.result()
                    except BaseException:  # the first error was already raised
                        pass

    def map_reduce(self, fn: Callable[[T], R], items: Iterable[T], merge: Callable[[R, R], R],
                   total_bytes: Optional[int] = None) -> Optional[R]:
        """``merge`` of ``fn(item)`` over all items, in input order (``None`` when
        there are no items). ``merge(a, b)`` may update and return ``a``.
        ``total_bytes``, the items' total ``size`` when known, lets an engine
        that hands out several items per call size them; this one does not."""
        return _fold(self.map(fn, items), merge)

    def close(self) -> None:
        """Stop the threads (idempotent)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> "LocalEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalEngine(workers={self.workers})"


#: What the trainers accept as ``engine``: anything with ``workers``, ``map``,
#: ``map_reduce`` (with its ``total_bytes`` keyword) and ``close`` as
#: :class:`LocalEngine` has them.
Engine = LocalEngine


def run_pass(engine: LocalEngine, fn: Callable[[T], R], items: Iterable[T], merge: Callable[[R, R], R],
             desc: str, total: Optional[int] = None, verbose: bool = True) -> "tuple[Optional[R], int]":
    """``engine.map_reduce(fn, items, merge)`` with a progress bar over the items' ``size``
    (bytes); returns the merged result and the bytes of all items.

    The engine merges as it sees fit (a Ray engine merges large partials in a
    tree of tasks). The bar advances as the engine takes each item: when its
    call is done on one worker, when it is handed out on several.
    """
    done = 0

    with progress_bar(desc, total, enabled=verbose) as bar:
        def sized() -> Iterator[T]:
            nonlocal done
            for item in items:
                step = int(getattr(item, "size", 0))
                yield item
                done += step
                bar.update(step)

        result = engine.map_reduce(fn, sized(), merge, total_bytes=total)
    return result, done


def _fold(partials: Iterable[R], merge: Callable[[R, R], R]) -> Optional[R]:
    """``merge`` of the partials in order (``None`` when there are none)."""
    result: Any = None
    first = True
    for partial in partials:
        if first:
            result, first = partial, False
        else:
            result = merge(result, partial)
    return result
