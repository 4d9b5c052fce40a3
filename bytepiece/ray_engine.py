"""Running the passes of training and encoding as Ray tasks.

:class:`RayEngine` has the interface of :class:`bytepiece.engine.LocalEngine`
(``map``, ``map_reduce``, ``close``, ``workers``), so the same passes run on a
Ray cluster instead of local processes:

* ``map(fn, items)`` runs ``fn(item)`` as one Ray task per item and yields the
  results in input order, with at most ``in_flight`` tasks out at a time (so
  the driver's memory stays bounded whatever the number of items).
* ``fn`` (which may carry a large object, such as a model) is put in the
  object store once per call, not once per task, and unpickled once per
  worker process. A ``fn`` that carries an empty partial result, which each
  call fills and returns (as the trainers' passes do), is unpickled afresh
  for the next task whenever a call returns an object it carries. ``fn``
  must keep no other state from one call to the next.
* Results come back with their NumPy arrays writable (arrays read from the
  object store are read-only), so that a merge may add into them.
* A task whose worker process dies (killed, out of memory, node lost) is
  retried by Ray up to ``max_retries`` times; an exception raised by ``fn``
  itself is not retried, and is raised on the driver as the original
  exception (e.g. the ``ValueError`` naming a bad line of input).
* ``map_reduce(fn, items, merge)`` runs one task per group of consecutive
  items (up to ``group_bytes`` of input), which merges its items' partials
  itself (or calls ``fn.map_group(items)`` when ``fn`` has it: one partial
  for the group, equal to the merge of ``fn(item)`` in order), and merges
  the groups' partials in input order: on the driver as they arrive while
  they are small, else in a tree of merge tasks in the cluster, so that
  large partials never travel to the driver but once, merged.

:class:`DatasetTexts` reads a text column of a ``ray.data.Dataset`` for the
trainer, which accepts a Dataset directly.

Ray is imported only when an engine is made; without it,
:class:`RayNotInstalled` (an ``ImportError``) says how to install it.
``stats`` records, for each call, the tasks and items, the seconds spent in
tasks (and merging there), in merge tasks, and on the driver (fetching
partials, merging), and the bytes shipped, for ``benchmarks/ray_scale.py``.
"""
from __future__ import annotations

import collections
import operator
import os
import pickle
import time
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = ["RayEngine", "RayNotInstalled", "DatasetTexts", "is_ray_dataset", "import_ray", "INSTALL_HINT"]

INSTALL_HINT = 'Ray is not installed: pip install "bytepiece[ray]"'
#: Partial results at least this large (bytes, pickled) are merged in tasks.
TREE_MERGE_BYTES = 16 << 20
#: Input bytes a task of ``map_reduce`` takes at most, in consecutive items.
#: A partial result grows slower than the input it covers (the n-gram
#: tables of 32 MiB of text hold 4.6 M keys, of 120 MB 8.2 M), and the
#: driver's work per partial with it: on 1 GB, 128 MiB groups took
#: ``compress``'s first pass from 7.2 % to 3.7 % of its map work in merging
#: and on the driver, and let the driver keep up with 75 workers on
#: ``bnlm``'s second pass, against 45 with 32 MiB (``benchmarks/README.md``,
#: "Ray engine"). See :meth:`RayEngine.group_size` for smaller inputs.
GROUP_BYTES = 128 << 20


class RayNotInstalled(ImportError):
    """``--engine ray`` or :class:`RayEngine` without Ray installed."""


def import_ray():
    """The ``ray`` module, or :class:`RayNotInstalled` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(INSTALL_HINT) from None
    return ray


def _nbytes(value: Any) -> int:
    """Bytes ``value`` takes when shipped: arrays and bytes by their size,
    sequences by their items, anything else by its pickle."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, (tuple, list)) and len(value) < 64:
        return sum(_nbytes(v) for v in value)
    if value is None or isinstance(value, (int, float, bool, str)):
        return 8 if not isinstance(value, str) else len(value)
    try:
        return len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    except Exception:
        return 0


# -- what runs in the workers ----------------------------------------------------

#: fn of recent calls, by object id: unpickled once per worker process.
_FUNCTIONS: "collections.OrderedDict[str, Any]" = collections.OrderedDict()


