"""BytePiece in plain Python: a slow, readable twin of the compiled core.

This module implements the whole algorithm of ALGORITHM.md with nothing but
dictionaries, lists and loops. It is meant to be read, and the test-suite uses
it as the oracle that the fast Cython implementation must agree with.

How BytePiece works, in five paragraphs
---------------------------------------

**Bytes, chunks and pieces.** Text is NFC-normalized, encoded as UTF-8 and cut
into *chunks*: a run of characters that are not newlines, followed by the
newlines that end it. Everything after that works on bytes. A *piece* is a
non-empty byte string from the vocabulary; every one of the 256 single bytes is
a piece, so any byte string can be segmented. Chunks are segmented on their
own: no piece ever crosses a chunk boundary.

**Tokenizing (a Unigram language model).** Every piece has a count, and its
score is ``ln(count / total)``. The best segmentation of a chunk is the one
whose pieces have the largest summed score, i.e. the most probable sequence of
independent draws. A Viterbi pass finds it: walking along the chunk, it keeps,
for every end position, the best score of any segmentation of the prefix that
ends there. An Aho-Corasick automaton lists every vocabulary piece occurring
in the chunk, which are exactly the edges of that dynamic programme. Replacing
"max" by "log-sum-exp" and picking a back pointer at random gives *sampling*:
a segmentation drawn with probability proportional to ``prod p(piece)**alpha``.

**Training, part 1: an n-gram model decides where pieces are.** The trainer
counts every byte n-gram (n <= ``order``) of the corpus and turns the counts
into conditional probabilities ``P(byte | previous bytes)``. It then labels
every byte with a hidden state: "this byte is preceded by k bytes of the same
piece". A new piece starts at state 0. Staying inside a piece for longer uses
longer contexts, which a good n-gram model rewards where bytes really belong
together (frequent words), so a Viterbi pass over these states cuts the corpus
into word-like pieces. Counting those pieces gives a first, huge vocabulary.

**Training, part 2: pruning to the requested size.** Rare and over-long pieces
are dropped and their counts handed to the pieces they split into (using the
Unigram tokenizer built from the remaining counts). Pieces that the tokenizer
would never choose, even for their own bytes, are removed the same way until
nothing changes. Finally only the most frequent pieces are kept for each
requested vocabulary size, and the rest are split into them.

**The other trainer: compression first.** ``train_compress`` at the end of
this module is the readable form of ``Trainer(algorithm="compress")``: its
candidates are all frequent whole-character substrings, ranked by the tokens
they would save; rounds of hard EM (segment the corpus, count what is used)
then drop the pieces whose removal costs the fewest tokens, until the target
size; a last re-count makes the counts what the tokenizer really does.

Exactness matters: the results must match the reference release bit for bit,
so every logarithm is ``np.log`` in float64, sums are formed in a fixed order,
and every tie is broken in a documented way (see the comments marked "Tie").
"""
from __future__ import annotations

import math
import os
import random
from collections import Counter, defaultdict
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import ahocorasick
import numpy as np

from .model_io import load_vocabulary, unigram_scores
from .normalization import normalize

__all__ = [
    "EducationalTokenizer",
    "EducationalTrainer",
    "count_ngrams",
    "prune_ngrams",
    "ngram_segment",
    "count_pieces",
    "split_pieces",
    "remove_wasted_pieces",
    "prune_pieces",
]

NEG_INF = float("-inf")

#: Ids 0, 1 and 2 are reserved for these special tokens; pieces start at 3.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_PIECE_ID = 3


# ---------------------------------------------------------------------------
# Tokenizing (ALGORITHM.md §3, §4, §5, §7)
# ---------------------------------------------------------------------------


