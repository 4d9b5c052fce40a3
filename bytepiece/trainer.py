"""Training BytePiece vocabularies (ALGORITHM.md §6), compiled and parallel.

The two passes over the corpus (n-gram counting, n-gram segmentation) run in
compiled code with the GIL released: the calling thread normalizes texts into
batches of packed chunks while ``workers`` threads count them into mergeable
partial results (:class:`~bytepiece._ngram.NgramCounts`,
:class:`~bytepiece._ngram.PieceCounts`). Within one process the threads
share a single result per pass rather than summing copies at the end (each
copy would cost memory); a distributed run would give each shard its own and
merge them. Sums of integers do not depend on how the corpus was split, so
the vocabulary is the same for any number of workers, and bit-exact with the
reference release.
The pruning of §6.4 re-segments pieces with the compiled Unigram segmenter.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._ngram import NgramCounts, NgramModel, PieceCounts
from .model_io import MAX_PIECE_BYTES, save_model, unigram_scores
from .normalization import normalize
from .progress import Progress

__all__ = ["Trainer"]

#: Chunk length limit used for training (ALGORITHM.md §1).
TRAIN_MAXLEN = 10000
#: Largest n-gram order the compiled tables support.
MAX_ORDER = 7
#: Training algorithms: "bnlm" is the reference (byte n-gram language model,
#: bit-exact with BytePiece 0.6.3), "compress" the compression-first trainer
#: of :mod:`bytepiece.compress` (candidate substrings, hard EM, pruning by
#: tokens saved).
ALGORITHMS = ("bnlm", "compress")
DEFAULT_MAX_PIECE_LENGTH = {"bnlm": 36, "compress": 16}

Batch = Tuple[bytes, np.ndarray]


def _check_int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


def _pack(pieces: Sequence[bytes]) -> Batch:
    """``(data, offsets)`` for byte strings laid back to back."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    if pieces:
        np.cumsum(np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces)), out=offsets[1:])
    return b"".join(pieces), offsets



def split_pieces(pieces: List[bytes], counts: np.ndarray, items: Batch, weights: np.ndarray,
                 threads: int = 1) -> np.ndarray:
    """§6.4 ``split``: segment each item with the vocabulary ``pieces`` (scored by
    ``counts``); return the weighted count of every piece used, indexed like ``pieces``."""
    from ._core import Segmenter

    segmenter = Segmenter(pieces, unigram_scores(counts.tolist()))
    return segmenter.split_counts(items[0], items[1], weights, num_threads=threads)


def remove_wasted_pieces(pieces: List[bytes], counts: np.ndarray, threads: int = 1,
                         progress: Optional[Progress] = None) -> Tuple[List[bytes], np.ndarray]:
    """§6.4 step 3: ``keep = split(keep, keep)`` until the number of pieces is stable.

    A piece that is never chosen when segmenting its own bytes disappears and
    its count moves to the pieces it splits into.
    """
    while True:
        size = len(pieces)
        counts = split_pieces(pieces, counts, _pack(pieces), counts, threads)
        if progress is not None:
            progress.update(1)
        used = np.flatnonzero(counts)
        if len(used) != size:
            pieces = [pieces[i] for i in used]
            counts = counts[used]
        if len(pieces) == size:
            return pieces, counts


