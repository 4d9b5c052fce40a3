"""Compression-first training (``algorithm="compress"``).

The reference trainer (ALGORITHM.md §6) takes its candidate pieces from an
n-gram segmentation and cuts the vocabulary by raw count. This trainer aims
directly at the number of tokens the final tokenizer will produce:

1. **Candidates.** Every substring of a training chunk, 2..``max_piece_length``
   bytes, made of whole UTF-8 characters (any bytes when
   ``ensure_unicode=False``), seen at least ``min_count`` times, counted
   exactly with a suffix array (``bytepiece._compress.count_candidates``).
   The ``num_candidates`` best by ``count * (length - 1)`` -- the tokens the
   substring would save if every occurrence became one token -- are kept,
   plus all 256 single bytes and every character of the training text
   (character coverage: these are never pruned).
2. **Hard EM and pruning.** Repeat: segment the training corpus with the
   current vocabulary exactly as the tokenizer will (§4 Viterbi on
   ``ln(count / total)``) and set every piece's count to its number of uses;
   drop unused pieces; score every other piece by the tokens its removal
   would cost, ``(count - discount) * (split_cost - 1)`` with ``split_cost``
   the tokens the current model spends on the piece's bytes without it; drop
   the lowest-scoring ``prune_fraction`` (never below the target size).
3. **Final re-count.** Once a target size is reached, hard EM is repeated
   until no piece falls out, so that the saved counts are the counts of what
   the tokenizer does with them. Several sizes continue from each other,
   largest first.

Hard EM runs on the compiled tokenizer core (``bytepiece._core.Segmenter``)
when it is built, otherwise on the equivalent Viterbi in
``bytepiece._compress``; both release the GIL, and ``workers`` threads share
the chunks. Results do not depend on ``workers`` (counts are integer sums).
"""
from __future__ import annotations

import array
import contextlib
import functools
import itertools
import math
import os
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ._compress import PieceSet, count_candidates, count_chars
from .chunking import shard_chunks
from .engine import LocalEngine, run_pass
from .inputs import Shard, TrainingCorpus
from .normalization import normalize
from .progress import log, progress_bar

__all__ = ["train_compress", "Corpus", "load_corpus", "hard_em", "SpilledCorpus", "CANDIDATE_BYTES"]

_SINGLE_BYTES = [bytes([b]) for b in range(256)]
#: Vocabularies larger than this are segmented with ``_compress.PieceSet``.
CORE_MAX_PIECES = 100_000
#: Default memory budget: bytes of distinct chunks held in memory (the whole
#: corpus when it fits, else the candidate sample; its suffix array costs
#: about 21 bytes per byte).
CANDIDATE_BYTES = 24 << 20


