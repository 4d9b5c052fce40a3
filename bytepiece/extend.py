"""Vocabulary extension: new pieces after the last id, every existing id kept.

A base model is extended with words (a ``word count`` list, as
``import-words`` reads) or with pieces learned on new text. Existing pieces
and special tokens keep their ids and counts; the new pieces get the ids
after the last one, in order of decreasing gain. Their counts are set so that
the extended model uses them:

* each new piece first gets the probability it has in the new material (its
  count over the total count of the word list, or of a vocabulary trained on
  the new text), times the base model's total count;
* then it is raised, if needed, to at least twice the probability of the
  base model's best segmentation of its bytes (taking the grown total into
  account), so Viterbi prefers the new piece to the pieces that spelled it
  before, and a new piece is never a wasted one.

Adding counts grows the total, so every base score drops by the same
``log(new_total / old_total)``; segmentations of old-domain text only change
where two candidates were within that margin.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from .convert import word_counts
from .model_io import vocabulary_dict
from .normalization import nfc_utf8
from .tokenizer import Tokenizer

__all__ = ["Extension", "extend_with_words", "extend_with_texts", "bytes_per_token"]

#: How many times the base segmentation's probability a new piece gets at least.
MARGIN = 2.0
#: Candidates trained on new text per requested piece (many coincide with base pieces).
CANDIDATES_PER_PIECE = 4


@dataclass
class Extension:
    """The result of an extension.

    ``tokenizer`` is the extended vocabulary (``tokenizer.save(path)`` writes
    it), ``added`` the new pieces (ids ``first_id``, ``first_id + 1``, ...),
    ``kept`` the requested words that already were pieces or special tokens
    and were left as they are.
    """

    tokenizer: Tokenizer
    first_id: int
    added: List[bytes] = field(default_factory=list)
    kept: List[bytes] = field(default_factory=list)


def _as_tokenizer(base: Any) -> Tokenizer:
    if isinstance(base, Tokenizer):
        return base
    if isinstance(base, (str, os.PathLike, Mapping)):
        return Tokenizer(base)
    raise TypeError(f"base must be a Tokenizer, a model path or a model dict, got {type(base).__name__}")


def _extend(base: Tokenizer, frequencies: Mapping[bytes, int], add: Optional[int]) -> Extension:
    """Add the pieces of ``{piece: frequency in the new material}`` to ``base``
    (the ``add`` of most gain if given), with counts as the module docstring says."""
    vocab = base._vocab
    taken = set(vocab.pieces) | {text.encode("utf-8") for text in base.special_tokens}
    kept = sorted((p for p in frequencies if p in taken), key=lambda p: (len(p), p))
    fresh = [p for p in frequencies if p not in taken]
    first_id = vocab.size
    if not fresh:
        return Extension(base, first_id, [], kept)
    # The base model's best segmentation of each candidate: its tokens and log-probability.
    flat, bounds = base.encode_batch_flat(fresh)
    log_probs = np.add.reduceat(base._scores[flat], bounds[:-1])
    n_tokens = np.diff(bounds)
    frequency = np.asarray([frequencies[p] for p in fresh], dtype=np.float64)
    # Gain: base tokens saved where the new material has this piece.
    order = sorted(range(len(fresh)), key=lambda i: (-frequency[i] * (n_tokens[i] - 1), fresh[i]))
    if add is not None:
        order = order[:add]
    pieces = [fresh[i] for i in order]
    base_total = float(sum(vocab.counts))
    scale = base_total / float(sum(frequencies.values()))
    wanted = np.maximum(np.rint(frequency[order] * scale), 1.0)
    floor_ratio = MARGIN * np.exp(log_probs[order])
    counts = wanted
    for _ in range(100):  # the floors grow with the total they help grow: iterate to the fixed point
        total = base_total + float(counts.sum())
        new_counts = np.maximum(wanted, np.ceil(floor_ratio * total))
        if np.array_equal(new_counts, counts):
            break
        counts = new_counts
    data = vocabulary_dict(vocab)
    for k, (piece, count) in enumerate(zip(pieces, counts.tolist())):
        data[base64.b64encode(piece).decode("ascii")] = [first_id + k, piece.decode("utf-8", "ignore"),
                                                         int(count)]
    extended = Tokenizer(data, seed=base._seed)
    return Extension(extended, first_id, pieces, kept)


def extend_with_words(base: Any, words: Mapping[Union[str, bytes], int],
                      add: Optional[int] = None) -> Extension:
    """Extend ``base`` (a Tokenizer or model path) with ``{word: count}``.

    ``str`` words are NFC-normalized and UTF-8 encoded (words that become
    equal add their counts). Words that already are pieces (or special
    tokens) are kept as they are and listed in ``Extension.kept``. ``add``
    limits the new pieces to those of most gain (count times base tokens
    saved). Raises ``ValueError``/``TypeError`` naming a bad word or count.
    """
    _check_add(add)
    frequencies = word_counts(words)
    return _extend(_as_tokenizer(base), frequencies, add)


def extend_with_texts(base: Any, texts: Iterable[str], add: int, algorithm: str = "compress",
                      max_piece_length: Optional[int] = None, min_count: int = 2,
                      workers: int = 0, verbose: bool = False) -> Extension:
    """Extend ``base`` with ``add`` pieces learned on ``texts`` (re-iterable).

    A vocabulary of ``259 + 4 * add`` ids is trained on the texts with
    :class:`~bytepiece.Trainer` (``algorithm``, ``max_piece_length``,
    ``min_count``; the texts cut at ``base``'s special tokens, so no new
    piece holds one); its pieces that ``base`` lacks are candidates, their
    counts in it the frequencies, and the ``add`` of most gain are added
    (fewer if there are not that many).
    """
    from .trainer import Trainer

    _check_add(add)
    if add is None:
        raise ValueError("add must be given: the number of pieces to learn")
    tokenizer = _as_tokenizer(base)
    # The texts are cut at the base model's special tokens, as in training.
    trainer = Trainer(max_vocab_size=259 + CANDIDATES_PER_PIECE * add, algorithm=algorithm,
                      max_piece_length=max_piece_length, min_count=min_count, verbose=verbose,
                      special_tokens=[text for text, _ in tokenizer._vocab.special_tokens])
    trained = trainer.train(texts, workers=workers)[trainer.sizes[0]]
    extension = _extend(tokenizer, trained, add)
    extension.kept = []  # trained pieces the base already has are not requests
    return extension


def _check_add(add: Optional[int]) -> None:
    if add is None:
        return
    if isinstance(add, bool) or not isinstance(add, (int, np.integer)) or add < 1:
        raise ValueError(f"add must be a positive int, got {add!r}")


def bytes_per_token(tokenizer: Tokenizer, texts: Iterable[str], batch: int = 2000) -> Tuple[int, int]:
    """``(bytes, tokens)`` of ``texts`` (NFC UTF-8 bytes, ids) under ``tokenizer``."""
    n_bytes = n_tokens = 0
    chunk: List[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            n_bytes, n_tokens = _count(tokenizer, chunk, n_bytes, n_tokens)
            chunk = []
    if chunk:
        n_bytes, n_tokens = _count(tokenizer, chunk, n_bytes, n_tokens)
    return n_bytes, n_tokens


def _count(tokenizer: Tokenizer, chunk: List[str], n_bytes: int, n_tokens: int) -> Tuple[int, int]:
    ids, bounds = tokenizer.encode_batch_flat(chunk)
    return n_bytes + sum(len(nfc_utf8(t)) if isinstance(t, str) else len(t) for t in chunk), n_tokens + len(ids)
