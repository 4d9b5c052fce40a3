"""Viterbi sampling (ALGORITHM.md §5): exact distribution, seeds, limits.

Exactness: for short strings the readable twin enumerates every segmentation
the vocabulary allows; a segmentation's probability is p^alpha / Z. We draw
many samples with a fixed seed and apply a chi-square goodness-of-fit test.
The threshold (p > 1e-4) keeps a correct sampler from failing by chance while
a sampler that is off by even a few percent fails (see the negative control).
"""
import collections
import math
import random

import pytest

from bytepiece import Tokenizer
from bytepiece._educational import EducationalTokenizer
from bytepiece.model_io import model_dict
from conftest import chi_square_pvalue, random_vocab, reference_file

DRAWS = 20000
THRESHOLD = 1e-4


def exact_distribution(twin: EducationalTokenizer, chunk: bytes, alpha: float):
    segs = twin.segmentations(chunk)
    logw = [twin.segmentation_logprob(s, alpha) for s in segs]
    top = max(logw)
    weights = [math.exp(w - top) for w in logw]
    total = sum(weights)
    return {tuple(s): w / total for s, w in zip(segs, weights)}


def draw(tok: Tokenizer, chunk: bytes, alpha: float, seed: int, n: int = DRAWS):
    """n independent draws: text i of a batch uses the stream (seed, i)."""
    samples = tok.encode_batch([chunk] * n, alpha=alpha, seed=seed, num_threads=2)
    return collections.Counter(tuple(tok.ids_to_pieces(ids)) for ids in samples)


def toy_vocab():
    """Overlapping pieces over {a, b}, plus a heavy filler that widens the score range."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"zzzz"] = 10 ** 7
    counts[b"a"] = counts[b"b"] = 10 ** 6
    total = 12_200_000
    p = 10 ** 6 / total
    for piece in [b"ab", b"ba", b"aa", b"bb", b"aba", b"bab", b"abab"]:
        counts[piece] = max(1, round(total * p ** len(piece)))
    return counts


@pytest.fixture(scope="module")
def toy():
    counts = toy_vocab()
    return Tokenizer(model_dict(counts)), EducationalTokenizer(counts)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 1.0, 3.0, 31.0])
@pytest.mark.parametrize("chunk", [b"abab", b"ababa", b"aabba", b"abbabab"])
def test_sampling_matches_exact_distribution(toy, chunk, alpha):
    tok, twin = toy
    expected = exact_distribution(twin, chunk, alpha)
    assert len(expected) > 4
    observed = draw(tok, chunk, alpha, seed=1234)
    assert chi_square_pvalue(observed, expected) > THRESHOLD


def test_log_domain_path_is_exercised(toy):
    # alpha * -min(score) > 415 switches to the spec's log-domain algorithm;
    # alpha = 31 on the toy vocabulary does (lowest score ~ -16.3 nats).
    tok, _ = toy
    scores = tok._vocab.scores
    assert 31.0 * -scores.min() > 415
    assert 3.0 * -scores.min() < 415


def test_negative_control_wrong_distribution_is_rejected(toy):
    tok, twin = toy
    chunk = b"ababa"
    observed = draw(tok, chunk, 0.0, seed=99)  # uniform draws ...
    wrong = exact_distribution(twin, chunk, 31.0)  # ... tested against alpha = 31
    assert chi_square_pvalue(observed, wrong) < 1e-12
    # A 5 % tilt of the right distribution is also caught.
    right = exact_distribution(twin, chunk, 0.0)
    keys = sorted(right)
    tilted = {k: right[k] * (1.05 if i % 2 else 0.95) for i, k in enumerate(keys)}
    z = sum(tilted.values())
    tilted = {k: v / z for k, v in tilted.items()}
    big = draw(tok, chunk, 0.0, seed=7, n=200000)
    assert chi_square_pvalue(big, right) > THRESHOLD
    assert chi_square_pvalue(big, tilted) < THRESHOLD


def test_alpha_zero_is_uniform_on_random_vocab():
    rng = random.Random(5)
    counts = random_vocab(rng, size=270, max_len=4, alphabet=b"xy")
    tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
    chunk = b"xyxyx"
    segs = twin.segmentations(chunk)
    expected = {tuple(s): 1 / len(segs) for s in segs}
    assert chi_square_pvalue(draw(tok, chunk, 0.0, seed=3), expected) > THRESHOLD


def test_large_alpha_approaches_viterbi():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
    lines = ["今天天气不错，我们去公园散步。", "The quick brown fox jumps over the lazy dog.",
             "apt-get install debian-handbook\n"]
    for line in lines:
        best = tok.encode(line)
        same = sum(tok.encode(line, alpha=200.0, seed=s) == best for s in range(50))
        assert same >= 45
        # Small alpha spreads the mass: most draws differ from the best.
        assert sum(tok.encode(line, alpha=0.05, seed=s) == best for s in range(50)) < 25


def test_samples_are_valid_segmentations_and_lossless():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
    text = "软件包管理系统 dpkg and APT.\n\n" * 20
    for alpha in [0.0, 0.01, 0.5, 1.0, 10.0, 1000.0]:
        for seed in range(5):
            pieces = tok.tokenize(text, alpha=alpha, seed=seed)
            assert b"".join(pieces) == text.encode()
            assert all(tok.piece_to_id(p) >= 3 for p in pieces)


def test_seeded_sampling_is_reproducible():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"), seed=42)
    text = "reproducible subword regularization " * 10
    first = [tok.encode(text, alpha=0.1) for _ in range(5)]
    tok.set_seed(42)
    assert [tok.encode(text, alpha=0.1) for _ in range(5)] == first
    assert len({tuple(x) for x in first}) > 1  # the stream moves on
    assert tok.encode(text, alpha=0.1, seed=7) == tok.encode(text, alpha=0.1, seed=7)
    other = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"), seed=42)
    assert [other.encode(text, alpha=0.1) for _ in range(5)] == first


def test_batch_sampling_independent_of_threads_and_matches_single():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
    texts = [f"line {i}: 抽样 sampling text number {i}\n" * (1 + i % 7) for i in range(3000)]
    one = tok.encode_batch(texts, alpha=0.2, seed=11, num_threads=1)
    two = tok.encode_batch(texts, alpha=0.2, seed=11, num_threads=2)
    many = tok.encode_batch(texts, alpha=0.2, seed=11, num_threads=7)
    assert one == two == many
    assert tok.encode_batch(texts[:1], alpha=0.2, seed=11) == [tok.encode(texts[0], alpha=0.2, seed=11)]
    assert one != tok.encode_batch(texts, alpha=0.2, seed=12, num_threads=1)


def test_sampling_rejects_bad_alpha():
    tok = Tokenizer(reference_file("bytepiece.eu.plus.40k.model"))
    for bad in [float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="alpha"):
            tok.encode("x", alpha=bad)
    with pytest.raises(TypeError, match="alpha"):
        tok.encode("x", alpha="0.1")
    with pytest.raises(TypeError, match="seed"):
        tok.encode("x", alpha=0.1, seed=1.5)