class EducationalTokenizer:
    """A Unigram tokenizer over bytes, written for clarity rather than speed.

    ``pieces`` maps every piece (bytes) to its count. Ids are assigned as in a
    model file: pieces sorted by ``(length, bytes)`` get ids 3, 4, 5, ...
    """

    def __init__(self, pieces: Mapping[bytes, int]) -> None:
        ordered = sorted(pieces, key=lambda piece: (len(piece), piece))
        counts = [pieces[piece] for piece in ordered]
        self._build(ordered, counts)

    @classmethod
    def from_model(cls, path_or_dict: Union[str, "os.PathLike[str]", Mapping]) -> "EducationalTokenizer":
        """Load a model file (or its parsed JSON dict), keeping the file's ids."""
        vocabulary = load_vocabulary(path_or_dict)
        if vocabulary.piece_ids is not None:
            raise ValueError("the educational tokenizer numbers pieces 3, 4, ... in order; this model has "
                             "special tokens between its pieces (it was extended after adding them)")
        tokenizer = cls.__new__(cls)
        tokenizer._build(list(vocabulary.pieces), list(vocabulary.counts))
        return tokenizer

    def _build(self, pieces: List[bytes], counts: List[int]) -> None:
        """Set up lookup tables and the automaton; ``pieces[i]`` gets id ``i + 3``."""
        if not pieces:
            raise ValueError("a tokenizer needs at least one piece")
        if any(not isinstance(piece, bytes) or not piece for piece in pieces):
            raise ValueError("pieces must be non-empty bytes")
        if len(set(pieces)) != len(pieces):
            raise ValueError("pieces must be distinct")
        if any(count <= 0 for count in counts):
            raise ValueError("counts must be positive")
        # Unigram scores, ln(count) - ln(total), computed with np.log exactly as
        # the reference does: the scores feed float sums whose ties must match.
        scores = unigram_scores([int(count) for count in counts])

        self.id_to_piece: List[Optional[bytes]] = [None] * FIRST_PIECE_ID + list(pieces)
        self.piece_to_id: Dict[bytes, int] = {
            piece: FIRST_PIECE_ID + index for index, piece in enumerate(pieces)
        }
        self.counts: Dict[bytes, int] = {piece: int(c) for piece, c in zip(pieces, counts)}
        # Keep scores as Python floats (IEEE float64, same values as NumPy's).
        self.scores: Dict[bytes, float] = {
            piece: float(score) for piece, score in zip(pieces, scores)
        }

        # The PyPI build of pyahocorasick works on str, not bytes. Latin-1 maps
        # each byte 0..255 to the character with the same code point, so
        # matching the latin-1 string finds exactly the byte occurrences.
        self._automaton = ahocorasick.Automaton()
        for piece in pieces:
            self._automaton.add_word(piece.decode("latin-1"), (self.piece_to_id[piece], len(piece)))
        self._automaton.make_automaton()

    def __len__(self) -> int:
        """Vocabulary size, the three special tokens included."""
        return len(self.id_to_piece)

    # -- the edges of the dynamic programme ---------------------------------

    def matches(self, chunk: bytes) -> List[Tuple[int, int, int]]:
        """Every vocabulary occurrence ``chunk[start:end]`` as ``(start, end, id)``.

        Ordered by ``end`` ascending, then ``start`` ascending (so, for the same
        end, the longest piece comes first). Viterbi visits them in this order,
        and that order decides ties (ALGORITHM.md §4).
        """
        found = []
        for last_index, (piece_id, length) in self._automaton.iter(chunk.decode("latin-1")):
            end = last_index + 1
            found.append((end - length, end, piece_id))
        # The automaton already reports them in this order; sorting states the
        # contract explicitly instead of relying on an implementation detail.
        found.sort(key=lambda match: (match[1], match[0]))
        return found

    # -- deterministic segmentation ------------------------------------------

    def viterbi(self, chunk: bytes) -> List[bytes]:
        """The highest-scoring segmentation of ``chunk`` (ALGORITHM.md §4).

        ``best[e]`` is the best total score of a segmentation of ``chunk[:e]``
        and ``back[e]`` the start of its last piece.
        """
        n = len(chunk)
        if n == 0:
            return []
        best = [0.0] + [NEG_INF] * n
        back = [0] * (n + 1)
        for start, end, piece_id in self.matches(chunk):
            candidate = best[start] + self.scores[self.id_to_piece[piece_id]]
            # Tie: strictly greater. The occurrence seen first wins a tie, and
            # for one end the longest piece is seen first: ties keep the
            # longest last piece.
            if candidate > best[end]:
                best[end] = candidate
                back[end] = start
        if best[n] == NEG_INF:
            raise ValueError(f"{chunk!r} cannot be segmented with this vocabulary")
        return self._walk_back(chunk, back)

    @staticmethod
    def _walk_back(chunk: bytes, back: List[int]) -> List[bytes]:
        """Follow back pointers from the end of ``chunk`` to its start."""
        pieces = []
        end = len(chunk)
        while end > 0:
            start = back[end]
            pieces.append(chunk[start:end])
            end = start
        pieces.reverse()
        return pieces

    # -- random segmentation (subword regularization) ------------------------

    def sample(self, chunk: bytes, alpha: float, rng: random.Random) -> List[bytes]:
        """Draw a segmentation with probability proportional to ``prod p(piece)**alpha``.

        ALGORITHM.md §5. Now ``best[e]`` is the log of the *sum* over all
        segmentations of ``chunk[:e]`` of their weights. Each new occurrence
        ending at ``e`` adds its weight ``w`` to that sum and becomes the back
        pointer with probability ``exp(w - best[e])`` (its share of the new
        sum). This is reservoir sampling: after all occurrences ending at
        ``e`` are seen, each one holds the pointer with probability equal to
        its share of the total, so walking back draws a complete segmentation
        with exactly the right probability.
        """
        if alpha < 0:
            raise ValueError("sampling needs alpha >= 0 (alpha < 0 means deterministic)")
        n = len(chunk)
        if n == 0:
            return []
        best = [0.0] + [NEG_INF] * n
        back = [0] * (n + 1)
        for start, end, piece_id in self.matches(chunk):
            weight = best[start] + alpha * self.scores[self.id_to_piece[piece_id]]
            best[end] = float(np.logaddexp(best[end], weight))
            # The first reachable occurrence always takes the pointer
            # (exp(0) = 1). An unreachable one (weight -inf) gives NaN here,
            # and "random() < NaN" is False: it never takes the pointer.
            if rng.random() < math.exp(weight - best[end]):
                back[end] = start
        if best[n] == NEG_INF:
            raise ValueError(f"{chunk!r} cannot be segmented with this vocabulary")
        return self._walk_back(chunk, back)

    # -- whole texts ----------------------------------------------------------

    def tokenize(
        self,
        text: Union[str, bytes],
        alpha: float = -1,
        rng: Optional[random.Random] = None,
    ) -> List[bytes]:
        """Cut ``text`` into chunks and segment each one.

        ``str`` is NFC-normalized first; ``bytes`` are taken as they are but
        still cut into chunks at newline runs. ``alpha < 0`` is deterministic
        (Viterbi); ``alpha >= 0`` samples, using ``rng`` (or a fresh
        ``random.Random()``).
        """
        if alpha >= 0 and rng is None:
            rng = random.Random()
        pieces: List[bytes] = []
        for chunk in normalize(text):
            if alpha < 0:
                pieces.extend(self.viterbi(chunk))
            else:
                pieces.extend(self.sample(chunk, alpha, rng))
        return pieces

    def encode(
        self,
        text: Union[str, bytes],
        add_bos: bool = False,
        add_eos: bool = False,
        alpha: float = -1,
        rng: Optional[random.Random] = None,
    ) -> List[int]:
        """The ids of ``tokenize(text)``, optionally framed by <bos> and <eos>."""
        ids = [self.piece_to_id[piece] for piece in self.tokenize(text, alpha, rng)]
        if add_bos:
            ids.insert(0, BOS_ID)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Join the pieces of ``ids`` (special tokens skipped) and decode UTF-8.

        Invalid UTF-8 (for instance a character cut in the middle by sampling
        a prefix of the ids) is dropped, as the reference does.
        """
        data = bytearray()
        for piece_id in ids:
            if not 0 <= piece_id < len(self.id_to_piece):
                raise ValueError(f"id {piece_id} is out of range 0..{len(self.id_to_piece) - 1}")
            if piece_id >= FIRST_PIECE_ID:
                data += self.id_to_piece[piece_id]
        return bytes(data).decode("utf-8", errors="ignore")

    # -- exhaustive helpers for tests ----------------------------------------

    def segmentations(self, chunk: bytes) -> List[List[bytes]]:
        """Every segmentation of ``chunk`` into vocabulary pieces.

        Exponential in the chunk length: for tests on short chunks only.
        """
        if not chunk:
            return [[]]
        result = []
        for length in range(1, len(chunk) + 1):
            head = chunk[:length]
            if head in self.scores:
                for rest in self.segmentations(chunk[length:]):
                    result.append([head] + rest)
        return result

    def segmentation_logprob(self, pieces: Sequence[bytes], alpha: float = 1.0) -> float:
        """``alpha * sum(score(piece))``: the unnormalized log-weight of a segmentation.

        Sampling draws a segmentation with probability proportional to
        ``exp`` of this value; with ``alpha = 1`` it is the Viterbi score.
        """
        return alpha * sum(self.scores[piece] for piece in pieces)


# ---------------------------------------------------------------------------
# Training (ALGORITHM.md §6)
# ---------------------------------------------------------------------------


def count_ngrams(chunks: Iterable[bytes], order: int) -> List[Dict[bytes, int]]:
    """§6.1: ``tables[j][g]`` = how often the byte string ``g`` starts a slice of length ``j``.

    For every position ``i`` of every chunk and every ``j`` in ``0..order``,
    ``chunk[i:i+j]`` is counted in table ``j``. Near the end of a chunk the
    slice is shorter than ``j``; those short keys are thrown away later, in
    :func:`prune_ngrams`. Table 0 ends up counting the empty string once per
    byte, i.e. it holds the total number of bytes.
    """
    tables: List[Dict[bytes, int]] = [defaultdict(int) for _ in range(order + 1)]
    for chunk in chunks:
        for i in range(len(chunk)):
            for j in range(order + 1):
                tables[j][chunk[i : i + j]] += 1
    return [dict(table) for table in tables]


def _log(count: Union[int, float]) -> float:
    """Natural log as the reference computes it: ``np.log`` in float64."""
    return float(np.log(np.float64(count)))


def prune_ngrams(tables: List[Dict[bytes, int]], min_count: int) -> List[Dict[bytes, float]]:
    """§6.2: turn n-gram counts into conditional log-probabilities.

    Afterwards ``result[j][g]`` (``len(g) == j >= 1``) is
    ``ln P(last byte of g | its first j-1 bytes)``; rare n-grams (count below
    ``min_count``) are gone, except single bytes, which are all kept. The
    input tables are not modified.
    """
    order = len(tables) - 1
    counts = [dict(table) for table in tables]
    # Every byte must be able to start a piece: give unseen bytes a count of 1
    # (and add them to the total in table 0, which is the denominator of P(byte)).
    counts[0].setdefault(b"", 0)
    if order >= 1:
        for byte in range(256):
            key = bytes([byte])
            if key not in counts[1]:
                counts[1][key] = 1
                counts[0][b""] += 1

    logs: List[Dict[bytes, float]] = [{} for _ in range(order + 1)]
    for j in range(order, -1, -1):
        # Keep n-grams of the exact length j that are frequent enough (all of
        # them for j <= 1), as log counts.
        logs[j] = {
            gram: _log(count)
            for gram, count in counts[j].items()
            if len(gram) == j and (j <= 1 or count >= min_count)
        }
        # Table j+1 holds log counts still; dividing by the count of the
        # (j-byte) context makes them conditional. The context is always
        # present: it occurs at least as often as any of its extensions.
        if j < order:
            logs[j + 1] = {
                gram: value - logs[j][gram[:j]] for gram, value in logs[j + 1].items()
            }
    return logs


def ngram_segment(
    chunk: bytes,
    tables: List[Dict[bytes, float]],
    order: int,
    ensure_unicode: bool = True,
) -> List[bytes]:
    """§6.3: cut one chunk into pieces with the n-gram model (a hidden-state Viterbi).

    State ``k`` at byte ``i`` means "byte ``i`` is preceded by ``k`` bytes of
    its own piece" (state ``order-1`` also stands for any longer run). Being
    in state ``k`` costs the log-probability of byte ``i`` given the ``k``
    previous bytes, so long pieces need n-grams that the model knows well.
    From state ``a`` one may go to 0 (start a new piece) or to
    ``min(a+1, order-1)`` (continue the piece), at no cost.

    Tie-breaking follows a matrix formulation: the back pointer of state ``b``
    at byte ``i`` is the *first* ``a`` in ``0..order-1`` maximizing
    ``v[i-1][a] + move(a, b) + node[i][b]``, where a forbidden move costs
    ``-inf``. When everything is ``-inf`` (``node[i][b]`` itself is ``-inf``,
    or no allowed predecessor is reachable) all candidates tie and the back
    pointer is ``0``, *even if the move from 0 is not allowed*. Likewise the
    final state is the first state with the largest value, so 0 when all are
    ``-inf``. Consequence: once some byte has every state at ``-inf``, the
    whole rest of the chunk walks back through state 0 and becomes single
    bytes, and so does the byte before that byte (and further back while the
    state-0 value stays ``-inf``, e.g. across UTF-8 continuation bytes under
    ``ensure_unicode``). The reference vocabularies depend on exactly this.
    """
    n = len(chunk)
    if n == 0:
        return []

    # Emission scores: node[i][k] = ln P(chunk[i] | the k bytes before it).
    node = [[NEG_INF] * order for _ in range(n)]
    for i in range(n):
        for k in range(order):
            if i >= k:
                node[i][k] = tables[k + 1].get(chunk[i - k : i + 1], NEG_INF)
        # A UTF-8 continuation byte (0b10xxxxxx) may not start a piece, so
        # pieces never cut a character in two.
        if ensure_unicode and 0x80 <= chunk[i] <= 0xBF:
            node[i][0] = NEG_INF

    def move_allowed(a: int, b: int) -> bool:
        return b == 0 or b == min(a + 1, order - 1)

    # Forward pass. value[b] = best log-probability of the chunk's first i+1
    # bytes ending in state b; back[i][b] = the state at byte i-1 on that path.
    value = list(node[0])
    back: List[List[int]] = [[0] * order for _ in range(n)]
    for i in range(1, n):
        new_value = [NEG_INF] * order
        for b in range(order):
            best_a = 0
            best_total = NEG_INF
            for a in range(order):
                move = 0.0 if move_allowed(a, b) else NEG_INF
                total = value[a] + move + node[i][b]
                # Tie: strictly greater, so the smallest a wins; if every
                # total is -inf, best_a stays 0.
                if total > best_total:
                    best_total = total
                    best_a = a
            new_value[b] = best_total
            back[i][b] = best_a
        value = new_value

    # Final state: the first state with the largest value (0 if all are -inf).
    state = 0
    for b in range(order):
        if value[b] > value[state]:
            state = b

    # Backward pass: recover the state of every byte.
    states = [0] * n
    for i in range(n - 1, -1, -1):
        states[i] = state
        state = back[i][state]

    # A piece starts wherever the state is 0. Byte 0 is always in state 0:
    # its other states are -inf (no bytes precede it) and ties resolve to 0.
    assert states[0] == 0
    starts = [i for i in range(n) if states[i] == 0] + [n]
    return [chunk[s:e] for s, e in zip(starts, starts[1:])]


def count_pieces(
    chunks: Iterable[bytes],
    tables: List[Dict[bytes, float]],
    order: int,
    ensure_unicode: bool = True,
) -> Dict[bytes, int]:
    """§6.3: segment every chunk with the n-gram model and count the pieces."""
    counts: Dict[bytes, int] = defaultdict(int)
    for chunk in chunks:
        for piece in ngram_segment(chunk, tables, order, ensure_unicode):
            counts[piece] += 1
    return dict(counts)


def split_pieces(keep: Mapping[bytes, int], items: Mapping[bytes, int]) -> Dict[bytes, int]:
    """§6.4 ``split``: re-segment each item with the tokenizer of ``keep``.

    Builds a Unigram tokenizer from the counts in ``keep``; every
    ``(piece, count)`` of ``items`` is segmented as a raw byte string (one
    chunk, no normalization) and ``count`` is added to each resulting piece.
    Returns only those sums (a piece of ``keep`` that is never produced is
    absent).
    """
    tokenizer = EducationalTokenizer(keep)
    sums: Dict[bytes, int] = defaultdict(int)
    for piece, count in items.items():
        for part in tokenizer.viterbi(piece):
            sums[part] += count
    return dict(sums)


def _add_counts(a: Mapping[bytes, int], b: Mapping[bytes, int]) -> Dict[bytes, int]:
    """The sum of two ``{piece: count}`` tables."""
    total = dict(a)
    for piece, count in b.items():
        total[piece] = total.get(piece, 0) + count
    return total


def remove_wasted_pieces(keep: Mapping[bytes, int]) -> Dict[bytes, int]:
    """§6.4 step 3: ``keep = split(keep, keep)`` until the number of pieces is stable.

    A piece that the tokenizer does not choose even for its own bytes can
    never appear in any output: it disappears and its count goes to the
    pieces it splits into. Removing it changes the total and so the scores,
    which can make further pieces wasted; hence the loop.
    """
    keep = dict(keep)
    while True:
        size = len(keep)
        keep = split_pieces(keep, keep)
        if len(keep) == size:
            return keep


def prune_pieces(
    pieces: Mapping[bytes, int],
    sizes: Union[int, Sequence[int]],
    max_piece_length: int = 36,
    min_count: int = 2,
) -> Dict[int, Dict[bytes, int]]:
    """§6.4 steps 1-4: shrink the raw piece counts to each requested vocabulary size.

    Returns ``{size: {piece: count}}``. ``size`` counts the three special
    tokens, so a result holds at most ``size - 3`` pieces.
    """
    if isinstance(sizes, int):
        sizes = [sizes]
    keep = dict(pieces)

    # Step 1: every single byte is a piece, even one the corpus never had.
    for byte in range(256):
        keep.setdefault(bytes([byte]), 1)

    # Step 2: drop rare and over-long pieces, handing their counts to the
    # pieces they split into.
    kept = {
        piece: count
        for piece, count in keep.items()
        if len(piece) == 1 or (len(piece) <= max_piece_length and count >= min_count)
    }
    dropped = {piece: count for piece, count in keep.items() if piece not in kept}
    keep = _add_counts(kept, split_pieces(kept, dropped))

    # Step 3: remove pieces the tokenizer would never choose.
    keep = remove_wasted_pieces(keep)

    # Step 4: one vocabulary per size, largest first, each continuing from
    # the previous one.
    results: Dict[int, Dict[bytes, int]] = {}
    for size in sorted(sizes, reverse=True):
        if len(keep) > size - 3:
            # Single bytes first (they must stay), then by descending count;
            # Tie: among equal counts longer pieces first, then by bytes.
            ranked = sorted(
                keep.items(),
                key=lambda item: (len(item[0]) > 1, -item[1], -len(item[0]), item[0]),
            )
            stay = dict(ranked[: size - 3])
            leave = dict(ranked[size - 3 :])
            keep = _add_counts(stay, split_pieces(stay, leave))
            keep = remove_wasted_pieces(keep)
        results[size] = dict(keep)
    return results


class EducationalTrainer:
    """Learn BytePiece vocabularies from an iterable of ``str`` (ALGORITHM.md §6).

    Slow (pure Python) but easy to follow: :meth:`train` is a direct chain of
    the functions above.
    """

    def __init__(
        self,
        order: int = 6,
        max_vocab_size: Union[int, Sequence[int]] = 10000,
        max_piece_length: int = 36,
        min_count: int = 2,
        isolate_digits: bool = False,
        ensure_unicode: bool = True,
    ) -> None:
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        sizes = [max_vocab_size] if isinstance(max_vocab_size, int) else list(max_vocab_size)
        if not sizes or any(size < 256 + 3 for size in sizes):
            raise ValueError(
                f"max_vocab_size must be at least 259 (256 bytes + 3 special tokens), got {max_vocab_size!r}"
            )
        self.order = order
        self.sizes = sizes
        self.max_piece_length = max_piece_length
        self.min_count = min_count
        self.isolate_digits = isolate_digits
        self.ensure_unicode = ensure_unicode

    def _chunks(self, texts: Iterable[str]) -> Iterator[bytes]:
        """One pass over the corpus, normalized for training (``maxlen=10000``)."""
        for text in texts:
            yield from normalize(text, maxlen=10000, isolate_digits=self.isolate_digits)

    def train(self, texts: Iterable[str]) -> Dict[int, Dict[bytes, int]]:
        """Return ``{vocab_size: {piece: count}}`` for every requested size.

        ``texts`` is read twice, so it must be re-iterable (a list, or an
        object whose ``__iter__`` starts over); a one-shot iterator such as a
        generator is rejected rather than silently giving a wrong model.
        """
        if iter(texts) is texts:
            raise TypeError(
                "texts must be re-iterable (it is read twice): got a one-shot "
                f"iterator ({type(texts).__name__}); pass a list or an object "
                "whose __iter__ returns a fresh iterator"
            )
        # §6.1-6.2: the byte n-gram model.
        tables = prune_ngrams(count_ngrams(self._chunks(texts), self.order), self.min_count)
        # §6.3: the n-gram model cuts the corpus into pieces.
        pieces = count_pieces(self._chunks(texts), tables, self.order, self.ensure_unicode)
        # §6.4: prune to the requested sizes.
        return prune_pieces(pieces, self.sizes, self.max_piece_length, self.min_count)


# ===========================================================================
# The compression-first trainer (``Trainer(algorithm="compress")``)
# ===========================================================================
#
# The reference trainer above takes its candidates from the n-gram model's
# segmentation and cuts by raw count. This one aims straight at the number of
# tokens the finished tokenizer will produce:
#
# 1. Candidates: every substring of a training chunk that is made of whole
#    characters, 2..max_piece_length bytes, seen at least min_count times.
#    The best by count * (length - 1) -- the tokens the substring would save
#    if every occurrence became one token -- are kept, plus all 256 single
#    bytes and the most frequent characters (never pruned: they keep unseen
#    text compressible).
# 2. Hard EM and pruning, until the target size: segment the corpus with the
#    current vocabulary exactly as the tokenizer will (§4) and let every
#    piece's count be how often it is used; drop unused pieces; a piece is
#    worth (uses - discount) * (split_cost - 1) tokens, where split_cost is
#    what Viterbi spends on the piece's bytes without the piece; drop the
#    least valuable share.
# 3. A final hard-EM re-count so the saved counts are what the tokenizer does.
#
# The compiled version (bytepiece/compress.py) follows these steps; the tests
# hold each step equal to it (candidates, hard-EM counts, split costs). It
# breaks ties between equally good candidates by their position in a suffix
# array, which this version does not try to imitate.


def is_character_start(byte: int) -> bool:
    """True unless ``byte`` is a UTF-8 continuation byte (0x80-0xBF)."""
    return (byte & 0xC0) != 0x80


def compress_candidates(chunks: Mapping[bytes, int], max_len: int, min_count: int,
                        top_k: int) -> Dict[bytes, int]:
    """Substrings of whole characters, 2..``max_len`` bytes, with their weighted
    counts (``chunks`` maps each distinct chunk to how often it occurs); the
    ``top_k`` with the largest ``count * (length - 1)``."""
    counts: Counter = Counter()
    for chunk, weight in chunks.items():
        boundaries = [i for i in range(len(chunk)) if is_character_start(chunk[i])] + [len(chunk)]
        is_boundary = set(boundaries)
        for start in boundaries[:-1]:
            for end in range(start + 2, min(len(chunk), start + max_len) + 1):
                if end in is_boundary:
                    counts[chunk[start:end]] += weight
    kept = [(piece, count) for piece, count in counts.items() if count >= min_count]
    kept.sort(key=lambda item: (-item[1] * (len(item[0]) - 1), -len(item[0]), item[0]))
    return dict(kept[:top_k])


def hard_em_counts(vocabulary: Mapping[bytes, int], chunks: Mapping[bytes, int]) -> Counter:
    """How often the §4 Viterbi with this vocabulary uses each piece on the corpus."""
    tokenizer = EducationalTokenizer(vocabulary)
    uses: Counter = Counter()
    for chunk, weight in chunks.items():
        for piece in tokenizer.viterbi(chunk):
            uses[piece] += weight
    return uses


def split_cost(tokenizer: "EducationalTokenizer", piece: bytes) -> int:
    """Tokens the §4 Viterbi spends on ``piece``'s bytes when ``piece`` itself
    is not available (the other pieces inside its span only)."""
    n = len(piece)
    best = [0.0] + [NEG_INF] * n
    tokens = [0] * (n + 1)
    for start, end, piece_id in tokenizer.matches(piece):
        if start == 0 and end == n:
            continue  # the piece itself
        candidate = best[start] + tokenizer.scores[tokenizer.id_to_piece[piece_id]]
        if candidate > best[end]:
            best[end] = candidate
            tokens[end] = tokens[start] + 1
    return tokens[n]


def train_compress(texts: Iterable[str], max_vocab_size, max_piece_length: int = 16,
                   min_count: int = 2, prune_fraction: float = 0.15, discount: float = 8.0,
                   num_candidates: Optional[int] = None,
                   final_rounds: int = 4) -> Dict[int, Dict[bytes, int]]:
    """The compression-first trainer, slow and plain: ``{size: {piece: count}}``."""
    sizes = sorted([max_vocab_size] if isinstance(max_vocab_size, int) else max_vocab_size,
                   reverse=True)
    chunks: Counter = Counter()
    for text in texts:
        chunks.update(normalize(text, maxlen=10000))
    if num_candidates is None:
        num_candidates = max(100000, 20 * sizes[0])

    # Step 1: candidates, single bytes, protected characters.
    byte_counts: Counter = Counter()
    char_counts: Counter = Counter()
    for chunk, weight in chunks.items():
        for byte in chunk:
            byte_counts[byte] += weight
        for char in chunk.decode("utf-8"):
            if ord(char) >= 0x80:
                char_counts[char.encode("utf-8")] += weight
    vocabulary: Dict[bytes, int] = {bytes([b]): max(byte_counts[b], 1) for b in range(256)}
    vocabulary.update(compress_candidates(chunks, max_piece_length, min_count, num_candidates))
    protected = set(vocabulary) & {bytes([b]) for b in range(256)}
    budget = (sizes[-1] - 3 - 256) // 2
    frequent = sorted((c for c in char_counts if len(c) <= max_piece_length),
                      key=lambda c: (-char_counts[c], c))[:budget]
    for char in frequent:
        vocabulary.setdefault(char, char_counts[char])
        protected.add(char)

    def recount(vocabulary: Dict[bytes, int]) -> Dict[bytes, int]:
        """One hard-EM step; unused pieces leave unless protected."""
        uses = hard_em_counts(vocabulary, chunks)
        return {p: max(uses[p], 1) for p in vocabulary if uses[p] > 0 or p in protected}

    results: Dict[int, Dict[bytes, int]] = {}
    for size in sizes:
        target = size - 3
        # Step 2: prune by tokens saved until the target size.
        while True:
            vocabulary = recount(vocabulary)
            if len(vocabulary) <= target:
                break
            prunable = [p for p in vocabulary if p not in protected]
            fraction = prune_fraction * 2 if len(vocabulary) > 1.5 * target else prune_fraction
            n_drop = min(max(1, math.ceil(fraction * len(prunable))), len(vocabulary) - target)
            tokenizer = EducationalTokenizer(vocabulary)
            worth = {p: (vocabulary[p] - discount) * (split_cost(tokenizer, p) - 1) for p in prunable}
            # least valuable first; among equals the longer piece goes first
            for piece in sorted(prunable, key=lambda p: (worth[p], -len(p)))[:n_drop]:
                del vocabulary[piece]
        # Step 3: re-count until no piece falls out of use.
        for _ in range(final_rounds):
            settled = recount(vocabulary)
            if len(settled) == len(vocabulary):
                vocabulary = settled
                break
            vocabulary = settled
        results[size] = dict(vocabulary)
    return results
