"""N-gram counting under a memory budget: tables stay within it, passes
cover every n-gram exactly once, and the model is the one of a single pass."""
from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from bytepiece._ngram import NgramCounts, NgramModel, PieceCounts
from bytepiece.normalization import normalize
from bytepiece.trainer import Trainer

CORPORA = Path(__file__).resolve().parents[1] / "corpora"


@pytest.fixture(scope="module")
def lines() -> List[str]:
    out: List[str] = []
    for name in ["tang300.zh.txt", "handbook.en-US.txt"]:
        with open(CORPORA / name, encoding="utf-8") as handle:
            out.extend(handle.readlines()[:1500])
    return out


@pytest.fixture(scope="module")
def chunks(lines) -> List[bytes]:
    out: List[bytes] = []
    for line in lines:
        out.extend(normalize(line, 10000))
    return out


def model_tables(model: NgramModel) -> Dict[int, Dict[int, int]]:
    """``{length: {packed key: count}}`` of a model, read from its binary image."""
    words = np.frombuffer(model.to_bytes(), dtype=np.uint64)
    tables = {1: dict(enumerate(words[3:259].tolist()))}
    k = 259
    for j in range(2, int(words[1]) + 1):
        n = int(words[k])
        tables[j] = dict(zip(words[k + 1:k + 1 + n].tolist(), words[k + 1 + n:k + 1 + 2 * n].tolist()))
        k += 1 + 2 * n
    return tables


def test_budget_gives_the_model_of_one_pass(chunks):
    reference = NgramCounts(6)
    reference.add(chunks)
    expected = model_tables(reference.prune(2))
    counts = NgramCounts(6, memory_budget=64 << 10)
    model = None
    passes = 0
    while counts is not None:
        passes += 1
        counts.add(chunks)
        assert counts.nbytes <= 64 << 10
        model = counts.prune(2, release=True, into=model)
        assert model.complete == (counts.next_pass() is None)
        counts = counts.next_pass()
    assert passes > 3  # the budget did split the counting
    assert model_tables(model) == expected
    pieces, reference_pieces = PieceCounts(), PieceCounts()
    model.count_pieces(chunks, pieces)
    reference.prune(2).count_pieces(chunks, reference_pieces)
    assert pieces.to_dict() == reference_pieces.to_dict()


def test_each_pass_counts_exactly(chunks):
    # Every n-gram is counted in exactly one pass, with its full count.
    reference = NgramCounts(5)
    reference.add(chunks)
    whole = reference.to_dicts()
    seen: List[Dict[bytes, int]] = [dict() for _ in whole]
    counts = NgramCounts(5, memory_budget=20000)
    while counts is not None:
        counts.add(chunks)
        assert counts.total == reference.total
        for j, table in enumerate(counts.to_dicts()):
            if j < 2:
                assert table == whole[j]
                continue
            for gram, count in table.items():
                assert gram not in seen[j]
                assert count == whole[j][gram]
            seen[j].update(table)
        counts = counts.next_pass()
    assert seen[2:] == whole[2:]


@pytest.mark.parametrize("seed", [1, 2])
def test_shards_and_merges_under_a_budget(chunks, seed):
    # Shards counted apart (narrowing their ranges differently), pickled and
    # merged: the model does not depend on the cut.
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(chunks)), 3))
    shards = [chunks[a:b] for a, b in zip([0] + cuts, cuts + [len(chunks)])]
    budget = 48 << 10
    counts = NgramCounts(6, memory_budget=budget)
    model = None
    passes = 0
    while counts is not None:
        passes += 1
        parts = []
        for shard in shards:
            part = pickle.loads(pickle.dumps(counts))  # an empty copy of this pass
            part.add(shard)
            assert part.nbytes <= budget
            parts.append(pickle.loads(pickle.dumps(part)))
        merged = parts[0]
        for part in parts[1:]:
            merged.merge(part)
            assert merged.nbytes <= budget
        model = merged.prune(2, release=True, into=model)
        counts = merged.next_pass()
    reference = NgramCounts(6)
    reference.add(chunks)
    assert passes > 2
    assert model_tables(model) == model_tables(reference.prune(2))


