"""The public tokenizer: a thin Python face over the compiled core.

``Tokenizer`` keeps the reference BytePiece names (``tokenize``, ``encode``,
``decode``, ``piece_to_id``, ...) and adds what pipelines need: bytes input,
seeded subword sampling, multi-threaded ``encode_batch`` and NumPy output.
All segmentation happens in :mod:`bytepiece._core` with the GIL released.
"""
from __future__ import annotations

import builtins
import dataclasses
import os
import random
import threading
from typing import AbstractSet, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _core, lattice
from .model_io import (SPECIAL_TOKENS, Vocabulary, check_new_special_tokens, load_vocabulary,
                       save_vocabulary)
from .normalization import nfc_utf8
from .special import SpecialMatcher, fragments

__all__ = ["Tokenizer"]

TextLike = Union[str, bytes, bytearray, memoryview]
AllowedSpecial = Union[str, AbstractSet[str], Sequence[str], None]
_UINT64 = (1 << 64) - 1


def _as_bytes(text: TextLike) -> bytes:
    """UTF-8 of the NFC form of ``text``; bytes are taken as they are."""
    if type(text) is str:
        return _core.str_nfc_utf8(text, nfc_utf8)
    if isinstance(text, str):
        return nfc_utf8(text)
    if isinstance(text, bytes):
        return text
    if isinstance(text, (bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"text must be str or bytes, got {type(text).__name__}")


def _check_seed(seed: Optional[int], name: str = "seed") -> Optional[int]:
    if seed is None:
        return None
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"{name} must be an int or None, got {type(seed).__name__}")
    return int(seed) & _UINT64


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if alpha != alpha or alpha == float("inf"):
        raise ValueError(f"alpha must be finite (negative means deterministic), got {alpha}")
    return alpha


_OUT_TYPES = {list: 0, "list": 0, np.ndarray: 2, "numpy": 2}


