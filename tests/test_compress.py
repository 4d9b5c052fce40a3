"""Tests of the compression-first trainer (``bytepiece.compress``, ``bytepiece._compress``)."""
from __future__ import annotations

import os
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece._compress import PieceSet, count_candidates, count_chars
from bytepiece.compress import hard_em, load_corpus, train_compress
from bytepiece.model_io import load_vocabulary, model_dict, save_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small_corpus() -> list:
    """About 60 kB: Tang poems, English prose with digits, and some repeats."""
    with open(os.path.join(ROOT, "corpora", "tang300.zh.txt"), encoding="utf-8") as handle:
        poems = handle.read()[:12000]
    with open(os.path.join(ROOT, "corpora", "handbook.en-US.txt"), encoding="utf-8") as handle:
        english = handle.read()[:30000]
    return [poems, english, "Debian 11 (bullseye) 2021\n" * 20]


@pytest.fixture(scope="module")
def corpus() -> list:
    return _small_corpus()


@pytest.fixture(scope="module")
def trained(corpus):
    return train_compress(corpus, [600, 1200], max_piece_length=12, verbose=False)


def _pack(chunks):
    counter = Counter(chunks)
    distinct = list(counter)
    data = b"".join(distinct)
    offsets = np.zeros(len(distinct) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in distinct], out=offsets[1:])
    weights = np.array([counter[c] for c in distinct], dtype=np.int64)
    return np.frombuffer(data, dtype=np.uint8), offsets, weights


# -- the compiled kernels ---------------------------------------------------------

@pytest.mark.parametrize("mode", [0, 1, 2])
def test_candidates_match_brute_force(mode):
    rng = random.Random(mode)
    # Valid UTF-8, as every training chunk is (it comes from str): a, b, é.
    chunks = ["".join(rng.choice("abé") for _ in range(rng.randint(1, 12))).encode() for _ in range(150)]
    chunks += ["你好世界你好\n".encode()] * 3
    data, offsets, weights = _pack(chunks)

    def allowed(c, i, m):
        if mode == 0:
            return True
        if (c[i] & 0xC0) == 0x80:
            return False
        return mode == 2 or i + m == len(c) or (c[i + m] & 0xC0) != 0x80

    expected = Counter()
    for c in chunks:
        for i in range(len(c)):
            for m in range(2, 9):
                if i + m <= len(c) and allowed(c, i, m):
                    expected[c[i:i + m]] += 1
    expected = {k: v for k, v in expected.items() if v >= 3}
    pieces, counts = count_candidates(data, offsets, weights, 8, 3, 10 ** 6, mode)
    assert dict(zip(pieces, counts.tolist())) == expected
    for k in (1, 10, 40):
        pieces, counts = count_candidates(data, offsets, weights, 8, 3, k, mode)
        best = sorted((v * (len(p) - 1) for p, v in expected.items()), reverse=True)[:k]
        got = [v * (len(p) - 1) for p, v in zip(pieces, counts.tolist())]
        assert got == best  # best first, exact counts
        assert all(expected[p] == v for p, v in zip(pieces, counts.tolist()))


def test_count_chars_matches_python():
    texts = ["héllo wörld 你好 😀\n", "你好你好\n", "abc", "你好你好\n"]
    data, offsets, weights = _pack([t.encode() for t in texts])
    cps, counts = count_chars(data, offsets, weights)
    expected = Counter(ch for t in texts for ch in t if ord(ch) >= 0x80)
    assert dict(zip(map(chr, cps.tolist()), counts.tolist())) == dict(expected)


def test_split_cost_is_fewest_other_pieces():
    pieces = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b"bc", b"abcd", b"cd", b"xyz"]
    cost = PieceSet(pieces).split_cost()
    named = dict(zip(pieces, cost.tolist()))
    assert named[b"a"] == -1  # nothing else spells a single byte
    assert named[b"ab"] == 2
    assert named[b"abc"] == 2  # ab|c or a|bc
    assert named[b"abcd"] == 2  # ab|cd
    assert named[b"xyz"] == 3
    halves = np.concatenate([PieceSet(pieces).split_cost(0, 100), PieceSet(pieces).split_cost(100)])
    assert halves.tolist() == cost.tolist()


def test_expected_counts_match_enumeration():
    pieces = [bytes([b]) for b in range(256)] + [b"ab", b"ba", b"aba", b"bab"]
    rng = np.random.default_rng(1)
    scores = np.log(rng.uniform(0.01, 1.0, size=len(pieces)))
    index = {p: i for i, p in enumerate(pieces)}
    text = b"ababab"

    def segmentations(t):
        if not t:
            yield []
            return
        for k in range(1, len(t) + 1):
            if t[:k] in index:
                for rest in segmentations(t[k:]):
                    yield [t[:k]] + rest

    expected = np.zeros(len(pieces))
    segs = list(segmentations(text))
    weights = np.array([np.exp(sum(scores[index[p]] for p in seg)) for seg in segs])
    for seg, w in zip(segs, weights / weights.sum()):
        for p in seg:
            expected[index[p]] += 3 * w
    data, offsets, counts = _pack([text] * 3)
    got = PieceSet(pieces).expected_counts(data, offsets, counts, scores)
    assert np.allclose(got, expected)


