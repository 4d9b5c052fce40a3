"""Tests of the readable pure-Python twin, ``bytepiece._educational``.

It is the oracle for the compiled core, so it is checked against the golden
data of the reference release (tokenizing and training) and, for sampling,
against the exact distribution over all segmentations of small chunks.
"""
from __future__ import annotations

import json
import math
import random
import unicodedata
from collections import Counter
from typing import Dict, List, Sequence

import pytest

from bytepiece import _educational as edu
from bytepiece._educational import EducationalTokenizer, EducationalTrainer
from bytepiece.model_io import model_dict

from conftest import CORPORA, chi2_sf, reference_file

MODELS = ["eu.plus.40k", "zh.id.eu.40k"]


_TOKENIZERS: Dict[str, EducationalTokenizer] = {}


def reference_tokenizer(name: str) -> EducationalTokenizer:
    if name not in _TOKENIZERS:
        _TOKENIZERS[name] = EducationalTokenizer.from_model(
            reference_file(f"bytepiece.{name}.model")
        )
    return _TOKENIZERS[name]


def all_bytes(extra: Dict[bytes, int]) -> Dict[bytes, int]:
    """A vocabulary with every single byte (count 1) plus ``extra``."""
    pieces = {bytes([b]): 1 for b in range(256)}
    pieces.update(extra)
    return pieces


