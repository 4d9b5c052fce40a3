"""Seeds for subword sampling: :func:`sampling_seed` turns ``(base_seed, epoch,
index)`` into a well-mixed 64-bit seed, so that sampling in data-loader workers
is independent per example and per epoch, yet reproducible whatever the number
of workers."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def sampling_seed(base_seed: int, epoch: int = 0, index: int = 0) -> int:
    """A seed for sampling example ``index`` in ``epoch`` of a run seeded ``base_seed``.

    The three ints (any size, any sign) are hashed with BLAKE2b, so nearby
    inputs give unrelated seeds: ``(0, 1, 2)`` and ``(0, 2, 1)`` do not share a
    stream, and no arithmetic combination can collide by accident. The result
    is in ``[0, 2**63)`` (it fits an int64 column or tensor) and depends on
    nothing else, so every process computes the same seed for the same
    example::

        ids = tok.encode(text, alpha=0.1, seed=sampling_seed(base_seed, epoch, index))

    For a batch of consecutive examples starting at ``first``, one call covers
    all of them and gives results independent of the batch size::

        tok.encode_batch(texts, alpha=0.1, seed=sampling_seed(base_seed, epoch),
                         first_index=first)
    """
    values = (_as_int(base_seed, "base_seed"), _as_int(epoch, "epoch"), _as_int(index, "index"))
    data = ",".join(str(v) for v in values).encode("ascii")
    digest = hashlib.blake2b(data, digest_size=8, person=b"bytepiece.seed").digest()
    return int.from_bytes(digest, "little") >> 1
