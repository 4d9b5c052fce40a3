"""Pruning by re-segmentation (ALGORITHM.md §6.4): a piece's count moves to
the pieces the compiled Unigram segmenter splits it into.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .chunking import Batch, pack_chunks
from .model_io import unigram_scores

__all__ = ["split_pieces", "remove_wasted_pieces"]


def split_pieces(pieces: List[bytes], counts: np.ndarray, items: Batch, weights: np.ndarray,
                 threads: int = 1) -> np.ndarray:
    """§6.4 ``split``: segment each item with the vocabulary ``pieces`` (scored by
    ``counts``); return the weighted count of every piece used, indexed like ``pieces``."""
    from ._core import Segmenter

    segmenter = Segmenter(pieces, unigram_scores(counts.tolist()))
    return segmenter.split_counts(items[0], items[1], weights, num_threads=threads)


def remove_wasted_pieces(pieces: List[bytes], counts: np.ndarray, threads: int = 1,
                         progress=None) -> Tuple[List[bytes], np.ndarray]:
    """§6.4 step 3: ``keep = split(keep, keep)`` until the number of pieces is stable.

    A piece that is never chosen when segmenting its own bytes disappears and
    its count moves to the pieces it splits into.
    """
    while True:
        size = len(pieces)
        counts = split_pieces(pieces, counts, pack_chunks(pieces), counts, threads)
        if progress is not None:
            progress.update(1)
        used = np.flatnonzero(counts)
        if len(used) != size:
            pieces = [pieces[i] for i in used]
            counts = counts[used]
        if len(pieces) == size:
            return pieces, counts