# ---------------------------------------------------------------------------
# Golden tokenizing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_golden_encode(name):
    # The whole golden file takes about a second in pure Python.
    tokenizer = reference_tokenizer(name)
    golden = reference_file(f"golden.{name}.jsonl")
    checked = 0
    with open(golden, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            record = json.loads(line)
            assert tokenizer.encode(record["text"]) == record["ids"], (number, record["text"][:80])
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("name", MODELS)
def test_golden_decode_round_trip(name):
    tokenizer = reference_tokenizer(name)
    with open(reference_file(f"golden.{name}.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            text = unicodedata.normalize("NFC", record["text"])
            assert tokenizer.decode(record["ids"]) == text


def test_newline_run_keeps_longest_last_piece():
    tokenizer = reference_tokenizer("eu.plus.40k")
    # '\n\n\n' is one chunk; '\n' + '\n\n' ties nothing but shows the layout
    # of the reference: the pair comes last.
    assert tokenizer.encode("\n\n\n") == [13, 260]
    assert tokenizer.encode("\n\n\n", add_bos=True, add_eos=True) == [1, 13, 260, 2]


def test_bytes_input_skips_nfc_but_chunks():
    tokenizer = reference_tokenizer("eu.plus.40k")
    decomposed = "e\u0301\nx".encode("utf-8")
    pieces = tokenizer.tokenize(decomposed)
    assert b"".join(pieces) == decomposed  # no NFC applied
    assert b"".join(tokenizer.tokenize("e\u0301\nx")) == "\u00e9\nx".encode("utf-8")
    # no piece spans the chunk boundary after the newline
    boundary = len("e\u0301\n".encode("utf-8"))
    ends = set()
    position = 0
    for piece in pieces:
        position += len(piece)
        ends.add(position)
    assert boundary in ends


def test_sampling_with_reference_model_reassembles_text():
    tokenizer = reference_tokenizer("zh.id.eu.40k")
    rng = random.Random(7)
    text = "今天天气不错，我们去公园散步吧。\nThe quick brown fox 123\n\n"
    expected = unicodedata.normalize("NFC", text).encode("utf-8")
    for alpha in (0.0, 0.1, 1.0, 10.0):
        ids = tokenizer.encode(text, alpha=alpha, rng=rng)
        assert b"".join(tokenizer.id_to_piece[i] for i in ids) == expected
        assert tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


# ---------------------------------------------------------------------------
# Tokenizer on small vocabularies
# ---------------------------------------------------------------------------


def test_ids_follow_model_file_order():
    tokenizer = EducationalTokenizer(all_bytes({b"ab": 5, b"b": 3, b"ba": 2, b"abc": 1}))
    assert tokenizer.piece_to_id[b"\x00"] == 3
    assert tokenizer.piece_to_id[b"\xff"] == 258
    assert tokenizer.piece_to_id[b"ab"] == 259
    assert tokenizer.piece_to_id[b"ba"] == 260
    assert tokenizer.piece_to_id[b"abc"] == 261
    assert len(tokenizer) == 262


def test_matches_order_and_completeness():
    vocab = all_bytes({b"ab": 2, b"abc": 2, b"bc": 2, b"bcab": 1, b"ca": 3})
    tokenizer = EducationalTokenizer(vocab)
    chunk = b"abcabcx"
    found = tokenizer.matches(chunk)
    expected = sorted(
        (s, e, tokenizer.piece_to_id[chunk[s:e]])
        for s in range(len(chunk))
        for e in range(s + 1, len(chunk) + 1)
        if chunk[s:e] in vocab
    )
    expected.sort(key=lambda m: (m[1], m[0]))
    assert found == expected
    # end ascending, then start ascending (longest first)
    assert [m[:2] for m in found[:6]] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def test_viterbi_tie_keeps_longest_last_piece():
    # [a, bc] and [ab, c] have exactly the same float score (X + Y == Y + X);
    # at end 3 the occurrence 'bc' (start 1) is visited before 'c' (start 2),
    # and ties are resolved by strict '>': the longest last piece wins.
    tokenizer = EducationalTokenizer({b"a": 10, b"c": 10, b"ab": 20, b"bc": 20, b"b": 1})
    a_bc = tokenizer.segmentation_logprob([b"a", b"bc"])
    ab_c = tokenizer.segmentation_logprob([b"ab", b"c"])
    assert a_bc == ab_c
    assert tokenizer.viterbi(b"abc") == [b"a", b"bc"]


def test_viterbi_is_the_best_segmentation():
    rng = random.Random(1234)
    for _ in range(200):
        vocab = {bytes([c]): rng.randint(1, 50) for c in b"abc"}
        for _ in range(rng.randint(0, 10)):
            piece = bytes(rng.choice(b"abc") for _ in range(rng.randint(2, 4)))
            vocab[piece] = rng.randint(1, 50)
        tokenizer = EducationalTokenizer(vocab)
        chunk = bytes(rng.choice(b"abc") for _ in range(rng.randint(1, 9)))
        best = tokenizer.viterbi(chunk)
        assert b"".join(best) == chunk
        top = max(tokenizer.segmentation_logprob(s) for s in tokenizer.segmentations(chunk))
        assert tokenizer.segmentation_logprob(best) == top


def test_segmentations_enumerates_all():
    tokenizer = EducationalTokenizer({b"a": 1, b"aa": 1, b"aaa": 1})
    # compositions of 4 into parts of size 1..3: 7
    segs = tokenizer.segmentations(b"aaaa")
    assert len(segs) == 7
    assert len({tuple(s) for s in segs}) == 7
    assert all(b"".join(s) == b"aaaa" for s in segs)


def test_decode_skips_specials_and_invalid_utf8():
    tokenizer = EducationalTokenizer(all_bytes({"é".encode(): 4}))
    e_acute = tokenizer.piece_to_id["é".encode()]
    first_byte = tokenizer.piece_to_id[b"\xc3"]
    assert tokenizer.decode([1, e_acute, 0, 2]) == "é"
    assert tokenizer.decode([first_byte, tokenizer.piece_to_id[b"x"]]) == "x"
    with pytest.raises(ValueError):
        tokenizer.decode([len(tokenizer)])


# ---------------------------------------------------------------------------
# Sampling: exact distribution
# ---------------------------------------------------------------------------


def chi_square_pvalue(observed: Sequence[int], probabilities: Sequence[float]) -> float:
    """Pearson's goodness-of-fit test of ``observed`` counts against ``probabilities``.

    Categories expected fewer than 5 times are pooled into one bin (merged
    with the next rarest category if still below 5), as the chi-square
    approximation requires.
    """
    total = sum(observed)
    bins = sorted(zip((total * p for p in probabilities), observed))
    pooled_expected = pooled_observed = 0.0
    while bins and (bins[0][0] < 5 or 0 < pooled_expected < 5):
        expected, count = bins.pop(0)
        pooled_expected += expected
        pooled_observed += count
    if pooled_expected > 0:
        bins.append((pooled_expected, pooled_observed))
    assert len(bins) >= 2, "too few samples for a chi-square test"
    statistic = sum((count - expected) ** 2 / expected for expected, count in bins)
    return chi2_sf(statistic, len(bins) - 1)


def test_chi2_sf_matches_closed_forms():
    for x in (0.1, 1.0, 3.84, 10.0, 30.0):
        assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9)
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-9)
        # df = 4: exp(-x/2) * (1 + x/2)
        assert chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-9)
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)


