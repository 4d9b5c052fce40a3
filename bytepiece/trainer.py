"""Training BytePiece vocabularies (ALGORITHM.md §6), compiled and parallel.

``Trainer`` is the public entry point for both algorithms. The corpus
(:class:`bytepiece.inputs.TrainingCorpus`: lists, iterables, generators,
files, datasets) is read as shards, and every pass over it is a map over the
shards plus a merge of partial results run by an engine
(:mod:`bytepiece.engine`). For ``bnlm`` the two passes (n-gram counting,
n-gram segmentation) fill mergeable results
(:class:`~bytepiece._ngram.NgramCounts`, :class:`~bytepiece._ngram.PieceCounts`)
in compiled code with the GIL released. Within one process the calls share a
single result per pass instead of one copy per shard (each copy would cost
memory): a call adds its shard into the shared result and returns it, and the
merge of a result with itself is that result. An engine that runs the calls
in other processes unpickles a fresh empty result for each call, and the merge
sums them. Sums of integers do not depend on how the corpus was split, so the
vocabulary is the same for any number of workers and any shard size, and
bit-exact with the reference release.
The pruning of §6.4 re-segments pieces with the compiled Unigram segmenter
(:mod:`bytepiece.pruning`); the chunks come from :mod:`bytepiece.chunking`.
"""
from __future__ import annotations

import functools
import itertools
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._ngram import NgramCounts, NgramModel, PieceCounts
from .chunking import pack_chunks, shard_batches
from .engine import LocalEngine, run_pass
from .inputs import SHARD_BYTES, Shard, TrainingCorpus
from .model_io import MAX_PIECE_BYTES, check_new_special_tokens, save_model
from .outputs import check_output
from .progress import progress_bar
from .pruning import remove_wasted_pieces, split_pieces

__all__ = ["Trainer"]

#: Largest n-gram order the compiled tables support.
MAX_ORDER = 7
#: Training algorithms: "bnlm" is the reference (byte n-gram language model,
#: bit-exact with BytePiece 0.6.3), "compress" the compression-first trainer
#: of :mod:`bytepiece.compress` (candidate substrings, hard EM, pruning by
#: tokens saved).
ALGORITHMS = ("compress", "bnlm")
DEFAULT_MAX_PIECE_LENGTH = {"bnlm": 36, "compress": 16}
#: Largest ``min_count`` the compiled n-gram pruning takes (a C int).
MAX_MIN_COUNT = 2 ** 31 - 1

def _check_int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return int(value)


_ROTATION = itertools.count()


def _count_ngrams(counts: NgramCounts, isolate_digits: bool, parts: int,
                  shard: Shard, special_tokens: Sequence[str] = ()) -> Tuple[NgramCounts, int]:
    """§6.1 for one shard: add its n-grams into ``counts`` and return it with the
    shard's bytes. The n-gram lengths are counted in ``parts`` groups, each
    under its own lock, starting at a different group in each call: calls on
    several threads then count into one shared table at the same time."""
    size = 0
    for chunks in shard_batches(shard, isolate_digits, special_tokens=special_tokens):
        data, offsets = pack_chunks(chunks)
        first = next(_ROTATION)
        for k in range(parts):
            counts.add_packed(data, offsets, (first + k) % parts, parts)
        size += len(data)
    return counts, size


def _count_pieces(model: NgramModel, out: PieceCounts, isolate_digits: bool, ensure_unicode: bool,
                  shard: Shard, special_tokens: Sequence[str] = ()) -> Tuple[PieceCounts, int]:
    """§6.3 for one shard: segment its chunks with ``model`` and add the pieces into ``out``."""
    size = 0
    for chunks in shard_batches(shard, isolate_digits, special_tokens=special_tokens):
        data, offsets = pack_chunks(chunks)
        model.count_pieces_packed(data, offsets, out, ensure_unicode)
        size += len(data)
    return out, size


def _merge_shared(a: tuple, b: tuple) -> tuple:
    """Merge ``(table, bytes)`` partials; a table shared by the calls merges into itself as is."""
    table = a[0] if a[0] is b[0] else a[0].merge(b[0])
    return table, a[1] + b[1]


