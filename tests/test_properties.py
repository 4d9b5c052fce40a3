"""Property tests (hypothesis) of the public tokenizer and the compiled core.

The vocabularies are built here from counts, so the tests run anywhere: one
realistic vocabulary from substrings of a small multilingual sample, plus
random vocabularies drawn by hypothesis for the core-versus-twin checks.
The readable twin (``bytepiece._educational``) is the oracle.
"""
from __future__ import annotations

import math
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bytepiece import _core
from bytepiece._educational import EducationalTokenizer
from bytepiece.model_io import model_dict
from bytepiece.tokenizer import Tokenizer

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

SAMPLE = (
    "The quick brown fox jumps over the lazy dog. Tokenizers cut text into pieces.\n"
    "Les élèves ont étudié l'algorithme de Viterbi à l'école.\n"
    "Быстрая коричневая лиса прыгает через ленивую собаку.\n"
    "字节级的一元语言模型分词器，中文分词与英文分词。分词器很快。\n"
    "数字 0123456789 and 2024-06-01, emoji 🙂🙂 and tabs\tand\r\nCRLF lines.\n"
)


def corpus_counts(text: str, max_len: int = 7) -> Dict[bytes, int]:
    """All 256 bytes plus every substring (2..max_len bytes) seen twice or more."""
    data = text.encode("utf-8")
    grams: Counter = Counter()
    for i in range(len(data)):
        for j in range(2, max_len + 1):
            if i + j <= len(data):
                grams[data[i:i + j]] += 1
    counts = {bytes([b]): 1 + data.count(bytes([b])) for b in range(256)}
    counts.update({g: c for g, c in grams.items() if c >= 2})
    return counts


COUNTS = corpus_counts(SAMPLE)
TOK = Tokenizer(model_dict(COUNTS))
TWIN = EducationalTokenizer(COUNTS)
SCORES = {p: s for p, s in TWIN.scores.items()}

#: Fragments that make hypothesis texts hit long pieces often.
FRAGMENTS = [line[i:i + 5] for line in SAMPLE.splitlines(True) for i in range(0, len(line), 3)]

unicode_texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=120),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.characters(codec="utf-8")),
             max_size=40).map("".join),
)
byte_texts = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(lambda xs: "".join(xs).encode("utf-8")),
    st.lists(st.sampled_from([b"\n", b"\r", b"\x00", b"ab", b"\xff\xfe", b"the ", "分词".encode()]),
             max_size=40).map(b"".join),
)
alphas = st.one_of(
    st.sampled_from([0.0, 5e-324, 1e-12, 1e-3, 1.0, 50.0, 500.0]),
    st.floats(min_value=0.0, max_value=1000.0, allow_nan=False),
)
seeds = st.integers(min_value=-(2 ** 70), max_value=2 ** 70)


def assert_valid_segmentation(text: bytes, pieces: List[bytes], vocab) -> None:
    """``pieces`` joins to ``text``, uses vocabulary pieces and respects chunk ends."""
    assert b"".join(pieces) == text
    assert all(p in vocab for p in pieces)
    ends, pos = set(), 0
    for p in pieces:
        pos += len(p)
        ends.add(pos)
    # A chunk ends before each byte that is not a newline but follows one.
    for i in range(1, len(text)):
        if text[i - 1] == 10 and text[i] != 10:
            assert i in ends, f"a piece crosses the chunk boundary at {i}"


def batch_item_seed(seed: int, index: int) -> int:
    """The ``encode`` seed reproducing item ``index`` of a batch seeded ``seed``."""
    mixed = (seed ^ (index * 0xD1B54A32D192ED03)) & ((1 << 64) - 1)
    assert _core.mix_seed(mixed, 0) == _core.mix_seed(seed, index)
    return mixed


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


@SETTINGS
@given(unicode_texts)
def test_decode_encode_is_nfc(text: str) -> None:
    ids = TOK.encode(text)
    assert TOK.decode(ids) == unicodedata.normalize("NFC", text)
    assert TOK.decode(np.asarray(ids, dtype=np.int32)) == unicodedata.normalize("NFC", text)
    assert TOK.encode(text, out_type=np.ndarray).tolist() == ids


