"""Finding special-token text: in input bytes when encoding, in training texts.

Encoding with allowed special tokens, and training with special tokens, both
need the occurrences of special-token texts; this module is the one place
that finds them. Occurrences are taken leftmost first, and at one position
the longest token wins (the rule of Hugging Face's added tokens, so that an
exported tokenizer cuts text at the same places). The search is one compiled
regular expression of the escaped texts, longest first; the regular
expression engine scans for the literal prefix they share (``<|``, ``<``)
in C, so text without special tokens costs one fast pass.
"""
from __future__ import annotations

import re
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["SpecialMatcher", "special_pattern", "cut_at_special"]

Match = Tuple[int, int, int]


class SpecialMatcher:
    """The occurrences of a set of special tokens (``{text: id}``) in UTF-8 bytes."""

    def __init__(self, tokens: Mapping[str, int]) -> None:
        if not tokens:
            raise ValueError("a SpecialMatcher needs at least one special token")
        self.ids = {text.encode("utf-8"): int(i) for text, i in tokens.items()}
        ordered = sorted(self.ids, key=lambda b: (-len(b), b))
        self.pattern = re.compile(b"|".join(re.escape(b) for b in ordered))

    def find(self, data: bytes, start: int = 0, end: int = -1) -> List[Match]:
        """``(start, end, id)`` of every occurrence in ``data[start:end]``."""
        ids = self.ids
        if end < 0:
            end = len(data)
        return [(m.start(), m.end(), ids[m.group()]) for m in self.pattern.finditer(data, start, end)]

    def find_packed(self, data, offsets: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(docs, starts, ends, ids)``, int64 arrays ordered by position, of every
        occurrence inside a document ``data[offsets[i]:offsets[i+1]]``
        (positions in ``data``); an occurrence never spans two documents.

        One pass over all of ``data`` finds them; the few documents touched by
        an occurrence that spans a boundary are searched again on their own,
        so such an occurrence can neither count nor hide one inside a document.
        """
        ids = self.ids
        found = [(m.start(), m.end(), ids[m.group()]) for m in self.pattern.finditer(data)]
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        starts, ends, token_ids = (np.asarray(column, dtype=np.int64) for column in zip(*found))
        first = np.searchsorted(offsets, starts, side="right") - 1
        last = np.searchsorted(offsets, ends - 1, side="right") - 1
        spanning = first != last
        if spanning.any():
            redo = np.union1d(first[spanning], last[spanning])
            keep = ~np.isin(first, redo) & ~np.isin(last, redo)
            extra = [(doc, s, e, i) for doc in redo.tolist()
                     for s, e, i in self.find(data, int(offsets[doc]), int(offsets[doc + 1]))]
            columns = [first[keep], starts[keep], ends[keep], token_ids[keep]]
            if extra:
                columns = [np.concatenate([c, np.asarray(x, dtype=np.int64)]) for c, x in zip(columns, zip(*extra))]
            order = np.argsort(columns[1], kind="stable")
            first, starts, ends, token_ids = (c[order] for c in columns)
        return first, starts, ends, token_ids


def fragments(data: bytes, found: Sequence[Match]) -> Tuple[bytes, np.ndarray]:
    """The text around the occurrences ``found`` in ``data``, packed: ``len(found) + 1``
    fragments (some may be empty) as ``(bytes, offsets)``."""
    parts = []
    pos = 0
    for start, end, _ in found:
        parts.append(data[pos:start])
        pos = end
    parts.append(data[pos:])
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return b"".join(parts), offsets


def special_pattern(tokens: Sequence[str]) -> Optional["re.Pattern[str]"]:
    """The regular expression that finds ``tokens`` in training text (longest
    first), or ``None`` when there are none. Picklable, like its users."""
    ordered = sorted(set(tokens), key=lambda t: (-len(t), t))
    return re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None


def cut_at_special(text: str, pattern: Optional["re.Pattern[str]"]) -> List[str]:
    """The pieces of ``text`` between occurrences of the special tokens that
    ``pattern`` finds (empty pieces left out): training never sees a special
    token, nor text running across one. Cut before normalization, on the
    tokens' own (NFC) text."""
    if pattern is None or not pattern.search(text):
        return [text]
    return [part for part in pattern.split(text) if part]