def test_fallback_viterbi_matches_core(corpus):
    core = pytest.importorskip("bytepiece._core")
    chunks = [c for text in corpus for c in load_corpus([text]).data.split(b"\n") if c]
    data, offsets, weights = _pack(chunks)
    rng = np.random.default_rng(0)
    pieces = [bytes([b]) for b in range(256)] + sorted({c[i:i + n] for c in chunks[:200]
                                                        for i in range(len(c)) for n in (2, 3, 5)
                                                        if i + n <= len(c)})
    counts = rng.integers(1, 50, size=len(pieces))
    scores = np.log(counts / counts.sum())
    ours = PieceSet(pieces).split_counts(data, offsets, weights, scores)
    theirs = core.Segmenter(pieces, scores).split_counts(data.tobytes(), offsets, weights)
    assert ours.tolist() == np.asarray(theirs).tolist()


# -- the trainer ----------------------------------------------------------------

def test_model_is_valid_and_sized(trained, tmp_path):
    for size, counts in trained.items():
        assert len(counts) <= size - 3
        assert len(counts) > size - 3 - 50  # the vocabulary is (nearly) filled
        assert all(bytes([b]) in counts for b in range(256))
        assert all(isinstance(c, int) and c > 0 for c in counts.values())
        assert max(len(p) for p in counts) <= 12
        for piece in counts:  # ensure_unicode: whole characters only
            piece.decode("utf-8") if len(piece) > 1 else None
        path = tmp_path / f"m.{size}"
        save_model(counts, path)
        vocab = load_vocabulary(path)
        assert dict(zip(vocab.pieces, vocab.counts)) == counts


def test_larger_vocabulary_compresses_more(trained, corpus):
    small, large = trained[600], trained[1200]
    tokens = {}
    data = load_corpus(corpus)
    for size, counts in trained.items():
        pieces = list(counts)
        used = hard_em(pieces, np.array([counts[p] for p in pieces]), data)
        tokens[size] = int(used.sum())
    assert tokens[1200] < tokens[600] < data.total_bytes / 1.5
    assert set(large) != set(small)


def test_final_counts_are_the_tokenizer_counts(trained, corpus):
    """The saved counts are a hard-EM re-count: segmenting the training text with
    the model uses each multi-byte piece (nearly) as often as its count says."""
    counts = trained[1200]
    pieces = list(counts)
    before = np.array([counts[p] for p in pieces])
    after = hard_em(pieces, before, load_corpus(corpus))
    multi = np.array([len(p) > 1 for p in pieces])
    changed = np.abs(after - before)[multi].sum()
    assert changed <= 0.01 * before[multi].sum()


def test_workers_do_not_change_the_result(corpus):
    one = train_compress(corpus, 700, max_piece_length=8, workers=1, verbose=False)
    two = train_compress(corpus, 700, max_piece_length=8, workers=2, verbose=False)
    assert one == two


def test_options(corpus):
    result = train_compress(corpus, 500, max_piece_length=6, isolate_digits=True,
                            ensure_unicode=False, char_starts=True, verbose=False)[500]
    assert max(len(p) for p in result) <= 6
    for piece in result:
        if len(piece) > 1:
            assert not any(48 <= b <= 57 for b in piece)  # digits stay single
            assert (piece[0] & 0xC0) != 0x80  # pieces start on a character
    with pytest.raises(ValueError):
        train_compress(corpus, 200, verbose=False)
    anything = train_compress(corpus, 500, max_piece_length=6, ensure_unicode=False, verbose=False)[500]
    assert max(len(p) for p in anything) <= 6 and len(anything) <= 497


def test_edge_cases():
    for empty in ([], ["", ""]):  # as bnlm: no model from no text
        with pytest.raises(ValueError, match="corpus is empty"):
            train_compress(empty, 300, verbose=False)
    tiny = ["你好 hello 你好 hello " * 5]
    assert max(map(len, train_compress(tiny, 300, max_piece_length=1, verbose=False)[300])) == 1
    assert max(map(len, train_compress(tiny, 300, max_piece_length=3, verbose=False)[300])) == 3
    with pytest.raises(TypeError):
        train_compress([b"bytes"], 300, verbose=False)
    for bad in ({"em": "fuzzy"}, {"split_cost": "guess"}, {"repeats": "never"}, {"prune_fraction": 0}):
        with pytest.raises(ValueError):
            train_compress(tiny, 300, verbose=False, **bad)


def test_candidate_sample_bounds_the_suffix_array(corpus, capsys):
    sampled = train_compress(corpus, 600, max_piece_length=8, candidate_bytes=20000, verbose=True)[600]
    assert "sample" in capsys.readouterr().err
    assert all(bytes([b]) in sampled for b in range(256))
    assert 500 < len(sampled) <= 597


def test_progress_on_stderr(corpus, capsys):
    train_compress(corpus[:1], 400, max_piece_length=6, verbose=True)
    err = capsys.readouterr().err
    assert "candidates" in err and "size 400" in err


# -- round trip through the tokenizer -------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(trained):
    tok_mod = pytest.importorskip("bytepiece.tokenizer")
    return tok_mod.Tokenizer(model_dict(trained[1200]))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(tokenizer, text):
    import unicodedata

    ids = tokenizer.encode(text)
    assert all(3 <= i < 1200 for i in ids)
    assert tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


def test_round_trip_training_text(tokenizer, corpus):
    for text in corpus:
        assert tokenizer.decode(tokenizer.encode(text)) == text
