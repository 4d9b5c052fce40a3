"""Special tokens: in the model file, in training, in every encoding path, in exports."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

from bytepiece import Tokenizer, Trainer
from bytepiece.lattice import exact_probability
from bytepiece.model_io import MAX_PIECE_BYTES, load_vocabulary, model_dict
from conftest import CORPORA, reference_file

CHAT = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def corpus_lines(limit: int = 0) -> List[str]:
    lines: List[str] = []
    for path in sorted(CORPORA.glob("*.txt")):
        lines.extend(path.read_text(encoding="utf-8").splitlines(keepends=True))
    return lines[:limit] if limit else lines


def chat(lines: List[str]) -> List[str]:
    return [f"<|im_start|>user\n{a.rstrip()}<|im_end|>\n<|im_start|>assistant\n{b.rstrip()}<|im_end|>\n"
            "<|endoftext|>" for a, b in zip(lines, lines[1:] + lines[:1])]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A small model trained with the chat special tokens."""
    path = tmp_path_factory.mktemp("special") / "chat.model"
    trainer = Trainer(max_vocab_size=1500, verbose=False, special_tokens=CHAT)
    trainer.train(chat(corpus_lines()[::10]))
    trainer.save(path)
    return path


@pytest.fixture()
def tok(model_path) -> Tokenizer:
    return Tokenizer(model_path)


@pytest.fixture(scope="module")
def plain(model_path) -> Tokenizer:
    """The same pieces without the added special tokens."""
    data = json.loads(model_path.read_text(encoding="utf-8"))
    return Tokenizer({k: v for k, v in data.items() if v[2] > 0})


# -- the model file --------------------------------------------------------------


def test_reference_model_loads_unchanged():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
    assert tok.special_tokens == {"<pad>": 0, "<bos>": 1, "<eos>": 2}
    assert tok.vocab_size == len(tok._vocab.pieces) + 3


def test_trained_special_tokens_follow_the_pieces(tok, model_path):
    n = len(tok._vocab.pieces)
    assert tok.special_tokens == {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<|im_start|>": n + 3,
                                  "<|im_end|>": n + 4, "<|endoftext|>": n + 5}
    assert tok.vocab_size == n + 6
    data = json.loads(model_path.read_text(encoding="utf-8"))
    specials = sorted(v for v in data.values() if v[2] == 0)
    assert specials == [[n + 3, "<|im_start|>", 0], [n + 4, "<|im_end|>", 0], [n + 5, "<|endoftext|>", 0]]
    assert tok.id_to_piece(n + 4) == "<|im_end|>" and tok.piece_to_id("<|im_end|>") == n + 4


def test_training_cuts_texts_at_special_tokens():
    # "QZQ" is everywhere: were the texts not cut there, it (or a part of it)
    # would be learned as a piece.
    lines = [line.rstrip("\n") + "QZQ" for line in corpus_lines()[::20]]
    for algorithm in ("bnlm", "compress"):
        trainer = Trainer(max_vocab_size=800, verbose=False, algorithm=algorithm, special_tokens=["QZQ"])
        pieces = trainer.train(lines)[800]
        assert not [p for p in pieces if len(p) > 1 and (b"Q" in p or b"Z" in p)], algorithm


def test_add_special_tokens_then_save(tok, tmp_path):
    size = tok.vocab_size
    before = tok.encode("hello <|x|> world")
    assert tok.add_special_tokens(["<|x|>", "<|y|>"]) == [size, size + 1]
    assert tok.encode("hello <|x|> world") == before  # not allowed: ordinary text
    tok.save(tmp_path / "more.model")
    again = Tokenizer(tmp_path / "more.model")
    assert again.special_tokens == tok.special_tokens
    assert again.encode("a<|x|>b", allowed_special="all") == tok.encode("a<|x|>b", allowed_special="all")
    assert again.encode("a<|x|>b", allowed_special="all")[1] == size


@pytest.mark.parametrize("bad, problem", [
    ("", "''"),
    ("x" * (MAX_PIECE_BYTES + 1), "too long"),
    ("<bos>", "'<bos>'"),
    ("<|im_end|>", "'<|im_end|>'"),
    ("e\u0301tat", "not NFC"),
    ("a", "'a'"),
])
def test_bad_special_tokens_are_named(tok, bad, problem):
    with pytest.raises(ValueError, match=problem.replace("|", r"\|")):
        tok.add_special_tokens([bad])
    size = tok.vocab_size
    assert tok.vocab_size == size  # nothing half-added


