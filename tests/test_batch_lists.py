"""Batch list output on several threads.

With more than one thread the id lists are allocated under the GIL but
filled by the worker threads, and the references to the cached ints are
counted there and added afterwards, id by id (``_BatchRunner.lists``). These tests
hold that path to the plain one: same lists, properly owned references,
lists the garbage collector tracks.
"""
import gc
import sys
from collections import Counter

import numpy as np
import pytest

from bytepiece import Tokenizer, _core
from conftest import CORPORA


@pytest.fixture(scope="module")
def tok(tang_model):
    return Tokenizer(tang_model)


@pytest.fixture(scope="module")
def lines():
    text = "".join((CORPORA / name).read_text(encoding="utf-8")[:40000]
                   for name in ("tang300.zh.txt", "handbook.en-US.txt"))
    # Empty texts and a few longer ones mixed in, so that blocks differ in size.
    out = text.splitlines(keepends=True)
    return out[:500] + [""] * 20 + ["".join(out[:60])] + out[500:]


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("alpha", [-1.0, 0.2])
def test_threaded_lists_equal_single_thread(tok, lines, threads, alpha):
    one = tok.encode_batch(lines, add_bos=True, add_eos=True, alpha=alpha, seed=5, num_threads=1)
    many = tok.encode_batch(lines, add_bos=True, add_eos=True, alpha=alpha, seed=5,
                            num_threads=threads)
    assert many == one
    assert all(type(ids) is list for ids in many)
    if alpha < 0:
        assert many == [tok.encode(line, add_bos=True, add_eos=True) for line in lines]


@pytest.mark.parametrize("threads", [1, 2])
def test_lists_own_their_references(tok, lines, threads):
    ids = tok._ids
    texts = lines * 4    # big enough to be spread over two threads
    # Ints above 256 are the table's own objects (smaller ones are CPython's
    # shared cache, referenced from everywhere).
    probe = list(range(257, tok.vocab_size, 7))
    base = [sys.getrefcount(ids[i]) for i in probe]
    result = tok.encode_batch(texts, num_threads=threads)
    held = [sys.getrefcount(ids[i]) - b for i, b in zip(probe, base)]
    listed = Counter(i for row in result for i in row)
    assert held == [listed[i] for i in probe]    # one reference per listed item
    assert sum(held) > 1000
    del result, listed    # the Counter's keys are references too
    gc.collect()
    assert [sys.getrefcount(ids[i]) for i in probe] == base


def test_threaded_lists_are_tracked_and_usable(tok, lines):
    result = tok.encode_batch(lines * 4, num_threads=2)
    assert all(gc.is_tracked(row) for row in result)
    row = result[0]
    row.append(row)              # a cycle through a result list is collected
    del row, result
    gc.collect()
    assert not any(isinstance(o, list) and o and o[-1] is o for o in gc.get_objects())


def test_table_must_be_a_tuple_or_list(tok):
    seg = tok._segmenter
    data, offsets = _core.pack_texts(["ab", "cd"], lambda t: t.encode())
    with pytest.raises(TypeError, match="table"):
        seg.encode_lists(data, offsets, np.arange(tok.vocab_size), num_threads=2)
    with pytest.raises(ValueError, match="entry for each"):
        seg.encode_lists(data, offsets, (0, 1, 2), num_threads=2)
    with pytest.raises(TypeError, match="table"):
        seg.encode_bytes(b"ab", table="abc")


@pytest.mark.parametrize("method", ["encode_lists", "encode_concat", "split_counts"])
def test_packed_arguments_are_checked(tok, method):
    """None data would pass as an empty buffer and None or text offsets
    failed inside NumPy; both now name the argument."""
    seg = tok._segmenter
    call = getattr(seg, method)
    extra = (tok._ids,) if method == "encode_lists" else ([1],) if method == "split_counts" else ()
    with pytest.raises(TypeError, match=f"{method}: data must be a bytes-like object"):
        call(None, [0, 2], *extra)
    with pytest.raises(TypeError, match=f"{method}: offsets must be a 1-D array of integers"):
        call(b"ab", None, *extra)
    with pytest.raises(TypeError, match=f"{method}: offsets must be a 1-D array of integers"):
        call(b"ab", "02", *extra)
    with pytest.raises(TypeError, match=f"{method}: offsets must be a 1-D array of integers"):
        call(b"ab", [[0, 2]], *extra)
