"""Conversions: SentencePiece and Hugging Face exports, word-list import.

The agreement tests encode every line of ``corpora/`` (newline kept) with our
tokenizer and with the exported model. Every divergence must belong to a
documented class (README, "Conversions"); for the corpora that is only
"equally probable segmentation, ties broken differently" (both exports) and
"float32 near-tie" (SentencePiece).
"""
from __future__ import annotations

import json
import math
import os
import random
import unicodedata
from fractions import Fraction
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from bytepiece import Tokenizer
from bytepiece._educational import remove_wasted_pieces
from bytepiece.convert import (
    convert_to_bytepiece,
    convert_to_sentencepiece,
    export_huggingface,
    huggingface_tokenizer_dict,
    import_words,
    read_word_counts,
    sentencepiece_model_bytes,
)
from bytepiece.model_io import load_vocabulary, model_dict
from conftest import CORPORA, random_vocab, reference_file

MODEL = "bytepiece.eu.plus.40k.model"
EDGE_TEXTS = [
    "",
    "\n",
    "\n\n\n\n",
    "a\n\n\nb\n",
    "a\r\nb\rc\r\r\n",
    "nul\x00byte\x00\n\x00",
    "\x01\x02\x1b[0m\x7f",
    "family 👨‍👩‍👧‍👦 flag 🇨🇳 skin 👍🏽",
    "combining: e\u0301 n\u0303 A\u030a",
    "line\u2028sep\u2029para\x85nel\x0bvt\x0cff",
    "CJK ext B: 𠀀𠀁𪜀",
    "tabs\t\tand   spaces   \n   ",
    "literal <0x80> and <0x41> and <0xZZ>",
    "x" * 3000 + "\n",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(reference_file(MODEL))


@pytest.fixture(scope="module")
def corpus_lines() -> List[str]:
    lines: List[str] = []
    for path in sorted(CORPORA.glob("*.txt")):
        with open(path, encoding="utf-8") as handle:
            lines.extend(handle)
    assert len(lines) > 30000
    return lines


def _log_prob(tok: Tokenizer, ids: List[int]) -> Fraction:
    """Exact probability of a segmentation, as a fraction, up to a common factor."""
    counts = tok._vocab.counts
    total = sum(counts)
    result = Fraction(1)
    for i in ids:
        result *= Fraction(counts[i - 3], total)
    return result


def _divergence_class(tok: Tokenizer, ours: List[int], theirs: List[int]) -> str:
    if sorted(ours) == sorted(theirs):
        return "tie"  # same pieces in another order: exactly equal probability
    p_ours, p_theirs = _log_prob(tok, ours), _log_prob(tok, theirs)
    if p_ours == p_theirs:
        return "tie"
    if p_theirs > p_ours:
        return "theirs better"  # would be a bug in our Viterbi
    gap = math.log(p_ours / p_theirs)
    # Within a few float32 steps of the path's log-probability: SentencePiece
    # stores scores and sums paths in float32 and cannot tell the two apart.
    total = float(sum(tok._vocab.scores[i - 3] for i in ours))
    return "near tie" if gap < 8 * float(np.spacing(np.float32(abs(total)))) else "worse"


# ---------------------------------------------------------------------------
# SentencePiece
# ---------------------------------------------------------------------------

def _sp(path: Path):
    sentencepiece = pytest.importorskip("sentencepiece")
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


@pytest.fixture(scope="module")
def sp_export(tok, tmp_path_factory):
    path = tmp_path_factory.mktemp("sp") / "eu.model"
    export = convert_to_sentencepiece(tok, path)
    return _sp(path), export


def test_sentencepiece_layout(tok, sp_export):
    sp, export = sp_export
    assert export.dropped == []
    assert sp.get_piece_size() == export.vocab_size == len(export.id_map)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "<s>", "</s>"]
    assert all(sp.is_control(i) for i in range(3))
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
    assert list(export.id_map[:3]) == [0, 1, 2]
    for b in range(256):
        assert sp.id_to_piece(3 + b) == f"<0x{b:02X}>" and sp.is_byte(3 + b)
        assert tok.id_to_piece(int(export.id_map[3 + b])) == bytes([b])
    # Multi-byte pieces keep their BytePiece id; then ASCII 0x01-0x7F, then <unk>.
    n = tok.vocab_size
    assert list(export.id_map[259:n]) == list(range(259, n))
    for sp_id in range(259, n, 997):
        assert sp.id_to_piece(sp_id).encode("utf-8") == tok.id_to_piece(sp_id)
        assert sp.get_score(sp_id) == pytest.approx(tok._vocab.scores[sp_id - 3], abs=1e-5)
    assert [sp.id_to_piece(i) for i in range(n, n + 127)] == [chr(b) for b in range(1, 128)]
    assert sp.unk_id() == export.vocab_size - 1 and export.id_map[-1] == -1