def test_special_token_identical_to_a_learned_piece(tok):
    piece = max(tok._vocab.pieces, key=len).decode("utf-8")
    with pytest.raises(ValueError, match="identical to the learned piece"):
        tok.add_special_tokens([piece])


def test_duplicates_in_one_list_and_in_trainer():
    with pytest.raises(ValueError, match="duplicate"):
        Trainer(special_tokens=["<a>", "<a>"], verbose=False)
    with pytest.raises(ValueError, match="empty"):
        Trainer(special_tokens=[""], verbose=False)
    with pytest.raises(TypeError):
        Trainer(special_tokens="<a>", verbose=False)


# -- encoding --------------------------------------------------------------------


def test_special_text_is_ordinary_by_default(tok, plain):
    text = chat(corpus_lines(3))[0]
    assert tok.encode(text) == plain.encode(text)
    assert tok.encode_batch([text]) == plain.encode_batch([text])
    assert np.array_equal(tok.encode_batch_flat([text])[0], plain.encode_batch_flat([text])[0])
    assert max(tok.encode(text)) < min(set(tok.special_tokens.values()) - {0, 1, 2})


def test_allowed_special_makes_one_id(tok, plain):
    ids = tok.special_tokens
    text = "<|im_start|>user\nhi<|im_end|>\n"
    got = tok.encode(text, allowed_special="all")
    assert got == [ids["<|im_start|>"]] + plain.encode("user\nhi") + [ids["<|im_end|>"]] + plain.encode("\n")
    only_end = tok.encode(text, allowed_special={"<|im_end|>"})
    assert only_end == plain.encode("<|im_start|>user\nhi") + [ids["<|im_end|>"]] + plain.encode("\n")
    assert tok.tokenize(text, allowed_special="all")[0] == "<|im_start|>"
    assert tok.decode(got) == text
    assert tok.decode([1] + got + [2, 0]) == text  # <pad> <bos> <eos> stay silent
    with pytest.raises(ValueError, match="not a special token"):
        tok.encode(text, allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="all"):
        tok.encode(text, allowed_special="<|im_end|>")


def test_longest_special_token_wins(tok):
    tok.add_special_tokens(["<a>", "<a>b"])
    ids = tok.special_tokens
    assert tok.encode("<a>b<a>", allowed_special="all") == [ids["<a>b"], ids["<a>"]]
    assert tok.encode("<a>b<a>", allowed_special={"<a>"})[0] == ids["<a>"]


def _mixed_texts(seed: int) -> List[str]:
    rng = random.Random(seed)
    lines = corpus_lines(400)
    parts = CHAT + ["<bos>", "<|im_", "end|>", "", "\n", "\n\n"]
    texts = []
    for _ in range(300):
        pieces = [rng.choice(parts) if rng.random() < 0.4 else rng.choice(lines)[: rng.randint(0, 40)]
                  for _ in range(rng.randint(0, 6))]
        texts.append("".join(pieces))
    return texts


@pytest.mark.parametrize("add_bos, add_eos", [(False, False), (True, True), (False, True)])
def test_batches_equal_single_calls(tok, add_bos, add_eos):
    texts = _mixed_texts(1)
    single = [tok.encode(t, add_bos=add_bos, add_eos=add_eos, allowed_special="all") for t in texts]
    assert tok.encode_batch(texts, add_bos=add_bos, add_eos=add_eos, allowed_special="all") == single
    arrays = tok.encode_batch(texts, add_bos=add_bos, add_eos=add_eos, allowed_special="all", out_type=np.ndarray)
    assert [a.tolist() for a in arrays] == single
    flat, bounds = tok.encode_batch_flat(texts, add_bos=add_bos, add_eos=add_eos, allowed_special="all",
                                         num_threads=2)
    assert flat.dtype == np.int32
    assert [flat[a:b].tolist() for a, b in zip(bounds, bounds[1:])] == single
    for text, ids in zip(texts, single):
        assert tok.decode(ids) == text.replace("<bos>", "")