def _merge_piece_counts(a: tuple, b: tuple) -> tuple:
    """:func:`_merge_shared` for §6.3's piece counts, merged where the result is
    needed: fetching a merged ``PieceCounts`` whole rebuilds its table entry by
    entry: on 1 GB with 32 MiB tasks on Ray, 21.9 s at the end of the pass,
    against 3.9 s for merging the partials there as they came, while the
    tasks ran (``benchmarks/README.md``, "Ray engine")."""
    return _merge_shared(a, b)


_merge_piece_counts.merges_on_driver = True  # type: ignore[attr-defined]



class Trainer:
    """Learn Unigram vocabularies from raw text.

    Parameters (the reference's names and defaults, except ``algorithm``):

    * ``algorithm``: ``"compress"`` (default) is the compression-first trainer
      (:mod:`bytepiece.compress`): fewer tokens on held-out text, memory
      bounded by the vocabulary and ``candidate_bytes``, not by the corpus.
      ``"bnlm"`` is the reference algorithm (a byte n-gram language model),
      bit-exact with BytePiece 0.6.3. Both write the same model format.
    * ``order``: n-gram order of the byte language model (1..7; ``bnlm`` only).
    * ``max_vocab_size``: vocabulary size, special tokens included (at least
      259); a list trains one vocabulary per size.
    * ``max_piece_length``: longest piece in bytes (default 16 for
      ``compress``, 36 for ``bnlm``).
    * ``min_count``: n-grams and pieces seen fewer times are dropped.
    * ``isolate_digits``: every decimal digit is a chunk of its own.
    * ``ensure_unicode``: pieces never start inside a UTF-8 character.
    * ``verbose``: a progress bar per pass on stderr.
    * ``special_tokens``: texts such as ``"<|endoftext|>"`` to add as special
      tokens, with the ids after the last learned piece (in the order given;
      they come on top of ``max_vocab_size``). Training cuts the texts at
      their occurrences, so no piece spans or contains one.
    * ``candidate_bytes``: memory budget of ``compress`` (default 24 MiB of
      distinct text): a corpus larger than this is streamed from a temporary
      spill on every pass, and candidate pieces are counted on a sample of
      this size. About 21 bytes of memory per byte of it, whatever the corpus.
    * ``memory_budget``: bytes for the n-gram tables of ``bnlm`` (``None``: no
      limit). Counting then takes as many passes over the corpus as the
      tables need; the vocabulary is the same for any budget (see
      ``docs/training-memory.md``).

    ``train(texts)`` then ``save(path)``; see ``docs/training.md``.
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
        algorithm: str = "compress",
        candidate_bytes: Optional[int] = None,
        special_tokens: Sequence[str] = (),
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
        self.min_count = _check_int("min_count", min_count, 1, MAX_MIN_COUNT)
        self.isolate_digits = bool(isolate_digits)
        self.ensure_unicode = bool(ensure_unicode)
        self.verbose = bool(verbose)
        self.special_tokens: List[str] = check_new_special_tokens(special_tokens)
        from .compress import CANDIDATE_BYTES

        self.candidate_bytes = _check_int(
            "candidate_bytes", CANDIDATE_BYTES if candidate_bytes is None else candidate_bytes, 1)
        self.memory_budget = None if memory_budget is None else _check_int("memory_budget", memory_budget, 1)
        #: ``{size: {piece: count}}`` after :meth:`train`.
        self.vocabularies: Dict[int, Dict[bytes, int]] = {}

    # -- §6.4 ----------------------------------------------------------------

    def _prune(self, piece_counts: PieceCounts, threads: int) -> Dict[int, Dict[bytes, int]]:
        """§6.4 steps 1-4 on the raw piece counts; ``{size: {piece: count}}``.

        ``piece_counts`` is emptied (its memory is released as soon as the
        pieces are out).
        """
        with progress_bar("prune", unit="rounds", enabled=self.verbose) as progress:
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
                        stay, stay_counts, pack_chunks(leave), keep_counts[leave_idx], threads
                    )
                    progress.update(1)
                    keep, keep_counts = remove_wasted_pieces(stay, stay_counts, threads, progress)
                results[size] = dict(zip(keep, keep_counts.tolist()))
        return results

    # -- public API ------------------------------------------------------------

    def train(
        self,
        texts: object,
        workers: int = 1,
        engine: Optional[LocalEngine] = None,
        *,
        text_column: Optional[str] = None,
        shard_bytes: int = SHARD_BYTES,
    ) -> Dict[int, Dict[bytes, int]]:
        """Train on ``texts`` and return ``{size: {piece: count}}`` (also kept for :meth:`save`).

        ``texts`` may be a list (or any re-iterable) of ``str``, a one-shot
        iterator or generator (consumed once and copied to a temporary file,
        since every pass reads the corpus again), file paths
        (``pathlib.Path``, a list of them, or :class:`bytepiece.inputs.Corpus`),
        a Hugging Face ``Dataset``/``IterableDataset`` or a ``ray.data.Dataset``
        whose column ``text_column`` (default ``"text"``) holds the texts. A
        single ``str`` is refused. ``workers`` threads run the passes (``0``: one per CPU)
        unless ``engine`` is given; the corpus is read in shards of about
        ``shard_bytes`` bytes. The result depends on neither.
        """
        if engine is None:
            workers = _check_int("workers", workers, 0)
        shard_bytes = _check_int("shard_bytes", shard_bytes, 1)
        from .ray_engine import DatasetTexts, is_ray_dataset

        if is_ray_dataset(texts):  # its text column, streamed from the cluster on each pass
            texts, text_column = DatasetTexts(texts, text_column or "text"), None
        with TrainingCorpus(texts, text_column=text_column, shard_bytes=shard_bytes) as corpus:
            if engine is not None:
                return self._train(corpus, engine)
            with LocalEngine(workers) as local:
                return self._train(corpus, local)

    def _train(self, corpus: TrainingCorpus, engine: LocalEngine) -> Dict[int, Dict[bytes, int]]:
        workers = max(1, int(engine.workers))
        if self.algorithm == "compress":
            from .compress import train_compress

            self.vocabularies = train_compress(
                corpus,
                self.sizes,
                max_piece_length=self.max_piece_length,
                min_count=self.min_count,
                isolate_digits=self.isolate_digits,
                ensure_unicode=self.ensure_unicode,
                workers=workers,
                verbose=self.verbose,
                engine=engine,
                candidate_bytes=self.candidate_bytes,
                special_tokens=self.special_tokens,
            )
            return self.vocabularies

        # §6.1: count n-grams into one shared set of tables (see the module docstring).
        # §6.2: prune into conditional log-probabilities (freeing the counts as it
        # goes). Under a memory budget, passes repeat until every n-gram has been
        # counted (NgramCounts.next_pass); the model is the same.
        parts = min(workers, self.order)
        ngrams: Optional[NgramCounts] = NgramCounts(self.order, self.memory_budget)
        model: Optional[NgramModel] = None
        while ngrams is not None:
            count = functools.partial(_count_ngrams, ngrams, self.isolate_digits, parts,
                                      special_tokens=self.special_tokens)
            label = "count n-grams" if ngrams.first_pass else "count n-grams (next pass)"
            result, input_bytes = run_pass(engine, count, corpus.shards(), _merge_shared,
                                           label, corpus.size, self.verbose)
            if result is None or result[0].total == 0:
                raise ValueError("the corpus is empty: texts holds no characters to train on")
            ngrams, total_bytes = result
            model = ngrams.prune(self.min_count, release=True, into=model)
            ngrams = ngrams.next_pass()
            del result, count

        # §6.3: segment with the n-gram model, count pieces into one shared table
        # (locked only while a call adds its pieces).
        segment = functools.partial(_count_pieces, model, PieceCounts(), self.isolate_digits,
                                    self.ensure_unicode, special_tokens=self.special_tokens)
        result, _ = run_pass(engine, segment, corpus.shards(), _merge_piece_counts, "segment",
                             input_bytes, self.verbose)
        del model, segment
        piece_counts, seen_bytes = result if result is not None else (PieceCounts(), 0)
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
        targets = self.output_paths(path)
        for target in targets:  # all checked before any is written
            check_output(target)
        for size, target in zip(self.sizes, targets):
            save_model(self.vocabularies[size], target, self.special_tokens)
        return targets

    def output_paths(self, path: Union[str, "os.PathLike[str]"]) -> List[str]:
        """The files :meth:`save` writes: ``path``, or ``path.SIZE`` for each of several sizes."""
        path = os.fspath(path)
        return [path] if len(self.sizes) == 1 else [f"{path}.{size}" for size in self.sizes]
