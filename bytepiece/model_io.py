"""Reading, validating and writing BytePiece model files (ALGORITHM.md §2-3).

A model file is a JSON object ``{base64(piece): [id, display, count]}``. Ids
0, 1, 2 are the special tokens and never appear in the file. This module is
the single place that knows the format: it validates hostile input with a
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
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from .outputs import atomic_write

__all__ = [
    "SPECIAL_TOKENS",
    "MAX_PIECE_BYTES",
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
    """A validated vocabulary: ``pieces[i]`` has id ``i + 3``.

    ``counts`` is int64 (or object for counts beyond 2**63), ``scores`` is the
    float64 unigram log-probability of each piece.
    """

    pieces: List[bytes]
    counts: List[int]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.pieces)


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
        if count <= 0:
            raise _fail(source, f"count of {key!r} must be positive, got {count}")
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
    # Every id slot is filled: size entries, distinct ids, all within range.
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
    return Vocabulary(pieces=pieces, counts=counts, scores=scores)  # type: ignore[arg-type]


def vocabulary_from_counts(counts: Mapping[bytes, int]) -> Vocabulary:
    """Build a vocabulary from ``{piece: count}`` with the file's id order."""
    return _validate("<counts>", model_dict(counts))


def model_dict(counts: Mapping[bytes, int]) -> Dict[str, list]:
    """The JSON object of a model: pieces sorted by (length, bytes), ids from 3."""
    ordered = sorted(counts.items(), key=lambda item: (len(item[0]), item[0]))
    return {
        base64.b64encode(piece).decode("ascii"): [i + 3, piece.decode("utf-8", "ignore"), int(count)]
        for i, (piece, count) in enumerate(ordered)
    }


def save_model(counts: Mapping[bytes, int], path: PathLike, inputs=()) -> None:
    """Write ``{piece: count}`` as a model file, atomically, in the reference
    format; ``path`` must not be one of ``inputs`` (see :func:`~bytepiece.outputs.check_output`)."""
    text = json.dumps(model_dict(counts), indent=4, ensure_ascii=False)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), inputs)