@SETTINGS
@given(byte_texts)
def test_tokenize_bytes_joins_back_and_equals_twin(data: bytes) -> None:
    pieces = TOK.tokenize(data)
    assert b"".join(pieces) == data
    assert pieces == TWIN.tokenize(data)
    assert TOK.decode_bytes(TOK.encode(data)) == data
    assert list(TOK.tokenize(data, iter=True)) == pieces


@SETTINGS
@given(unicode_texts, st.booleans(), st.booleans())
def test_str_and_its_nfc_utf8_encode_alike(text: str, bos: bool, eos: bool) -> None:
    raw = unicodedata.normalize("NFC", text).encode("utf-8")
    assert TOK.encode(text, add_bos=bos, add_eos=eos) == TOK.encode(raw, add_bos=bos, add_eos=eos)
    assert TOK.encode(bytearray(raw)) == TOK.encode(memoryview(raw)) == TOK.encode(raw)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(byte_texts, unicode_texts), alphas, seeds)
def test_every_sample_is_a_valid_segmentation(text, alpha: float, seed: int) -> None:
    data = text if isinstance(text, bytes) else unicodedata.normalize("NFC", text).encode("utf-8")
    pieces = TOK.tokenize(text, alpha=alpha, seed=seed)
    assert_valid_segmentation(data, pieces, COUNTS)
    assert TOK.tokenize(text, alpha=alpha, seed=seed) == pieces
    assert TOK.encode(text, alpha=alpha, seed=seed) == [TOK.piece_to_id(p) for p in pieces]


@SETTINGS
@given(byte_texts, alphas)
def test_unseeded_samples_are_valid(data: bytes, alpha: float) -> None:
    tok = Tokenizer(model_dict(COUNTS), seed=None)
    assert_valid_segmentation(data, tok.tokenize(data, alpha=alpha), COUNTS)


def exact_distribution(twin: EducationalTokenizer, chunk: bytes, alpha: float) -> Dict[tuple, float]:
    """P(segmentation) proportional to exp(alpha * sum(scores)), over every segmentation."""
    segs = [tuple(s) for s in twin.segmentations(chunk)]
    logw = [twin.segmentation_logprob(s, alpha) for s in segs]
    top = max(logw)
    weights = [math.exp(w - top) for w in logw]
    total = sum(weights)
    return {s: w / total for s, w in zip(segs, weights)}


def assert_draws_follow(tok: Tokenizer, twin: EducationalTokenizer, chunk: bytes,
                        alpha: float, draws: int = 20000) -> None:
    """Draw ``draws`` segmentations (one stream per batch item) and compare frequencies."""
    exact = exact_distribution(twin, chunk, alpha)
    batch = tok.encode_batch([chunk] * draws, alpha=alpha, seed=12345, num_threads=2)
    seen = Counter(tuple(tok.id_to_piece(i) for i in ids) for ids in batch)
    assert set(seen) <= set(exact), "a draw is not a segmentation"
    for seg, p in exact.items():
        freq = seen.get(seg, 0) / draws
        sigma = math.sqrt(p * (1 - p) / draws)
        assert abs(freq - p) <= 6 * sigma + 3 / draws, (seg, freq, p)


#: This test found a core bug (fixed in a9228ff): the linear-domain sampler
#: weighed a piece by exp(alpha * (score - max_score)), which multiplies a
#: segmentation of k pieces by exp(-alpha * max_score * k) and so favoured
#: segmentations with more pieces (alpha = 0 was unaffected).
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 3.0])
def test_sampling_distribution_is_exact(alpha: float) -> None:
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"a": 10, b"aa": 5, b"aaa": 2, b"ab": 3, b"b": 4, b"ba": 2, b"aab": 1})
    tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
    assert_draws_follow(tok, twin, b"aaaba", alpha)


