"""Reading, validating and writing BytePiece model files (ALGORITHM.md §2-3).

A model file is a JSON object ``{base64(piece): [id, display, count]}``. Ids
0, 1, 2 are the special tokens ``<pad> <bos> <eos>`` and never appear in the
file. Added special tokens (``<|im_start|>`` ...) are entries whose count is
0: their key is the base64 of their UTF-8 text and their display is that text.
Files without such entries (every older file, the reference's included) read
as before. This module is the single place that knows the format: it validates hostile input with a
``ValueError`` naming the file and the problem, computes the unigram scores
exactly as the reference does (``np.log`` in float64), and writes atomically
(through :mod:`bytepiece.outputs`).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import json
import os
import sys
from dataclasses import dataclass
import unicodedata
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .outputs import atomic_write

__all__ = [
    "SPECIAL_TOKENS",
    "MAX_PIECE_BYTES",
    "check_special_token",
    "check_new_special_tokens",
    "vocabulary_dict",
    "save_vocabulary",
    "Vocabulary",
    "load_vocabulary",
    "vocabulary_from_counts",
    "model_dict",
    "save_model",
    "unigram_scores",
    "atomic_write",
]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
#: Longest piece a model file may hold. Segmenting costs up to this many trie
#: steps per byte, so a model with huge pieces could make encoding crawl on
#: matching text; real vocabularies use 16-36 bytes.
MAX_PIECE_BYTES = 1024

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Vocabulary:
    """A validated vocabulary: the learned pieces in id order, and the added
    special tokens.

    ``pieces[i]`` has id ``i + 3`` unless ``piece_ids`` is set (a model
    extended after special tokens were added), in which case it has id
    ``piece_ids[i]``. ``counts`` are the pieces' counts, ``scores`` the
    float64 unigram log-probability of each piece. ``special_tokens`` holds
    ``(text, id)`` of every added special token (not ``<pad> <bos> <eos>``),
    by id.
    """

    pieces: List[bytes]
    counts: List[int]
    scores: np.ndarray
    piece_ids: Optional[np.ndarray] = None
    special_tokens: Tuple[Tuple[str, int], ...] = ()

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def size(self) -> int:
        """Number of ids: ``<pad> <bos> <eos>``, the pieces and the added special tokens."""
        return 3 + len(self.pieces) + len(self.special_tokens)

    def ids(self) -> np.ndarray:
        """The id of every piece (int64), in the order of ``pieces``."""
        if self.piece_ids is not None:
            return self.piece_ids
        return np.arange(3, 3 + len(self.pieces), dtype=np.int64)


def unigram_scores(counts: List[int]) -> np.ndarray:
    """``ln(count) - ln(sum(counts))`` in float64, as NumPy computes it."""
    total = sum(counts)
    values = np.asarray([float(c) for c in counts], dtype=np.float64)
    return np.log(values) - np.log(np.float64(float(total)))


def _b64decode_strict(key: str) -> Optional[bytes]:
    """Decode canonical base64 (padding required, no stray characters), or None."""
    try:
        return binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


if sys.version_info < (3, 11):  # no strict_mode before Python 3.11

    def _b64decode_strict(key: str) -> Optional[bytes]:  # noqa: F811
        """Decode canonical base64 (padding required, no stray characters), or None."""
        try:
            return base64.b64decode(key.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None


def _fail(source: str, problem: str) -> "ValueError":
    return ValueError(f"{source}: invalid BytePiece model: {problem}")


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise KeyError(key)
        result[key] = value
    return result


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic collector while a model is parsed: JSON parsing makes
    hundreds of thousands of container objects, and the collections they set
    off (each traversing every young object, none of them garbage) were a
    sixth of the loading time of an 80k-piece model."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_vocabulary(model: Union[PathLike, Mapping[str, Any]]) -> Vocabulary:
    """Load and validate a model given as a file path or an already-parsed dict."""
    with _gc_paused():
        return _load_vocabulary(model)


def _load_vocabulary(model: Union[PathLike, Mapping[str, Any]]) -> Vocabulary:
    if isinstance(model, (str, os.PathLike)):
        source = os.fspath(model)
        try:
            with open(source, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{source}: model file not found") from None
        except IsADirectoryError:
            raise ValueError(f"{source}: is a directory, not a model file") from None
        try:
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
        except KeyError as exc:
            raise _fail(source, f"key {exc.args[0]!r} appears twice") from None
        except UnicodeDecodeError as exc:
            raise _fail(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError, and also ValueError for an int past Python's
            # digit limit: both are a file we cannot read as a model.
            raise _fail(source, f"not valid JSON ({exc})") from None
    elif isinstance(model, Mapping):
        source, data = "<dict>", model
    else:
        raise TypeError(
            f"model must be a path to a model file or a dict, got {type(model).__name__}"
        )
    return _validate(source, data)


def _validate(source: str, data: Any) -> Vocabulary:
    if not isinstance(data, Mapping):
        raise _fail(source, f"top level must be a JSON object, got {type(data).__name__}")
    if not data:
        raise _fail(source, "it holds no pieces")
    size = len(data)
    pieces: List[Optional[bytes]] = [None] * size
    counts: List[int] = [0] * size
    special: Dict[int, str] = {}
    seen: Dict[bytes, str] = {}
    decode = _b64decode_strict
    for key, value in data.items():
        # Fast path first: the checks below run once per entry, so they use
        # exact type tests (which also reject bool) rather than isinstance.
        if type(key) is not str:
            raise _fail(source, f"key {key!r} is not a base64 string")
        piece = decode(key)
        if piece is None:
            raise _fail(source, f"key {key[:40]!r} is not valid base64")
        if not piece:
            raise _fail(source, f"key {key!r} decodes to an empty piece")
        if len(piece) > MAX_PIECE_BYTES:
            raise _fail(
                source,
                f"piece {key[:20]!r}... is {len(piece)} bytes long (at most {MAX_PIECE_BYTES})",
            )
        if piece in seen:
            raise _fail(source, f"keys {seen[piece]!r} and {key!r} are the same piece {piece!r}")
        seen[piece] = key
        if type(value) not in (list, tuple) or len(value) != 3:
            raise _fail(source, f"value of {key!r} must be [id, display, count], got {value!r:.60}")
        piece_id, _display, count = value
        if type(piece_id) is not int:
            raise _fail(source, f"id of {key!r} must be an int, got {piece_id!r:.40}")
        if type(count) is not int:
            raise _fail(source, f"count of {key!r} must be an int, got {count!r:.40}")
        if count < 0:
            raise _fail(source, f"count of {key!r} must be positive (0 for a special token), got {count}")
        if piece_id < 3:
            raise _fail(source, f"id {piece_id} of {key!r} is reserved (ids 0-2 are <pad>, <bos>, <eos>)")
        if piece_id >= size + 3:
            raise _fail(
                source,
                f"id {piece_id} of {key!r} is out of range: {size} pieces need ids 3..{size + 2}",
            )
        slot = piece_id - 3
        if pieces[slot] is not None:
            raise _fail(source, f"id {piece_id} is used twice ({pieces[slot]!r} and {piece!r})")
        pieces[slot] = piece
        counts[slot] = count
        if count == 0:
            try:
                special[piece_id] = check_special_token(piece.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise _fail(source, f"special token {key!r} (id {piece_id}): {exc}") from None
    # Every id slot is filled: size entries, distinct ids, all within range.
    if special:
        keep = [slot for slot in range(size) if slot + 3 not in special]
        if keep and keep[-1] != len(keep) - 1:  # a special token sits between pieces
            piece_ids: Optional[np.ndarray] = np.asarray(keep, dtype=np.int64) + 3
        else:
            piece_ids = None
        pieces = [pieces[slot] for slot in keep]
        counts = [counts[slot] for slot in keep]
        for text in special.values():
            seen.pop(text.encode("utf-8"))
    else:
        piece_ids = None
    missing = [b for b in range(256) if bytes([b]) not in seen]
    if missing:
        shown = ", ".join(f"0x{b:02x}" for b in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise _fail(source, f"single-byte pieces missing: {shown}{more} (all 256 are required)")
    if sum(counts) > 2 ** 1000:
        raise _fail(source, "counts are too large to score")
    scores = unigram_scores(counts)
    if not np.all(np.isfinite(scores)):
        raise _fail(source, "counts give non-finite scores")
    added = tuple((text, piece_id) for piece_id, text in sorted(special.items()))
    return Vocabulary(pieces=pieces, counts=counts, scores=scores,  # type: ignore[arg-type]
                      piece_ids=piece_ids, special_tokens=added)


def check_special_token(text: Any) -> str:
    """``text`` if it can be a special token, else a ``ValueError`` naming it.

    A special token is non-empty NFC text (input is NFC-normalized before
    special tokens are looked for, so other text could never match) of at
    most ``MAX_PIECE_BYTES`` UTF-8 bytes, and not ``<pad> <bos> <eos>``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a special token must be str, got {type(text).__name__} {text!r:.40}")
    if not text:
        raise ValueError("special token '' is empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"special token {text!r:.60} holds a lone surrogate") from None
    if size > MAX_PIECE_BYTES:
        raise ValueError(f"special token {text[:40]!r}... is too long: {size} bytes (at most {MAX_PIECE_BYTES})")
    if not unicodedata.is_normalized("NFC", text):
        raise ValueError(f"special token {text!r:.60} is not NFC (its NFC form is "
                         f"{unicodedata.normalize('NFC', text)!r:.60}); input text is NFC-normalized "
                         "before special tokens are matched, so it could never occur")
    if size == 1:
        raise ValueError(f"special token {text!r} is identical to a learned piece (every single byte is a piece)")
    if text in SPECIAL_TOKENS:
        raise ValueError(f"special token {text!r} is a duplicate: ids 0-2 are always <pad>, <bos>, <eos>")
    return text


def check_new_special_tokens(tokens: Iterable[Any], existing: Iterable[str] = (),
                             pieces: Optional[Mapping[bytes, int]] = None) -> List[str]:
    """Validate special tokens to add: each passes :func:`check_special_token`,
    none is listed twice or already a special token (``existing``), and none
    is identical to a learned piece (a key of ``pieces``, piece -> id).
    Raises ``ValueError`` naming the offending token."""
    if isinstance(tokens, (str, bytes)):
        raise TypeError("special tokens must be a list of str, not a single string")
    taken = set(existing)
    result: List[str] = []
    for text in tokens:
        check_special_token(text)
        if text in taken:
            raise ValueError(f"special token {text!r} is a duplicate")
        taken.add(text)
        if pieces is not None:
            piece_id = pieces.get(text.encode("utf-8"))
            if piece_id is not None:
                raise ValueError(f"special token {text!r} is identical to the learned piece of id {piece_id}")
        result.append(text)
    return result


def vocabulary_from_counts(counts: Mapping[bytes, int]) -> Vocabulary:
    """Build a vocabulary from ``{piece: count}`` with the file's id order."""
    return _validate("<counts>", model_dict(counts))


def model_dict(counts: Mapping[bytes, int], special_tokens: Sequence[str] = ()) -> Dict[str, list]:
    """The JSON object of a model: pieces sorted by (length, bytes), ids from
    3, then the special tokens (count 0) in the order given."""
    ordered = sorted(counts.items(), key=lambda item: (len(item[0]), item[0]))
    data = {
        base64.b64encode(piece).decode("ascii"): [i + 3, piece.decode("utf-8", "ignore"), int(count)]
        for i, (piece, count) in enumerate(ordered)
    }
    for i, text in enumerate(check_new_special_tokens(special_tokens), len(ordered) + 3):
        key = base64.b64encode(text.encode("utf-8")).decode("ascii")
        if key in data:
            raise ValueError(f"special token {text!r} is identical to the learned piece of id {data[key][0]}")
        data[key] = [i, text, 0]
    return data


def vocabulary_dict(vocab: Vocabulary) -> Dict[str, list]:
    """The JSON object of ``vocab``, entries by id (ids kept as they are)."""
    entries = [(int(i), piece, int(count)) for i, piece, count in zip(vocab.ids(), vocab.pieces, vocab.counts)]
    entries += [(i, text.encode("utf-8"), 0) for text, i in vocab.special_tokens]
    entries.sort()
    return {
        base64.b64encode(piece).decode("ascii"): [i, piece.decode("utf-8", "ignore"), count]
        for i, piece, count in entries
    }


def _write_json(data: Mapping[str, list], path: PathLike, inputs=()) -> None:
    text = json.dumps(data, indent=4, ensure_ascii=False)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), inputs)


def save_model(counts: Mapping[bytes, int], path: PathLike, special_tokens: Sequence[str] = (),
               inputs=()) -> None:
    """Write ``{piece: count}`` as a model file, atomically, in the reference
    format; ``special_tokens`` get the ids after the last piece; ``path`` must
    not be one of ``inputs`` (see :func:`~bytepiece.outputs.check_output`)."""
    _write_json(model_dict(counts, special_tokens), path, inputs)


def save_vocabulary(vocab: Vocabulary, path: PathLike, inputs=()) -> None:
    """Write ``vocab`` as a model file, atomically, every id kept."""
    _write_json(vocabulary_dict(vocab), path, inputs)
