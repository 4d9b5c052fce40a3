"""Deterministic encoding: golden ids of the reference models, API behaviour."""
import json
import unicodedata

import numpy as np
import pytest

from bytepiece import Tokenizer, normalize
from conftest import CORPORA, reference_file

MODELS = [
    ("bytepiece.eu.plus.40k.model", "golden.eu.plus.40k.jsonl"),
    ("bytepiece.zh.id.eu.40k.model", "golden.zh.id.eu.40k.jsonl"),
]


@pytest.fixture(scope="module")
def eu_tokenizer():
    return Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))


@pytest.mark.parametrize("model,golden", MODELS)
def test_golden_ids_every_line(model, golden):
    tok = Tokenizer(reference_file(model))
    with open(reference_file(golden), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    assert len(records) > 1000
    mismatches = [r["text"][:60] for r in records if tok.encode(r["text"]) != r["ids"]]
    assert mismatches == []
    # The batch path (native threads) gives the same ids.
    batch = tok.encode_batch([r["text"] for r in records], num_threads=2)
    assert batch == [r["ids"] for r in records]


def test_decode_inverts_encode_on_corpora(eu_tokenizer):
    for path in sorted(CORPORA.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        ids = eu_tokenizer.encode(text)
        assert eu_tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


def test_tokenize_pieces_match_ids(eu_tokenizer):
    text = "Debian 的软件包管理 apt-get install\n\n\nnext line"
    pieces = eu_tokenizer.tokenize(text)
    assert eu_tokenizer.pieces_to_ids(pieces) == eu_tokenizer.encode(text)
    assert eu_tokenizer.ids_to_pieces(eu_tokenizer.encode(text)) == pieces
    assert b"".join(pieces) == text.encode()
    assert list(eu_tokenizer.tokenize(text, iter=True)) == pieces
    assert list(eu_tokenizer.encode(text, iter=True)) == eu_tokenizer.encode(text)


def test_chunks_are_segmented_independently(eu_tokenizer):
    text = "abc\n\ndef\nxyz"
    per_chunk = [eu_tokenizer.encode(chunk) for chunk in normalize(text)]
    assert eu_tokenizer.encode(text) == [i for ids in per_chunk for i in ids]


def test_bos_eos_and_specials(eu_tokenizer):
    ids = eu_tokenizer.encode("hello", add_bos=True, add_eos=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert ids[1:-1] == eu_tokenizer.encode("hello")
    assert eu_tokenizer.decode(ids) == "hello"
    assert [eu_tokenizer.id_to_piece(i) for i in range(3)] == ["<pad>", "<bos>", "<eos>"]
    assert eu_tokenizer.piece_to_id("<eos>") == 2
    assert eu_tokenizer.encode("", add_bos=True, add_eos=True) == [1, 2]
    assert eu_tokenizer.encode("") == []


def test_vocab_size_and_piece_ids(eu_tokenizer):
    assert eu_tokenizer.vocab_size == 39842
    assert eu_tokenizer.id_to_piece(3) == b"\x00"
    assert eu_tokenizer.piece_to_id(b"a") == 100
    assert eu_tokenizer.max_piece_length == 36


def test_nfc_is_applied_to_str_but_not_to_bytes(eu_tokenizer):
    decomposed = "e\u0301"  # e + combining acute: NFC is U+00E9
    assert eu_tokenizer.encode(decomposed) == eu_tokenizer.encode("\u00e9")
    raw = decomposed.encode()
    assert b"".join(eu_tokenizer.tokenize(raw)) == raw
    assert eu_tokenizer.decode_bytes(eu_tokenizer.encode(raw)) == raw


def test_bytes_input_is_lossless_even_when_invalid_utf8(eu_tokenizer):
    raw = bytes(range(256)) * 3 + b"\xff\xfe\n\n\x80abc"
    assert b"".join(eu_tokenizer.tokenize(raw)) == raw
    assert eu_tokenizer.decode_bytes(eu_tokenizer.encode(raw)) == raw
    assert eu_tokenizer.encode(bytearray(raw)) == eu_tokenizer.encode(raw)
    assert eu_tokenizer.encode(memoryview(raw)) == eu_tokenizer.encode(raw)


def test_str_and_its_utf8_encode_alike(eu_tokenizer):
    text = "天气 weather ☀️\r\n\n"
    assert eu_tokenizer.encode(text) == eu_tokenizer.encode(text.encode())


def test_numpy_output(eu_tokenizer):
    text = "NumPy output for pipelines"
    arr = eu_tokenizer.encode(text, out_type=np.ndarray, add_eos=True)
    assert arr.dtype == np.int32
    assert arr.tolist() == eu_tokenizer.encode(text, add_eos=True)
    assert eu_tokenizer.encode("", out_type="numpy").shape == (0,)
    batch = eu_tokenizer.encode_batch(["a b", "", "c"], out_type=np.ndarray)
    assert [a.tolist() for a in batch] == [eu_tokenizer.encode(t) for t in ["a b", "", "c"]]
    assert eu_tokenizer.decode(arr) == text


def test_long_line_and_newline_runs(eu_tokenizer):
    text = "x" * 100_000 + "\n" * 500 + "y"
    ids = eu_tokenizer.encode(text)
    assert eu_tokenizer.decode(ids) == text


def test_ties_keep_the_longest_last_piece():
    # '\n\n\n' has two best segmentations of equal score when p(\n\n) = p(\n)^2 ...
    # the reference gives [13, 260] = '\n' + '\n\n' on its model; check on a toy.
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"a"] = 4
    counts[b"aa"] = 2
    counts[b"b"] = 6
    counts[b"ab"] = 3  # b + aa vs ab + a etc.
    from bytepiece.model_io import model_dict
    from bytepiece._educational import EducationalTokenizer

    tok = Tokenizer(model_dict(counts))
    twin = EducationalTokenizer(counts)
    for text in [b"aaa", b"aab", b"abab", b"aaaa", b"baab"]:
        assert tok.tokenize(text) == twin.viterbi(text)