def test_log_domain_sampling_distribution_is_exact() -> None:
    """A count of 2**990 widens the score range past what linear sampling holds."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"\xff": 2 ** 990, b"a": 4, b"b": 1, b"c": 2, b"ab": 8, b"bc": 1})
    tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
    alpha = 0.65
    spread = alpha * (max(twin.scores.values()) - min(twin.scores.values()))
    assert spread > 415  # the core's switch to the log-domain sampler
    # Four 4-piece segmentations share almost all the mass: ratio 4**0.65 per half.
    assert_draws_follow(tok, twin, b"abcabc", alpha)


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.one_of(byte_texts, unicode_texts), max_size=12),
       st.integers(min_value=0, max_value=8), st.booleans(), st.booleans())
def test_encode_batch_equals_encode(texts, threads: int, bos: bool, eos: bool) -> None:
    want = [TOK.encode(t, add_bos=bos, add_eos=eos) for t in texts]
    assert TOK.encode_batch(texts, add_bos=bos, add_eos=eos, num_threads=threads) == want
    arrays = TOK.encode_batch(texts, add_bos=bos, add_eos=eos, num_threads=threads,
                              out_type=np.ndarray)
    assert [a.tolist() for a in arrays] == want


@SETTINGS
@given(st.lists(byte_texts, min_size=1, max_size=10), st.integers(min_value=0, max_value=8),
       alphas, st.integers(min_value=0, max_value=2 ** 64 - 1))
def test_sampled_batch_equals_seeded_encode(texts, threads: int, alpha: float, seed: int) -> None:
    got = TOK.encode_batch(texts, alpha=alpha, seed=seed, num_threads=threads)
    want = [TOK.encode(t, alpha=alpha, seed=batch_item_seed(seed, i)) for i, t in enumerate(texts)]
    assert got == want
    assert TOK.encode_batch(texts, alpha=alpha, seed=seed, num_threads=1) == got


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@SETTINGS
@given(unicode_texts, st.integers(min_value=0xD800, max_value=0xDFFF), st.data())
def test_lone_surrogates_raise_value_error(text: str, code: int, data) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    bad = text[:at] + chr(code) + text[at:]
    for call in (lambda: TOK.encode(bad), lambda: TOK.tokenize(bad),
                 lambda: TOK.tokenize(bad, alpha=0.5, seed=1),
                 lambda: TOK.encode_batch(["ok", bad], num_threads=2)):
        with pytest.raises(ValueError, match="surrogate"):
            call()


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), "1", None, True])
def test_bad_alpha_is_rejected(alpha) -> None:
    with pytest.raises((TypeError, ValueError)):
        TOK.encode("abc", alpha=alpha)


@pytest.mark.parametrize("value", [3.5, "7", b"x", None, [3]])
def test_bad_ids_raise(value) -> None:
    with pytest.raises((TypeError, ValueError)):
        TOK.decode([3, value])


@pytest.mark.parametrize("value", [1.5, 0.0, True])
def test_non_int_small_ids_raise(value) -> None:
    with pytest.raises(TypeError):
        TOK.decode([3, value])


@pytest.mark.parametrize("value", [None, 3, 1.5, ["a"], object()])
def test_bad_texts_raise_type_error(value) -> None:
    for call in (TOK.encode, TOK.tokenize, lambda v: TOK.encode_batch([v])):
        with pytest.raises(TypeError):
            call(value)


@pytest.mark.parametrize("ids", [[-1], [TOK.vocab_size], [2 ** 40], [3, -5, 4]])
def test_out_of_range_ids_raise_value_error(ids) -> None:
    with pytest.raises(ValueError, match="out of range"):
        TOK.decode(ids)


# ---------------------------------------------------------------------------
# Compiled core == twin on random vocabularies
# ---------------------------------------------------------------------------

VOCAB_ALPHABET = b"ab\n\xc3\xa9"
counts_values = st.one_of(st.sampled_from([1, 2, 3, 4, 6, 12]),
                          st.integers(min_value=1, max_value=2 ** 62))


@st.composite
def vocab_and_texts(draw):
    """A random vocabulary over a tiny alphabet (many overlaps, many ties) and texts."""
    extra = draw(st.dictionaries(
        st.lists(st.sampled_from(VOCAB_ALPHABET), min_size=2, max_size=10).map(bytes),
        counts_values, max_size=40))
    single = draw(st.sampled_from(["same", "random"]))
    counts = {bytes([b]): 1 for b in range(256)}
    if single == "random":
        for b in VOCAB_ALPHABET:
            counts[bytes([b])] = draw(counts_values)
    counts.update(extra)
    texts = draw(st.lists(
        st.lists(st.sampled_from(VOCAB_ALPHABET + b"c"), max_size=60).map(bytes),
        min_size=1, max_size=5))
    return counts, texts


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(vocab_and_texts(), alphas, st.integers(min_value=0, max_value=2 ** 64 - 1),
       st.integers(min_value=0, max_value=4))
def test_core_equals_twin_on_random_vocabularies(case, alpha: float, seed: int, threads: int) -> None:
    counts, texts = case
    tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
    seg = tok._segmenter
    for text in texts:
        assert seg.matches(text) == twin.matches(text)
        assert tok.tokenize(text) == twin.tokenize(text)
        assert_valid_segmentation(text, tok.tokenize(text, alpha=alpha, seed=seed), counts)
    # split_counts == the twin's weighted Viterbi pieces.
    items = texts + [p for p in counts if len(p) > 1]
    weights = np.arange(1, len(items) + 1, dtype=np.int64)
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in items], out=offsets[1:])
    got = seg.split_counts(b"".join(items), offsets, weights, threads)
    want = np.zeros(len(counts), dtype=np.int64)
    for item, w in zip(items, weights):
        for piece in twin.viterbi(item):
            want[twin.piece_to_id[piece] - 3] += w
    assert np.array_equal(got, want)


@settings(max_examples=30, deadline=None, database=None)
@given(vocab_and_texts())
def test_viterbi_is_a_best_segmentation(case) -> None:
    """Exhaustive check on short chunks: no segmentation scores higher than Viterbi's."""
    counts, texts = case
    twin = EducationalTokenizer(counts)
    tok = Tokenizer(model_dict(counts))
    for text in texts:
        chunk = text.split(b"\n")[0][:8]
        assume(chunk)
        best = max(twin.segmentation_logprob(s) for s in twin.segmentations(chunk))
        got = twin.segmentation_logprob(tok.tokenize(chunk))
        assert got >= best - 1e-9 * abs(best)