def test_sentencepiece_agrees_on_corpora(tok, sp_export, corpus_lines):
    sp, export = sp_export
    ours = tok.encode_batch(corpus_lines)
    theirs = sp.encode(corpus_lines)
    classes: Dict[str, int] = {}
    for line, a, b in zip(corpus_lines, ours, theirs):
        b = export.to_bytepiece(b)
        if a != b:
            kind = _divergence_class(tok, a, b)
            classes[kind] = classes.get(kind, 0) + 1
    diverging = sum(classes.values())
    rate = 1 - diverging / len(corpus_lines)
    assert rate >= 0.995, (rate, classes)
    assert set(classes) <= {"tie", "near tie"}, classes
    # Decoding SentencePiece's own ids restores every line.
    assert sp.decode(theirs[:2000]) == corpus_lines[:2000]


def test_sentencepiece_edge_texts(tok, sp_export):
    sp, export = sp_export
    for text in EDGE_TEXTS:
        nfc = unicodedata.normalize("NFC", text)  # SentencePiece gets no normalizer
        ids = export.to_bytepiece(sp.encode(nfc))
        assert tok.decode(ids) == nfc
        assert ids == tok.encode(text) or _divergence_class(tok, tok.encode(text), ids) == "tie", text


def test_unknown_character_divergence(tmp_path):
    # "é" has no piece of its own: we pay for its two bytes, SentencePiece for
    # one unknown character (lowest score - 10), so it prefers the piece "éx".
    counts = {bytes([b]): 1000 for b in range(256)}
    counts.update({b"\xc3": 10 ** 6, b"\xa9": 10 ** 6, b"x": 10 ** 6, "éx".encode(): 1})
    tok = Tokenizer(model_dict(counts))
    sp_path = tmp_path / "m.model"
    export = convert_to_sentencepiece(tok, sp_path)
    sp = _sp(sp_path)
    assert tok.tokenize("éx") == [b"\xc3", b"\xa9", b"x"]
    assert [tok.id_to_piece(i) for i in export.to_bytepiece(sp.encode("éx"))] == ["éx".encode()]
    # Without a competing piece the bytes are the same (byte fallback).
    assert export.to_bytepiece(sp.encode("éé")) == tok.encode("éé")
    # Hugging Face's Unigram scores an unknown character the same way.
    tokenizers = pytest.importorskip("tokenizers")
    export_huggingface(tok, tmp_path / "tokenizer.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode("éx", add_special_tokens=False).tokens == ["éx"]
    assert hf.encode("éé", add_special_tokens=False).ids == tok.encode("éé")
    assert hf.decode(hf.encode("éé").ids) == "éé"


def test_sentencepiece_drops_invalid_utf8_pieces(tmp_path):
    source = reference_file("train/poems.o4.noeu.model")
    vocab = load_vocabulary(source)
    path = tmp_path / "noeu.model"
    export = convert_to_sentencepiece(source, path)
    invalid = [p for p in vocab.pieces if len(p) > 1 and not _is_utf8(p)]
    assert invalid and export.dropped == invalid
    sp = _sp(path)
    assert sp.get_piece_size() == export.vocab_size
    line = "床前明月光，疑是地上霜。\n"
    assert Tokenizer(source).decode(export.to_bytepiece(sp.encode(line))) == line


def test_sentencepiece_reserved_names_are_dropped(tmp_path):
    counts = {bytes([b]): 5 for b in range(256)}
    counts.update({b"<0x41>": 3, b"<unk>": 3, b"</s>": 3, b"ab": 4})
    data, export = sentencepiece_model_bytes(model_dict(counts))
    assert sorted(export.dropped) == [b"</s>", b"<0x41>", b"<unk>"]
    path = tmp_path / "r.model"
    path.write_bytes(data)
    sp = _sp(path)
    tok = Tokenizer(model_dict(counts))
    assert tok.decode(export.to_bytepiece(sp.encode("<0x41>ab</s>"))) == "<0x41>ab</s>"


def test_sentencepiece_bad_input_and_atomic_write(tmp_path):
    with pytest.raises(TypeError, match="Tokenizer, a Vocabulary"):
        convert_to_sentencepiece(42, tmp_path / "x.model")
    target = tmp_path / "missing" / "x.model"
    with pytest.raises(FileNotFoundError):
        convert_to_sentencepiece(model_dict({bytes([b]): 1 for b in range(256)}), target)
    assert os.listdir(tmp_path) == []


def _is_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------
# Hugging Face tokenizers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_path(tok, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    export_huggingface(tok, path)
    return path


@pytest.fixture(scope="module")
def hf(hf_path):
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(hf_path))


