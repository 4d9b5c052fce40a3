"""The public surface: names importable from the package and their basic behaviour."""
import bytepiece
from bytepiece.model_io import model_dict


def test_public_names():
    for name in ["Tokenizer", "normalize", "__version__"]:
        assert hasattr(bytepiece, name), name


def test_tiny_model_from_dict_roundtrip():
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"he": 50, b"llo": 40, b"hello": 30, b" wor": 20, b"ld": 20})
    tok = bytepiece.Tokenizer(model_dict(counts))
    assert tok.tokenize("hello world") == [b"hello", b" wor", b"ld"]
    assert tok.decode(tok.encode("hello world")) == "hello world"
    assert tok.vocab_size == len(counts) + 3


def test_normalize_matches_spec_examples():
    assert bytepiece.normalize("ab\r\ncd\n\n\u0000e") == [b"ab\r\n", b"cd\n\n", b"\x00e"]
    assert bytepiece.normalize("") == []
    assert bytepiece.normalize("a1b22", isolate_digits=True) == [b"a", b"1", b"b", b"2", b"2"]
    assert bytepiece.normalize("abcdef", maxlen=4) == [b"abcd", b"ef"]
    assert bytepiece.normalize("e\u0301") == ["\u00e9".encode()]


def test_tokenizer_public_methods():
    names = ["tokenize", "encode", "decode", "decode_bytes", "encode_batch", "encode_batch_flat",
             "encode_with_offsets", "nbest", "entropy", "piece_to_id", "id_to_piece",
             "pieces_to_ids", "ids_to_pieces", "set_seed", "next_seed", "vocab_size",
             "convert_to_sentencepiece", "export_huggingface"]
    missing = [n for n in names if not hasattr(bytepiece.Tokenizer, n)]
    assert missing == []


def test_tokenizer_conversion_methods(tmp_path):
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"he": 50, b"llo": 40})
    tok = bytepiece.Tokenizer(model_dict(counts))
    tok.export_huggingface(tmp_path / "tokenizer.json")
    tok.convert_to_sentencepiece(tmp_path / "sp.model")
    assert (tmp_path / "tokenizer.json").stat().st_size > 0
    assert (tmp_path / "sp.model").stat().st_size > 0