# ---------------------------------------------------------------------------
# Trainer: compiled == twin on random small corpora, and edge cases
# ---------------------------------------------------------------------------

trainer_texts = st.lists(
    st.one_of(st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
              st.lists(st.sampled_from(FRAGMENTS + ["\n", "12", "ab"]), max_size=15).map("".join)),
    min_size=1, max_size=6)


def compiled_trainer(**kwargs):
    from bytepiece.trainer import Trainer
    kwargs.setdefault("algorithm", "bnlm")
    return Trainer(verbose=False, **kwargs)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(trainer_texts, st.sampled_from([1, 3, 6]), st.sampled_from([1, 2, 3]), st.booleans(),
       st.booleans(), st.sampled_from([1, 2]))
def test_trainer_equals_twin_on_random_corpora(texts, order, min_count, digits, unicode,
                                               workers) -> None:
    from bytepiece._educational import EducationalTrainer
    assume("".join(texts))
    params = dict(order=order, max_vocab_size=[300, 259], max_piece_length=8,
                  min_count=min_count, isolate_digits=digits, ensure_unicode=unicode)
    got = compiled_trainer(**params).train(texts, workers=workers)
    want = EducationalTrainer(**params).train(texts)
    assert got == want


@pytest.mark.parametrize("texts", [[], [""], ["", ""]])
def test_trainer_rejects_an_empty_corpus(texts) -> None:
    with pytest.raises(ValueError, match="empty"):
        compiled_trainer(max_vocab_size=300).train(texts)