class Tokenizer:
    """A byte-level Unigram tokenizer loaded from a BytePiece model.

    ``Tokenizer(model, seed=None)``: ``model`` is the path of a model file or
    the already-parsed JSON dict. ``seed`` seeds the stream of random draws
    used by sampling calls that do not pass a seed of their own.

    Text is NFC-normalized, UTF-8 encoded and cut into chunks at newline runs
    (ALGORITHM.md §1); each chunk is segmented by Viterbi (``alpha < 0``) or
    sampled with probability proportional to ``prod(p ** alpha)``. Ids 0, 1, 2
    are ``<pad>``, ``<bos>``, ``<eos>``; added special tokens (see
    :attr:`special_tokens`) have the ids the model file gives them.

    Special-token text in the input is ordinary text unless the encoding call
    allows it (``allowed_special="all"`` or a set of texts): then each
    occurrence becomes that token's single id.

    A ``Tokenizer`` is immutable apart from its seed stream and
    :meth:`add_special_tokens`, and may be shared between threads; it pickles
    without re-reading the model file.
    """

    def __init__(self, model: Union[str, "os.PathLike[str]", Mapping], seed: Optional[int] = None):
        self._init_from(load_vocabulary(model), seed)
        #: The model file read, if any: exports refuse to overwrite it.
        self._source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None

    def _init_from(self, vocab: Vocabulary, seed: Optional[int], segmenter=None) -> None:
        self._segmenter = segmenter or _core.Segmenter(vocab.pieces, vocab.scores, check=False)
        self._set_vocab(vocab)
        self._rng_lock = threading.Lock()
        self.set_seed(seed)

    def _set_vocab(self, vocab: Vocabulary) -> None:
        """The lookup tables of ``vocab`` (whose pieces the segmenter holds)."""
        self._vocab = vocab
        size = vocab.size
        table: List = [None] * size
        table[:3] = SPECIAL_TOKENS
        piece_ids = vocab.ids()
        for i, piece in zip(piece_ids.tolist(), vocab.pieces):
            table[i] = piece
        special: Dict[str, int] = {name: i for i, name in enumerate(SPECIAL_TOKENS)}
        for text, i in vocab.special_tokens:
            table[i] = text
            special[text] = i
        self._id_to_piece: List = table
        self._special = special
        # Byte length of every id, special tokens counting their text (the
        # span they cover in text encoded with special tokens allowed).
        self._lengths = np.fromiter((len(p.encode("utf-8")) if isinstance(p, str) else len(p)
                                     for p in table), dtype=np.int64, count=size)
        self._piece_to_id = {p: i for i, p in enumerate(table)}
        # What decode joins: nothing for <pad> <bos> <eos>, the text of added special tokens.
        self._decode_table = [b"", b"", b""] + [p.encode("utf-8") if isinstance(p, str) else p
                                                for p in table[3:]]
        self._scores = np.zeros(size, dtype=np.float64)
        self._scores[piece_ids] = vocab.scores
        # The int of every id, built once: id lists hold these (a tuple: the
        # compiled core relies on it staying unchanged while it works).
        self._ids = tuple(range(size))
        # The core numbers pieces 3, 4, ... in the order of vocab.pieces; when
        # special tokens sit between pieces, _remap turns its ids into ours.
        if vocab.piece_ids is None:
            self._remap: Optional[np.ndarray] = None
            self._core_ids = self._ids
        else:
            self._remap = np.concatenate([np.arange(3), piece_ids]).astype(np.int32)
            self._core_ids = tuple(self._remap.tolist())
        self._core_pieces: List = list(SPECIAL_TOKENS) + vocab.pieces
        self._matchers: Dict[frozenset, SpecialMatcher] = {}

    # -- pickling -----------------------------------------------------------

    def __getstate__(self):
        # The compiled trie is pickled as raw cells: unpickling copies memory
        # instead of re-reading JSON and rebuilding (see _core.Segmenter).
        return {"vocab": self._vocab, "seed": self._seed, "segmenter": self._segmenter,
                "source": self._source}

    def __setstate__(self, state):
        self._init_from(state["vocab"], state["seed"], state.get("segmenter"))
        self._source = state.get("source")

    # -- seeds ----------------------------------------------------------------

    def set_seed(self, seed: Optional[int]) -> None:
        """Restart the stream of seeds used by sampling calls without ``seed=``.

        ``None`` seeds from the operating system (not reproducible).
        """
        seed = _check_seed(seed)
        self._seed = seed
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "little"))

    def next_seed(self) -> int:
        """Draw the next 64-bit seed from this tokenizer's seed stream (the one
        sampling calls without ``seed=`` use). Thread-safe."""
        return self._call_seed(None)

    def _call_seed(self, seed: Optional[int]) -> int:
        seed = _check_seed(seed)
        if seed is not None:
            return seed
        with self._rng_lock:
            return self._rng.getrandbits(64)

    # -- vocabulary -----------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids: the pieces plus the special tokens."""
        return len(self._id_to_piece)

    @property
    def special_tokens(self) -> Dict[str, int]:
        """``{text: id}`` of every special token: ``<pad> <bos> <eos>`` (ids
        0-2) and the added ones."""
        return dict(self._special)

    def add_special_tokens(self, tokens: Iterable[str]) -> List[int]:
        """Add special tokens with the ids after the last one; returns their ids.

        Pieces and existing ids do not change. Raises ``ValueError`` naming a
        token that is empty, longer than a piece may be, not NFC, listed twice,
        already a special token, or identical to a learned piece. Not to be
        called while other threads encode with this tokenizer. :meth:`save`
        writes the result.
        """
        new = check_new_special_tokens(tokens, self._special, self._piece_to_id)
        first = self._vocab.size
        added = tuple((text, first + k) for k, text in enumerate(new))
        self._set_vocab(dataclasses.replace(self._vocab,
                                            special_tokens=self._vocab.special_tokens + added))
        return [i for _, i in added]

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write this vocabulary, special tokens included, as a model file
        (atomically). Every id is kept."""
        save_vocabulary(self._vocab, path)

    def _matcher(self, allowed_special: AllowedSpecial) -> Optional[SpecialMatcher]:
        """The matcher of the allowed special tokens, ``None`` when none is allowed."""
        if allowed_special is None:
            return None
        if isinstance(allowed_special, str):
            if allowed_special != "all":
                raise ValueError(f'allowed_special must be "all" or a set of special tokens, '
                                 f'got the string {allowed_special!r}')
            key = frozenset(self._special)
        else:
            try:
                key = frozenset(allowed_special)
            except TypeError:
                raise TypeError('allowed_special must be "all", a set of special tokens or None, '
                                f'got {type(allowed_special).__name__}') from None
            if not key:
                return None
        matcher = self._matchers.get(key)
        if matcher is None:
            unknown = [t for t in key if t not in self._special]
            if unknown:
                raise ValueError(f"allowed_special: {sorted(map(repr, unknown))[0]} is not a special "
                                 "token of this vocabulary")
            matcher = self._matchers[key] = SpecialMatcher({t: self._special[t] for t in key})
        return matcher

    def _model_ids(self, ids: np.ndarray) -> np.ndarray:
        """Our ids of int32 core ids."""
        return ids if self._remap is None else self._remap[ids]

    @property
    def max_piece_length(self) -> int:
        """Length in bytes of the longest piece."""
        return self._segmenter.max_piece_length

    def piece_to_id(self, piece: Union[bytes, str]) -> int:
        """Id of a piece (bytes) or of a special token name such as ``'<bos>'``."""
        try:
            return self._piece_to_id[piece]
        except KeyError:
            raise ValueError(f"{piece!r} is not in the vocabulary") from None
        except TypeError:
            raise TypeError(f"piece must be bytes or str, got {type(piece).__name__}") from None

    def id_to_piece(self, id: int) -> Union[bytes, str]:
        """The piece (bytes) of an id; the name (str) for ids 0-2."""
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            raise TypeError(f"id must be an int, got {type(id).__name__}")
        if not 0 <= id < len(self._id_to_piece):
            raise ValueError(f"id {id} is out of range (vocabulary has ids 0..{len(self._id_to_piece) - 1})")
        return self._id_to_piece[id]

    def pieces_to_ids(self, pieces: Iterable[Union[bytes, str]]) -> List[int]:
        """``piece_to_id`` of each piece."""
        return [self.piece_to_id(p) for p in pieces]

    def ids_to_pieces(self, ids: Iterable[int]) -> List[Union[bytes, str]]:
        """``id_to_piece`` of each id."""
        return [self.id_to_piece(i) for i in ids]

    # -- encoding -------------------------------------------------------------

    def tokenize(self, text: TextLike, alpha: float = -1, iter: bool = False,
                 seed: Optional[int] = None, allowed_special: AllowedSpecial = None):
        """Split ``text`` into pieces (bytes).

        ``alpha < 0``: the most probable segmentation (Viterbi). ``alpha >= 0``:
        a random segmentation with probability proportional to
        ``prod(p(piece) ** alpha)``; ``seed`` makes it reproducible.
        ``b"".join(tokenize(x))`` equals the NFC UTF-8 of ``x`` (or ``x`` itself
        for bytes). ``iter=True`` returns an iterator instead of a list.
        ``allowed_special`` (``"all"`` or a set of texts): each occurrence of
        those special tokens is one piece, its text as ``str`` (as
        :meth:`id_to_piece` gives it).
        """
        data = _as_bytes(text)
        alpha = _check_alpha(alpha)
        call_seed = self._call_seed(seed) if alpha >= 0 else 0
        matcher = self._matcher(allowed_special)
        found = matcher.find(data) if matcher is not None else None
        if found:
            table = self._id_to_piece
            pieces = [table[i] for i in self._encode_special(data, found, alpha, call_seed, False, False)]
        else:
            pieces = self._segmenter.encode_bytes(data, alpha, call_seed, False, False, 0, self._core_pieces)
        return builtins.iter(pieces) if iter else pieces

    def encode(self, text: TextLike, add_bos: bool = False, add_eos: bool = False,
               alpha: float = -1, iter: bool = False, seed: Optional[int] = None,
               out_type=list, allowed_special: AllowedSpecial = None):
        """Token ids of ``text`` (see :meth:`tokenize`), optionally framed by
        ``<bos>`` (1) and ``<eos>`` (2). ``out_type=np.ndarray`` (or ``"numpy"``)
        returns an int32 array.

        Special-token text is ordinary text by default, so untrusted input
        never yields a special id. ``allowed_special="all"`` (every token of
        :attr:`special_tokens`) or a set of special-token texts makes each
        occurrence of those one id; the text between them is encoded as
        usual, and sampling never splits them.
        """
        data = _as_bytes(text)
        alpha = _check_alpha(alpha)
        kind = self._out_kind(out_type)
        call_seed = self._call_seed(seed) if alpha >= 0 else 0
        matcher = self._matcher(allowed_special)
        found = matcher.find(data) if matcher is not None else None
        if found:
            ids = self._encode_special(data, found, alpha, call_seed, bool(add_bos), bool(add_eos))
            ids = ids if kind == 2 else ids.tolist()
        else:
            ids = self._segmenter.encode_bytes(data, alpha, call_seed, bool(add_bos), bool(add_eos),
                                               kind, self._core_ids)
            if kind == 2 and self._remap is not None:
                ids = self._remap[ids]
        return builtins.iter(ids) if iter else ids

    def _encode_special(self, data: bytes, found, alpha: float, call_seed: int, add_bos: bool,
                        add_eos: bool, index: int = 0) -> np.ndarray:
        """int32 ids of one text whose special-token occurrences are ``found``:
        the fragments around them segmented as texts of their own (sampled
        from the stream of text ``index`` of a batch seeded ``call_seed``,
        fragment ``j`` being its text ``j``), the special ids spliced in."""
        text_seed = _core.mix_seed(call_seed, index) if alpha >= 0 else 0
        packed, offsets = fragments(data, found)
        ids, bounds = self._segmenter.encode_concat(packed, offsets, alpha, text_seed, 1, True,
                                                    False, False, 0)
        return self._splice(self._model_ids(ids), bounds, [i for _, _, i in found], add_bos, add_eos)

    @staticmethod
    def _splice(ids: np.ndarray, bounds: np.ndarray, special_ids: List[int], add_bos: bool,
                add_eos: bool) -> np.ndarray:
        """The ids of fragments ``ids[bounds[j]:bounds[j+1]]`` with
        ``special_ids[j]`` after fragment ``j``, framed by <bos>/<eos>."""
        out = np.insert(ids, bounds[1:-1], np.asarray(special_ids, dtype=np.int32))
        if add_bos or add_eos:
            out = np.concatenate([[1] if add_bos else [], out, [2] if add_eos else []]).astype(np.int32)
        return out

    def encode_batch(self, texts: Sequence[TextLike], add_bos: bool = False, add_eos: bool = False,
                     alpha: float = -1, seed: Optional[int] = None, num_threads: int = 0,
                     out_type=list, first_index: int = 0, allowed_special: AllowedSpecial = None):
        """Encode many texts on native threads (``num_threads=0``: all cores).

        The result for each text equals :meth:`encode` of it. With sampling,
        text ``i`` is drawn from a stream that depends only on
        ``(seed, first_index + i)``, so results do not change with
        ``num_threads``, and a corpus encoded in consecutive batches (passing
        the running document count as ``first_index``) gives the same ids as
        one big batch. ``encode_batch([t], seed=s)`` equals ``encode(t, seed=s)``.
        ``out_type=np.ndarray`` returns one int32 array per text.
        ``allowed_special`` is as for :meth:`encode`.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch expects a sequence of texts, not a single text")
        alpha = _check_alpha(alpha)
        kind = self._out_kind(out_type)
        if kind == 2:
            flat, bounds = self.encode_batch_flat(texts, add_bos, add_eos, alpha, seed, num_threads,
                                                  first_index, allowed_special)
            edges = bounds.tolist()
            return [flat[start:end] for start, end in zip(edges, edges[1:])]
        matcher = self._matcher(allowed_special)
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        if matcher is not None:
            data, offsets = _core.pack_texts(texts, nfc_utf8)
            flat, bounds = self._encode_special_packed(matcher, data, offsets, bool(add_bos), bool(add_eos),
                                                       alpha, call_seed, num_threads, first_index)
            return _core.split_lists(flat, bounds, self._ids)
        return self._segmenter.batch_lists(texts, nfc_utf8, self._core_ids, alpha, call_seed, num_threads,
                                           bool(add_bos), bool(add_eos), first_index)

    def _check_batch_args(self, num_threads, first_index, alpha: float, seed) -> tuple:
        """``(num_threads, first_index, call_seed)`` of a batch call, checked."""
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
            raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0: all cores), got {num_threads}")
        if isinstance(first_index, bool) or not isinstance(first_index, (int, np.integer)) or first_index < 0:
            raise ValueError(f"first_index must be a non-negative int, got {first_index!r}")
        call_seed = self._call_seed(seed) if alpha >= 0 else 0
        return int(num_threads), int(first_index), call_seed

    def _encode_packed(self, data, offsets: np.ndarray, add_bos: bool, add_eos: bool,
                       alpha: float, seed: Optional[int], num_threads: int, first_index: int = 0,
                       allowed_special: AllowedSpecial = None):
        """Segment the texts ``data[offsets[i]:offsets[i+1]]`` on native threads."""
        matcher = self._matcher(allowed_special)
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        if matcher is not None:
            return self._encode_special_packed(matcher, data, offsets, add_bos, add_eos, alpha,
                                               call_seed, num_threads, first_index)
        ids, bounds = self._segmenter.encode_concat(data, offsets, alpha, call_seed, num_threads,
                                                    True, add_bos, add_eos, first_index)
        return self._model_ids(ids), bounds

    def _encode_special_packed(self, matcher: SpecialMatcher, data, offsets: np.ndarray,
                               add_bos: bool, add_eos: bool, alpha: float, call_seed: int,
                               num_threads: int, first_index: int):
        """Flat ids and bounds of packed texts with the special tokens of
        ``matcher`` allowed. Viterbi: one pass of the core over the text
        around the occurrences (a text without any is one fragment, as
        usual), then the special ids spliced in. Sampling: every text on the
        fast path, then the few that hold a special token encoded again with
        the seed of their own index and their ids replaced."""
        offsets = np.asarray(offsets, dtype=np.int64)
        docs, starts, ends, special_ids = matcher.find_packed(data, offsets)
        if alpha >= 0 or not len(docs):
            ids, bounds = self._segmenter.encode_concat(data, offsets, alpha, call_seed, num_threads,
                                                        True, add_bos, add_eos, first_index)
            ids = self._model_ids(ids)
            if not len(docs):
                return ids, bounds
            return self._replace_special_docs(matcher, np.unique(docs).tolist(), data, offsets, ids, bounds,
                                              add_bos, add_eos, alpha, call_seed, first_index)
        n_docs = len(offsets) - 1
        # Fragments, by position: per document its start, then after each
        # occurrence its end. A fragment runs to the next occurrence of its
        # document (the k-th fragment that is not its document's last ends
        # where the k-th occurrence starts) or to the document's end.
        frag_starts = np.concatenate([offsets[:-1], ends])
        frag_doc = np.concatenate([np.arange(n_docs, dtype=np.int64), docs])
        order = np.lexsort((frag_starts, frag_doc))
        frag_starts, frag_doc = frag_starts[order], frag_doc[order]
        is_first = np.concatenate([[True], frag_doc[1:] != frag_doc[:-1]])
        is_last = np.concatenate([frag_doc[1:] != frag_doc[:-1], [True]])
        # Pack the fragments back to back: the text without the special tokens' bytes.
        frag_ends = offsets[1:][frag_doc]
        frag_ends[~is_last] = starts
        frag_offsets = np.zeros(len(frag_starts) + 1, dtype=np.int64)
        np.cumsum(frag_ends - frag_starts, out=frag_offsets[1:])
        lengths = ends - starts
        inside = np.arange(int(lengths.sum()), dtype=np.int64)
        inside += np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        keep = np.ones(len(data), dtype=bool)
        keep[inside] = False
        packed = np.frombuffer(data, dtype=np.uint8)[keep].tobytes()
        ids, bounds = self._segmenter.encode_concat(packed, frag_offsets, alpha, 0, num_threads,
                                                    True, False, False, 0)
        ids = self._model_ids(ids)
        # Splice: <bos> before a document's first fragment, each special id
        # after the fragment it ends, <eos> after a document's last fragment.
        # Insertions at one position go by document, then <bos>, specials, <eos>.
        all_docs = np.arange(n_docs, dtype=np.int64)
        inserts = [(bounds[1:][~is_last], docs, 1, special_ids)]
        if add_bos:
            inserts.append((bounds[:-1][is_first], all_docs, 0, np.full(n_docs, 1)))
        if add_eos:
            inserts.append((bounds[1:][is_last], all_docs, 2, np.full(n_docs, 2)))
        positions = np.concatenate([x[0] for x in inserts])
        owner = np.concatenate([x[1] for x in inserts])
        rank = np.concatenate([np.full(len(x[0]), x[2]) for x in inserts])
        order = np.lexsort((rank, owner, positions))
        values = np.concatenate([x[3] for x in inserts]).astype(np.int32)
        out = np.insert(ids, positions[order], values[order])
        # Bounds: a document's ids are its fragments' plus its special tokens and frame.
        per_doc = np.add.reduceat(np.diff(bounds), np.flatnonzero(is_first))
        per_doc += np.bincount(docs, minlength=n_docs) + int(add_bos) + int(add_eos)
        new_bounds = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(per_doc, out=new_bounds[1:])
        return out, new_bounds

    def _replace_special_docs(self, matcher, docs, data, offsets, ids, bounds, add_bos, add_eos, alpha,
                              call_seed, first_index):
        """``ids, bounds`` with every document that holds a special token
        encoded again by :meth:`_encode_special` (its own seed)."""
        parts = []
        lengths = np.diff(bounds)
        done = 0
        for doc in docs:
            lo, hi = int(offsets[doc]), int(offsets[doc + 1])
            text = bytes(data[lo:hi])
            parts.append(ids[bounds[done]:bounds[doc]])
            new = self._encode_special(text, matcher.find(text), alpha, call_seed, add_bos, add_eos,
                                       first_index + doc)
            parts.append(new)
            lengths[doc] = len(new)
            done = doc + 1
        parts.append(ids[bounds[done]:])
        new_bounds = np.zeros_like(bounds)
        np.cumsum(lengths, out=new_bounds[1:])
        return np.concatenate(parts).astype(np.int32, copy=False), new_bounds

    def encode_batch_flat(self, texts: Sequence[TextLike], add_bos: bool = False,
                          add_eos: bool = False, alpha: float = -1, seed: Optional[int] = None,
                          num_threads: int = 0, first_index: int = 0,
                          allowed_special: AllowedSpecial = None):
        """Like :meth:`encode_batch` but returns ``(ids, bounds)``: one flat
        int32 array and int64 bounds, text ``i`` being ``ids[bounds[i]:bounds[i+1]]``.
        The cheapest form for writing token files."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch_flat expects a sequence of texts, not a single text")
        alpha = _check_alpha(alpha)
        matcher = self._matcher(allowed_special)
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        if matcher is not None:
            data, offsets = _core.pack_texts(texts, nfc_utf8)
            return self._encode_special_packed(matcher, data, offsets, bool(add_bos), bool(add_eos),
                                               alpha, call_seed, num_threads, first_index)
        ids, bounds = self._segmenter.batch_concat(texts, nfc_utf8, alpha, call_seed, num_threads,
                                                   bool(add_bos), bool(add_eos), first_index)
        return self._model_ids(ids), bounds

    @staticmethod
    def _out_kind(out_type) -> int:
        try:
            return _OUT_TYPES[out_type]
        except (KeyError, TypeError):
            raise ValueError(f"out_type must be list or numpy.ndarray, got {out_type!r}") from None

    # -- analysis -------------------------------------------------------------

    def encode_with_offsets(self, text: TextLike, alpha: float = -1, seed: Optional[int] = None,
                            out_type=list, allowed_special: AllowedSpecial = None):
        """Ids plus the ``(start, end)`` span of each piece.

        For ``str`` input the spans are character offsets into the NFC form of
        the text (``unicodedata.normalize('NFC', text)[start:end]``); a piece
        that covers part of a character maps to that whole character. For
        bytes input they are byte offsets. ``out_type=np.ndarray`` returns an
        int32 array of ids and an ``(n, 2)`` int64 array of offsets. An
        allowed special token spans its text.
        """
        data = _as_bytes(text)
        ids = self.encode(data, alpha=alpha, seed=seed, out_type=np.ndarray, allowed_special=allowed_special)
        offsets = lattice.char_offsets(data, self._lengths[ids], isinstance(text, str))
        if self._out_kind(out_type) == 2:
            return ids, offsets
        return ids.tolist(), [tuple(pair) for pair in offsets.tolist()]

    def nbest(self, text: TextLike, n: int, allowed_special: AllowedSpecial = None) -> List[tuple]:
        """The ``n`` most probable segmentations of ``text`` with their natural-log
        probabilities (sum of piece scores), most probable first:
        ``[(ids, logprob), ...]``. Exact (forward Viterbi + backward A*).
        An allowed special token (see :meth:`encode`) is one id in every
        segmentation and adds 0 to the log-probability."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        data = _as_bytes(text)
        matcher = self._matcher(allowed_special)
        found = matcher.find(data) if matcher is not None else []
        parts = []
        pos = 0
        for start, end, special_id in found + [(len(data), len(data), -1)]:
            if start > pos:
                starts, ends, ids = self._segmenter.edges(data[pos:start])
                parts.append((starts + pos, ends + pos, self._model_ids(ids)))
            if special_id >= 0:
                parts.append((np.array([start]), np.array([end]), np.array([special_id], dtype=np.int32)))
            pos = end
        if not parts:
            parts.append(self._segmenter.edges(b""))
        edges = tuple(np.concatenate([part[k] for part in parts]) for k in range(3))
        return lattice.nbest(edges, len(data), self._scores.tolist(), int(n))

    def entropy(self, text: TextLike, alpha: float = 1.0) -> float:
        """Shannon entropy (nats) of the distribution that sampling with
        ``alpha`` draws from: P(seg) proportional to prod(p ** alpha). 0 means
        only one segmentation is possible (or alpha is huge)."""
        alpha = _check_alpha(alpha)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0 for entropy, got {alpha}")
        # Rounding can leave a tiny negative value where the entropy is 0
        # (one segmentation takes all the mass); entropy is never negative.
        return max(0.0, self._segmenter.entropy(_as_bytes(text), alpha))

    # -- decoding -------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: the pieces of ids > 2 joined, decoded as UTF-8
        (invalid bytes dropped, as the reference does). Added special tokens
        come out as their text; ``<pad> <bos> <eos>`` as nothing."""
        return self.decode_bytes(ids).decode("utf-8", "ignore")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (``<pad> <bos> <eos>`` contribute nothing,
        added special tokens their UTF-8 text)."""
        if isinstance(ids, (str, bytes)):
            raise TypeError("decode expects a sequence of ints")
        table = self._decode_table
        size = len(table)
        if isinstance(ids, np.ndarray):
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise TypeError(f"ids must be a 1-d array of ints, got {ids.dtype} with shape {ids.shape}")
            ids = ids.tolist()
        else:
            ids = list(ids)
            # One C-level pass over the element types: bools and floats are
            # not ids, even when they compare like small ints.
            if not set(map(type, ids)) <= {int}:
                for i in ids:
                    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                        raise TypeError(f"ids must be ints, got {type(i).__name__} {i!r}")
        if not ids:
            return b""
        low, high = min(ids), max(ids)
        if low < 0 or high >= size:
            bad = low if low < 0 else high
            raise ValueError(f"id {bad} is out of range (vocabulary has ids 0..{size - 1})")
        return b"".join([table[i] for i in ids])

    # -- conversions ----------------------------------------------------------

    def convert_to_sentencepiece(self, path):
        """Write this vocabulary as a SentencePiece Unigram model (byte fallback,
        identity normalizer); see :func:`bytepiece.convert.convert_to_sentencepiece`.
        Returns the export with its id mapping."""
        from .convert import convert_to_sentencepiece

        return convert_to_sentencepiece(self, path)

    def export_huggingface(self, path) -> None:
        """Write a Hugging Face ``tokenizer.json`` with ids identical to ours;
        see :func:`bytepiece.convert.export_huggingface`."""
        from .convert import export_huggingface

        export_huggingface(self, path)

    def save_pretrained(self, directory) -> List[str]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and
        ``special_tokens_map.json`` into ``directory`` for
        ``transformers.AutoTokenizer.from_pretrained``; see
        :func:`bytepiece.convert.save_pretrained`. Returns the paths written."""
        from .convert import save_pretrained

        return save_pretrained(self, directory)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_piece_length={self.max_piece_length})"

