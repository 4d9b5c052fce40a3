"""Type stub for the compiled tokenizer core (bytepiece/_core.pyx)."""
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Buffer = Union[bytes, bytearray, memoryview]

TRIE_LAYOUT: int

def mix_seed(seed: int, index: int) -> int:
    """The per-text seed of text ``index`` of a batch seeded with ``seed``."""

def split_lists(ids: npt.NDArray[np.int32], bounds: npt.NDArray[np.int64],
                table: Sequence[int]) -> List[List[int]]:
    """Split flat ids at ``bounds`` into lists of ints taken from ``table``."""

def pack_texts(texts: Sequence[Union[str, bytes, bytearray, memoryview]],
               nfc_utf8: Callable[[str], bytes]) -> Tuple[bytearray, npt.NDArray[np.int64]]:
    """The UTF-8 of every text back to back and the ``n + 1`` offsets; ``str``
    items NFC-normalized (provably-NFC ones encoded in C, the rest through
    ``nfc_utf8``), bytes-like items taken as they are."""

def _sized_room(texts: Sequence[Any]) -> int:
    """The bytes batch packing reserves for ``texts`` before writing them (for tests)."""

def str_nfc_utf8(text: str, nfc_utf8: Callable[[str], bytes]) -> bytes:
    """The NFC UTF-8 of ``text``, in C when it is provably NFC, else ``nfc_utf8(text)``."""

def is_plain_nfc_utf8(data: _Buffer) -> bool:
    """True when ``data`` is valid UTF-8 without ``\\r`` and shown NFC by the table."""

def nfc_safe_ranges() -> List[Tuple[int, int]]:
    """Inclusive BMP code point ranges that are NFC on their own (the C fast path's table)."""

class Segmenter:
    """The compiled vocabulary: a reversed-piece double-array trie plus scores.

    ``pieces[i]`` has id ``i + 3``; all 256 single bytes must be present.
    Immutable and safe to share between threads; pickles as raw trie units.
    """

    def __init__(self, pieces: Sequence[bytes], scores: npt.ArrayLike, check: bool = True) -> None: ...
    @property
    def n_pieces(self) -> int: ...
    @property
    def max_piece_length(self) -> int: ...
    @property
    def trie_cells(self) -> int: ...
    def encode_bytes(self, data: _Buffer, alpha: float = -1.0, seed: int = 0,
                     add_bos: bool = False, add_eos: bool = False, out_type: int = 0,
                     table: Optional[Sequence[Any]] = None) -> Union[list, npt.NDArray[np.int32]]:
        """Segment one text (chunked at newline runs). out_type 0: ids from
        ``table``; 1: pieces from ``table``; 2: int32 array."""
    def encode_concat(self, data: _Buffer, offsets: npt.ArrayLike, alpha: float = -1.0,
                      seed: int = 0, num_threads: int = 1, chunked: bool = True,
                      add_bos: bool = False, add_eos: bool = False, first_index: int = 0
                      ) -> Tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Segment ``data[offsets[i]:offsets[i+1]]`` for every i on native threads;
        returns flat ids and bounds."""
    def encode_lists(self, data: _Buffer, offsets: npt.ArrayLike, table: Sequence[int],
                     alpha: float = -1.0, seed: int = 0, num_threads: int = 1,
                     add_bos: bool = False, add_eos: bool = False, first_index: int = 0
                     ) -> List[List[int]]:
        """Like ``encode_concat`` but one list of ints (from ``table``) per text."""
    def batch_concat(self, texts: Sequence[Union[str, bytes, bytearray, memoryview]],
                     nfc_utf8: Callable[[str], bytes], alpha: float = -1.0, seed: int = 0,
                     num_threads: int = 1, add_bos: bool = False, add_eos: bool = False,
                     first_index: int = 0) -> Tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """``pack_texts`` then ``encode_concat``, the packing overlapped with
        the helper threads' segmentation."""
    def batch_lists(self, texts: Sequence[Union[str, bytes, bytearray, memoryview]],
                    nfc_utf8: Callable[[str], bytes], table: Sequence[int], alpha: float = -1.0,
                    seed: int = 0, num_threads: int = 1, add_bos: bool = False,
                    add_eos: bool = False, first_index: int = 0) -> List[List[int]]:
        """``pack_texts`` then ``encode_lists``, the packing overlapped with
        the helper threads' segmentation."""
    def split_counts(self, data: _Buffer, offsets: npt.ArrayLike, weights: npt.ArrayLike,
                     num_threads: int = 1) -> npt.NDArray[np.int64]:
        """Viterbi each item whole; add its weight to every piece used (trainer §6.4)."""
    def entropy(self, data: _Buffer, alpha: float = 1.0) -> float:
        """Entropy (nats) of the sampling distribution over segmentations of ``data``."""
    def edges(self, data: _Buffer) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                            npt.NDArray[np.int32]]:
        """Every piece occurrence inside a chunk: (starts, ends, ids), by end then start."""
    def matches(self, data: _Buffer) -> List[Tuple[int, int, int]]:
        """Every piece occurrence in ``data`` taken as one chunk, in §4 order."""