@pytest.mark.parametrize("texts, error", [
    ("abc", TypeError),                        # one text, not a list of texts
    (lambda: (t for t in ["abc", b"bytes"]), TypeError),  # a generator is spilled: items checked
    (lambda: iter([None]), TypeError),
    (["abc", b"bytes"], TypeError),
    (["abc", None], TypeError),
    (["ok", "lone \ud800 surrogate"], ValueError),
])
@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_trainer_rejects_bad_corpora(texts, error, algorithm) -> None:
    texts = texts() if callable(texts) else texts  # a fresh one-shot iterator per run
    with pytest.raises(error):
        compiled_trainer(max_vocab_size=300, algorithm=algorithm).train(texts)


@pytest.mark.parametrize("kwargs", [
    dict(order=0), dict(order=True), dict(max_vocab_size=258), dict(max_vocab_size=[]),
    dict(max_vocab_size=[300, 300]), dict(max_vocab_size=300.0), dict(min_count=0),
    dict(max_piece_length=0), dict(max_vocab_size="1000"),
])
def test_trainer_rejects_bad_parameters(kwargs) -> None:
    with pytest.raises((TypeError, ValueError)):
        compiled_trainer(**kwargs)


def test_trainer_rejects_a_corpus_that_changes_between_passes() -> None:
    class Shrinking:
        """Yields less text on the second pass."""

        def __init__(self) -> None:
            self.calls = 0

        def __iter__(self):
            self.calls += 1
            return iter(["hello world " * (20 - 5 * self.calls)])

    with pytest.raises(ValueError, match="changed"):
        compiled_trainer(max_vocab_size=300).train(Shrinking())


def test_trainer_save_before_train_and_round_trip(tmp_path) -> None:
    trainer = compiled_trainer(max_vocab_size=[400, 300])
    with pytest.raises(RuntimeError):
        trainer.save(tmp_path / "m.model")
    corpus = [SAMPLE] * 3 + ["\x00\x01\x7f control \t\r\n", "数字 12345 " * 20]
    trainer.train(corpus)
    paths = trainer.save(tmp_path / "m.model")
    assert sorted(Path(p).name for p in paths) == ["m.model.300", "m.model.400"]
    for path in paths:
        tok = Tokenizer(path)
        assert tok.vocab_size <= int(path.rsplit(".", 1)[1])
        for text in corpus:
            assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text)


@pytest.mark.parametrize("kwargs, corpus, check", [
    (dict(min_count=10 ** 9), ["abcabc" * 50], lambda v: all(len(p) == 1 for p in v)),
    (dict(max_piece_length=1), ["abcabc" * 50], lambda v: all(len(p) == 1 for p in v)),
    (dict(order=1), ["abcabc" * 50], lambda v: all(len(p) == 1 for p in v)),
    (dict(max_vocab_size=259), ["abcabc" * 50], lambda v: len(v) == 256),
    (dict(isolate_digits=True), ["1234567890 " * 100], lambda v: not any(
        sum(ch.isdigit() for ch in p.decode("utf-8", "ignore")) > 1 for p in v)),
    (dict(), ["\n" * 5000], lambda v: len(v) >= 256),
    (dict(), ["a" * 50000], lambda v: max(len(p) for p in v) <= 36),
    (dict(ensure_unicode=True), ["分词器" * 300], lambda v: all(
        not (0x80 <= p[0] <= 0xBF) for p in v if len(p) > 1)),
])
def test_trainer_edge_corpora(kwargs, corpus, check) -> None:
    params = dict(max_vocab_size=1000)
    params.update(kwargs)
    result = compiled_trainer(**params).train(corpus)
    for vocab in result.values():
        assert all(bytes([b]) in vocab for b in range(256))
        assert check(vocab), sorted(vocab, key=len)[-5:]


def test_trainer_workers_do_not_change_the_result() -> None:
    corpus = [SAMPLE * 2, "数字 12345\n" * 30, "tabs\tand\r\nCRLF " * 40] * 4
    results = [compiled_trainer(max_vocab_size=[500, 300]).train(corpus, workers=w, shard_bytes=b)
               for w, b in ((1, 1000), (2, 1), (4, 3), (0, 2))]
    assert all(r == results[0] for r in results)