SMALL_VOCAB = {b"a": 5, b"b": 3, b"c": 2, b"ab": 4, b"bc": 3, b"ca": 2, b"abc": 1, b"cab": 2}
SMALL_CHUNK = b"abcab"
SAMPLES = 20000
P_THRESHOLD = 1e-4


def exact_distribution(tokenizer: EducationalTokenizer, chunk: bytes, alpha: float):
    segmentations = [tuple(s) for s in tokenizer.segmentations(chunk)]
    weights = [math.exp(tokenizer.segmentation_logprob(s, alpha)) for s in segmentations]
    total = sum(weights)
    return segmentations, [w / total for w in weights]


def draw(sampler, n: int) -> Counter:
    return Counter(tuple(sampler()) for _ in range(n))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 2.5, 10.0])
def test_sampling_matches_exact_distribution(alpha):
    tokenizer = EducationalTokenizer(SMALL_VOCAB)
    segmentations, probabilities = exact_distribution(tokenizer, SMALL_CHUNK, alpha)
    assert len(segmentations) >= 8
    if alpha == 0:
        assert len(set(probabilities)) == 1 or max(probabilities) - min(probabilities) < 1e-12
    rng = random.Random(20240 + int(alpha * 10))
    counts = draw(lambda: tokenizer.sample(SMALL_CHUNK, alpha, rng), SAMPLES)
    assert set(counts) <= set(segmentations)
    observed = [counts[s] for s in segmentations]
    assert chi_square_pvalue(observed, probabilities) > P_THRESHOLD


def _locally_uniform_sample(tokenizer: EducationalTokenizer, chunk: bytes, rng: random.Random):
    """A WRONG sampler: at each end picks uniformly among incoming pieces.

    This is not uniform over segmentations (prefixes with more
    segmentations are under-weighted); the test must reject it.
    """
    incoming: Dict[int, List[int]] = {}
    reachable = {0}
    for start, end, _ in tokenizer.matches(chunk):
        if start in reachable:
            incoming.setdefault(end, []).append(start)
            reachable.add(end)
    pieces = []
    end = len(chunk)
    while end > 0:
        start = rng.choice(incoming[end])
        pieces.append(chunk[start:end])
        end = start
    return pieces[::-1]


def test_goodness_of_fit_rejects_wrong_samplers():
    tokenizer = EducationalTokenizer(SMALL_VOCAB)
    segmentations, uniform = exact_distribution(tokenizer, SMALL_CHUNK, 0.0)
    rng = random.Random(99)
    # 1. a plausible but wrong sampling algorithm
    counts = draw(lambda: _locally_uniform_sample(tokenizer, SMALL_CHUNK, rng), SAMPLES)
    assert chi_square_pvalue([counts[s] for s in segmentations], uniform) < P_THRESHOLD
    # 2. the right algorithm with the wrong alpha
    _, alpha_one = exact_distribution(tokenizer, SMALL_CHUNK, 1.0)
    counts = draw(lambda: tokenizer.sample(SMALL_CHUNK, 0.0, rng), SAMPLES)
    assert chi_square_pvalue([counts[s] for s in segmentations], alpha_one) < P_THRESHOLD
    # 3. a mildly perturbed target (one segmentation 20% too likely)
    skewed = list(uniform)
    skewed[0] *= 1.2
    skewed = [p / sum(skewed) for p in skewed]
    assert chi_square_pvalue([counts[s] for s in segmentations], skewed) < P_THRESHOLD


def test_sampling_rejects_negative_alpha():
    tokenizer = EducationalTokenizer(SMALL_VOCAB)
    with pytest.raises(ValueError):
        tokenizer.sample(b"abc", -1.0, random.Random(0))
    # but tokenize treats alpha < 0 as deterministic
    assert tokenizer.tokenize(b"abcab", alpha=-1) == tokenizer.viterbi(b"abcab")


