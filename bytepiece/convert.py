"""Conversions between BytePiece models and other tokenizer formats.

* :func:`convert_to_sentencepiece` writes a SentencePiece ``ModelProto`` with
  the same pieces and scores, so SentencePiece can be benchmarked on the very
  same vocabulary. SentencePiece numbers pieces its own way; the returned
  :class:`SentencePieceExport` maps its ids back to ours.
* :func:`export_huggingface` writes a ``tokenizer.json`` for Hugging Face
  ``tokenizers`` whose ids are identical to ours; :func:`save_pretrained`
  adds the two small files ``transformers.AutoTokenizer`` reads with it.
* :func:`convert_to_bytepiece` imports a word-frequency list (for instance
  jieba's ``dict.txt`` read by :func:`read_word_counts`) as a BytePiece model.

Neither ``protobuf`` nor ``tokenizers`` is needed to *write* these files: the
few protobuf fields SentencePiece reads are encoded by hand below, and
``tokenizer.json`` is plain JSON.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import numpy as np

from .model_io import (
    MAX_PIECE_BYTES,
    SPECIAL_TOKENS,
    Vocabulary,
    load_vocabulary,
    save_model,
)
from .normalization import nfc_utf8
from .outputs import atomic_write, check_output
from .trainer import remove_wasted_pieces

__all__ = [
    "SentencePieceExport",
    "convert_to_sentencepiece",
    "sentencepiece_model_bytes",
    "export_huggingface",
    "huggingface_tokenizer_dict",
    "save_pretrained",
    "convert_to_bytepiece",
    "read_word_counts",
    "word_counts",
    "import_words",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Names SentencePiece gives to ids 0, 1, 2 and to the unknown piece it requires.
SP_SPECIAL_PIECES = ("<pad>", "<s>", "</s>")
SP_UNK_PIECE = "<unk>"

# SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type).
_SP_NORMAL, _SP_UNKNOWN, _SP_CONTROL, _SP_USER_DEFINED, _SP_BYTE = 1, 2, 3, 4, 6


def _as_vocabulary(source: Any) -> Vocabulary:
    """A :class:`Vocabulary` from a Tokenizer, a Vocabulary, a model path or a model dict."""
    if isinstance(source, Vocabulary):
        return source
    vocab = getattr(source, "_vocab", None)
    if isinstance(vocab, Vocabulary):
        return vocab
    if isinstance(source, (str, os.PathLike, Mapping)):
        return load_vocabulary(source)
    raise TypeError(
        "expected a Tokenizer, a Vocabulary, a model path or a model dict, "
        f"got {type(source).__name__}"
    )


def _model_file(source: Any) -> Any:
    """The model file behind ``source`` (a path, or a Tokenizer loaded from one), else None."""
    if isinstance(source, (str, os.PathLike)):
        return source
    return getattr(source, "_source", None)


def _by_id(vocab: Vocabulary) -> List[Tuple[int, Union[bytes, str], float]]:
    """``(id, piece or special-token text, score)`` of every id from 3 up."""
    entries: List[Tuple[int, Union[bytes, str], float]] = [
        (i, piece, score) for i, piece, score in zip(vocab.ids().tolist(), vocab.pieces, vocab.scores.tolist())]
    entries += [(i, text, 0.0) for text, i in vocab.special_tokens]
    entries.sort(key=lambda entry: entry[0])
    return entries



def _utf8_or_none(piece: bytes) -> Union[str, None]:
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------
# SentencePiece
# ---------------------------------------------------------------------------
#
# The protobuf wire format of the handful of fields we write. A field is a key
# varint ``(number << 3) | wire_type`` followed by a varint (type 0), a 4-byte
# little-endian float (type 5) or a varint length and the bytes (type 2).
# Hand-encoding avoids a dependency on the ``protobuf`` package, which the
# ``sentencepiece`` wheel does not pull in (its ``sentencepiece_model_pb2``
# imports ``google.protobuf``).
# Measured: 0.2-0.3 s for a 40k model, 1.5-2 times protobuf's, its import included;
# kept so that writing the file needs no protobuf (benchmarks/README.md,
# "Hand-written code, and why").


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # int32/int64 negatives: ten-byte two's complement
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _pb_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _pb_float(number: int, value: float) -> bytes:
    return _varint((number << 3) | 5) + struct.pack("<f", value)


def _pb_bytes(number: int, data: Union[bytes, str]) -> bytes:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def _sp_piece(text: str, score: float, kind: int) -> bytes:
    """One ``ModelProto.SentencePiece`` (piece = 1, score = 2, type = 3)."""
    return _pb_bytes(1, text) + _pb_float(2, score) + _pb_varint(3, kind)


@dataclass
class SentencePieceExport:
    """What :func:`convert_to_sentencepiece` wrote and how its ids map to ours.

    ``id_map[sp_id]`` is the BytePiece id of SentencePiece id ``sp_id`` (-1 for
    ``<unk>``, which SentencePiece never outputs with byte fallback).
    ``dropped`` lists the multi-byte pieces SentencePiece cannot hold (not valid
    UTF-8, or text equal to one of its reserved names); texts that our model
    would segment with them come out differently.
    """

    id_map: np.ndarray
    dropped: List[bytes] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        """Number of SentencePiece ids."""
        return int(self.id_map.shape[0])

    def to_bytepiece(self, sp_ids: Iterable[int]) -> List[int]:
        """BytePiece ids of a sequence of SentencePiece ids."""
        table = self.id_map
        return [int(table[i]) for i in sp_ids]


def _sentencepiece_layout(vocab: Vocabulary) -> Tuple[List[bytes], np.ndarray, List[bytes]]:
    """Serialized pieces in SentencePiece id order, the id map, the dropped pieces.

    Layout: 0-2 control ``<pad> <s> </s>``; 3-258 the byte pieces ``<0xNN>``;
    then every multi-byte piece and added special token (as a user-defined
    symbol, which SentencePiece always matches as one piece) in our id order
    (so when none is dropped, each keeps its BytePiece id); then the ASCII bytes 0x01-0x7F again as normal pieces
    (SentencePiece only falls back to ``<0xNN>`` for a character with no piece
    of its own, scoring it as an unknown; ASCII characters must be real pieces
    to get our scores); then ``<unk>``.
    """
    entries = _by_id(vocab)
    byte_id = {}
    byte_score = {}
    for i, piece, score in entries:
        if isinstance(piece, bytes) and len(piece) == 1:
            byte_id[piece[0]] = i
            byte_score[piece[0]] = score
    reserved = set(SP_SPECIAL_PIECES) | {SP_UNK_PIECE} | {f"<0x{b:02X}>" for b in range(256)}
    records: List[bytes] = []
    id_map: List[int] = []
    for i, name in enumerate(SP_SPECIAL_PIECES):
        records.append(_sp_piece(name, 0.0, _SP_CONTROL))
        id_map.append(i)
    for b in range(256):
        records.append(_sp_piece(f"<0x{b:02X}>", 0.0, _SP_BYTE))
        id_map.append(byte_id[b])
    dropped: List[bytes] = []
    for i, piece, score in entries:
        if isinstance(piece, str):  # an added special token
            if piece in reserved:
                dropped.append(piece.encode("utf-8"))
                continue
            records.append(_sp_piece(piece, 0.0, _SP_USER_DEFINED))
            id_map.append(i)
            continue
        if len(piece) == 1:
            continue
        text = _utf8_or_none(piece)
        if text is None or text in reserved:
            dropped.append(piece)
            continue
        records.append(_sp_piece(text, score, _SP_NORMAL))
        id_map.append(i)
    for b in range(1, 128):  # not NUL: SentencePiece turns a "\0" piece into UNUSED
        records.append(_sp_piece(chr(b), byte_score[b], _SP_NORMAL))
        id_map.append(byte_id[b])
    records.append(_sp_piece(SP_UNK_PIECE, 0.0, _SP_UNKNOWN))
    id_map.append(-1)
    return records, np.asarray(id_map, dtype=np.int64), dropped


def sentencepiece_model_bytes(tokenizer_or_vocab: Any) -> Tuple[bytes, SentencePieceExport]:
    """The serialized SentencePiece ``ModelProto`` and its id mapping (see
    :func:`convert_to_sentencepiece`), without writing a file."""
    vocab = _as_vocabulary(tokenizer_or_vocab)
    records, id_map, dropped = _sentencepiece_layout(vocab)
    size = len(records)
    trainer = b"".join([
        _pb_varint(3, 1),                 # model_type = UNIGRAM
        _pb_varint(4, size),              # vocab_size
        _pb_varint(20, max(1, max(len(p) for p in vocab.pieces))),  # max_sentencepiece_length
        _pb_varint(22, 0),                # split_by_whitespace = false
        _pb_varint(35, 1),                # byte_fallback = true
        _pb_varint(40, size - 1),         # unk_id
        _pb_varint(41, 1),                # bos_id
        _pb_varint(42, 2),                # eos_id
        _pb_varint(43, 0),                # pad_id
        _pb_bytes(45, SP_UNK_PIECE),
        _pb_bytes(46, SP_SPECIAL_PIECES[1]),
        _pb_bytes(47, SP_SPECIAL_PIECES[2]),
        _pb_bytes(48, SP_SPECIAL_PIECES[0]),
    ])
    normalizer = b"".join([
        _pb_bytes(1, "identity"),         # name; no precompiled_charsmap: no rewriting
        _pb_varint(3, 0),                 # add_dummy_prefix = false
        _pb_varint(4, 0),                 # remove_extra_whitespaces = false
        _pb_varint(5, 0),                 # escape_whitespaces = false
    ])
    body = b"".join(_pb_bytes(1, record) for record in records)
    body += _pb_bytes(2, trainer) + _pb_bytes(3, normalizer)
    return body, SentencePieceExport(id_map=id_map, dropped=dropped)


def convert_to_sentencepiece(tokenizer_or_vocab: Any, path: PathLike) -> SentencePieceExport:
    """Write the vocabulary as a SentencePiece Unigram model file at ``path``.

    ``tokenizer_or_vocab`` is a :class:`~bytepiece.Tokenizer`, a
    :class:`~bytepiece.model_io.Vocabulary`, a model path or a model dict.
    The model has byte fallback, an identity normalizer (no NFC, no dummy
    prefix, no whitespace handling), control pieces ``<pad> <s> </s>`` at ids
    0-2, byte pieces ``<0xNN>`` at 3-258, every valid-UTF-8 multi-byte piece
    as a normal piece with our score (rounded to float32, SentencePiece's
    precision), added special tokens as user-defined symbols (always matched
    whole, like ``allowed_special="all"``), the ASCII characters again as
    normal pieces, and a final
    ``<unk>`` (SentencePiece requires one; byte fallback never emits it).

    Returns a :class:`SentencePieceExport` whose ``id_map`` turns SentencePiece
    ids into ours. Feed SentencePiece NFC text: it will not normalize it.
    The file is written atomically.
    """
    inputs = [_model_file(tokenizer_or_vocab)]
    check_output(path, inputs)  # before the work, naming the path given
    data, export = sentencepiece_model_bytes(tokenizer_or_vocab)
    atomic_write(path, lambda handle: handle.write(data), inputs)
    return export


# ---------------------------------------------------------------------------
# Hugging Face tokenizers
# ---------------------------------------------------------------------------

#: Pre-tokenizer pattern equal to ALGORITHM.md §1 at ``maxlen=0``: a chunk is a
#: run of non-newline characters followed by its newlines. ``[^\n]`` spells out
#: Python's ``.`` (everything but ``\n``; ``\r``, NUL, U+2028 included) so the
#: meaning does not hang on the regex engine's notion of "newline".
HF_CHUNK_PATTERN = r"[^\n]*\n+|[^\n]+"


def _unmatchable_score(vocab: Vocabulary, longest_name: int) -> float:
    """A score so low that a name like ``<0x80>`` or ``<pad>`` met as literal
    text never beats spelling it out with its ASCII characters (each at least
    the lowest score), so such text is not mistaken for a byte or a special."""
    lowest = float(np.min(vocab.scores))
    return longest_name * lowest - 100.0


def huggingface_tokenizer_dict(tokenizer_or_vocab: Any) -> Dict[str, Any]:
    """The ``tokenizer.json`` object :func:`export_huggingface` writes."""
    vocab = _as_vocabulary(tokenizer_or_vocab)
    names = [f"<0x{b:02X}>" for b in range(256)]
    specials = list(SPECIAL_TOKENS) + [text for text, _ in vocab.special_tokens]
    low = _unmatchable_score(vocab, max(len(n) for n in names + specials))
    entries: List[List[Any]] = [[name, low] for name in SPECIAL_TOKENS]
    reserved = set(specials) | set(names)
    seen: Dict[str, int] = {}
    special_ids = list(range(3))
    for pid, piece, score in _by_id(vocab):
        if isinstance(piece, str):  # an added special token
            if piece in names:
                raise ValueError(f"cannot export to Hugging Face tokenizers: special token {piece!r} "
                                 f"(id {pid}) is the name of a byte-fallback token")
            entries.append([piece, low])
            special_ids.append(pid)
            continue
        if len(piece) == 1 and piece[0] >= 0x80:
            entries.append([names[piece[0]], low])
            continue
        text = _utf8_or_none(piece)
        if text is None:
            raise ValueError(
                f"cannot export to Hugging Face tokenizers: piece {piece!r} (id {pid}) is "
                "not valid UTF-8 and a Unigram vocabulary holds only text (was the model "
                "trained with ensure_unicode=False?)"
            )
        if text in reserved or text in seen:
            raise ValueError(
                f"cannot export to Hugging Face tokenizers: piece {piece!r} (id {pid}) reads "
                f"{text!r}, which is the name of a special token or byte-fallback token"
            )
        seen[text] = pid
        entries.append([text, score])
    added = [_hf_added_token(i, entries[i][0]) for i in special_ids]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": HF_CHUNK_PATTERN},
            "behavior": "Isolated",
            "invert": False,
        },
        "post_processor": None,
        "decoder": {
            "type": "Sequence",
            "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}],
        },
        "model": {
            "type": "Unigram",
            # HF's Viterbi needs an id to mark characters with no piece of their
            # own; byte fallback then spells them with <0xNN> tokens, which all
            # exist (every character that has no piece is non-ASCII), so this id
            # is never output. Reusing <pad> keeps the ids and size equal to ours.
            "unk_id": 0,
            "vocab": entries,
            "byte_fallback": True,
        },
    }


def _hf_added_token(token_id: int, text: str) -> Dict[str, Any]:
    """A special token as HF lists it: matched whole, in the raw text."""
    return {
        "id": token_id,
        "content": text,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def export_huggingface(tokenizer_or_vocab: Any, path: PathLike) -> None:
    """Write a Hugging Face ``tokenizers`` ``tokenizer.json`` at ``path``.

    The model is a Unigram with byte fallback whose ids equal ours: 0-2 are the
    special tokens ``<pad> <bos> <eos>``, added special tokens keep their ids
    (all of them are HF added tokens, matched whole in the raw text, as our
    ``allowed_special="all"``), single bytes 0x00-0x7F are their
    ASCII characters, bytes 0x80-0xFF are the byte-fallback tokens ``<0xNN>``,
    and multi-byte pieces are their text, each with our score (float64). The
    normalizer is NFC, the pre-tokenizer cuts our chunks (ALGORITHM.md §1) and
    the decoder (ByteFallback, Fuse) restores the bytes. Load it with
    ``tokenizers.Tokenizer.from_file(path)`` or
    ``transformers.PreTrainedTokenizerFast(tokenizer_file=path)``.

    Raises ``ValueError`` naming a piece HF cannot represent: a multi-byte
    piece that is not valid UTF-8 (models trained with ``ensure_unicode=False``)
    or whose text equals a special token or byte-fallback name.
    The file is written atomically.
    """
    inputs = [_model_file(tokenizer_or_vocab)]
    check_output(path, inputs)  # before the work, naming the path given
    _write_json(huggingface_tokenizer_dict(tokenizer_or_vocab), path, inputs)


def _write_json(data: Any, path: PathLike, inputs=()) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), inputs)


def save_pretrained(tokenizer_or_vocab: Any, directory: PathLike) -> List[str]:
    """Write a directory that ``transformers.AutoTokenizer.from_pretrained``
    loads as a fast tokenizer with our ids: ``tokenizer.json``
    (:func:`export_huggingface`), ``tokenizer_config.json`` and
    ``special_tokens_map.json``.

    ``<bos> <eos> <pad>`` are its bos, eos and pad tokens, the added special
    tokens its additional special tokens. Nothing is added around the text
    (no post-processor): pass ``<bos>`` yourself, as with ``encode``. The
    directory is created if needed; each file is written atomically.
    Returns the paths written.
    """
    inputs = [_model_file(tokenizer_or_vocab)]
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory}: exists and is not a directory")
    vocab = _as_vocabulary(tokenizer_or_vocab)
    hf = huggingface_tokenizer_dict(vocab)
    os.makedirs(directory, exist_ok=True)
    extra = [text for text, _ in vocab.special_tokens]
    names = {"bos_token": SPECIAL_TOKENS[1], "eos_token": SPECIAL_TOKENS[2], "pad_token": SPECIAL_TOKENS[0]}
    special_map = dict(names, additional_special_tokens=extra)
    config = dict(
        names,
        tokenizer_class="PreTrainedTokenizerFast",
        additional_special_tokens=extra,
        added_tokens_decoder={str(token["id"]): {k: v for k, v in token.items() if k != "id"}
                              for token in hf["added_tokens"]},
        model_max_length=1 << 60,
        clean_up_tokenization_spaces=False,
    )
    written = []
    for name, data in (("tokenizer.json", hf), ("tokenizer_config.json", config),
                       ("special_tokens_map.json", special_map)):
        path = os.path.join(directory, name)
        _write_json(data, path, inputs)
        written.append(path)
    return written



# ---------------------------------------------------------------------------
# Importing word-frequency lists
# ---------------------------------------------------------------------------


def word_counts(words: Mapping[Union[str, bytes], int]) -> Dict[bytes, int]:
    """``{piece: count}`` of ``{word: count}``, checked: ``str`` words are
    NFC-normalized and UTF-8 encoded (words that become equal add their
    counts), ``bytes`` words are taken as they are. Raises ``ValueError`` or
    ``TypeError`` naming a word that cannot be a piece or a bad count."""
    if not isinstance(words, Mapping):
        raise TypeError(f"pieces must be a dict of word -> count, got {type(words).__name__}")

    counts: Dict[bytes, int] = {}
    for word, count in words.items():
        if isinstance(word, str):
            key = nfc_utf8(word)
        elif isinstance(word, (bytes, bytearray)):
            key = bytes(word)
        else:
            raise TypeError(f"words must be str or bytes, got {type(word).__name__} ({word!r:.40})")
        if not key:
            raise ValueError("an empty word cannot be a piece")
        if len(key) > MAX_PIECE_BYTES:
            raise ValueError(f"word {word!r:.40}... is {len(key)} bytes long (a piece may have at most {MAX_PIECE_BYTES})")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise TypeError(f"count of {word!r} must be an int, got {type(count).__name__}")
        if count <= 0:
            raise ValueError(f"count of {word!r} must be positive, got {count}")
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def convert_to_bytepiece(pieces: Mapping[Union[str, bytes], int], path: PathLike,
                         inputs=()) -> Dict[bytes, int]:
    """Import ``{word: count}`` as a BytePiece model file at ``path``.

    ``str`` words are NFC-normalized and UTF-8 encoded (words that become equal
    add their counts); ``bytes`` words are taken as they are. Every missing
    single byte is added with count 1, then pieces that are never chosen when
    segmenting themselves are removed, their counts moving to the pieces they
    split into (ALGORITHM.md §6.4 step 3, with no length or count limit).
    Returns the final ``{piece: count}`` (also written, atomically, to ``path``,
    which must not be one of the files ``inputs``).
    """
    check_output(path, inputs)  # before the work, naming the path given
    counts = word_counts(pieces)
    for b in range(256):
        counts.setdefault(bytes([b]), 1)
    if sum(counts.values()) >= 1 << 62:
        raise ValueError("counts are too large (their sum must stay below 2**62)")
    ordered = sorted(counts, key=lambda p: (len(p), p))
    kept, kept_counts = remove_wasted_pieces(
        ordered, np.asarray([counts[p] for p in ordered], dtype=np.int64), threads=0)
    result = dict(zip(kept, (int(c) for c in kept_counts)))
    save_model(result, path, inputs=inputs)
    return result


def read_word_counts(path: PathLike) -> Dict[str, int]:
    """Read a ``word count [tag]`` frequency list such as jieba's ``dict.txt``.

    One entry per line, fields separated by whitespace; the optional third
    field (a part-of-speech tag) is ignored, blank lines are skipped, and a
    word listed twice gets the sum of its counts. The file is UTF-8 (a BOM is
    allowed). Raises ``ValueError`` naming the file and line of a bad entry
    (wrong number of fields, a count that is not a positive integer, bytes
    that are not UTF-8).
    """
    source = os.fspath(path)
    result: Dict[str, int] = {}
    with open(source, "rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{source}:{lineno}: not UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (2, 3):
                raise ValueError(
                    f"{source}:{lineno}: expected 'word count [tag]', got {line.rstrip()!r:.80}"
                )
            word, count_text = fields[0], fields[1]
            if not count_text.isascii() or not count_text.isdigit() or int(count_text) <= 0:
                raise ValueError(
                    f"{source}:{lineno}: count of {word!r} must be a positive integer, "
                    f"got {count_text!r:.40}"
                )
            result[word] = result.get(word, 0) + int(count_text)
    return result


def import_words(path: PathLike, output: PathLike) -> Dict[bytes, int]:
    """Read a ``word count [tag]`` file and write it as a BytePiece model
    (:func:`read_word_counts` then :func:`convert_to_bytepiece`); ``output``
    must not be ``path`` itself."""
    check_output(output, [path])  # before reading, naming the path given
    return convert_to_bytepiece(read_word_counts(path), output, [path])