def test_huggingface_vocabulary_and_specials(tok, hf):
    assert hf.get_vocab_size() == tok.vocab_size
    assert [hf.id_to_token(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert hf.id_to_token(3 + ord("A")) == "A" and hf.id_to_token(3) == "\x00"
    assert hf.id_to_token(3 + 0xE4) == "<0xE4>"
    for i in range(259, tok.vocab_size, 1009):
        assert hf.id_to_token(i).encode("utf-8") == tok.id_to_piece(i)


def test_huggingface_ids_identical_on_corpora(tok, hf, corpus_lines):
    ours = tok.encode_batch(corpus_lines)
    theirs = [e.ids for e in hf.encode_batch(corpus_lines, add_special_tokens=False)]
    diverging = [(a, b) for a, b in zip(ours, theirs) if a != b]
    rate = 1 - len(diverging) / len(corpus_lines)
    assert rate >= 0.998, rate
    assert all(_divergence_class(tok, a, b) == "tie" for a, b in diverging)
    assert hf.decode_batch(theirs[:2000]) == corpus_lines[:2000]


def test_huggingface_edge_texts_and_golden(tok, hf):
    for text in EDGE_TEXTS:
        ids = hf.encode(text, add_special_tokens=False).ids
        assert ids == tok.encode(text), text
        assert hf.decode(ids) == tok.decode(ids)
    rows = [json.loads(line) for line in open(reference_file("golden.eu.plus.40k.jsonl"), encoding="utf-8")]
    texts = [row["text"] for row in rows]
    for row, enc in zip(rows, hf.encode_batch(texts, add_special_tokens=False)):
        if enc.ids != row["ids"]:
            assert _divergence_class(tok, row["ids"], enc.ids) == "tie", row["text"]


def test_huggingface_literal_special_names(tok, hf_path):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_file(str(hf_path))
    text = "a <bos> b <pad><eos>"
    # By default HF matches special-token names in the text (its usual behaviour) ...
    assert 1 in hf.encode(text, add_special_tokens=False).ids
    # ... and, told not to, gives our ids.
    hf.encode_special_tokens = True
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)


def test_huggingface_with_transformers(tok, hf_path):
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(hf_path), pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    text = "BytePiece 分词器\n\n第二行 🙂"
    assert fast.encode(text, add_special_tokens=False) == tok.encode(text)
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id) == (0, 1, 2)
    assert fast.decode(tok.encode(text)) == text


def test_huggingface_rejects_non_utf8_vocabulary(tmp_path):
    source = reference_file("train/poems.o4.noeu.model")
    target = tmp_path / "tokenizer.json"
    target.write_text("old")
    with pytest.raises(ValueError, match=r"piece b'.*' \(id \d+\) is not valid UTF-8"):
        export_huggingface(source, target)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["tokenizer.json"]


@pytest.mark.parametrize("name", [b"<0xC3>", b"<0x41>", b"<bos>", b"<pad>"])
def test_huggingface_rejects_reserved_names(name):
    counts = {bytes([b]): 5 for b in range(256)}
    counts[name] = 3
    with pytest.raises(ValueError, match="name of a special token or byte-fallback token"):
        huggingface_tokenizer_dict(model_dict(counts))


