"""The public tokenizer: a thin Python face over the compiled core.

``Tokenizer`` keeps the reference BytePiece names (``tokenize``, ``encode``,
``decode``, ``piece_to_id``, ...) and adds what pipelines need: bytes input,
seeded subword sampling, multi-threaded ``encode_batch`` and NumPy output.
All segmentation happens in :mod:`bytepiece._core` with the GIL released.
"""
from __future__ import annotations

import builtins
import os
import random
import threading
from typing import Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _core, lattice
from .model_io import SPECIAL_TOKENS, Vocabulary, load_vocabulary
from .normalization import nfc_utf8

__all__ = ["Tokenizer"]

TextLike = Union[str, bytes, bytearray, memoryview]
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
    are ``<pad>``, ``<bos>``, ``<eos>``.

    A ``Tokenizer`` is immutable apart from its seed stream and may be shared
    between threads; it pickles without re-reading the model file.
    """

    def __init__(self, model: Union[str, "os.PathLike[str]", Mapping], seed: Optional[int] = None):
        self._init_from(load_vocabulary(model), seed)
        #: The model file read, if any: exports refuse to overwrite it.
        self._source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None

    def _init_from(self, vocab: Vocabulary, seed: Optional[int], segmenter=None) -> None:
        self._vocab = vocab
        self._segmenter = segmenter or _core.Segmenter(vocab.pieces, vocab.scores, check=False)
        self._id_to_piece: List = list(SPECIAL_TOKENS) + vocab.pieces
        self._lengths = np.fromiter(map(len, self._id_to_piece), dtype=np.int64,
                                    count=len(self._id_to_piece))
        self._lengths[:3] = 0
        self._piece_to_id = {p: i for i, p in enumerate(self._id_to_piece)}
        # The int of every id, built once: id lists hold these (a tuple: the
        # compiled core relies on it staying unchanged while it works).
        self._ids = tuple(range(len(self._id_to_piece)))
        self._rng_lock = threading.Lock()
        self.set_seed(seed)

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
        """Number of ids: the pieces plus the three special tokens."""
        return len(self._id_to_piece)

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
                 seed: Optional[int] = None):
        """Split ``text`` into pieces (bytes).

        ``alpha < 0``: the most probable segmentation (Viterbi). ``alpha >= 0``:
        a random segmentation with probability proportional to
        ``prod(p(piece) ** alpha)``; ``seed`` makes it reproducible.
        ``b"".join(tokenize(x))`` equals the NFC UTF-8 of ``x`` (or ``x`` itself
        for bytes). ``iter=True`` returns an iterator instead of a list.
        """
        data = _as_bytes(text)
        alpha = _check_alpha(alpha)
        call_seed = self._call_seed(seed) if alpha >= 0 else 0
        pieces = self._segmenter.encode_bytes(data, alpha, call_seed, False, False, 0, self._id_to_piece)
        return builtins.iter(pieces) if iter else pieces

    def encode(self, text: TextLike, add_bos: bool = False, add_eos: bool = False,
               alpha: float = -1, iter: bool = False, seed: Optional[int] = None,
               out_type=list):
        """Token ids of ``text`` (see :meth:`tokenize`), optionally framed by
        ``<bos>`` (1) and ``<eos>`` (2). ``out_type=np.ndarray`` (or ``"numpy"``)
        returns an int32 array."""
        data = _as_bytes(text)
        alpha = _check_alpha(alpha)
        kind = self._out_kind(out_type)
        call_seed = self._call_seed(seed) if alpha >= 0 else 0
        ids = self._segmenter.encode_bytes(data, alpha, call_seed, bool(add_bos), bool(add_eos),
                                           kind, self._ids)
        return builtins.iter(ids) if iter else ids

    def encode_batch(self, texts: Sequence[TextLike], add_bos: bool = False, add_eos: bool = False,
                     alpha: float = -1, seed: Optional[int] = None, num_threads: int = 0,
                     out_type=list, first_index: int = 0):
        """Encode many texts on native threads (``num_threads=0``: all cores).

        The result for each text equals :meth:`encode` of it. With sampling,
        text ``i`` is drawn from a stream that depends only on
        ``(seed, first_index + i)``, so results do not change with
        ``num_threads``, and a corpus encoded in consecutive batches (passing
        the running document count as ``first_index``) gives the same ids as
        one big batch. ``encode_batch([t], seed=s)`` equals ``encode(t, seed=s)``.
        ``out_type=np.ndarray`` returns one int32 array per text.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch expects a sequence of texts, not a single text")
        alpha = _check_alpha(alpha)
        kind = self._out_kind(out_type)
        if kind == 2:
            flat, bounds = self.encode_batch_flat(texts, add_bos, add_eos, alpha, seed, num_threads,
                                                  first_index)
            edges = bounds.tolist()
            return [flat[start:end] for start, end in zip(edges, edges[1:])]
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        return self._segmenter.batch_lists(texts, nfc_utf8, self._ids, alpha, call_seed, num_threads,
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
                       alpha: float, seed: Optional[int], num_threads: int, first_index: int = 0):
        """Segment the texts ``data[offsets[i]:offsets[i+1]]`` on native threads."""
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        return self._segmenter.encode_concat(data, offsets, alpha, call_seed, num_threads,
                                             True, add_bos, add_eos, first_index)

    def encode_batch_flat(self, texts: Sequence[TextLike], add_bos: bool = False,
                          add_eos: bool = False, alpha: float = -1, seed: Optional[int] = None,
                          num_threads: int = 0, first_index: int = 0):
        """Like :meth:`encode_batch` but returns ``(ids, bounds)``: one flat
        int32 array and int64 bounds, text ``i`` being ``ids[bounds[i]:bounds[i+1]]``.
        The cheapest form for writing token files."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode_batch_flat expects a sequence of texts, not a single text")
        alpha = _check_alpha(alpha)
        num_threads, first_index, call_seed = self._check_batch_args(num_threads, first_index, alpha, seed)
        return self._segmenter.batch_concat(texts, nfc_utf8, alpha, call_seed, num_threads,
                                            bool(add_bos), bool(add_eos), first_index)

    @staticmethod
    def _out_kind(out_type) -> int:
        try:
            return _OUT_TYPES[out_type]
        except (KeyError, TypeError):
            raise ValueError(f"out_type must be list or numpy.ndarray, got {out_type!r}") from None

    # -- analysis -------------------------------------------------------------

    def encode_with_offsets(self, text: TextLike, alpha: float = -1, seed: Optional[int] = None,
                            out_type=list):
        """Ids plus the ``(start, end)`` span of each piece.

        For ``str`` input the spans are character offsets into the NFC form of
        the text (``unicodedata.normalize('NFC', text)[start:end]``); a piece
        that covers part of a character maps to that whole character. For
        bytes input they are byte offsets. ``out_type=np.ndarray`` returns an
        int32 array of ids and an ``(n, 2)`` int64 array of offsets.
        """
        data = _as_bytes(text)
        ids = self.encode(data, alpha=alpha, seed=seed, out_type=np.ndarray)
        offsets = lattice.char_offsets(data, self._lengths[ids], isinstance(text, str))
        if self._out_kind(out_type) == 2:
            return ids, offsets
        return ids.tolist(), [tuple(pair) for pair in offsets.tolist()]

    def nbest(self, text: TextLike, n: int) -> List[tuple]:
        """The ``n`` most probable segmentations of ``text`` with their natural-log
        probabilities (sum of piece scores), most probable first:
        ``[(ids, logprob), ...]``. Exact (forward Viterbi + backward A*)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        data = _as_bytes(text)
        scores = [0.0, 0.0, 0.0] + self._vocab.scores.tolist()
        return lattice.nbest(self._segmenter.edges(data), len(data), scores, int(n))

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
        (invalid bytes dropped, as the reference does)."""
        return self.decode_bytes(ids).decode("utf-8", "ignore")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids`` (special tokens contribute nothing)."""
        if isinstance(ids, (str, bytes)):
            raise TypeError("decode expects a sequence of ints")
        table = self._id_to_piece
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
        return b"".join([table[i] for i in ids if i > 2])

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

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_piece_length={self.max_piece_length})"

