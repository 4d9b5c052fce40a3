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

import math
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._compress import PieceSet, count_candidates, count_chars
from .normalization import normalize

__all__ = ["train_compress", "Corpus", "load_corpus", "hard_em"]

_SINGLE_BYTES = [bytes([b]) for b in range(256)]
#: Vocabularies larger than this are segmented with ``_compress.PieceSet``.
CORE_MAX_PIECES = 100_000


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
        counts = np.bincount(self.array, minlength=256).astype(np.int64)
        offs = self.offsets
        for i in np.flatnonzero(self.weights > 1).tolist():  # repeated chunks: few
            counts += (int(self.weights[i]) - 1) * np.bincount(
                self.array[offs[i]:offs[i + 1]], minlength=256)
        return counts


def load_corpus(texts: Iterable[str], isolate_digits: bool = False, verbose: bool = False) -> Corpus:
    """Normalize ``texts`` into training chunks (``maxlen=10000``) and dedupe them."""
    chunks: Counter = Counter()
    with _progress("compress: read", verbose) as progress:
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must yield str, got {type(text).__name__}")
            parts = normalize(text, maxlen=10000, isolate_digits=isolate_digits)
            chunks.update(parts)
            if progress is not None:
                progress.update(sum(map(len, parts)))
    return Corpus(chunks)


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc_info) -> None:
        return None


def _progress(description: str, verbose: bool):
    """A ``bytepiece.progress.Progress`` over bytes when verbose, else a no-op."""
    if not verbose:
        return _NoProgress()
    try:
        from .progress import Progress
    except ImportError:  # pragma: no cover - progress.py is optional
        return _NoProgress()
    return Progress(description, unit="B", enabled=True)


def _peak_mb() -> float:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - not on Unix
        return 0.0
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(f"[compress] {message}, peak {_peak_mb():.0f} MB", file=sys.stderr, flush=True)


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


def hard_em(pieces: List[bytes], counts: np.ndarray, corpus: Corpus, workers: int = 1,
            use_core: Optional[bool] = None, pool: Optional[ThreadPoolExecutor] = None) -> np.ndarray:
    """One hard-EM step: how often the §4 Viterbi on ``ln(count/total)`` uses each piece.

    ``pieces`` must contain all 256 single bytes with positive counts.
    """
    scores = _scores(counts)
    explicit = use_core is True
    if use_core is None:
        # The core's double-array trie needs far more memory to build than the
        # hash-trie here; for the first, huge candidate vocabulary the lean
        # twin is used (same §4 result, checked by the tests).
        use_core = len(pieces) <= CORE_MAX_PIECES
    segmenter = _segmenter_class() if use_core else None
    if explicit and segmenter is None:
        raise ImportError("bytepiece._core is not built")
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


def _candidate_sample(corpus: Corpus, limit: int) -> Tuple[Corpus, float]:
    """The corpus itself when it is small enough, else every k-th distinct chunk
    (deterministic) and the factor that scales its counts to the whole."""
    n_bytes = len(corpus.data)
    if limit <= 0 or n_bytes <= limit:
        return corpus, 1.0
    step = int(math.ceil(n_bytes / limit))
    picked = np.arange(0, len(corpus), step)
    sample: Counter = Counter()
    offs = corpus.offsets
    for i in picked.tolist():
        sample[corpus.data[offs[i]:offs[i + 1]]] = int(corpus.weights[i])
    sub = Corpus(sample)
    scale = corpus.total_bytes / max(1, sub.total_bytes)
    return sub, float(scale)


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
    candidate_bytes: int = 1 << 28,
) -> Dict[int, Dict[bytes, int]]:
    """Train compression-first vocabularies; returns ``{size: {piece: count}}``.

    Main parameters (the same meaning as for the reference trainer):

    * ``texts``: an iterable of ``str``, read once; each is normalized with
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
      on it); ``verbose``: progress on stderr.

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
    * ``candidate_bytes``: candidates are counted on at most this many bytes
      of distinct chunks (an evenly spaced sample of the chunks beyond it,
      counts scaled up), bounding the suffix array's ~21 bytes per byte; hard
      EM always runs over the whole corpus.
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
    start = time.perf_counter()

    if ngram_candidates:
        texts = texts if isinstance(texts, (list, tuple)) else list(texts)
    corpus = load_corpus(texts, isolate_digits=isolate_digits, verbose=verbose)
    _log(verbose, f"corpus: {len(corpus)} distinct chunks, {len(corpus.data)} distinct bytes "
                  f"({corpus.total_bytes} in all), {time.perf_counter() - start:.1f}s")
    if corpus.total_bytes == 0:
        raise ValueError("the corpus is empty: texts holds no characters to train on")
    # No more candidates than the corpus has substrings: a huge vocabulary
    # size must not size the candidate table beyond what can exist.
    num_candidates = min(int(num_candidates), len(corpus.data) * int(max_piece_length) + 1)

    # The corpus the pruning decisions are made on: repeated chunks (boilerplate
    # lines) may be damped so that they do not buy pieces that only they use.
    if repeats == "count":
        work = corpus
    else:
        work = Corpus.__new__(Corpus)
        work.data, work.offsets, work.array = corpus.data, corpus.offsets, corpus.array
        if repeats == "distinct":
            work.weights = np.ones_like(corpus.weights)
        elif repeats == "sqrt":
            work.weights = np.ceil(np.sqrt(corpus.weights)).astype(np.int64)
        elif repeats == "log":
            work.weights = (1 + np.floor(np.log2(corpus.weights))).astype(np.int64)
        else:
            raise ValueError(f"repeats must be 'count', 'distinct', 'sqrt' or 'log', got {repeats!r}")

    mode = 1 if ensure_unicode else (2 if char_starts else 0)
    source, scale = _candidate_sample(work, int(candidate_bytes))
    cand, cand_counts = count_candidates(
        source.array, source.offsets, source.weights, int(max_piece_length),
        max(1, int(math.ceil(min_count / scale))), int(num_candidates), mode,
    )
    if scale != 1.0:
        cand_counts = np.maximum(1, np.round(cand_counts * scale)).astype(np.int64)
        del source
    _log(verbose, f"candidates: {len(cand)} substrings"
                  + (f" (from a {1 / scale:.0%} sample)" if scale != 1.0 else "")
                  + f", {time.perf_counter() - start:.1f}s")

    pieces: List[bytes] = list(_SINGLE_BYTES) + list(cand)
    counts = np.concatenate([np.maximum(corpus.byte_counts(), 1), cand_counts]).astype(np.int64)
    if ngram_candidates:
        from .trainer import Trainer

        ngram = Trainer(max_vocab_size=int(ngram_candidates), max_piece_length=int(max_piece_length),
                        min_count=int(min_count), isolate_digits=isolate_digits,
                        ensure_unicode=ensure_unicode, verbose=False)
        ngram_counts = ngram.train(texts, workers=workers)[int(ngram_candidates)]
        known = set(pieces)
        extra = [(p, c) for p, c in ngram_counts.items() if p not in known]
        pieces += [p for p, _ in extra]
        counts = np.concatenate([counts, np.array([c for _, c in extra], dtype=np.int64)])
        _log(verbose, f"n-gram candidates: {len(extra)} added, {time.perf_counter() - start:.1f}s")
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    prot = lengths == 1  # the 256 single bytes are never pruned
    if char_coverage:
        chars = corpus.char_counts(char_min_count)
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
                _log(verbose, f"prune round {round_no}: {len(pieces)} pieces, "
                              f"{int(counts.sum())} tokens, {time.perf_counter() - start:.1f}s")
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
        if pool is not None:
            pool.shutdown()
    return results
