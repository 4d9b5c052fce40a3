"""Lattice analysis: n-best segmentations and character offsets.

These are tools for inspection and alignment, not the hot path: the lattice
comes from the compiled core as arrays (``Segmenter.edges``), the search runs
in Python. :func:`exact_probability` tells exact ties from near ones when
two segmentations are compared.
"""
from __future__ import annotations

import heapq
from fractions import Fraction
from typing import Iterable, List, Sequence, Tuple

import numpy as np

__all__ = ["nbest", "char_offsets", "exact_probability"]


def nbest(edges: Tuple[np.ndarray, np.ndarray, np.ndarray], n_bytes: int,
          scores: Sequence[float], n: int) -> List[Tuple[List[int], float]]:
    """The ``n`` most probable segmentations of a text of ``n_bytes`` bytes.

    ``edges`` is ``(starts, ends, ids)`` of every piece occurrence;
    ``scores[id]`` is the piece's log-probability. A k-best Viterbi run
    backwards: every position keeps the ``n`` best segmentations of the text
    after it (their scores summed from the end, as a search from the end
    would), found by merging the sorted lists of the positions its pieces
    reach. Tied segmentations are never expanded beyond ``n`` per position,
    so time and memory are O(n_bytes * (pieces per position + n) * log),
    for any text. Returns ``[(ids, log_probability), ...]``, most probable first.
    """
    if n <= 0:
        return []
    starts, ends, ids = (a.tolist() for a in edges)
    outgoing: List[List[Tuple[int, int, float]]] = [[] for _ in range(n_bytes + 1)]
    for s, e, i in zip(starts, ends, ids):
        outgoing[s].append((e, i, scores[i]))
    # best[p]: up to n (suffix score, path) sorted best first; a path is the
    # linked list (id, rest) of the pieces from p to the end.
    best: List[List[Tuple[float, object]]] = [[] for _ in range(n_bytes + 1)]
    best[n_bytes] = [(0.0, None)]
    for p in range(n_bytes - 1, -1, -1):
        heap = []
        for k, (e, i, sc) in enumerate(outgoing[p]):
            if best[e]:
                heap.append((-(sc + best[e][0][0]), k, 0))
        heapq.heapify(heap)
        chosen = best[p]
        while heap and len(chosen) < n:
            neg, k, j = heapq.heappop(heap)
            e, i, sc = outgoing[p][k]
            chosen.append((-neg, (i, best[e][j][1])))
            if j + 1 < len(best[e]):
                heapq.heappush(heap, (-(sc + best[e][j + 1][0]), k, j + 1))
    results: List[Tuple[List[int], float]] = []
    for total, path in best[0]:
        pieces = []
        while path is not None:
            pieces.append(path[0])
            path = path[1]
        results.append((pieces, total))
    return results


def char_offsets(data: bytes, piece_lengths: np.ndarray, is_text: bool) -> np.ndarray:
    """``(start, end)`` of each piece, in characters of the UTF-8 ``data`` (or in
    bytes when ``is_text`` is false), as an ``(n, 2)`` int64 array.

    A piece that covers only part of a character maps to that whole character,
    so neighbouring pieces can share a character.
    """
    byte_ends = np.cumsum(piece_lengths, dtype=np.int64)
    byte_starts = byte_ends - piece_lengths
    if not is_text or len(piece_lengths) == 0:
        return np.stack([byte_starts, byte_ends], axis=1) if len(piece_lengths) else np.zeros((0, 2), np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    # index of the character holding each byte: count of lead bytes so far - 1
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80, dtype=np.int64) - 1
    starts = char_of_byte[byte_starts]
    ends = char_of_byte[byte_ends - 1] + 1
    return np.stack([starts, ends], axis=1)


def exact_probability(vocab, ids: Iterable[int]) -> Fraction:
    """The probability of the segmentation ``ids`` under ``vocab`` (a
    :class:`~bytepiece.model_io.Vocabulary`) as an exact fraction of counts:
    the product of ``count / total`` over its pieces (special tokens count 1).
    Two segmentations with equal results are an exact tie."""
    counts = dict(zip(vocab.ids().tolist(), vocab.counts))
    total = sum(vocab.counts)
    result = Fraction(1)
    for i in ids:
        count = counts.get(i)
        if count is not None:
            result *= Fraction(count, total)
    return result
