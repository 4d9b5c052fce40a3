"""Vocabulary extension: every existing id keeps its piece, the new pieces are used."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bytepiece import Tokenizer, Trainer
from bytepiece.extend import bytes_per_token, extend_with_texts, extend_with_words
from conftest import CORPORA


def lines(name: str):
    return (CORPORA / name).read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.fixture(scope="module")
def english_path(tmp_path_factory):
    """A model that has seen English only, with a special token."""
    path = tmp_path_factory.mktemp("extend") / "en.model"
    trainer = Trainer(max_vocab_size=1200, verbose=False, special_tokens=["<|endoftext|>"])
    trainer.train(lines("handbook.en-US.txt")[::3])
    trainer.save(path)
    return path


def _same_old_ids(base: Tokenizer, extended: Tokenizer) -> None:
    for i in range(base.vocab_size):
        assert extended.id_to_piece(i) == base.id_to_piece(i), i
    assert extended.special_tokens.items() >= base.special_tokens.items()


def test_words_are_added_after_the_last_id(english_path):
    base = Tokenizer(english_path)
    existing = base._vocab.pieces[300].decode()
    words = {"北京": 100, "天安门": 50, existing: 7, "<|endoftext|>": 3, "Kubernetes": 20}
    ext = extend_with_words(base, words)
    _same_old_ids(base, ext.tokenizer)
    assert ext.first_id == base.vocab_size
    assert sorted(ext.added) == sorted(["北京".encode(), "天安门".encode(), b"Kubernetes"])
    assert sorted(ext.kept) == sorted([existing.encode(), b"<|endoftext|>"])
    assert ext.tokenizer.vocab_size == base.vocab_size + 3
    for k, piece in enumerate(ext.added):
        assert ext.tokenizer.id_to_piece(ext.first_id + k) == piece
        assert ext.tokenizer.encode(piece) == [ext.first_id + k]  # the new piece wins on its own text
    assert ext.tokenizer.encode("我去北京天安门", out_type=np.ndarray).max() >= ext.first_id
    # Old-domain text hardly changes: only the total of the counts grew.
    text = "".join(lines("handbook.en-US.txt")[1::50])
    assert abs(len(ext.tokenizer.encode(text)) - len(base.encode(text))) <= 0.01 * len(base.encode(text))


def test_add_keeps_the_words_of_most_gain(english_path):
    base = Tokenizer(english_path)
    ext = extend_with_words(base, {"北京": 100, "天安门": 1, "中华人民共和国": 1000}, add=1)
    assert ext.added == ["中华人民共和国".encode()]


@pytest.mark.parametrize("words, problem", [
    ({"": 3}, "empty"),
    ({"x" * 2000: 3}, "2000 bytes"),
    ({"ok": 0}, "'ok'"),
])
def test_bad_words(english_path, words, problem):
    with pytest.raises(ValueError, match=problem):
        extend_with_words(english_path, words)
    with pytest.raises(ValueError, match="add"):
        extend_with_words(english_path, {"a": 1}, add=0)


def test_learned_pieces_improve_new_domain_text(english_path):
    base = Tokenizer(english_path)
    poems = lines("tang300.zh.txt")
    train, held_out = poems[::2], poems[1::2]
    ext = extend_with_texts(base, train, 300)
    _same_old_ids(base, ext.tokenizer)
    assert 0 < len(ext.added) <= 300 and ext.kept == []
    before = bytes_per_token(base, held_out)
    after = bytes_per_token(ext.tokenizer, held_out)
    assert before[0] == after[0]
    assert after[1] < 0.8 * before[1]
    ids = np.concatenate(ext.tokenizer.encode_batch(held_out, out_type=np.ndarray))
    assert len(np.unique(ids[ids >= ext.first_id])) > 0.5 * len(ext.added)


def test_cli_extend(english_path, tmp_path):
    words = tmp_path / "dict.txt"
    words.write_text("北京 100 ns\n天安门 50\nthe 9\n", encoding="utf-8")
    sample = tmp_path / "sample.txt"
    sample.write_text("北京天安门\n" * 5, encoding="utf-8")
    out = tmp_path / "ext.model"
    run = subprocess.run([sys.executable, "-m", "bytepiece.cli", "extend", "-m", str(english_path), "-o", str(out),
                          "--words", str(words), "--text", str(sample)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 pieces added" in run.stderr and "kept 1 words that already are pieces: the" in run.stderr
    assert "bytes/token:" in run.stderr and "->" in run.stderr
    _same_old_ids(Tokenizer(english_path), Tokenizer(out))
    poems = tmp_path / "poems.txt"
    poems.write_text("".join(lines("tang300.zh.txt")[:400]), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "bytepiece.cli", "extend", "-m", str(english_path), "-o", str(out),
                          "--train", str(poems), "--add", "50"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "50 pieces added" in run.stderr and "bytes/token:" in run.stderr
    bad = subprocess.run([sys.executable, "-m", "bytepiece.cli", "extend", "-m", str(english_path), "-o", str(out),
                          "--train", str(poems)], capture_output=True, text=True)
    assert bad.returncode != 0 and "--add" in bad.stderr


def test_educational_twin_refuses_interleaved_ids(english_path, tmp_path):
    from bytepiece._educational import EducationalTokenizer

    base = Tokenizer(english_path)
    base.add_special_tokens(["<|sep|>"])
    extend_with_words(base, {"北京": 10}).tokenizer.save(tmp_path / "x.model")
    with pytest.raises(ValueError, match="between its pieces"):
        EducationalTokenizer.from_model(tmp_path / "x.model")
    twin = EducationalTokenizer.from_model(english_path)  # special tokens after the pieces: fine
    assert twin.encode("hello") == Tokenizer(english_path).encode("hello")


def test_learned_pieces_never_hold_a_special_token(english_path):
    base = Tokenizer(english_path)  # has <|endoftext|>
    texts = [line.rstrip("\n") + "<|endoftext|>" for line in lines("tang300.zh.txt")[:2000]]
    ext = extend_with_texts(base, texts, 100)
    assert ext.added and not [p for p in ext.added if b"<|" in p or b"|>" in p]