class Corpus:
    """Distinct training chunks in one buffer, each with its multiplicity."""

    def __init__(self, chunks: Counter) -> None:
        distinct = list(chunks)
        self.data: bytes = b"".join(distinct)
        lengths = np.fromiter((len(c) for c in distinct), dtype=np.int64, count=len(distinct))
        self.offsets: np.ndarray = np.zeros(len(distinct) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.weights: np.ndarray = np.fromiter(
            (chunks[c] for c in distinct), dtype=np.int64, count=len(distinct)
        )
        self.array: np.ndarray = np.frombuffer(self.data, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.weights)

    @property
    def total_bytes(self) -> int:
        """Bytes of the corpus counting repeated chunks every time."""
        return int(np.dot(np.diff(self.offsets), self.weights))

    def char_counts(self, min_count: int) -> Dict[bytes, int]:
        """Weighted count of every multi-byte UTF-8 character seen ``min_count`` times."""
        cps, counts = count_chars(self.array, self.offsets, self.weights)
        return {chr(cp).encode("utf-8"): n
                for cp, n in zip(cps.tolist(), counts.tolist()) if n >= min_count}

    def byte_counts(self) -> np.ndarray:
        """Weighted count of every byte value."""
        counts = np.zeros(256, dtype=np.int64)
        step = 1 << 18  # bincount widens its input to intp: 8 bytes per byte, so a slice at a time
        for lo in range(0, len(self.array), step):
            counts += np.bincount(self.array[lo:lo + step], minlength=256)
        repeated = np.flatnonzero(self.weights > 1)
        if len(repeated):  # each byte of a repeated chunk counts (weight - 1) times more
            lengths = np.diff(self.offsets)[repeated]
            starts = np.repeat(self.offsets[repeated] - np.cumsum(lengths) + lengths, lengths)
            where = starts + np.arange(int(lengths.sum()), dtype=np.int64)
            extra = np.repeat(self.weights[repeated] - 1, lengths).astype(np.float64)
            counts += np.rint(np.bincount(self.array[where], weights=extra, minlength=256)).astype(np.int64)
        return counts


def load_corpus(texts: Iterable[str], isolate_digits: bool = False, verbose: bool = False) -> Corpus:
    """Normalize ``texts`` into training chunks (``maxlen=10000``) and dedupe them, in memory."""
    chunks: Counter = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must yield str, got {type(text).__name__}")
        chunks.update(normalize(text, maxlen=10000, isolate_digits=isolate_digits))
    return Corpus(chunks)


# -- pass 1: statistics, a candidate sample and a spill of the normalized chunks ----

#: Hash thresholds of the candidate sample: a distinct chunk is in the sample
#: iff ``_chunk_hash(chunk) < threshold``; the threshold only ever moves down
#: this fixed ladder, so the sample does not depend on how the corpus is cut.
_ALL = 1 << 32


def _lower(threshold: int) -> int:
    return threshold * 3 // 4


def _chunk_hash(chunk: bytes) -> int:
    return (zlib.crc32(chunk) * 0x9E3779B1) & 0xFFFFFFFF


class Scan:
    """Partial result of the first pass over some shards (picklable, mergeable).

    ``sample`` maps every distinct chunk whose hash is under ``threshold`` to
    its count, in order of first occurrence; ``sample_bytes`` is the size of
    its distinct chunks, kept at most ``budget`` by lowering the threshold.
    ``hashes`` holds the chunks' hashes in the same order, so that neither a
    merge nor a lowered threshold hashes a chunk again (a merge of partials
    from many shards is on the driver's path: measured in
    ``benchmarks/ray_scale.py``).
    ``blocks`` describe the spilled normalized chunks (:class:`SpilledCorpus`).
    """

    def __init__(self, budget: int, threshold: int = _ALL) -> None:
        self.budget = int(budget)
        self.total_bytes = 0
        self.byte_counts = np.zeros(256, dtype=np.int64)
        self.chars: Dict[int, int] = {}
        self.threshold = int(threshold)
        self.sample: Dict[bytes, int] = {}
        self.hashes = array.array("I")
        self.sample_bytes = 0
        self.blocks: List[Tuple[str, int, int, int]] = []

    def _shrink(self, refilter: bool = False) -> None:
        """Lower the threshold until the sample fits; ``refilter``: the sample may
        hold chunks over the current threshold (just lowered by a merge)."""
        if not refilter and self.sample_bytes <= self.budget:
            return
        hashes = np.frombuffer(self.hashes, dtype=np.uint32)
        while refilter or self.sample_bytes > self.budget:
            if not refilter:
                self.threshold = _lower(self.threshold)
            refilter = False
            keep = hashes < self.threshold
            self.sample = dict(itertools.compress(self.sample.items(), keep.tolist()))
            hashes = hashes[keep]
            self.sample_bytes = sum(map(len, self.sample))
        self.hashes = array.array("I", hashes.tobytes())

    def add_block(self, block: Corpus) -> None:
        """Count a block of distinct chunks (with weights) into this partial."""
        self.total_bytes += block.total_bytes
        self.byte_counts += block.byte_counts()
        cps, counts = count_chars(block.array, block.offsets, block.weights)
        chars = self.chars
        for cp, n in zip(cps.tolist(), counts.tolist()):
            chars[cp] = chars.get(cp, 0) + n
        bounds = block.offsets.tolist()
        data, limit, sample, hashes = block.data, self.threshold, self.sample, self.hashes
        for i, n in enumerate(block.weights.tolist()):
            chunk = data[bounds[i]:bounds[i + 1]]
            if chunk in sample:
                sample[chunk] += n
                continue
            hashed = _chunk_hash(chunk)
            if hashed < limit:
                sample[chunk] = n
                hashes.append(hashed)
                self.sample_bytes += len(chunk)
                if self.sample_bytes > self.budget:
                    self._shrink()
                    limit, sample, hashes = self.threshold, self.sample, self.hashes

    def merge(self, other: "Scan") -> "Scan":
        """Add ``other`` (the shards after this one's) into this partial; returns ``self``."""
        self.total_bytes += other.total_bytes
        self.byte_counts += other.byte_counts
        for cp, n in other.chars.items():
            self.chars[cp] = self.chars.get(cp, 0) + n
        lowered = other.threshold < self.threshold
        self.threshold = min(self.threshold, other.threshold)
        limit, sample, hashes = self.threshold, self.sample, self.hashes
        entries: Iterable = zip(other.sample.items(), other.hashes)
        if other.threshold > limit:
            # A chunk of ``other`` over the limit is not in ``sample`` either
            # (same chunk, same hash): skip those without looking them up.
            keep = (np.frombuffer(other.hashes, dtype=np.uint32) < limit).tolist()
            entries = itertools.compress(entries, keep)
        seen = sample.get
        added = 0
        for (chunk, n), hashed in entries:
            count = seen(chunk)
            if count is not None:
                sample[chunk] = count + n
            elif hashed < limit:
                sample[chunk] = n
                hashes.append(hashed)
                added += len(chunk)
        self.sample_bytes += added
        self._shrink(refilter=lowered)
        self.blocks.extend(other.blocks)
        return self

    @property
    def complete(self) -> bool:
        """Whether the sample is the whole corpus (it fit in the budget)."""
        return self.threshold == _ALL


def _spill(block: Corpus, directory: str) -> Tuple[str, int, int, int]:
    """Write a block of distinct chunks to a new file of ``directory``; its description."""
    handle, path = tempfile.mkstemp(suffix=".chunks", dir=directory)
    with os.fdopen(handle, "wb") as out:
        out.write(block.data)
        out.write(block.offsets.tobytes())
        out.write(block.weights.tobytes())
    return path, len(block.data), len(block.weights), 0


def _read_spilled(description: Tuple[str, int, int, int]) -> Corpus:
    """A spilled block back as a :class:`Corpus` (read with ``readinto``, not mapped)."""
    path, n_data, n_chunks, _ = description
    buffer = bytearray(n_data + 8 * (2 * n_chunks + 1))
    with open(path, "rb") as handle:
        if handle.readinto(buffer) != len(buffer):
            raise OSError(f"{path}: spilled chunks were truncated")
    block = Corpus.__new__(Corpus)
    view = memoryview(buffer)
    block.data = view[:n_data]  # type: ignore[assignment]
    block.array = np.frombuffer(buffer, dtype=np.uint8, count=n_data)
    block.offsets = np.frombuffer(buffer, dtype=np.int64, count=n_chunks + 1, offset=n_data)
    block.weights = np.frombuffer(buffer, dtype=np.int64, count=n_chunks, offset=n_data + 8 * (n_chunks + 1))
    return block


class HintedShard(NamedTuple):
    """A shard for :func:`scan_shard` with the threshold the merged sample had
    when the shard was handed out (see :class:`ScanMerger`)."""

    shard: Shard
    threshold: int

    @property
    def size(self) -> int:
        return self.shard.size


def scan_shard(isolate_digits: bool, budget: int, spill_dir: Optional[str], shard: Union[Shard, HintedShard],
               special_tokens: Sequence[str] = ()) -> Scan:
    """Pass 1 on one shard: its statistics and sample, its chunks spilled to ``spill_dir``
    (texts cut at ``special_tokens`` first). A :class:`HintedShard` starts its
    sample at the threshold it carries, which the merged sample has already reached."""
    return ShardScanner(isolate_digits, budget, spill_dir, special_tokens).map_group([shard])


class ShardScanner:
    """Pass 1's function: :func:`scan_shard` of a shard, and :meth:`map_group`
    of consecutive shards."""

    def __init__(self, isolate_digits: bool, budget: int, spill_dir: Optional[str],
                 special_tokens: Sequence[str] = ()) -> None:
        self.isolate_digits = isolate_digits
        self.budget = budget
        self.spill_dir = spill_dir
        self.special_tokens = tuple(special_tokens)

    def __call__(self, shard: Union[Shard, HintedShard]) -> Scan:
        return self.map_group([shard])

    def map_group(self, shards: Sequence[Union[Shard, HintedShard]]) -> Scan:
        """One partial for consecutive shards: the merge of their scans in
        order, made by adding every shard's chunks to one sample instead of
        merging samples (an engine whose task takes several shards calls
        this: the merges cost as much as the scans, ``benchmarks/ray_scale.py``).

        The sample is the same: either way it is every chunk under the
        highest threshold of the ladder at which the chunks seen fit the
        budget, with its counts, in order of first occurrence."""
        scan: Optional[Scan] = None
        for item in shards:
            shard, threshold = (item.shard, item.threshold) if isinstance(item, HintedShard) else (item, _ALL)
            if scan is None:
                scan = Scan(self.budget, threshold)
            elif threshold < scan.threshold:
                scan.threshold = threshold
                scan._shrink(refilter=True)
            block = Corpus(Counter(shard_chunks(shard, self.isolate_digits, self.special_tokens)))
            if len(block):
                scan.add_block(block)
                if self.spill_dir is not None:
                    scan.blocks.append(_spill(block, self.spill_dir))
        return scan if scan is not None else Scan(self.budget)


class ScanMerger:
    """Merges :class:`Scan` partials in order and remembers the threshold
    of the merged sample, which :meth:`hinted` hands out with the next shards.

    The hint is exact: the threshold only moves down a fixed ladder, and only
    past a step whose sample outgrew the budget, so every threshold reached
    (hence every hint) is at least the final one; a shard that leaves out its
    chunks at or over the hint leaves out only chunks the final sample drops.
    It makes the partials, and so the merges on the driver, small once the
    corpus outgrows the budget (``benchmarks/ray_scale.py``). In a merge
    task elsewhere (a Ray tree merge) the copy's threshold is not seen here;
    the hints then stay higher, which is as exact, just less effective.
    """

    #: An engine merges these partials where this object is, never in tasks
    #: elsewhere, so that the hints it hands out follow the merged sample.
    merges_on_driver = True

    def __init__(self) -> None:
        self.threshold = _ALL

    def __call__(self, a: Scan, b: Scan) -> Scan:
        merged = a.merge(b)
        self.threshold = min(self.threshold, merged.threshold)
        return merged

    def hinted(self, shards: Iterable[Shard]) -> Iterator[HintedShard]:
        """``shards``, each with the threshold reached when it is handed out."""
        for shard in shards:
            yield HintedShard(shard, self.threshold)


class SpilledCorpus:
    """The normalized corpus as spilled blocks, streamed through ``engine`` on each pass."""

    def __init__(self, blocks: Sequence[Tuple[str, int, int, int]], total_bytes: int, engine,
                 repeats: str = "count", verbose: bool = False) -> None:
        self.blocks = list(blocks)
        self.total_bytes = int(total_bytes)
        self.engine = engine
        self.repeats = repeats
        self.verbose = verbose

    def __len__(self) -> int:
        return sum(b[2] for b in self.blocks)

    def run(self, fn, desc: str) -> np.ndarray:
        """Sum of ``fn(block)`` over the blocks (a per-piece array)."""
        items = [_SpilledBlock(*b, self.repeats) for b in self.blocks]
        total, _ = run_pass(self.engine, fn, items, _add_arrays, desc, sum(i.size for i in items),
                            self.verbose)
        return total


class _SpilledBlock(NamedTuple):
    path: str
    n_data: int
    n_chunks: int
    reserved: int
    repeats: str

    @property
    def size(self) -> int:
        return self.n_data

    def load(self) -> Corpus:
        block = _read_spilled(self[:4])
        if self.repeats != "count":
            block.weights = _damped(block.weights, self.repeats)
        return block


def _add_arrays(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a += b
    return a


class _Model:
    """Pieces and scores of one EM round, shipped with every block (picklable);
    the segmenter is built once per process, on first use."""

    def __init__(self, pieces: List[bytes], scores: np.ndarray, use_core: bool) -> None:
        self.pieces, self.scores, self.use_core = pieces, scores, use_core
        self._impl = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"pieces": self.pieces, "scores": self.scores, "use_core": self.use_core}

    def __setstate__(self, state) -> None:
        self.__init__(state["pieces"], state["scores"], state["use_core"])

    def impl(self):
        with self._lock:
            if self._impl is None:
                segmenter = _segmenter_class() if self.use_core else None
                self._impl = (segmenter(self.pieces, self.scores) if segmenter is not None
                              else PieceSet(self.pieces))
            return self._impl


def _em_block(model: _Model, soft: bool, item: "_SpilledBlock") -> np.ndarray:
    """Hard-EM (or soft-EM) piece counts of one spilled block."""
    block = item.load()
    impl = model.impl()
    if soft:
        return impl.expected_counts(block.array, block.offsets, block.weights, model.scores)
    if isinstance(impl, PieceSet):
        return impl.split_counts(block.array, block.offsets, block.weights, model.scores)
    return np.asarray(impl.split_counts(block.array, block.offsets, block.weights, num_threads=1),
                      dtype=np.int64)


def _damped(weights: np.ndarray, repeats: str) -> np.ndarray:
    """Weights of repeated chunks for the pruning decisions (``repeats``)."""
    if repeats == "count":
        return weights
    if repeats == "distinct":
        return np.ones_like(weights)
    if repeats == "sqrt":
        return np.ceil(np.sqrt(weights)).astype(np.int64)
    if repeats == "log":
        return (1 + np.floor(np.log2(weights))).astype(np.int64)
    raise ValueError(f"repeats must be 'count', 'distinct', 'sqrt' or 'log', got {repeats!r}")


def _peak_mb() -> float:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - not on Unix
        return 0.0
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _log(verbose: bool, message: str) -> None:
    if verbose:
        log(f"[compress] {message}, peak {_peak_mb():.0f} MB")


def _scores(counts: np.ndarray) -> np.ndarray:
    values = counts.astype(np.float64)
    return np.log(values) - np.log(np.float64(values.sum()))


def _ranges(n: int, parts: int) -> List[Tuple[int, int]]:
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def _segmenter_class():
    try:
        from ._core import Segmenter  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Segmenter


def _summed_over_chunks(run, corpus: "Corpus", scores: np.ndarray, workers: int,
                        pool: Optional[ThreadPoolExecutor]) -> np.ndarray:
    """``run(array, offsets, weights, scores, lo, hi)`` over ranges of chunks on
    the pool, per-piece results summed as they come (one array at a time)."""
    if workers <= 1 or pool is None:
        return run(corpus.array, corpus.offsets, corpus.weights, scores)
    futures = [
        pool.submit(run, corpus.array, corpus.offsets, corpus.weights, scores, lo, hi)
        for lo, hi in _ranges(len(corpus), workers * 2)
    ]
    total = futures[0].result()
    for future in futures[1:]:
        total += future.result()
    return total


def hard_em(pieces: List[bytes], counts: np.ndarray, corpus: Union[Corpus, "SpilledCorpus"],
            workers: int = 1, use_core: Optional[bool] = None,
            pool: Optional[ThreadPoolExecutor] = None) -> np.ndarray:
    """One hard-EM step: how often the §4 Viterbi on ``ln(count/total)`` uses each piece.

    ``pieces`` must contain all 256 single bytes with positive counts.
    """
    scores = _scores(counts)
    explicit = use_core is True
    if use_core is None:
        # The core's double-array trie needs more memory to build than the
        # hash-trie here (about 100 MB more for 640k candidates); in memory, for
        # the first, huge candidate vocabulary the lean twin is used (same §4
        # result, checked by the tests). Streamed, the corpus is large and the
        # core, 15 times faster on such a vocabulary, always pays.
        use_core = isinstance(corpus, SpilledCorpus) or len(pieces) <= CORE_MAX_PIECES
    segmenter = _segmenter_class() if use_core else None
    if explicit and segmenter is None:
        raise ImportError("bytepiece._core is not built")
    if isinstance(corpus, SpilledCorpus):
        model = _Model(pieces, scores, segmenter is not None)
        return corpus.run(functools.partial(_em_block, model, False), "compress: hard EM")
    if segmenter is not None:
        seg = segmenter(pieces, scores)
        return np.asarray(
            seg.split_counts(corpus.data, corpus.offsets, corpus.weights, num_threads=workers),
            dtype=np.int64,
        )
    return _summed_over_chunks(PieceSet(pieces).split_counts, corpus, scores, workers, pool)


def soft_em(pieces: List[bytes], counts: np.ndarray, corpus: Corpus, workers: int = 1,
            pool: Optional[ThreadPoolExecutor] = None) -> np.ndarray:
    """One soft-EM step: posterior expected uses of each piece (float64)."""
    scores = _scores(counts)
    if isinstance(corpus, SpilledCorpus):
        model = _Model(pieces, scores, False)
        return corpus.run(functools.partial(_em_block, model, True), "compress: soft EM")
    return _summed_over_chunks(PieceSet(pieces).expected_counts, corpus, scores, workers, pool)


def _split_costs(pieces: List[bytes], counts: np.ndarray, method: str, workers: int,
                 pool: Optional[ThreadPoolExecutor]) -> np.ndarray:
    """Tokens each piece would cost without itself: ``fewest`` other pieces, or
    what the ``viterbi`` of the current model spends on its bytes."""
    ps = PieceSet(pieces)
    if method == "fewest":
        run = ps.split_cost
    elif method == "viterbi":
        scores = _scores(counts)
        run = lambda lo=0, hi=-1: ps.split_cost_viterbi(scores, lo, hi)  # noqa: E731
    else:
        raise ValueError(f"split_cost must be 'fewest' or 'viterbi', got {method!r}")
    if workers <= 1 or pool is None:
        return run()
    futures = [pool.submit(run, lo, hi) for lo, hi in _ranges(len(pieces), workers * 4)]
    return np.concatenate([f.result() for f in futures])


def _settle(pieces: List[bytes], counts: np.ndarray, prot: np.ndarray, lengths: np.ndarray,
            corpus: Corpus, workers: int, pool: Optional[ThreadPoolExecutor],
            rounds: int) -> Tuple[List[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """Hard EM until no unprotected piece falls out of use (at most ``rounds`` times)."""
    for _ in range(rounds):
        counts = hard_em(pieces, counts, corpus, workers, pool=pool)
        keep = (counts > 0) | prot
        counts = np.maximum(counts, 1)
        if keep.all():
            break
        pieces = [p for p, k in zip(pieces, keep.tolist()) if k]
        counts, prot, lengths = counts[keep], prot[keep], lengths[keep]
    return pieces, counts, prot, lengths


def train_compress(
    texts: Iterable[str],
    max_vocab_size: Union[int, Sequence[int]],
    max_piece_length: int = 16,
    min_count: int = 2,
    isolate_digits: bool = False,
    ensure_unicode: bool = True,
    workers: int = 1,
    verbose: bool = True,
    *,
    num_candidates: Optional[int] = None,
    prune_fraction: float = 0.15,
    discount: float = 8.0,
    split_cost: str = "viterbi",
    char_coverage: bool = True,
    char_min_count: int = 1,
    char_starts: bool = False,
    em: str = "hard",
    repeats: str = "count",
    ngram_candidates: int = 0,
    final_rounds: int = 4,
    early_speedup: float = 2.0,
    candidate_bytes: int = CANDIDATE_BYTES,
    engine: Optional[LocalEngine] = None,
    shard_bytes: Optional[int] = None,
    special_tokens: Sequence[str] = (),
) -> Dict[int, Dict[bytes, int]]:
    """Train compression-first vocabularies; returns ``{size: {piece: count}}``.

    Main parameters (the same meaning as for the reference trainer):

    * ``texts``: anything :class:`bytepiece.inputs.TrainingCorpus` reads (a
      list or iterable of ``str``, a generator, files, a dataset), read once
      and streamed from a temporary spill when it does not fit in
      ``candidate_bytes``; each text is normalized with
      ``normalize(text, maxlen=10000, isolate_digits=...)``.
    * ``max_vocab_size``: vocabulary size counting the three special tokens
      (pieces + 3, at least 259); a list gives one vocabulary per size, the
      smaller ones pruned further from the larger ones.
    * ``max_piece_length``: longest piece in bytes.
    * ``min_count``: a candidate substring must occur this often.
    * ``isolate_digits``: every decimal digit is a chunk of its own, so no
      piece holds a digit and anything else.
    * ``ensure_unicode``: every multi-byte piece is made of whole UTF-8
      characters. Without it any byte string may be a piece (with
      ``char_starts`` it must at least start on a character).
    * ``workers``: threads for hard EM and split costs (results do not depend
      on it); ``verbose``: progress on stderr; ``engine``: runs the passes
      over the shards (default ``LocalEngine(workers)``); ``shard_bytes``:
      size of the shards of ``texts`` (results do not depend on it);
      ``special_tokens``: texts are cut at their
      occurrences before normalization, so no candidate holds one.

    Tuning knobs (defaults chosen on the held-out benchmark, see
    ``benchmarks/README.md``):

    * ``num_candidates``: substrings kept after counting, best
      ``count * (length - 1)`` first; default ``max(100000, 20 * largest size)``.
    * ``prune_fraction``: share of the prunable pieces dropped per round.
    * ``discount``: a piece is worth ``(uses - discount) * (split_cost - 1)``
      tokens: uses seen only a handful of times in training rarely recur in
      new text, so such pieces go first (a small-corpus regulariser).
    * ``split_cost``: ``"viterbi"`` (tokens the current model spends on the
      piece's bytes without it) or ``"fewest"`` (fewest other pieces).
    * ``char_coverage``: every character seen ``char_min_count`` times is a
      protected piece (at most half of the smallest vocabulary, most frequent
      first), like SentencePiece's ``character_coverage=1``: this is what keeps
      text unlike the training data (poems vs. a manual) compressible.
    * ``em``: ``"hard"`` (Viterbi counts) or ``"soft"`` (posterior expected
      counts) while pruning; the final re-count is always hard.
    * ``repeats``: how repeated chunks weigh in pruning: ``"count"`` (as
      often as they occur), ``"distinct"`` (once), ``"sqrt"``, ``"log"``.
    * ``ngram_candidates``: also add the pieces of a reference (``bnlm``)
      vocabulary of this size to the candidates (0: off).
    * ``final_rounds``: at most this many closing hard-EM re-counts.
    * ``early_speedup``: while the vocabulary is over 1.5 times the target,
      ``prune_fraction`` is multiplied by this (fewer corpus passes).
    * ``candidate_bytes``: the memory budget. When the distinct chunks of the
      corpus fit in it, everything is done in memory. Otherwise candidates are
      counted on a sample of at most this many bytes of distinct chunks (those
      whose hash falls under a threshold, so the same whatever the cut of the
      corpus; counts scaled up), bounding the suffix array's ~21 bytes per
      byte, and every hard-EM round streams the whole corpus from a
      temporary spill of its normalized chunks.
    """
    sizes = [max_vocab_size] if isinstance(max_vocab_size, int) else list(max_vocab_size)
    if not sizes:
        raise ValueError("max_vocab_size is empty")
    for size in sizes:
        if not isinstance(size, (int, np.integer)) or size < 259:
            raise ValueError(f"every vocabulary size must be an int >= 259 (256 bytes + 3 specials), got {size!r}")
    if max_piece_length < 1:
        raise ValueError("max_piece_length must be >= 1")
    if not 0.0 < prune_fraction <= 1.0:
        raise ValueError("prune_fraction must be in (0, 1]")
    if em not in ("hard", "soft"):
        raise ValueError(f"em must be 'hard' or 'soft', got {em!r}")
    if split_cost not in ("viterbi", "fewest"):
        raise ValueError(f"split_cost must be 'viterbi' or 'fewest', got {split_cost!r}")
    if repeats not in ("count", "distinct", "sqrt", "log"):
        raise ValueError(f"repeats must be 'count', 'distinct', 'sqrt' or 'log', got {repeats!r}")
    workers = max(1, int(workers))
    sizes = sorted({int(s) for s in sizes}, reverse=True)
    if num_candidates is None:
        num_candidates = max(100000, 20 * sizes[0])
    budget = int(candidate_bytes)
    if budget < 1:
        raise ValueError(f"candidate_bytes must be at least 1, got {candidate_bytes}")
    start = time.perf_counter()

    with contextlib.ExitStack() as owned:
        # A default engine, and any input made readable on every pass, live for this call only.
        if engine is None:
            engine = owned.enter_context(LocalEngine(workers))
        if not isinstance(texts, TrainingCorpus):
            options = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
            texts = owned.enter_context(TrainingCorpus(texts, **options))
        with tempfile.TemporaryDirectory(prefix="bytepiece-compress-") as spill_dir:
            # Pass 1: statistics, the candidate sample and a spill of the normalized
            # chunks (skipped when the input is known to fit in the budget).
            known = texts.size
            spill = spill_dir if known is None or known > budget else None
            while True:
                merger = ScanMerger()
                scan, _ = run_pass(engine, ShardScanner(isolate_digits, budget, spill, special_tokens),
                                   merger.hinted(texts.shards()), merger, "compress: read", known, verbose)
                scan = scan if scan is not None else Scan(budget)
                if scan.complete or spill is not None:
                    break
                spill = spill_dir  # normalization made the text outgrow the budget: read again, spilling
            if scan.total_bytes == 0:
                raise ValueError("the corpus is empty: texts holds no characters to train on")
            if scan.complete:
                # Everything fits: the sample is the whole corpus, deduplicated.
                corpus: Union[Corpus, SpilledCorpus] = Corpus(scan.sample)
                sample = corpus
                _log(verbose, f"corpus: {len(corpus)} distinct chunks, {len(corpus.data)} distinct bytes "
                              f"({corpus.total_bytes} in all), {time.perf_counter() - start:.1f}s")
            else:
                corpus = SpilledCorpus(scan.blocks, scan.total_bytes, engine, verbose=verbose)
                sample = Corpus(scan.sample)
                _log(verbose, f"corpus: {scan.total_bytes} bytes in {len(scan.blocks)} spilled blocks, "
                              f"{time.perf_counter() - start:.1f}s")
            byte_counts, chars = scan.byte_counts, scan.chars
            scan.sample, scan.blocks = {}, []
            del scan
            return _train_on(
                corpus, sample, byte_counts, chars, sizes, texts, engine, start,
                max_piece_length=max_piece_length, min_count=min_count, isolate_digits=isolate_digits,
                ensure_unicode=ensure_unicode, workers=workers, verbose=verbose,
                num_candidates=num_candidates, prune_fraction=prune_fraction, discount=discount,
                split_cost=split_cost, char_coverage=char_coverage, char_min_count=char_min_count,
                char_starts=char_starts, em=em, repeats=repeats, ngram_candidates=ngram_candidates,
                final_rounds=final_rounds, early_speedup=early_speedup)


def _train_on(corpus: Union[Corpus, "SpilledCorpus"], sample: Corpus, byte_counts: np.ndarray,
              char_totals: Dict[int, int], sizes: List[int], texts: TrainingCorpus, engine: LocalEngine,
              start: float, *, max_piece_length: int, min_count: int, isolate_digits: bool,
              ensure_unicode: bool, workers: int, verbose: bool, num_candidates: int,
              prune_fraction: float, discount: float, split_cost: str, char_coverage: bool,
              char_min_count: int, char_starts: bool, em: str, repeats: str, ngram_candidates: int,
              final_rounds: int, early_speedup: float) -> Dict[int, Dict[bytes, int]]:
    """Candidates, hard EM and pruning on a loaded or spilled corpus (see :func:`train_compress`)."""
    # The corpus the pruning decisions are made on: repeated chunks (boilerplate
    # lines) may be damped so that they do not buy pieces that only they use.
    work: Union[Corpus, SpilledCorpus]
    if isinstance(corpus, SpilledCorpus):
        work = SpilledCorpus(corpus.blocks, corpus.total_bytes, engine, repeats, verbose)
    elif repeats == "count":
        work = corpus
    else:
        work = Corpus.__new__(Corpus)
        work.data, work.offsets, work.array = corpus.data, corpus.offsets, corpus.array
        work.weights = _damped(corpus.weights, repeats)
    scale = 1.0 if sample is corpus else corpus.total_bytes / max(1, sample.total_bytes)
    if isinstance(corpus, SpilledCorpus) and repeats != "count":
        sample.weights = _damped(sample.weights, repeats)

    mode = 1 if ensure_unicode else (2 if char_starts else 0)
    if sample is corpus and repeats != "count":
        sample = work  # type: ignore[assignment]
    # No more candidates than the sample has substrings: a huge vocabulary
    # size must not size the candidate table beyond what can exist.
    num_candidates = min(int(num_candidates), len(sample.data) * int(max_piece_length) + 1)
    cand, cand_counts = count_candidates(
        sample.array, sample.offsets, sample.weights, int(max_piece_length),
        max(1, int(math.ceil(min_count / scale))), int(num_candidates), mode,
    )
    if scale != 1.0:
        cand_counts = np.maximum(1, np.round(cand_counts * scale)).astype(np.int64)
    del sample
    _log(verbose, f"candidates: {len(cand)} substrings"
                  + (f" (from a {1 / scale:.0%} sample)" if scale != 1.0 else "")
                  + f", {time.perf_counter() - start:.1f}s")

    pieces: List[bytes] = list(_SINGLE_BYTES) + list(cand)
    counts = np.concatenate([np.maximum(byte_counts, 1), cand_counts]).astype(np.int64)
    if ngram_candidates:
        from .trainer import Trainer

        ngram = Trainer(max_vocab_size=int(ngram_candidates), max_piece_length=int(max_piece_length),
                        min_count=int(min_count), isolate_digits=isolate_digits,
                        ensure_unicode=ensure_unicode, verbose=False, algorithm="bnlm")
        ngram_counts = ngram._train(texts, engine)[int(ngram_candidates)]
        known = set(pieces)
        extra = [(p, c) for p, c in ngram_counts.items() if p not in known]
        pieces += [p for p, _ in extra]
        counts = np.concatenate([counts, np.array([c for _, c in extra], dtype=np.int64)])
        _log(verbose, f"n-gram candidates: {len(extra)} added, {time.perf_counter() - start:.1f}s")
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    prot = lengths == 1  # the 256 single bytes are never pruned
    if char_coverage:
        chars = {chr(cp).encode("utf-8"): n for cp, n in char_totals.items() if n >= char_min_count}
        budget = sizes[-1] - 3 - 256
        chars = sorted(((c, n) for c, n in chars.items() if len(c) <= max_piece_length),
                       key=lambda kv: (-kv[1], kv[0]))[: budget // 2]
        short = np.flatnonzero((lengths >= 2) & (lengths <= 4)).tolist()  # characters: 2-4 bytes
        where = {pieces[i]: i for i in short}
        extra = [(c, n) for c, n in chars if c not in where]
        for c, _ in chars:
            if c in where:
                prot[where[c]] = True
        pieces += [c for c, _ in extra]
        counts = np.concatenate([counts, np.array([n for _, n in extra], dtype=np.int64)])
        lengths = np.concatenate([lengths, np.array([len(c) for c, _ in extra], dtype=np.int64)])
        prot = np.concatenate([prot, np.ones(len(extra), dtype=bool)])
        _log(verbose, f"character coverage: {len(chars)} characters kept ({len(extra)} added)")

    results: Dict[int, Dict[bytes, int]] = {}
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    rounds = progress_bar("prune", unit="rounds", enabled=verbose)
    try:
        round_no = 0
        for size in sizes:
            target = size - 3
            while True:
                if em == "soft" and round_no > 0:
                    soft = soft_em(pieces, counts, work, workers, pool=pool)
                    counts = np.floor(soft + 0.5).astype(np.int64)
                else:
                    counts = hard_em(pieces, counts, work, workers, pool=pool)
                used = (counts > 0) | prot
                counts = np.maximum(counts, 1)
                if not used.all():
                    pieces = [p for p, k in zip(pieces, used.tolist()) if k]
                    counts, prot, lengths = counts[used], prot[used], lengths[used]
                round_no += 1
                rounds.set_postfix_str(f"{len(pieces)} pieces, {int(counts.sum())} tokens", refresh=False)
                rounds.update(1)
                if len(pieces) <= target:
                    break
                n_multi = int((~prot).sum())
                # Far from the target the ranking is coarse anyway: prune faster.
                fraction = prune_fraction * early_speedup if len(pieces) > 1.5 * target else prune_fraction
                n_drop = min(max(1, int(math.ceil(fraction * n_multi))), len(pieces) - target)
                cost = _split_costs(pieces, counts, split_cost, workers, pool).astype(np.int64)
                saving = (counts - discount) * (cost - 1)
                saving[prot] = np.inf
                # lowest saving first; among ties drop the longer piece first
                order = np.lexsort((-lengths, saving))
                keep = np.ones(len(pieces), dtype=bool)
                keep[order[:n_drop]] = False
                pieces = [p for p, k in zip(pieces, keep.tolist()) if k]
                counts, prot, lengths = counts[keep], prot[keep], lengths[keep]
            pieces, counts, prot, lengths = _settle(pieces, counts, prot, lengths, corpus, workers,
                                                    pool, final_rounds)
            results[size] = {p: int(c) for p, c in zip(pieces, counts)}
            _log(verbose, f"size {size}: {len(pieces)} pieces, {int(counts.sum())} tokens on the "
                          f"training text, {time.perf_counter() - start:.1f}s")
    finally:
        rounds.close()
        if pool is not None:
            pool.shutdown()
    return results
