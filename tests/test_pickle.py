"""Pickling a Tokenizer: faithful, self-contained, and a copy of the compiled trie (no rebuild)."""
from __future__ import annotations

import copy
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from bytepiece.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"
TEXTS = ["床前明月光，疑是地上霜。\n", "Hello, wörld! 12345\n", "", "\n\n", "e\u0301tude"]


@pytest.fixture(scope="module")
def small_model(tang_model) -> str:
    return tang_model


@pytest.fixture(scope="module")
def big_model(small_model) -> str:
    """The 40k reference model when available (timings mean more), else the small one."""
    return str(REFERENCE_MODEL) if REFERENCE_MODEL.exists() else small_model


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_round_trip_encodes_identically(small_model, protocol):
    tok = Tokenizer(small_model)
    clone = pickle.loads(pickle.dumps(tok, protocol=protocol))
    assert clone.vocab_size == tok.vocab_size
    assert clone.max_piece_length == tok.max_piece_length
    for text in TEXTS:
        assert clone.encode(text) == tok.encode(text)
        assert clone.tokenize(text) == tok.tokenize(text)
        assert clone.encode(text, alpha=0.1, seed=9) == tok.encode(text, alpha=0.1, seed=9)
    assert clone.encode_batch(TEXTS, num_threads=2) == tok.encode_batch(TEXTS)
    ids = tok.encode(TEXTS[0])
    assert clone.decode(ids) == TEXTS[0]
    assert [clone.id_to_piece(i) for i in range(clone.vocab_size)] == [
        tok.id_to_piece(i) for i in range(tok.vocab_size)]


def test_seed_stream_restarts_from_the_constructor_seed(small_model):
    """A clone behaves like ``Tokenizer(model, seed)`` freshly built: its stream
    of per-call seeds starts again from the constructor's seed."""
    tok = Tokenizer(small_model, seed=1234)
    first = [tok.encode(TEXTS[0], alpha=0.0) for _ in range(5)]
    clone = pickle.loads(pickle.dumps(tok))
    assert [clone.encode(TEXTS[0], alpha=0.0) for _ in range(5)] == first
    assert len({tuple(ids) for ids in first}) > 1  # the stream really moves on


def test_pickle_does_not_need_the_model_file(small_model, tmp_path):
    path = tmp_path / "copy.model"
    shutil.copy(small_model, path)
    tok = Tokenizer(str(path))
    blob = pickle.dumps(tok)
    path.unlink()
    assert pickle.loads(blob).encode(TEXTS[0]) == tok.encode(TEXTS[0])


def test_copy_and_deepcopy(small_model):
    tok = Tokenizer(small_model, seed=3)
    for clone in (copy.copy(tok), copy.deepcopy(tok)):
        assert clone.encode(TEXTS[1]) == tok.encode(TEXTS[1])
        assert np.array_equal(clone.encode(TEXTS[1], out_type=np.ndarray),
                              tok.encode(TEXTS[1], out_type=np.ndarray))


def _trie_state(tok):
    factory, args = tok._segmenter.__reduce__()
    return factory, list(args)


def test_unpickling_copies_the_trie_instead_of_rebuilding_it(big_model):
    """Unpickling is cheap because the pickle carries the compiled trie and
    the factory copies it (timed in benchmarks/load.py, not here: timed
    assertions are flaky on shared machines)."""
    from bytepiece import _core
    tok = Tokenizer(big_model)
    factory, args = _trie_state(tok)
    assert factory is _core._segmenter_from_state
    units = args[2]
    assert isinstance(units, bytes) and len(units) == 4 * tok._segmenter.trie_cells
    blob = pickle.dumps(tok)
    assert units in blob                  # the Tokenizer's pickle carries the trie
    assert pickle.loads(blob)._segmenter.__reduce__()[1][2] == units


def test_corrupt_trie_arrays_are_rejected(small_model):
    """Viterbi stops its walks only where the trie ends once it is past the
    longest piece, so unpickled trie arrays must be a trie no deeper than
    the pickled depth: a corrupt pickle gets a ValueError, not a crash."""
    tok = Tokenizer(small_model)
    factory, args = _trie_state(tok)
    pieces, scores, units, values, max_depth, layout = args
    assert factory(*args).encode_bytes(b"abc", table=tok._ids) == tok.encode(b"abc")
    unit = np.frombuffer(units, dtype=np.uint32)
    root_base = int(unit[0] >> 9)

    def rejected(units=units, max_depth=max_depth):
        with pytest.raises(ValueError, match="corrupt Segmenter pickle"):
            factory(pieces, scores, units, values, max_depth, layout)

    rejected(max_depth=max_depth - 1)          # deeper than it says
    rejected(max_depth=max_depth + 1)
    missing = unit.copy()
    missing[root_base + 65] = 0                # single byte "A" gone
    rejected(units=missing.tobytes())
    shared = unit.copy()
    leaf = next(i for i in range(len(unit)) if unit[i] >> 9 == 0 and unit[i] & 0x100)
    shared[leaf] = (unit[0] & ~np.uint32(0x1FF)) | (unit[leaf] & np.uint32(0x1FF))
    rejected(units=shared.tobytes())           # a leaf given the root's base
    loop = unit.copy()
    loop[70] = np.uint32(0x100 | 70)           # a cell at index c holding byte c
    rejected(units=loop.tobytes())
