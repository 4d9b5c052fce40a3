"""Text normalization and chunking (ALGORITHM.md §1).

Every text is NFC-normalized, cut into chunks at newline runs, and each chunk
is UTF-8 encoded. Chunks are segmented independently: no piece spans two.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import List

__all__ = ["normalize", "nfc_utf8"]


_BYTES_CHUNK = re.compile(rb".*\n+|.+")


@lru_cache(maxsize=64)
def _chunk_pattern(maxlen: int, isolate_digits: bool) -> "re.Pattern[str]":
    if maxlen > 0:
        if isolate_digits:
            return re.compile(r"\d|[^\n\d]{,%d}\n{1,100}|[^\n\d]{1,%d}" % (maxlen, maxlen))
        return re.compile(r".{,%d}\n{1,100}|.{1,%d}" % (maxlen, maxlen))
    if isolate_digits:
        return re.compile(r"\d|[^\n\d]*\n+|[^\n\d]+")
    return re.compile(r".*\n+|.+")


def nfc_utf8(text: str) -> bytes:
    """NFC-normalize ``text`` and encode it as UTF-8.

    Raises ``ValueError`` naming the position of a lone surrogate (such a
    string cannot be encoded) and ``TypeError`` for anything but ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text contains a lone surrogate {text[exc.start]!r} at index {exc.start}; "
            "it cannot be encoded as UTF-8"
        ) from None


def normalize(text: str, maxlen: int = 0, isolate_digits: bool = False) -> List[bytes]:
    """Split ``text`` into UTF-8 chunks exactly as BytePiece 0.6.3 does.

    The text is NFC-normalized, then cut with a regular expression: a chunk is
    a run of non-newline characters followed by its newlines (at most 100
    newlines and ``maxlen`` other characters per chunk when ``maxlen > 0``).
    With ``isolate_digits`` every decimal digit is a chunk of its own.
    ``bytes`` input skips NFC and is cut on newline bytes the same way.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if maxlen > 0 or isolate_digits:
            raise ValueError("maxlen and isolate_digits apply to str input only")
        return _BYTES_CHUNK.findall(raw)
    if not isinstance(text, str):
        raise TypeError(f"normalize() expects str or bytes, got {type(text).__name__}")
    if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 0:
        raise ValueError(f"maxlen must be a non-negative int, got {maxlen!r}")
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    chunks = _chunk_pattern(maxlen, bool(isolate_digits)).findall(text)
    try:
        return [chunk.encode("utf-8") for chunk in chunks]
    except UnicodeEncodeError:
        nfc_utf8(text)  # raises the descriptive error
        raise
