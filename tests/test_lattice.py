"""n-best, entropy and offsets against brute-force enumeration with the twin."""
import itertools
import math
import random
import unicodedata

import numpy as np
import pytest

from bytepiece import Tokenizer, normalize
from bytepiece._educational import EducationalTokenizer
from bytepiece.model_io import model_dict
from conftest import random_vocab


@pytest.fixture(scope="module")
def pair():
    rng = random.Random(11)
    counts = random_vocab(rng, size=600, max_len=5, alphabet="abc天".encode())
    return Tokenizer(model_dict(counts)), EducationalTokenizer(counts)


def all_segmentations(twin, text):
    """Every segmentation of the whole text: the product over its chunks."""
    per_chunk = [twin.segmentations(chunk) for chunk in normalize(text)]
    return [sum(combo, []) for combo in itertools.product(*per_chunk)]


TEXTS = ["abcab", "ab\n\nca", "天abc天", "cabbage", "a\nb\nc\n"]


@pytest.mark.parametrize("text", TEXTS)
def test_nbest_equals_brute_force(pair, text):
    tok, twin = pair
    segs = all_segmentations(twin, text)
    ranked = sorted((twin.segmentation_logprob(s, 1.0) for s in segs), reverse=True)
    for n in [1, 3, len(segs), len(segs) + 5]:
        got = tok.nbest(text, n)
        assert len(got) == min(n, len(segs))
        assert [lp for _, lp in got] == pytest.approx(ranked[:n], abs=1e-9)
        for ids, lp in got:
            assert tok.decode(ids) == text
            assert lp == pytest.approx(sum(tok._vocab.scores[i - 3] for i in ids), abs=1e-9)
    assert {tuple(ids) for ids, _ in tok.nbest(text, len(segs))} == {
        tuple(tok.pieces_to_ids(s)) for s in segs}
    best_ids, best_lp = tok.nbest(text, 1)[0]
    viterbi = tok.encode(text)
    assert best_lp == pytest.approx(twin.segmentation_logprob(tok.ids_to_pieces(viterbi), 1.0), abs=1e-9)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 4.0])
def test_entropy_equals_brute_force(pair, text, alpha):
    tok, twin = pair
    total = 0.0
    for chunk in normalize(text):
        logw = [twin.segmentation_logprob(s, alpha) for s in twin.segmentations(chunk)]
        top = max(logw)
        z = sum(math.exp(w - top) for w in logw)
        total -= sum(math.exp(w - top) / z * (w - top - math.log(z)) for w in logw)
    assert tok.entropy(text, alpha) == pytest.approx(total, abs=1e-9)
    if alpha == 0.0:  # uniform: entropy = log(number of segmentations)
        assert tok.entropy(text, 0.0) == pytest.approx(math.log(len(all_segmentations(twin, text))))


def test_entropy_edge_cases(pair):
    tok, _ = pair
    assert tok.entropy("", 1.0) == 0.0
    assert tok.entropy("x", 1.0) == 0.0  # one byte: one segmentation
    with pytest.raises(ValueError, match="alpha"):
        tok.entropy("abc", -1.0)


def test_offsets_cover_the_nfc_text(pair):
    tok, _ = pair
    text = "e\u0301天a\n\nb"  # NFC merges e + acute
    nfc = unicodedata.normalize("NFC", text)
    ids, offsets = tok.encode_with_offsets(text)
    assert ids == tok.encode(text)
    pieces = tok.ids_to_pieces(ids)
    for piece, (start, end) in zip(pieces, offsets):
        assert 0 <= start < end <= len(nfc)
    # every character is covered, in order
    assert offsets[0][0] == 0 and offsets[-1][1] == len(nfc)
    for (s0, e0), (s1, e1) in zip(offsets, offsets[1:]):
        assert s1 in (e0, e0 - 1)  # shared char when a piece splits it
    # whole-character pieces map exactly to their text; a piece holding part
    # of a character maps to every character it touches
    position = 0
    raw = nfc.encode()
    for piece, (start, end) in zip(pieces, offsets):
        try:
            assert nfc[start:end] == piece.decode("utf-8")
        except UnicodeDecodeError:
            touched = nfc[start:end].encode()
            assert piece in touched and len(touched) > len(piece)
            assert raw.index(touched) <= position
        position += len(piece)


def test_offsets_numpy_and_bytes(pair):
    tok, _ = pair
    ids, offsets = tok.encode_with_offsets("天天abc", out_type=np.ndarray)
    assert offsets.shape == (len(ids), 2) and offsets.dtype == np.int64
    raw = "天天abc".encode()
    ids_b, offsets_b = tok.encode_with_offsets(raw)
    lengths = [len(tok.id_to_piece(i)) for i in ids_b]
    assert [e - s for s, e in offsets_b] == lengths
    assert tok.encode_with_offsets("") == ([], [])


def test_nbest_bad_input(pair):
    tok, _ = pair
    with pytest.raises(TypeError):
        tok.nbest("abc", 1.5)
    with pytest.raises(ValueError):
        tok.nbest("abc", -1)
    assert tok.nbest("abc", 0) == []
    assert tok.nbest("", 3) == [([], 0.0)]


NBEST_TIES = r"""
import sys
from bytepiece import Tokenizer
from bytepiece.model_io import model_dict
which, n = sys.argv[1], int(sys.argv[2])
counts = {bytes([b]): 1 for b in range(256)}
if which == "tabs":
    # "\t" * 8 splits into 2 + 3 + 3 in three exactly tied ways; 20 copies
    # make 3 ** 20 tied best segmentations.
    counts.update({b"\t\t": 1, b"\t\t\t": 1, b"x": 5})
    text = ("x" + "\t" * 8) * 20
else:
    # Every piece scores the same: all segmentations with the fewest pieces tie.
    text = ("BytePiece 把文本切成 pieces，每个字节都有归宿。" * 80)[:3000]
    data = text.encode()
    for i in range(len(data)):
        for j in (2, 3, 4, 6):
            counts[data[i:i + j]] = 1
tok = Tokenizer(model_dict(counts))
result = tok.nbest(text, n)
assert len(result) == n, len(result)
scores = [lp for _, lp in result]
assert scores == sorted(scores, reverse=True)
assert all(tok.decode(ids) == text for ids, _ in result)
assert abs(scores[0] - sum(tok._vocab.scores[i - 3] for i in tok.encode(text))) < 1e-6
"""


@pytest.mark.parametrize("which", ["tabs", "uniform"])
@pytest.mark.parametrize("n", [1, 10])
def test_nbest_on_tied_segmentations_is_not_exponential(which, n):
    """Exactly tied partial paths used to be expanded all (38 s and 2.9 GB for
    the tab text with n=1). The kill-timeout is generous: it only catches the
    exponential case, whose run never ends."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", NBEST_TIES, which, str(n)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