# ---------------------------------------------------------------------------
# Training building blocks
# ---------------------------------------------------------------------------


def test_count_ngrams():
    tables = edu.count_ngrams([b"abab", b"b"], order=2)
    assert tables[0] == {b"": 5}
    assert tables[1] == {b"a": 2, b"b": 3}
    # short keys at chunk ends are counted here and discarded by prune_ngrams
    assert tables[2] == {b"ab": 2, b"ba": 1, b"b": 2}


def test_prune_ngrams():
    tables = edu.count_ngrams([b"abab"], order=2)
    pruned = edu.prune_ngrams(tables, min_count=1)
    log = lambda x: float(edu.np.log(edu.np.float64(x)))  # noqa: E731
    # 254 unseen bytes get count 1 and are added to the total: 4 + 254
    assert pruned[0] == {b"": log(258)}
    assert pruned[1][b"a"] == log(2) - log(258)
    assert pruned[1][b"z"] == log(1) - log(258)
    assert len(pruned[1]) == 256
    assert pruned[2] == {b"ab": log(2) - log(2), b"ba": log(1) - log(2)}
    # min_count applies to n >= 2 only
    pruned = edu.prune_ngrams(tables, min_count=2)
    assert pruned[2] == {b"ab": 0.0}
    assert len(pruned[1]) == 256
    assert tables[1] == {b"a": 2, b"b": 2}  # input untouched


def _tables(order: int, grams: Dict[bytes, float]) -> List[Dict[bytes, float]]:
    """Hand-made n-gram tables: every single byte, plus ``grams``."""
    tables: List[Dict[bytes, float]] = [{b"": 0.0}] + [{} for _ in range(order)]
    for b in range(256):
        tables[1][bytes([b])] = -5.0
    for gram, value in grams.items():
        tables[len(gram)][gram] = value
    return tables


def test_ngram_segment_prefers_known_ngrams():
    tables = _tables(3, {b"xy": -0.1, b"xyz": -0.1, b"zw": -0.1})
    assert edu.ngram_segment(b"xyzw", tables, 3, True) == [b"xyz", b"w"]
    assert edu.ngram_segment(b"q", tables, 3, True) == [b"q"]


def test_ngram_segment_all_minus_inf_byte():
    # 'é' is C3 A9. The bigram C3 A9 is unknown, and under ensure_unicode A9
    # may not start a piece: every state of A9 is -inf. From there on the
    # chunk is single bytes, and so is the byte before (C3), although
    # 'y' C3 is a well-known bigram that would otherwise glue 'xyC3'.
    tables = _tables(3, {b"xy": -0.1, b"y\xc3": -0.1, b"xy\xc3": -0.1, b"zw": -0.1})
    chunk = b"xy\xc3\xa9zw"
    assert edu.ngram_segment(chunk, tables, 3, True) == [b"xy", b"\xc3", b"\xa9", b"z", b"w"]
    # Without ensure_unicode A9 may start a piece: nothing is -inf.
    assert edu.ngram_segment(chunk, tables, 3, False) == [b"xy\xc3", b"\xa9", b"zw"]
    # The walk back through state 0 goes on while state 0 itself is -inf:
    # E4 B8 AD with B8 AD unknown: B8 (a continuation byte, state 0 -inf)
    # and E4 become single bytes too, although 'y' E4 B8 is known.
    tables3 = _tables(3, {b"xy": -0.1, b"y\xe4": -0.1, b"\xe4\xb8": -0.1, b"y\xe4\xb8": -0.1, b"zw": -0.1})
    assert edu.ngram_segment(b"xy\xe4\xb8\xadzw", tables3, 3, True) == [
        b"xy", b"\xe4", b"\xb8", b"\xad", b"z", b"w"
    ]
    # With the bigram known, the character stays whole ('y' C3 A9 is not a
    # known trigram, so the piece cannot extend 'xy').
    tables[2][b"\xc3\xa9"] = -0.1
    assert edu.ngram_segment(chunk, tables, 3, True) == [b"xy", b"\xc3\xa9", b"zw"]