def test_huggingface_random_vocabularies(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    rng = random.Random(7)
    for round_ in range(3):
        raw = random_vocab(rng, size=300, max_len=6, alphabet=b"ab \x00")
        counts = dict(raw)
        for char in "é中🙂ü":  # every character has a piece: no "unknown character" class
            counts[char.encode()] = rng.randint(1, 1000)
        for _ in range(60):  # valid UTF-8 pieces over a mixed alphabet
            text = "".join(rng.choice(["a", "b", " ", "é", "中", "🙂", "\r", "\x00"]) for _ in range(rng.randint(2, 5)))
            counts[text.encode()] = rng.randint(1, 1000)
        tok = Tokenizer(model_dict(counts))
        path = tmp_path / f"t{round_}.json"
        export_huggingface(tok, path)
        hf = tokenizers.Tokenizer.from_file(str(path))
        for _ in range(200):
            text = "".join(rng.choice(["a", "b", " ", "é", "中", "🙂", "\r", "\n", "\x00", "ü"]) for _ in range(rng.randint(0, 12)))
            ours, theirs = tok.encode(text), hf.encode(text, add_special_tokens=False).ids
            assert ours == theirs or _divergence_class(tok, ours, theirs) == "tie", text
            assert hf.decode(theirs) == text


# ---------------------------------------------------------------------------
# Word-list import
# ---------------------------------------------------------------------------


def test_convert_to_bytepiece_matches_the_readable_twin(tmp_path):
    rng = random.Random(3)
    chars = "中国人民大学生活动"
    words = {"".join(rng.choice(chars) for _ in range(rng.randint(1, 4))): rng.randint(1, 500) for _ in range(150)}
    words.update({"中": 10 ** 6, "国": 10 ** 6, "中国": 1})  # "中国" is wasted
    result = convert_to_bytepiece(words, tmp_path / "w.model")
    expected = {w.encode(): c for w, c in words.items()}
    for b in range(256):
        expected.setdefault(bytes([b]), 1)
    assert result == remove_wasted_pieces(expected)
    assert "中国".encode() not in result and len(result) < len(expected)
    tok = Tokenizer(tmp_path / "w.model")
    assert tok.vocab_size == len(result) + 3
    assert tok.decode(tok.encode("中国人民")) == "中国人民"


def test_convert_to_bytepiece_keys(tmp_path):
    words = {"cafe\u0301": 4, "café": 6, b"\xff\xfe": 2, "x": 7}
    result = convert_to_bytepiece(words, tmp_path / "m.model")
    assert result["café".encode()] == 10  # NFC makes the two spellings one piece
    assert result[b"\xff\xfe"] == 2 and result[b"x"] == 7 and result[b"y"] == 1
    assert all(bytes([b]) in result for b in range(256))
    # Stable: importing the result again changes nothing.
    assert convert_to_bytepiece(result, tmp_path / "n.model") == result


@pytest.mark.parametrize(
    "words, error, message",
    [
        ({"": 3}, ValueError, "empty word"),
        ({"a": 0}, ValueError, "must be positive"),
        ({"a": -2}, ValueError, "must be positive"),
        ({"a": 1.5}, TypeError, "must be an int"),
        ({"a": True}, TypeError, "must be an int"),
        ({3: 1}, TypeError, "str or bytes"),
        ({"\ud800": 1}, ValueError, "lone surrogate"),
    ],
)
def test_convert_to_bytepiece_bad_input(tmp_path, words, error, message):
    target = tmp_path / "m.model"
    with pytest.raises(error, match=message):
        convert_to_bytepiece(words, target)
    assert not target.exists()


def test_convert_to_bytepiece_rejects_non_mapping(tmp_path):
    with pytest.raises(TypeError, match="dict of word -> count"):
        convert_to_bytepiece([("a", 1)], tmp_path / "m.model")  # type: ignore[arg-type]


def test_read_word_counts_and_import_words(tmp_path):
    source = tmp_path / "dict.txt"
    source.write_bytes("\ufeffAT&T 3 nz\n中国 120 ns\n\n中国人 400\r\n人 200 n\n中国 5 n\n".encode())
    assert read_word_counts(source) == {"AT&T": 3, "中国": 125, "中国人": 400, "人": 200}
    result = import_words(source, tmp_path / "out.model")
    tok = Tokenizer(tmp_path / "out.model")
    assert len(result) + 3 == tok.vocab_size
    assert tok.tokenize("中国人") == ["中国人".encode()]


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"a 1\nb\n", 2, "expected 'word count \\[tag\\]'"),
        (b"a 1\nb 2 n extra\n", 2, "expected 'word count \\[tag\\]'"),
        (b"a x\n", 1, "must be a positive integer"),
        (b"a 1\n\nb 0\n", 3, "must be a positive integer"),
        (b"a -3\n", 1, "must be a positive integer"),
        (b"a 1\n\xff\xfe 2\n", 2, "not UTF-8"),
    ],
)
def test_read_word_counts_bad_lines(tmp_path, content, line, message):
    source = tmp_path / "bad.txt"
    source.write_bytes(content)
    with pytest.raises(ValueError, match=rf"bad\.txt:{line}: .*{message}"):
        read_word_counts(source)