def test_sampling_never_splits_and_is_reproducible(tok):
    texts = _mixed_texts(2)
    special_ids = set(tok.special_tokens.values())
    batch = tok.encode_batch(texts, alpha=0.0, seed=7, allowed_special="all")
    for text, ids in zip(texts, batch):
        assert tok.decode(ids) == text.replace("<bos>", "")
        assert sum(i in special_ids for i in ids) == sum(text.count(s) for s in CHAT + ["<bos>"])
    # Text i depends only on (seed, first_index + i): batching does not matter.
    halves = (tok.encode_batch(texts[:100], alpha=0.0, seed=7, allowed_special="all")
              + tok.encode_batch(texts[100:], alpha=0.0, seed=7, allowed_special="all", first_index=100))
    assert halves == batch
    assert tok.encode(texts[0], alpha=0.0, seed=7, allowed_special="all") == batch[0]
    flat, bounds = tok.encode_batch_flat(texts, alpha=0.0, seed=7, allowed_special="all")
    assert [flat[a:b].tolist() for a, b in zip(bounds, bounds[1:])] == batch
    # Sampling really samples around the special tokens.
    text = chat(corpus_lines()[::10])[0]
    draws = {tuple(tok.encode(text, alpha=0.0, seed=s, allowed_special="all")) for s in range(20)}
    assert len(draws) > 1 and all(d[0] == tok.special_tokens["<|im_start|>"] for d in draws)


def test_offsets_and_nbest(tok):
    text = "héllo<|im_end|>wörld"
    ids, spans = tok.encode_with_offsets(text, allowed_special="all")
    end = tok.special_tokens["<|im_end|>"]
    k = ids.index(end)
    assert spans[k] == (5, 15)
    assert [text[a:b] for a, b in spans[k + 1:]] and spans[-1][1] == len(text)
    best = tok.nbest(text, 3, allowed_special="all")
    assert best[0][0] == tok.encode(text, allowed_special="all")
    assert all(seg.count(end) == 1 for seg, _ in best)
    assert [seg for seg, _ in tok.nbest(text, 3)][0] == tok.encode(text)


def test_pickle_keeps_special_tokens(tok):
    import pickle

    tok.add_special_tokens(["<|tool|>"])
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.special_tokens == tok.special_tokens
    assert clone.encode("a<|tool|>", allowed_special="all") == tok.encode("a<|tool|>", allowed_special="all")


# -- a model extended after special tokens: pieces and special tokens interleave ---


def test_interleaved_ids(tok):
    from bytepiece.extend import extend_with_words

    extension = extend_with_words(tok, {"Weltanschauung": 50, "Zeitgeist": 40})
    ext = extension.tokenizer
    assert extension.first_id == tok.vocab_size
    assert ext._remap is not None
    for text, i in tok.special_tokens.items():
        assert ext.special_tokens[text] == i
    word_id = ext.encode("Weltanschauung")
    assert word_id == [extension.first_id]
    text = "<|im_start|>Zeitgeist and Weltanschauung<|im_end|>"
    ids = ext.encode(text, allowed_special="all")
    assert ext.decode(ids) == text
    assert ext.encode(text, allowed_special="all", out_type=np.ndarray).tolist() == ids
    assert ext.encode_batch_flat([text], allowed_special="all")[0].tolist() == ids
    assert ext.encode_batch_flat([text])[0].tolist() == ext.encode(text)
    assert ext.encode(text, out_type=np.ndarray).tolist() == ext.encode(text)
    assert b"".join(ext.tokenize(text)) == text.encode()
    assert ext.nbest(text, 1)[0][0] == ext.encode(text)


# -- token files -----------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_token_file_allow_special(tok, model_path, tmp_path, workers):
    texts = [t.replace("\n", " ") for t in _mixed_texts(3)]
    source = tmp_path / "in.txt"
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out.npy"
    for flag, allowed in (("--allow-special", "all"), (None, None)):
        args = [sys.executable, "-m", "bytepiece.cli", "encode", "-m", str(model_path), str(source),
                "-o", str(out), "--workers", str(workers), "-q"] + ([flag] if flag else [])
        subprocess.run(args, check=True)
        expected, _ = tok.encode_batch_flat([t + "\n" for t in texts], add_eos=True, allowed_special=allowed)
        assert np.load(out).tolist() == expected.tolist()


def test_cli_encode_allow_special_text_output(tok, model_path, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("hi<|im_end|>\n", encoding="utf-8")
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "bytepiece.cli", "encode", "-m", str(model_path), str(source), *extra],
        check=True, capture_output=True, text=True).stdout
    # One line of ids per input line, its newline left out.
    assert run("--allow-special").split() == [str(i) for i in tok.encode("hi<|im_end|>", allowed_special="all")]
    assert run().split() == [str(i) for i in tok.encode("hi<|im_end|>")]
    assert "<|im_end|>" in run("--allow-special", "--format", "pieces").split()