def _writable(value: Any, depth: int = 0) -> Any:
    """``value`` with its NumPy arrays writable: arrays that come out of the
    object store are read-only views of it, and a merge may add into them. Arrays
    are copied only when read-only (in tuples, lists, dicts and attributes)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value if value.flags.writeable else value.copy()
    if depth > 3:
        return value
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_writable(v, depth + 1) for v in value)
    if isinstance(value, list):
        value[:] = [_writable(v, depth + 1) for v in value]
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = _writable(item, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for key, item in vars(value).items():
            if isinstance(item, (np.ndarray, tuple, list, dict)):
                setattr(value, key, _writable(item, depth + 1))
    return value


def _function(boxed: List[Any]) -> Tuple[str, Any]:
    """``(key, fn)`` of a call, unpickled once per worker process and kept for
    the next tasks of the call (see :func:`_run` for when it is not)."""
    ray = import_ray()
    ref = boxed[0]
    key = ref.hex()
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = ray.get(ref)
        _FUNCTIONS[key] = fn
        while len(_FUNCTIONS) > 4:
            _FUNCTIONS.popitem(last=False)
    else:
        _FUNCTIONS.move_to_end(key)
    return key, fn


def _carried(fn: Any) -> List[Any]:
    """The objects ``fn`` carries that a call could fill and return: the
    arguments of a ``functools.partial`` (nested too) and the attributes of a
    callable object."""
    import functools

    found: List[Any] = []
    while isinstance(fn, functools.partial):
        found.extend(fn.args)
        found.extend(fn.keywords.values())
        fn = fn.func
    if hasattr(fn, "__dict__") and not callable(getattr(fn, "__func__", None)):
        found.extend(vars(fn).values())
    return found


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _forget_if_filled(key: str, fn: Any, result: Any) -> None:
    """Drop ``fn`` from the worker's cache when ``result`` is (or holds) an
    object it carries, such as an empty partial result that each call fills
    and returns: the next task on this worker then unpickles it afresh. Any
    other ``fn`` is reused by the next tasks of the same call (a model it
    carries is then unpickled once per worker, not once per task)."""
    parts = [result, *result] if isinstance(result, (tuple, list)) else [result]
    carried = [thing for thing in _carried(fn) if not isinstance(thing, _IMMUTABLE)]
    if any(part is thing for part in parts for thing in carried):
        _FUNCTIONS.pop(key, None)


def _run(boxed: List[Any], item: Any) -> Tuple[Tuple[int, float], Any]:
    """One task of ``map``: ``fn(item)``; returns ``((bytes of the result, seconds), result)``."""
    start = time.perf_counter()
    key, fn = _function(boxed)
    result = fn(item)
    _forget_if_filled(key, fn, result)
    return (_nbytes(result), time.perf_counter() - start), result


def _run_group(boxed: List[Any], merge_boxed: List[Any],
               items: List[Any]) -> Tuple[Tuple[int, float, float], Any]:
    """One task of ``map_reduce``: ``fn`` over consecutive ``items``, merged in
    order, as :class:`bytepiece.engine.LocalEngine` would in one process. A
    partial result that ``fn`` carries and fills (the trainers' tables) is
    filled by every item of the group and so needs no merge here; only the
    group's partial is shipped. A ``fn`` with a ``map_group(items)`` method
    makes the group's partial itself, with no merges. Returns
    ``((bytes, seconds, seconds merging), result)``."""
    start = time.perf_counter()
    key, fn = _function(boxed)
    merging = 0.0
    map_group = getattr(fn, "map_group", None)
    if callable(map_group):
        result = map_group(items)
    else:
        merge = _function(merge_boxed)[1]
        result = fn(items[0])
        for item in items[1:]:
            partial = fn(item)
            tick = time.perf_counter()
            result = merge(result, partial)
            merging += time.perf_counter() - tick
    _forget_if_filled(key, fn, result)
    return (_nbytes(result), time.perf_counter() - start, merging), result


def _merge_all(boxed: List[Any], refs: List[Any]) -> Tuple[Tuple[int, float, float], Any]:
    """One merge task: ``merge`` of the partials of ``refs`` from left to
    right. The partials are fetched here, so that the task's seconds count
    their unpickling too, and one at a time, each dropped once merged: the
    task holds the result and one partial, not all of them, and the next
    partial reuses the memory of the last (on 1 GB, fetching the eight
    n-gram tables of ``bnlm``'s first pass took 8.7-9.0 s all at once,
    0.9-1.0 s one by one). The seconds start once every partial is done
    (a merge of merges waits for those first). Returns
    ``((bytes, seconds, seconds fetching), result)``."""
    ray = import_ray()
    ray.wait(refs, num_returns=len(refs), fetch_local=False)
    start = time.perf_counter()
    merge = _function(boxed)[1]
    result = _writable(ray.get(refs[0]))  # merge may update it
    fetching = time.perf_counter() - start
    for ref in refs[1:]:
        tick = time.perf_counter()
        partial = ray.get(ref)
        fetching += time.perf_counter() - tick
        result = merge(result, partial)
        del partial
    return (_nbytes(result), time.perf_counter() - start, fetching), result


class RayEngine:
    """Run ``fn`` over items as Ray tasks (see the module docstring).

    * ``address``: of a running cluster (``"auto"``, ``"ray://host:10001"``,
      ``"host:6379"``); ``None`` connects to the cluster this process is
      already connected to, else starts a local one with ``num_cpus`` CPUs.
    * ``max_retries``: retries of a task whose worker died.
    * ``in_flight``: tasks out at a time (default: twice the cluster's CPUs).
    * ``tree_bytes``: partial results at least this large are merged in a
      tree of tasks (``fanout`` at a time) instead of on the driver.
    * ``group_bytes``: a task of ``map_reduce`` takes consecutive items (by
      their ``size``) up to this many bytes, and ships one partial result
      for them all (items without a ``size`` go one to a task).
    * ``init_kwargs``: more arguments for ``ray.init`` (e.g. ``runtime_env``).

    Only what the engine started is stopped by :meth:`close`: a cluster or a
    connection made by ``ray.init`` here is shut down, one made before is left
    as it is.
    """

    def __init__(self, address: Optional[str] = None, num_cpus: Optional[int] = None,
                 max_retries: int = 3, in_flight: Optional[int] = None,
                 tree_bytes: int = TREE_MERGE_BYTES, fanout: int = 8,
                 group_bytes: int = GROUP_BYTES, init_kwargs: Optional[Dict[str, Any]] = None) -> None:
        for name, value, low in (("max_retries", max_retries, 0), ("fanout", fanout, 2),
                                 ("tree_bytes", tree_bytes, 0), ("group_bytes", group_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if in_flight is not None and (isinstance(in_flight, bool) or not isinstance(in_flight, int)
                                      or in_flight < 1):
            raise ValueError(f"in_flight must be a positive int, got {in_flight!r}")
        ray = import_ray()
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: Dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR",
                                      "log_to_driver": False}
            kwargs.update(init_kwargs or {})
            if address is None:
                kwargs["num_cpus"] = num_cpus
                # Workers import bytepiece from where the driver does.
                kwargs.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": _python_path()}})
            ray.init(address=address, **kwargs)
            self._started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.max_retries = max_retries
        self.in_flight = in_flight or 2 * self.workers
        self.tree_bytes = tree_bytes
        self.fanout = fanout
        self.group_bytes = group_bytes
        remote = ray.remote(num_cpus=1, max_retries=max_retries, num_returns=2)
        self._run = remote(_run)
        self._run_group = remote(_run_group)
        self._merge = remote(_merge_all)
        #: One record per call: see :meth:`_record`.
        self.stats: List[Dict[str, Any]] = []

    # -- the interface -------------------------------------------------------

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn(item)`` for each item, as Ray tasks; results in input order."""
        record = self._record("map")
        boxed = self._put(fn, record)
        for meta_ref, value_ref in self._submit(boxed, items, record):
            self._account(record, meta_ref, value_ref)  # raises an error of fn
            yield _writable(self._get(value_ref))
        record["wall"] = time.perf_counter() - record["start"]

    def group_size(self, total_bytes: Optional[int] = None) -> int:
        """Input bytes of a ``map_reduce`` task: ``group_bytes``, or less when
        ``total_bytes`` (the input's size, if known) would not then give every
        worker two tasks, so that no worker idles while another ends a long
        one (at 120 MB on 2 workers, groups of 30 MB)."""
        if total_bytes is None or total_bytes <= 0:
            return self.group_bytes
        return max(1, min(self.group_bytes, -(-int(total_bytes) // (2 * self.workers))))

    def map_reduce(self, fn: Callable[[Any], Any], items: Iterable[Any],
                   merge: Callable[[Any, Any], Any], total_bytes: Optional[int] = None) -> Any:
        """``merge`` of ``fn(item)`` over the items, in input order (``None`` when
        there are none). A task takes a group of consecutive items (see
        :func:`_grouped` and :meth:`group_size`; ``total_bytes`` is the
        items' total ``size`` when known) and merges their partials. Small
        partials are merged on the driver as they arrive; from the first
        partial of ``tree_bytes`` or more on, the rest are merged in a tree
        of tasks and only the result comes back, unless
        ``merge.merges_on_driver`` is true (a merge that must see every
        partial, or whose result costs more to fetch whole than its
        partials one by one)."""
        record = self._record("map_reduce")
        boxed = self._put(fn, record)
        merge_box = self._put(merge, record)
        result: Any = None
        empty = True
        tree: List[List[Any]] = []  # levels of pending refs: level k holds merges of fanout**k partials
        groups = _grouped(items, self.group_size(total_bytes))
        may_tree = not getattr(merge, "merges_on_driver", False)
        for meta_ref, value_ref in self._submit(boxed, groups, record, merge_box):
            size = self._account(record, meta_ref, value_ref)
            if tree or (may_tree and size >= self.tree_bytes):
                self._push(tree, value_ref, merge_box, record)
                continue
            tick = time.perf_counter()
            value = _writable(self._get(value_ref))  # merge may update its first argument
            fetched = time.perf_counter()
            result = value if empty else merge(result, value)
            empty = False
            done = time.perf_counter()
            record["fetch_seconds"] += fetched - tick
            record["merge_seconds"] += done - fetched
            record["driver_seconds"].append(done - tick)
        if tree:
            refs = [ref for level in reversed(tree) for ref in level]  # oldest (highest level) first
            if not empty:
                refs.insert(0, self._ray.put(result))
            while len(refs) > 1:
                refs = [self._merge_refs(merge_box, refs[i:i + self.fanout], record)
                        for i in range(0, len(refs), self.fanout)]
            tick = time.perf_counter()
            self._ray.wait(refs, num_returns=1, fetch_local=False)  # the last merges: counted in their tasks
            tick = time.perf_counter()
            result = _writable(self._get(refs[0]))
            record["final_fetch_seconds"] = time.perf_counter() - tick
            record["fetch_seconds"] += record["final_fetch_seconds"]
            empty = False
        record["wall"] = time.perf_counter() - record["start"]
        return None if empty else result

    def close(self) -> None:
        """Shut Ray down if this engine started it (cluster or connection)."""
        if self._started:
            self._started = False
            self._ray.shutdown()

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- machinery -----------------------------------------------------------

    def _record(self, op: str) -> Dict[str, Any]:
        record = {"op": op, "start": time.perf_counter(), "tasks": 0, "items": 0, "task_seconds": [],
                  "result_bytes": 0, "argument_bytes": 0, "merge_seconds": 0.0,
                  "merge_tasks": 0, "wall": 0.0, "fetch_seconds": 0.0, "task_merge_seconds": 0.0,
                  "driver_seconds": [], "final_fetch_seconds": 0.0}
        self.stats.append(record)
        return record

    def _put(self, fn: Any, record: Dict[str, Any]) -> List[Any]:
        record["argument_bytes"] += _nbytes(fn)
        return [self._ray.put(fn)]  # boxed: the task receives the ref, not the value

    def _submit(self, boxed: List[Any], items: Iterable[Any], record: Dict[str, Any],
                merge_box: Optional[List[Any]] = None) -> Iterator[Tuple[Any, Any]]:
        """Submit a task per item (with ``merge_box``: per group of items, see
        :func:`_grouped`), at most ``in_flight`` out; ``(meta, value)`` refs in
        input order. Leaving early cancels the tasks still out."""
        pending: Deque[Tuple[Any, Any]] = collections.deque()
        source = iter(items)
        try:
            while True:
                while len(pending) < self.in_flight:
                    item = next(source, _END)
                    if item is _END:
                        break
                    record["argument_bytes"] += _nbytes(item)
                    record["items"] += 1 if merge_box is None else len(item)
                    if merge_box is None:
                        pending.append(tuple(self._run.remote(boxed, item)))
                    else:
                        pending.append(tuple(self._run_group.remote(boxed, merge_box, item)))
                    record["tasks"] += 1
                if not pending:
                    return
                yield pending.popleft()
        finally:
            if pending:  # stopped early (an error, or the consumer left)
                refs = [value_ref for _meta_ref, value_ref in pending]
                for ref in refs:
                    self._ray.cancel(ref, force=False)
                # Let them end before the caller cleans up what they may be writing.
                self._ray.wait(refs, num_returns=len(refs), timeout=60)

    def _get(self, ref: Any) -> Any:
        """``ray.get``, raising an exception of ``fn`` as itself."""
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    def _account(self, record: Dict[str, Any], meta_ref: Any, value_ref: Any) -> int:
        """Wait for a task; record its result's size and its seconds. An error
        of the task is raised (both its refs read, so Ray does not report it
        again as unhandled)."""
        try:
            nbytes, seconds, *merging = self._get(meta_ref)
        except BaseException:
            try:
                self._ray.get(value_ref)
            except BaseException:
                pass
            raise
        record["result_bytes"] += nbytes
        record["task_seconds"].append(seconds)
        record["task_merge_seconds"] += sum(merging)
        return nbytes

    def _merge_refs(self, merge_box: List[Any], refs: List[Any], record: Dict[str, Any]) -> Any:
        if len(refs) == 1:
            return refs[0]
        meta_ref, value_ref = self._merge.remote(merge_box, list(refs))  # in a list: fetched in the task
        record["merge_tasks"] += 1
        record.setdefault("merge_metas", []).append(meta_ref)
        return value_ref

    def _push(self, tree: List[List[Any]], ref: Any, merge_box: List[Any], record: Dict[str, Any]) -> None:
        """Add a partial to the tree; a level that holds ``fanout`` refs is
        merged into one ref of the next level (order kept: older to the left)."""
        level = 0
        while True:
            if len(tree) == level:
                tree.append([])
            tree[level].append(ref)
            if len(tree[level]) < self.fanout:
                return
            ref = self._merge_refs(merge_box, tree[level], record)
            tree[level] = []
            level += 1

    def merge_task_seconds(self, record: Dict[str, Any]) -> List[Tuple[float, float]]:
        """``(seconds, of which fetching partials)`` of each merge task of a
        record (a tree of merges)."""
        return [tuple(self._ray.get(meta)[1:]) for meta in record.get("merge_metas", ())]


_END = object()


def _grouped(items: Iterable[Any], group_bytes: int) -> Iterator[List[Any]]:
    """Consecutive items in lists of at most ``group_bytes`` (by their
    ``size``; a list holds one item at least, and an item without a positive
    ``size`` is a list of its own)."""
    group: List[Any] = []
    size = 0
    for item in items:
        try:
            step = operator.index(getattr(item, "size"))
        except (AttributeError, TypeError):
            step = None
        if step is None or step <= 0:  # unknown size
            if group:
                yield group
            yield [item]
            group, size = [], 0
            continue
        if group and size + step > group_bytes:
            yield group
            group, size = [], 0
        group.append(item)
        size += step
    if group:
        yield group


def is_ray_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a ``ray.data.Dataset`` (checked without importing Ray)."""
    module = type(obj).__module__ or ""
    return module.startswith("ray.data") and hasattr(obj, "iter_batches") and hasattr(obj, "columns")


class DatasetTexts:
    """The strings of column ``column`` of a ``ray.data.Dataset``, re-iterable.

    Each iteration streams the dataset's blocks from the cluster, in the
    dataset's order (``preserve_order`` is set while it runs), ``batch_size``
    rows at a time; nothing is held whole. A
    value that is not a string is a ``TypeError`` naming the column.
    """

    def __init__(self, dataset: Any, column: str = "text", batch_size: int = 4096) -> None:
        if not is_ray_dataset(dataset):
            raise TypeError(f"expected a ray.data.Dataset, got {type(dataset).__name__}")
        columns = dataset.columns()
        if columns is not None and column not in columns:
            raise ValueError(f"the dataset has no column {column!r} (columns: {', '.join(columns)}); "
                             "name the text column with text_column=")
        self.dataset = dataset
        self.column = column
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[str]:
        from ray.data import DataContext

        # The rows in the dataset's order on every pass: the trainer's
        # shards, and so its model, are then those of the same texts in a list.
        options = DataContext.get_current().execution_options
        before, options.preserve_order = options.preserve_order, True
        try:
            batches = self.dataset.select_columns([self.column]).iter_batches(
                batch_size=self.batch_size, batch_format="pyarrow")
            for batch in batches:
                for value in batch.column(self.column).to_pylist():
                    if not isinstance(value, str):
                        raise TypeError(f"column {self.column!r} holds {type(value).__name__}, not str")
                    yield value
        finally:
            options.preserve_order = before


def _python_path() -> str:
    """``PYTHONPATH`` for local workers: the directory bytepiece is imported from first."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = os.environ.get("PYTHONPATH", "")
    return here + (os.pathsep + rest if rest else "")
