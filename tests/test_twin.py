"""The compiled core against the readable twin (the oracle) on real text.

Random vocabularies and random bytes are covered by tests/test_fuzz.py and
tests/test_properties.py; here the published model meets the bundled corpora.
"""
import random

import pytest

from bytepiece import Tokenizer, normalize
from bytepiece._educational import EducationalTokenizer
from conftest import CORPORA, random_vocab, reference_file
from bytepiece.model_io import model_dict


@pytest.fixture(scope="module")
def models():
    path = reference_file("bytepiece.eu.plus.40k.model")
    return Tokenizer(path), EducationalTokenizer.from_model(path)


def sample_lines(count=400, seed=3):
    rng = random.Random(seed)
    lines = []
    for path in sorted(CORPORA.glob("*.txt")):
        all_lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines += rng.sample(all_lines, min(count // 4, len(all_lines)))
    return lines


def test_matches_and_viterbi_equal_on_corpus_lines(models):
    tok, twin = models
    for line in sample_lines():
        for chunk in normalize(line):
            assert tok._segmenter.matches(chunk) == twin.matches(chunk)
            assert tok.tokenize(chunk) == twin.viterbi(chunk)


def test_encode_equals_twin_on_whole_files(models):
    tok, twin = models
    text = (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8")
    assert tok.encode(text) == twin.encode(text)


def test_edges_are_the_twin_matches(models):
    tok, twin = models
    line = "APT 的依赖解析 resolver\n\n第二段"
    starts, ends, ids = tok._segmenter.edges(line.encode())
    expected, offset = [], 0
    for chunk in normalize(line):
        expected += [(s + offset, e + offset, i) for s, e, i in twin.matches(chunk)]
        offset += len(chunk)
    assert list(zip(starts.tolist(), ends.tolist(), ids.tolist())) == expected


def test_random_vocab_on_real_text():
    rng = random.Random(8)
    text = (CORPORA / "song100.zh.txt").read_text(encoding="utf-8")[:5000].encode()
    alphabet = bytes(sorted(set(text)))
    counts = random_vocab(rng, size=3000, max_len=9, alphabet=alphabet)
    tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
    for chunk in normalize(text):
        assert tok.tokenize(chunk) == twin.viterbi(chunk)


def test_texts_around_the_longest_piece_length():
    """Viterbi drops the start-of-text check once the end is past the longest
    piece. Texts whose lengths straddle that point, built from the longest
    pieces themselves, must still segment as the twin does."""
    rng = random.Random(21)
    for max_len, size in ((2, 260), (3, 268), (7, 400), (12, 800)):
        counts = random_vocab(rng, size=size, max_len=max_len, alphabet=b"ab")
        longest = [p for p in counts if len(p) == max(map(len, counts))]
        counts[b"b" * len(longest[0])] = 10 ** 6      # a heavy full-length piece
        tok, twin = Tokenizer(model_dict(counts)), EducationalTokenizer(counts)
        depth = max(map(len, counts))
        for piece in longest[:5] + [b"b" * depth]:
            for n in range(max(1, depth - 2), depth + 4):
                texts = [(piece * 3)[:n], (piece * 3)[-n:], b"b" * n]
                for text in texts:
                    assert tok.tokenize(text) == twin.viterbi(text), (max_len, text)
                # In a batch the texts lie side by side in one buffer: a walk
                # that ran past the start of its text would read its neighbour.
                batch = [b"b" * (2 * depth)] + texts
                assert tok.encode_batch(batch, num_threads=1) == [
                    tok.pieces_to_ids(twin.viterbi(text)) for text in batch]