def test_cli_train_special_token(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("".join(chat(corpus_lines()[::40])), encoding="utf-8")
    out = tmp_path / "m.model"
    subprocess.run([sys.executable, "-m", "bytepiece.cli", "train", str(source), "-o", str(out),
                    "--vocab-size", "600", "-q", "--special-token", "<|im_start|>",
                    "--special-token", "<|im_end|>"], check=True)
    tok = Tokenizer(out)
    assert list(tok.special_tokens)[3:] == ["<|im_start|>", "<|im_end|>"]
    assert not [p for p in tok._vocab.pieces if b"<|im" in p]
    bad = subprocess.run([sys.executable, "-m", "bytepiece.cli", "train", str(source), "-o", str(out),
                          "--vocab-size", "600", "-q", "--special-token", ""], capture_output=True, text=True)
    assert bad.returncode != 0 and "special token '' is empty" in bad.stderr


# -- exports ---------------------------------------------------------------------


@pytest.mark.parametrize("which", ["trained here", "reference"])
def test_transformers_round_trip(tmp_path, model_path, which):
    transformers = pytest.importorskip("transformers")
    if which == "reference":
        tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
        tok.add_special_tokens(CHAT)
    else:
        tok = Tokenizer(model_path)  # trained with CHAT
    written = tok.save_pretrained(tmp_path / "hf")
    assert sorted(Path(p).name for p in written) == ["special_tokens_map.json", "tokenizer.json",
                                                     "tokenizer_config.json"]
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert hf.is_fast
    assert (hf.bos_token, hf.eos_token, hf.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (1, 2, 0)
    assert {t: hf.convert_tokens_to_ids(t) for t in CHAT} == {t: tok.special_tokens[t] for t in CHAT}
    assert set(CHAT) <= set(hf.all_special_tokens)
    texts = chat(corpus_lines()[::7])
    theirs = hf(texts, add_special_tokens=False)["input_ids"]
    ours = tok.encode_batch(texts, allowed_special="all")
    differing = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert len(differing) <= 0.015 * len(texts)
    for a, b in differing:  # exact ties, broken another way
        assert sorted(a) == sorted(b) or exact_probability(tok._vocab, a) == exact_probability(tok._vocab, b)
    assert hf.decode(ours[0]) == texts[0]


def test_sentencepiece_user_defined_symbols(tok, tmp_path):
    spm = pytest.importorskip("sentencepiece")
    export = tok.convert_to_sentencepiece(tmp_path / "m.spm")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "m.spm"))
    text = "<|im_start|>user\nhello<|im_end|>"
    assert export.to_bytepiece(sp.encode(text)) == tok.encode(text, allowed_special="all")


def test_huggingface_export_rejects_a_byte_fallback_name(tok):
    from bytepiece.convert import huggingface_tokenizer_dict

    tok.add_special_tokens(["<0x41>"])
    with pytest.raises(ValueError, match="'<0x41>'"):
        huggingface_tokenizer_dict(tok)


def test_model_dict_rejects_special_equal_to_piece():
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"<s>"] = 5
    with pytest.raises(ValueError, match="'<s>'"):
        model_dict(counts, ["<s>"])
    assert len(load_vocabulary(model_dict(counts, ["<t>"])).special_tokens) == 1


def test_an_occurrence_across_two_texts_of_a_batch_does_not_count(tok):
    # Packed back to back these read "a<|im_end|>b<|im_end|>": the first
    # occurrence spans the boundary and must neither count nor hide the second.
    texts = ["a<|im_", "end|>b<|im_end|>", "<|im_", "end|>", "<|im_end|>"]
    single = [tok.encode(t, allowed_special="all") for t in texts]
    assert single[0] == tok.encode("a<|im_")
    assert single[1][-1] == tok.special_tokens["<|im_end|>"]
    assert tok.encode_batch(texts, allowed_special="all") == single
    assert tok.encode_batch(texts, allowed_special="all", alpha=0.5, seed=3) == [
        tok.encode_batch([t], allowed_special="all", alpha=0.5, seed=3, first_index=i)[0]
        for i, t in enumerate(texts)]


def test_allowed_special_equals_splitting_by_hand(tok, plain):
    import re

    ids = tok.special_tokens
    pattern = re.compile("|".join(re.escape(t) for t in sorted(ids, key=len, reverse=True)))
    for text in _mixed_texts(4):
        expected = []
        pos = 0
        for m in pattern.finditer(text):
            expected += plain.encode(text[pos:m.start()]) + [ids[m.group()]]
            pos = m.end()
        expected += plain.encode(text[pos:])
        assert tok.encode(text, allowed_special="all") == expected, text