def test_no_budget_is_one_pass(chunks):
    counts = NgramCounts(4)
    counts.add(chunks)
    assert counts.memory_budget is None and counts.complete and counts.first_pass
    assert counts.next_pass() is None
    assert counts.prune(2).complete
    big = NgramCounts(4, memory_budget=1 << 30)  # large enough: also one pass
    big.add(chunks)
    assert big.complete and big.next_pass() is None
    assert model_tables(big.prune(2)) == model_tables(counts.prune(2))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_trainer_budget_gives_the_same_vocabulary(lines, workers):
    plain = Trainer(order=6, max_vocab_size=[1500, 700], verbose=False, algorithm="bnlm").train(lines, workers=1)
    tight = Trainer(order=6, max_vocab_size=[1500, 700], verbose=False, algorithm="bnlm", memory_budget=96 << 10)
    assert tight.train(lines, workers=workers) == plain


def test_budget_errors(chunks):
    with pytest.raises(ValueError, match="memory_budget"):
        NgramCounts(6, memory_budget=0)
    with pytest.raises(TypeError, match="memory_budget"):
        NgramCounts(6, memory_budget="1G")
    with pytest.raises(ValueError, match="memory_budget"):
        Trainer(memory_budget=0)
    first = NgramCounts(6, memory_budget=16 << 10)
    first.add(chunks)
    assert not first.complete
    second = first.next_pass()
    with pytest.raises(ValueError, match="different passes"):
        second.merge(first)
    partial = first.prune(2)
    assert not partial.complete
    with pytest.raises(ValueError, match="later passes"):
        partial.segment(chunks[0])
    with pytest.raises(ValueError, match="later passes"):
        partial.count_pieces(chunks[:3], PieceCounts())
    with pytest.raises(ValueError, match="later passes"):
        pickle.dumps(partial)
    second.add(chunks)
    with pytest.raises(ValueError, match="into="):
        second.prune(2)
    with pytest.raises(ValueError, match="into="):
        first.prune(2, into=partial)  # a first pass cannot continue a model
    changed = first.next_pass()
    changed.add(chunks[1:])
    with pytest.raises(ValueError, match="changed"):
        changed.prune(2, into=partial)
    with pytest.raises(ValueError, match="hash range"):
        blob = bytearray(second.to_bytes())
        lo_of_2grams = 8 * (4 + 256)  # magic, order, total, budget, the unigrams, then lo, hi, table of 2-grams
        blob[lo_of_2grams:lo_of_2grams + 8] = (2 ** 64 - 1).to_bytes(8, "little")  # lo > hi
        NgramCounts.from_bytes(bytes(blob))


def test_trainer_rejects_a_corpus_that_changes_between_passes(lines):
    class Shrinking:
        def __init__(self):
            self.calls = 0

        def __iter__(self):
            self.calls += 1  # 1: the trainer's re-iterability check, 2: the first pass
            return iter(lines if self.calls <= 2 else lines[:-50])

    with pytest.raises(ValueError, match="changed"):
        Trainer(max_vocab_size=500, verbose=False, algorithm="bnlm", memory_budget=32 << 10).train(Shrinking())


def test_golden_vocabularies_under_a_memory_budget(tmp_path):
    reference = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "train"
    if not reference.is_dir():
        pytest.skip(f"reference data not available: {reference}")
    from click.testing import CliRunner

    from bytepiece.cli import main

    poems = [str(CORPORA / name) for name in ["tang300.zh.txt", "song100.zh.txt"]]
    out = tmp_path / "poems.o6.m2.model"
    result = CliRunner().invoke(main, ["train", *poems, "-o", str(out), "--vocab-size", "2000", "--vocab-size",
                                       "1000", "--workers", "2", "--algorithm", "bnlm", "--memory-budget", "1", "-q"])
    assert result.exit_code == 0, result.output
    for size in (2000, 1000):
        mine = json.loads((tmp_path / f"poems.o6.m2.model.{size}").read_text(encoding="utf-8"))
        assert mine == json.loads((reference / f"poems.o6.m2.model.{size}").read_text(encoding="utf-8"))
    # 1 MB is small enough for this corpus to take several passes.
    counts, passes = NgramCounts(6, memory_budget=1 << 20), 0
    chunks = [c for name in poems for line in open(name, encoding="utf-8") for c in normalize(line, 10000)]
    while counts is not None:
        counts.add(chunks)
        counts, passes = counts.next_pass(), passes + 1
    assert passes > 1
