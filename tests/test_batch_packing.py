"""Batches of Python texts are packed while the helper threads segment.

On several threads ``encode_batch`` publishes the packed texts block by
block (``_BatchRunner.publish_texts``): helpers segment the blocks packed so
far while the calling thread packs the rest. These tests cover what that
overlap must get right: the buffers growing under running helpers (texts the
sizing pass cannot count), an error half-way through packing, and no
reference cycle that would keep each batch's buffers alive.
"""
import gc
import unicodedata

import numpy as np
import pytest

from bytepiece import Tokenizer
from conftest import CORPORA


@pytest.fixture(scope="module")
def tok(tang_model):
    return Tokenizer(tang_model)


@pytest.fixture(scope="module")
def lines():
    text = "".join((CORPORA / name).read_text(encoding="utf-8")[:60000]
                   for name in ("tang300.zh.txt", "handbook.en-US.txt"))
    # About 140 KB: planned on two threads (each gets at least 64 KB).
    return text.splitlines(keepends=True)


def _grown(lines):
    """The lines with texts the sizing pass undercounts placed mid-batch:
    a bytearray and a memoryview (not counted at all) and strings whose NFC
    is longer than the most UTF-8 their storage could take (U+1D15E: 4 bytes,
    its NFC 8; U+0958: 3 bytes, its NFC 6). Each pushes the buffer past its
    size while the first blocks are being segmented."""
    mid = len(lines) // 2
    extra = [bytearray("长".encode() * 40000), "\U0001D15E" * 3000, memoryview(b"view " * 2000),
             "\u0958" * 5000, "tail"]
    return lines[:mid] + extra + lines[mid:] + extra


def _nfc_bytes(texts):
    return [bytes(t) if not isinstance(t, str) else unicodedata.normalize("NFC", t).encode()
            for t in texts]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_growth_while_helpers_run(tok, lines, threads):
    texts = _grown(lines)
    want = [tok.encode(t, add_bos=True) for t in _nfc_bytes(texts)]
    assert tok.encode_batch(texts, add_bos=True, num_threads=threads) == want
    arrays = tok.encode_batch(texts, add_bos=True, num_threads=threads, out_type=np.ndarray)
    assert [a.tolist() for a in arrays] == want
    flat, bounds = tok.encode_batch_flat(texts, add_bos=True, num_threads=threads)
    assert [flat[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])] == want


def test_sampled_growth_does_not_depend_on_threads(tok, lines):
    texts = _grown(lines)
    one = tok.encode_batch(texts, alpha=0.3, seed=11, num_threads=1)
    assert tok.encode_batch(texts, alpha=0.3, seed=11, num_threads=2) == one
    assert one == tok.encode_batch(_nfc_bytes(texts), alpha=0.3, seed=11, num_threads=2)


@pytest.mark.parametrize("bad, error, message", [
    (12, TypeError, "must be str or bytes, got int"),
    ("lone \ud800 surrogate", ValueError, "surrogate"),
    (None, TypeError, "must be str or bytes, got NoneType"),
])
@pytest.mark.parametrize("method", ["encode_batch", "encode_batch_flat"])
def test_error_half_way_releases_the_helpers(tok, lines, bad, error, message, method):
    """The helpers are already segmenting when packing meets the bad text:
    the call raises the packing error (naming the text) and returns; the
    tokenizer stays usable."""
    texts = lines + [bad] + lines
    with pytest.raises(error, match=message):
        getattr(tok, method)(texts, num_threads=2)
    assert tok.encode_batch(lines[:50], num_threads=2) == [tok.encode(t) for t in lines[:50]]


@pytest.mark.parametrize("threads", [1, 2])
def test_batches_leave_no_reference_cycles(tok, lines, threads):
    """Each batch's buffers are freed when the call returns. A cycle
    between the job and its packer once kept them (16 MB per batch here)
    until the cyclic collector ran, and the list path pauses it."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(2):
            tok.encode_batch(lines, num_threads=threads)
            tok.encode_batch_flat(lines, num_threads=threads)
            tok.encode_batch(lines, num_threads=threads, out_type=np.ndarray)
        assert gc.collect() == 0
    finally:
        gc.enable()


class _Texts:
    """A sequence that is neither a list nor a tuple."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_sizing_reserves_the_most_utf8_of_str_and_bytes():
    """Lists and tuples are sized by a C loop, other sequences item by item:
    both reserve per str its length times the most UTF-8 bytes of its
    storage width (1 for ASCII, 2 Latin-1, 3 UCS-2, 4 UCS-4), per bytes its
    size, and nothing for other items (they grow the buffer when written)."""
    from bytepiece import _core
    items = ["ascii", "é" * 3, "长" * 5, "\U0001F600" * 2, b"raw", bytearray(b"xx"), "", "\n"]
    want = 5 + 3 * 2 + 5 * 3 + 2 * 4 + 3 + 0 + 0 + 1
    for seq in (items, tuple(items), _Texts(items)):
        assert _core._sized_room(seq) == want
    assert _core._sized_room(items * 1000) == want * 1000


@pytest.mark.parametrize("threads", [1, 2])
def test_any_sequence_of_texts(tok, lines, threads):
    want = tok.encode_batch(lines, num_threads=threads)
    assert tok.encode_batch(tuple(lines), num_threads=threads) == want
    assert tok.encode_batch(_Texts(lines), num_threads=threads) == want


def test_one_thread_sizes_the_ids_exactly(tok):
    """Only threads that segment while packing goes on need the id buffer
    before the texts are packed, and it is then sized from the most UTF-8
    the texts can take. For these mostly-ASCII strings stored 4 bytes a
    character that is 8 MB of text, so 32 MB of ids. One thread packs first
    and sizes the ids from the 2 MB actually packed: the peak is the text
    buffer (8 MB), the ids (8 MB) and the flat result (8 MB), 24 MB in all,
    against 48 MB with the ids sized from the bound."""
    import tracemalloc
    texts = ["a" * 100_000 + "\U0001F600"] * 20
    tracemalloc.start()
    try:
        result = tok.encode_batch_flat(texts, num_threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result[1][-1] > 0
    assert peak < 32_000_000, f"peak {peak / 1e6:.1f} MB"