class Trainer:
    """Learn Unigram vocabularies from raw text with a byte n-gram model.

    Parameters (the reference's names and defaults):

    * ``order``: n-gram order of the byte language model (1..7).
    * ``max_vocab_size``: vocabulary size, special tokens included (at least
      259); a list trains one vocabulary per size.
    * ``max_piece_length``: longest piece in bytes (default 36 for ``bnlm``,
      16 for ``compress``).
    * ``min_count``: n-grams and pieces seen fewer times are dropped.
    * ``isolate_digits``: every decimal digit is a chunk of its own.
    * ``ensure_unicode``: pieces never start inside a UTF-8 character.
    * ``verbose``: progress on stderr.
    * ``algorithm``: ``"bnlm"`` (default) is the reference algorithm, bit-exact
      with BytePiece 0.6.3; ``"compress"`` selects the compression-first trainer
      (:mod:`bytepiece.compress`), which yields fewer tokens on held-out text.
      ``order`` applies to ``bnlm`` only; both write the same model format.
    * ``memory_budget``: bytes for the n-gram tables of ``bnlm`` (``None``: no
      limit). Counting then takes as many passes over the corpus as the
      tables need; the vocabulary is the same for any budget.

    ``train(texts)`` then ``save(path)``.
    """

    def __init__(
        self,
        order: int = 6,
        max_vocab_size: Union[int, Sequence[int]] = 10000,
        max_piece_length: Optional[int] = None,
        min_count: int = 2,
        isolate_digits: bool = False,
        ensure_unicode: bool = True,
        verbose: bool = True,
        algorithm: str = "bnlm",
        memory_budget: Optional[int] = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        self.algorithm = algorithm
        self.order = _check_int("order", order, 1, MAX_ORDER)
        if isinstance(max_vocab_size, (list, tuple)):
            if not max_vocab_size:
                raise ValueError("max_vocab_size must hold at least one size")
            sizes = [_check_int("max_vocab_size", s, 259) for s in max_vocab_size]
            if len(set(sizes)) != len(sizes):
                raise ValueError(f"max_vocab_size lists a size twice: {list(max_vocab_size)}")
        else:
            sizes = [_check_int("max_vocab_size", max_vocab_size, 259)]
        self.max_vocab_size = max_vocab_size
        self.sizes: List[int] = sizes
        if max_piece_length is None:
            max_piece_length = DEFAULT_MAX_PIECE_LENGTH[algorithm]
        self.max_piece_length = _check_int("max_piece_length", max_piece_length, 1, MAX_PIECE_BYTES)
        self.min_count = _check_int("min_count", min_count, 1)
        self.isolate_digits = bool(isolate_digits)
        self.ensure_unicode = bool(ensure_unicode)
        self.verbose = bool(verbose)
        self.memory_budget = None if memory_budget is None else _check_int("memory_budget", memory_budget, 1)
        #: ``{size: {piece: count}}`` after :meth:`train`.
        self.vocabularies: Dict[int, Dict[bytes, int]] = {}

    # -- the corpus passes ---------------------------------------------------

    def _batches(self, texts: Iterable[str], batch_size: int) -> Iterable[Batch]:
        """Normalize ``texts`` into packed batches of chunks (``batch_size`` texts each)."""
        chunks: List[bytes] = []
        count = 0
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must yield str, got {type(text).__name__}")
            chunks.extend(normalize(text, TRAIN_MAXLEN, self.isolate_digits))
            count += 1
            if count >= batch_size:
                yield _pack(chunks)
                chunks = []
                count = 0
        if chunks:
            yield _pack(chunks)

    def _run_pass(
        self,
        texts: Iterable[str],
        workers: int,
        batch_size: int,
        make: Callable[[], object],
        work: Callable[[object, bytes, np.ndarray], None],
        merge: Callable[[object, object], object],
        progress: Progress,
        broadcast: bool = False,
        shared: bool = False,
    ) -> object:
        """Feed batches to ``workers`` threads, each with its own partial result; merge them.

        With ``broadcast``, every batch goes to every thread instead, and each
        thread gets its index in place of a partial result (nothing to merge).
        With ``shared``, each batch goes to one thread, which gets its index
        in place of a partial result: ``work`` then fills a result of its own
        that the threads share (nothing to merge either).
        """
        indexed = broadcast or shared
        if workers == 1:
            result = 0 if indexed else make()
            for data, offsets in self._batches(texts, batch_size):
                work(result, data, offsets)
                progress.update(len(data))
            return None if indexed else result

        partials = list(range(workers)) if indexed else [make() for _ in range(workers)]
        queues: "List[queue.Queue[Optional[Batch]]]" = (
            [queue.Queue(maxsize=4) for _ in range(workers)] if broadcast else [queue.Queue(maxsize=2 * workers)]
        )
        errors: List[BaseException] = []

        def run(partial: object) -> None:
            tasks = queues[partial] if broadcast else queues[0]  # type: ignore[index]
            while True:
                batch = tasks.get()
                if batch is None:
                    return
                if errors:
                    continue  # drain the queue so the producer never blocks
                try:
                    work(partial, batch[0], batch[1])
                except BaseException as exc:  # reported in the calling thread
                    errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in partials]
        for thread in threads:
            thread.start()
        try:
            for batch in self._batches(texts, batch_size):
                if errors:
                    break
                for tasks in queues:
                    tasks.put(batch)
                progress.update(len(batch[0]))
        finally:
            if broadcast:
                for tasks in queues:  # one queue per thread
                    tasks.put(None)
            else:
                for _ in threads:
                    queues[0].put(None)
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        if indexed:
            return None
        result = partials[0]
        for partial in partials[1:]:
            merge(result, partial)
        return result

    # -- §6.4 ----------------------------------------------------------------

    def _prune(self, piece_counts: PieceCounts, threads: int) -> Dict[int, Dict[bytes, int]]:
        """§6.4 steps 1-4 on the raw piece counts; ``{size: {piece: count}}``.

        ``piece_counts`` is emptied (its memory is released as soon as the
        pieces are out).
        """
        with Progress("prune", unit="rounds", enabled=self.verbose) as progress:
            # Step 2's partition first, straight from the table: the pieces to
            # drop (most of them, long and rare) come out packed, not as one
            # Python object each.
            keep, keep_counts, dropped, drop_counts = piece_counts.partition(
                self.max_piece_length, self.min_count, release=True
            )
            # Step 1: every single byte is a piece (single bytes are always kept).
            present = {p for p in keep if len(p) == 1}
            missing = [bytes([b]) for b in range(256) if bytes([b]) not in present]
            keep.extend(missing)
            keep_counts = np.concatenate([keep_counts, np.ones(len(missing), dtype=np.int64)])

            # Step 2: rare or over-long pieces hand their counts to the pieces they split into.
            if len(drop_counts):
                keep_counts = keep_counts + split_pieces(keep, keep_counts, dropped, drop_counts, threads)
            del dropped, drop_counts
            progress.update(1)

            # Step 3.
            keep, keep_counts = remove_wasted_pieces(keep, keep_counts, threads, progress)

            # Step 4: one vocabulary per size, largest first, each from the previous.
            results: Dict[int, Dict[bytes, int]] = {}
            for size in sorted(self.sizes, reverse=True):
                limit = size - 3
                if len(keep) > limit:
                    values = keep_counts.tolist()
                    order = sorted(
                        range(len(keep)),
                        key=lambda i: (len(keep[i]) > 1, -values[i], -len(keep[i]), keep[i]),
                    )
                    stay_idx = np.asarray(order[:limit], dtype=np.int64)
                    leave_idx = np.asarray(order[limit:], dtype=np.int64)
                    stay = [keep[i] for i in stay_idx]
                    stay_counts = keep_counts[stay_idx]
                    leave = [keep[i] for i in leave_idx]
                    stay_counts = stay_counts + split_pieces(
                        stay, stay_counts, _pack(leave), keep_counts[leave_idx], threads
                    )
                    progress.update(1)
                    keep, keep_counts = remove_wasted_pieces(stay, stay_counts, threads, progress)
                results[size] = dict(zip(keep, keep_counts.tolist()))
        return results

    # -- public API ------------------------------------------------------------

    def train(
        self, texts: Iterable[str], workers: int = 1, batch_size: int = 1000
    ) -> Dict[int, Dict[bytes, int]]:
        """Train on ``texts`` and return ``{size: {piece: count}}`` (also kept for :meth:`save`).

        ``texts`` is read twice, so it must be re-iterable: a list, or an
        object whose ``__iter__`` starts over each time. ``workers`` threads
        count and segment in parallel (``0``: one per CPU); ``batch_size``
        texts are normalized and handed to a worker at a time.
        """
        if iter(texts) is texts:
            raise TypeError(
                "texts must be re-iterable because it is read twice, but got a one-shot "
                f"iterator ({type(texts).__name__}); pass a list, or an object whose "
                "__iter__ returns a fresh iterator each time"
            )
        workers = _check_int("workers", workers, 0)
        if workers == 0:
            workers = os.cpu_count() or 1
        batch_size = _check_int("batch_size", batch_size, 1)
        if self.algorithm == "compress":
            from .compress import train_compress

            self.vocabularies = train_compress(
                texts,
                self.sizes,
                max_piece_length=self.max_piece_length,
                min_count=self.min_count,
                isolate_digits=self.isolate_digits,
                ensure_unicode=self.ensure_unicode,
                workers=workers,
                verbose=self.verbose,
            )
            return self.vocabularies

        # §6.1: count n-grams. Threads share one set of tables, each thread
        # counting its own n-gram lengths over every batch: no table is
        # duplicated, so memory does not grow with the number of workers.
        # §6.2: prune into conditional log-probabilities (freeing the counts
        # as it goes). Under a memory budget, passes repeat until every
        # n-gram has been counted (NgramCounts.next_pass); the model is the same.
        parts = min(workers, self.order)
        ngrams: Optional[NgramCounts] = NgramCounts(self.order, self.memory_budget)
        model: Optional[NgramModel] = None
        while ngrams is not None:
            label = "count n-grams" if ngrams.first_pass else "count n-grams (next pass)"
            with Progress(label, unit="B", enabled=self.verbose) as progress:
                self._run_pass(
                    texts,
                    parts,
                    batch_size,
                    None,
                    lambda part, data, offsets: ngrams.add_packed(data, offsets, part, parts),
                    None,
                    progress,
                    broadcast=True,
                )
            total_bytes = ngrams.total
            if total_bytes == 0:
                raise ValueError("the corpus is empty: texts holds no characters to train on")
            model = ngrams.prune(self.min_count, release=True, into=model)
            ngrams = ngrams.next_pass()

        # §6.3: segment with the n-gram model, count pieces. The threads share
        # one table of pieces (they segment in parallel and lock it only to
        # add their pieces): per-thread tables would cost memory and a merge
        # at the end whose transient was the peak of this pass.
        piece_counts = PieceCounts()
        with Progress("segment", total=total_bytes, unit="B", enabled=self.verbose) as progress:
            self._run_pass(
                texts,
                workers,
                batch_size,
                None,
                lambda _thread, data, offsets: model.count_pieces_packed(
                    data, offsets, piece_counts, self.ensure_unicode
                ),
                None,
                progress,
                shared=True,
            )
            seen_bytes = progress.done
        del model
        if seen_bytes != total_bytes:
            raise ValueError(
                f"texts changed between the two passes ({total_bytes} bytes, then {seen_bytes}): "
                "the corpus must yield the same texts every time it is iterated"
            )
        if not len(piece_counts):
            raise ValueError("the corpus produced no pieces to build a vocabulary from")

        # §6.4: prune to the requested sizes.
        self.vocabularies = self._prune(piece_counts, workers)
        return self.vocabularies

    def save(self, path: Union[str, "os.PathLike[str]"]) -> List[str]:
        """Write the trained model(s): ``path`` for one size, ``path.SIZE`` for each of several.

        Returns the paths written. Each file is written atomically.
        """
        if not self.vocabularies:
            raise RuntimeError("nothing to save: call train() first")
        path = os.fspath(path)
        written = []
        if len(self.sizes) == 1:
            save_model(self.vocabularies[self.sizes[0]], path)
            written.append(path)
        else:
            for size in self.sizes:
                target = f"{path}.{size}"
                save_model(self.vocabularies[size], target)
                written.append(target)
        return written