def test_ngram_segment_continuation_byte_never_starts_piece():
    text = "héllo wörld ünïcödé 汉字"
    chunk = text.encode("utf-8")
    tables = edu.prune_ngrams(edu.count_ngrams([chunk] * 3, 4), 2)
    pieces = edu.ngram_segment(chunk, tables, 4, True)
    assert b"".join(pieces) == chunk
    for piece in pieces:
        assert not 0x80 <= piece[0] <= 0xBF


def test_split_pieces():
    keep = {b"a": 5, b"b": 5, b"ab": 10}
    assert edu.split_pieces(keep, {b"abab": 3, b"ba": 2}) == {b"ab": 6, b"b": 2, b"a": 2}


def test_prune_pieces_invariants():
    rng = random.Random(5)
    raw = {}
    for _ in range(400):
        piece = bytes(rng.choice(b"abcdef") for _ in range(rng.randint(1, 7)))
        raw[piece] = raw.get(piece, 0) + rng.randint(1, 30)
    results = edu.prune_pieces(raw, [300, 280], max_piece_length=5, min_count=3)
    assert set(results) == {300, 280}
    for size, pieces in results.items():
        assert len(pieces) <= size - 3
        assert all(bytes([b]) in pieces for b in range(256))
        assert all(len(p) <= 5 for p in pieces)
        # no wasted piece: each one is its own best segmentation
        tokenizer = EducationalTokenizer(pieces)
        assert all(tokenizer.viterbi(p) == [p] for p in pieces)
    assert len(results[280]) <= len(results[300])


def test_train_rejects_one_shot_iterator():
    trainer = EducationalTrainer(max_vocab_size=300)
    with pytest.raises(TypeError, match="re-iterable"):
        trainer.train(line for line in ["abc\n", "abd\n"])
    with pytest.raises(TypeError, match="re-iterable"):
        trainer.train(iter(["abc\n"]))


def test_train_small_corpus():
    texts = ["the cat sat on the mat\n", "the cat ate the rat\n"] * 5
    result = EducationalTrainer(order=4, max_vocab_size=[270, 300], min_count=2).train(texts)
    assert set(result) == {270, 300}
    assert len(result[270]) <= 267
    assert all(bytes([b]) in result[300] for b in range(256))
    tokenizer = EducationalTokenizer(result[300])
    assert b"".join(tokenizer.tokenize("the cat")) == b"the cat"


# ---------------------------------------------------------------------------
# Golden training
# ---------------------------------------------------------------------------


def corpus_lines(*names: str) -> List[str]:
    """Each line of the files, in order, newline kept (text-mode iteration)."""
    lines: List[str] = []
    for name in names:
        with open(CORPORA / name, encoding="utf-8") as handle:
            lines.extend(handle)
    return lines


def assert_same_model(counts: Dict[bytes, int], golden_name: str) -> None:
    with open(reference_file(f"train/{golden_name}"), encoding="utf-8") as handle:
        golden = json.load(handle)
    assert model_dict(counts) == golden


POEMS = ("tang300.zh.txt", "song100.zh.txt")


def test_golden_training_poems_order6():
    reference_file("train/poems.o6.m2.model.2000")
    trainer = EducationalTrainer(order=6, max_vocab_size=[2000, 1000], min_count=2)
    result = trainer.train(corpus_lines(*POEMS))
    assert_same_model(result[2000], "poems.o6.m2.model.2000")
    assert_same_model(result[1000], "poems.o6.m2.model.1000")


def test_golden_training_poems_order4_no_ensure_unicode():
    reference_file("train/poems.o4.noeu.model")
    trainer = EducationalTrainer(
        order=4, max_vocab_size=1500, min_count=3, ensure_unicode=False, max_piece_length=8
    )
    result = trainer.train(corpus_lines(*POEMS))
    assert_same_model(result[1500], "poems.o4.noeu.model")


@pytest.mark.slow
def test_golden_training_handbook():
    reference_file("train/handbook.o6.m2.id.model")
    trainer = EducationalTrainer(order=6, max_vocab_size=8000, min_count=2, isolate_digits=True)
    result = trainer.train(corpus_lines("handbook.zh-CN.txt", "handbook.en-US.txt"))
    assert_same_model(result[8000], "handbook.o6.m2.id.model")
