"""The readable compress trainer (bytepiece._educational) against the compiled one.

Each step is held equal: candidate counts, hard-EM counts, split costs. The
whole run differs only in how exact ties between candidates are ordered, so
end to end the two must produce valid vocabularies that compress the training
text alike.
"""
from collections import Counter

import numpy as np
import pytest

from bytepiece import _educational as edu
from bytepiece import compress
from bytepiece._compress import PieceSet, count_candidates
from bytepiece.model_io import unigram_scores
from bytepiece.normalization import normalize
from conftest import CORPORA


@pytest.fixture(scope="module")
def lines():
    text = (CORPORA / "song100.zh.txt").read_text(encoding="utf-8")
    text += (CORPORA / "handbook.en-US.txt").read_text(encoding="utf-8")[:20000]
    return text.splitlines(keepends=True)


@pytest.fixture(scope="module")
def chunks(lines):
    counter = Counter()
    for line in lines:
        counter.update(normalize(line, maxlen=10000))
    return counter


def test_candidates_equal_the_suffix_array_counts(chunks):
    corpus = compress.Corpus(chunks)
    for max_len, min_count in [(6, 2), (16, 3)]:
        top_k = 500_000  # more than there are: no cut, so tie order cannot matter
        pieces, counts = count_candidates(corpus.array, corpus.offsets, corpus.weights,
                                          max_len, min_count, top_k, 1)
        assert 1000 < len(pieces) < top_k
        compiled = dict(zip(pieces, counts.tolist()))
        assert compiled == edu.compress_candidates(chunks, max_len, min_count, top_k)


def test_hard_em_counts_equal(chunks):
    vocab = {bytes([b]): 1 for b in range(256)}
    vocab.update(edu.compress_candidates(chunks, 8, 3, 2000))
    corpus = compress.Corpus(chunks)
    pieces = list(vocab)
    counts = np.array([vocab[p] for p in pieces], dtype=np.int64)
    compiled = compress.hard_em(pieces, counts, corpus)
    twin = edu.hard_em_counts(vocab, chunks)
    assert compiled.tolist() == [twin.get(p, 0) for p in pieces]


def test_split_costs_equal(chunks):
    vocab = {bytes([b]): 1 for b in range(256)}
    vocab.update(edu.compress_candidates(chunks, 8, 3, 1500))
    pieces = list(vocab)
    counts = [vocab[p] for p in pieces]
    compiled = PieceSet(pieces).split_cost_viterbi(unigram_scores(counts))
    twin_tokenizer = edu.EducationalTokenizer(vocab)
    twin = [edu.split_cost(twin_tokenizer, p) for p in pieces]
    # single bytes have no split without themselves: both report 0 tokens
    multi = [i for i, p in enumerate(pieces) if len(p) > 1]
    assert [int(compiled[i]) for i in multi] == [twin[i] for i in multi]


def test_whole_run_matches_in_quality(lines, chunks):
    sizes = [700, 500]
    twin = edu.train_compress(lines, sizes, num_candidates=6000)
    compiled = compress.train_compress(lines, sizes, num_candidates=6000, verbose=False)
    for size in sizes:
        for vocab in (twin[size], compiled[size]):
            assert len(vocab) <= size - 3
            assert all(bytes([b]) in vocab for b in range(256))
        tokens_twin = sum(edu.hard_em_counts(twin[size], chunks).values())
        tokens_compiled = sum(edu.hard_em_counts(compiled[size], chunks).values())
        assert abs(tokens_twin - tokens_compiled) <= 0.02 * tokens_compiled
        overlap = len(set(twin[size]) & set(compiled[size])) / len(compiled[size])
        assert overlap > 0.9
