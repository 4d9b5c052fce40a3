"""Training chunks: a shard's texts cut into the chunks every trainer counts.

The texts of a :class:`~bytepiece.inputs.Shard` are cut at special tokens,
normalized and split into chunks of at most ``TRAIN_MAXLEN`` characters
(ALGORITHM.md §1), in batches of bounded size; :func:`pack_chunks` lays a
batch back to back for the compiled core.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import numpy as np

from .inputs import Shard, shard_text_blocks
from .normalization import normalize
from .special import cut_at_special, special_pattern

__all__ = ["TRAIN_MAXLEN", "BATCH_BYTES", "Batch", "pack_chunks", "shard_batches", "shard_chunks"]

#: Chunk length limit used for training (ALGORITHM.md §1).
TRAIN_MAXLEN = 10000

#: A batch of byte strings laid back to back: ``(data, offsets)``.
Batch = Tuple[bytes, np.ndarray]


def pack_chunks(pieces: Sequence[bytes]) -> Batch:
    """``(data, offsets)`` for byte strings laid back to back."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    if pieces:
        np.cumsum(np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces)), out=offsets[1:])
    return b"".join(pieces), offsets


#: Bytes of chunks packed at a time within a shard (bounds the memory of a call).
BATCH_BYTES = 1 << 20


def shard_batches(shard: Shard, isolate_digits: bool, batch_bytes: int = BATCH_BYTES,
                  special_tokens: Sequence[str] = ()) -> Iterable[List[bytes]]:
    """The training chunks (ALGORITHM.md §1, ``maxlen=10000``) of a shard's texts,
    in order, in lists of about ``batch_bytes`` bytes; texts are first cut at
    ``special_tokens`` (:func:`~bytepiece.special.cut_at_special`)."""
    special = special_pattern(special_tokens)
    chunks: List[bytes] = []
    size = 0
    # A plain line of at most TRAIN_MAXLEN bytes (so characters) is its own
    # only chunk unless digits are isolated or special tokens cut it: no need
    # to decode and normalize it.
    plain = 0 if isolate_digits or special is not None else TRAIN_MAXLEN
    for texts in shard_text_blocks(shard, plain):
        if texts and isinstance(texts[0], bytes):
            chunks.extend(texts)  # type: ignore[arg-type]
            size += sum(map(len, texts))
        else:
            for text in texts:
                for part in cut_at_special(text, special):  # type: ignore[arg-type]
                    parts = normalize(part, TRAIN_MAXLEN, isolate_digits)
                    chunks.extend(parts)
                    size += sum(map(len, parts))
        if size >= batch_bytes:
            yield chunks
            chunks, size = [], 0
    if chunks:
        yield chunks


def shard_chunks(shard: Shard, isolate_digits: bool, special_tokens: Sequence[str] = ()) -> List[bytes]:
    """All the training chunks of a shard's texts, in order."""
    return [chunk for batch in shard_batches(shard, isolate_digits, special_tokens=special_tokens)
            for chunk in batch]
