"""The compiled trainer: bit-exact golden vocabularies, parallel determinism,
mergeable partial counts, and parameter validation."""
from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import List

import numpy as np
import pytest

from bytepiece import _educational as edu
from bytepiece._ngram import NgramCounts, NgramModel, PieceCounts
from bytepiece.normalization import normalize
from bytepiece.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"

POEMS = ["tang300.zh.txt", "song100.zh.txt"]
HANDBOOK = ["handbook.zh-CN.txt", "handbook.en-US.txt"]

GOLDEN = [
    ("poems.o6.m2.model", dict(order=6, max_vocab_size=[2000, 1000], min_count=2), POEMS),
    (
        "poems.o4.noeu.model",
        dict(order=4, max_vocab_size=1500, min_count=3, ensure_unicode=False, max_piece_length=8),
        POEMS,
    ),
    ("handbook.o6.m2.id.model", dict(order=6, max_vocab_size=8000, min_count=2, isolate_digits=True), HANDBOOK),
]


def corpus_lines(files: List[str]) -> List[str]:
    """Each line of the files, as text-mode iteration yields it (newline kept)."""
    lines: List[str] = []
    for name in files:
        with open(CORPORA / name, encoding="utf-8") as handle:
            lines.extend(handle)
    return lines


def chunks_of(lines: List[str], isolate_digits: bool = False) -> List[bytes]:
    out: List[bytes] = []
    for line in lines:
        out.extend(normalize(line, 10000, isolate_digits))
    return out


@pytest.fixture(scope="module")
def poem_lines() -> List[str]:
    return corpus_lines(POEMS)


# -- golden ------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name,params,files", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_vocabularies(tmp_path, name, params, files, workers):
    if not (REFERENCE / "train").is_dir():
        pytest.skip(f"reference data not available: {REFERENCE}")
    trainer = Trainer(verbose=False, algorithm="bnlm", **params)
    trainer.train(corpus_lines(files), workers=workers, shard_bytes=20000)
    written = trainer.save(tmp_path / name)
    sizes = params["max_vocab_size"]
    expected = [f"{name}.{s}" for s in sizes] if isinstance(sizes, list) else [name]
    assert [Path(p).name for p in written] == expected
    for path in written:
        with open(path, encoding="utf-8") as mine, open(REFERENCE / "train" / Path(path).name, encoding="utf-8") as ref:
            assert json.load(mine) == json.load(ref)


def test_workers_do_not_change_result(poem_lines):
    results = []
    for workers, shard_bytes in [(1, 1 << 22), (2, 7), (3, 1000)]:
        trainer = Trainer(order=5, max_vocab_size=[1200, 600], verbose=False, algorithm="bnlm")
        results.append(trainer.train(poem_lines, workers=workers, shard_bytes=shard_bytes))
    assert results[0] == results[1] == results[2]


# -- agreement with the readable twin ----------------------------------------------


@pytest.mark.parametrize("order,min_count,ensure_unicode", [(6, 2, True), (4, 3, False), (2, 1, True), (1, 2, True)])
def test_phases_match_educational(poem_lines, order, min_count, ensure_unicode):
    chunks = chunks_of(poem_lines[:800])
    counts = NgramCounts(order)
    counts.add(chunks)
    expected = edu.count_ngrams(chunks, order)
    mine = counts.to_dicts()
    # The compiled tables do not store the short slices cut by a chunk's end.
    assert mine == [{k: v for k, v in t.items() if len(k) == j} for j, t in enumerate(expected)]

    logs = edu.prune_ngrams(expected, min_count)
    model = counts.prune(min_count)
    assert len(model) == sum(len(logs[j]) for j in range(1, order + 1))
    for j in range(1, order + 1):
        for gram, value in logs[j].items():
            assert model.log_prob(gram) == value  # bit for bit

    pieces = PieceCounts()
    model.count_pieces(chunks, pieces, ensure_unicode)
    assert pieces.to_dict() == edu.count_pieces(chunks, logs, order, ensure_unicode)
    for chunk in chunks[:200]:
        assert model.segment(chunk, ensure_unicode) == edu.ngram_segment(chunk, logs, order, ensure_unicode)


@pytest.mark.parametrize("order", [6, 7])
def test_counts_past_the_packed_count_field(order):
    # A j-gram slot keeps its count in 64 - 8j bits (65,535 for 6-grams, 255
    # for 7-grams); larger counts move to an overflow table. Counts, merges,
    # pickles, the model and its segmentation must not notice.
    chunks = [b"a" * 70000 + b"ba" * 300, b"ab" * 200]
    counts = NgramCounts(order)
    counts.add(chunks)
    expected = edu.count_ngrams(chunks, order)
    assert counts.to_dicts() == [{k: v for k, v in t.items() if len(k) == j} for j, t in enumerate(expected)]
    assert counts.count(b"a" * order) == 70001 - order
    half = NgramCounts(order)
    half.add(chunks)
    half.merge(pickle.loads(pickle.dumps(half)))
    assert half.count(b"a" * order) == 2 * (70001 - order)
    logs = edu.prune_ngrams(expected, 2)
    model = pickle.loads(pickle.dumps(counts.prune(2, release=True)))
    assert len(counts) == 0
    for j in range(1, order + 1):
        for gram, value in logs[j].items():
            assert model.log_prob(gram) == value  # bit for bit
    for chunk in chunks:
        assert model.segment(chunk) == edu.ngram_segment(chunk, logs, order, True)


def test_piece_partition():
    pieces = PieceCounts()
    for piece, count in [(b"a", 1), (b"bc", 5), (b"de", 1), (b"fghij", 9), (b"k", 7)]:
        pieces.add(piece, count)
    keep, keep_counts, (data, offsets), drop_counts = pieces.partition(4, 2, release=True)
    assert dict(zip(keep, keep_counts.tolist())) == {b"a": 1, b"bc": 5, b"k": 7}
    dropped = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    assert dict(zip(dropped, drop_counts.tolist())) == {b"de": 1, b"fghij": 9}
    assert len(pieces) == 0


def test_all_minus_infinity_edge_case():
    # A rare two-byte character whose bigram is pruned: under ensure_unicode its
    # second byte has every state at -inf; the reference then cuts the rest of
    # the chunk (and the byte before) into single bytes.
    chunks = [b"abcabcabc\n"] * 5 + ["xy\u00e9zabc\n".encode()]
    counts = NgramCounts(3)
    counts.add(chunks)
    logs = edu.prune_ngrams(edu.count_ngrams(chunks, 3), 2)
    model = counts.prune(2)
    for chunk in chunks:
        assert model.segment(chunk) == edu.ngram_segment(chunk, logs, 3, True)
    assert model.segment(chunks[-1])[-5:] == [b"z", b"a", b"b", b"c", b"\n"]


# -- mergeable partial results -------------------------------------------------------


def test_ngram_merge_is_associative_and_exact(poem_lines):
    chunks = chunks_of(poem_lines)
    whole = NgramCounts(6)
    whole.add(chunks)
    rng = random.Random(5)
    cuts = sorted(rng.sample(range(1, len(chunks)), 4))
    shards = [chunks[a:b] for a, b in zip([0] + cuts, cuts + [len(chunks)])]
    parts = []
    for shard in shards:
        part = NgramCounts(6)
        part.add(shard)
        parts.append(pickle.loads(pickle.dumps(part)))  # as if from another process
    left = parts[0]
    for part in parts[1:]:
        left.merge(part)
    right = NgramCounts(6)
    inner = NgramCounts(6)
    for part in reversed(shards[1:]):
        p = NgramCounts(6)
        p.add(part)
        inner.merge(p)
    first = NgramCounts(6)
    first.add(shards[0])
    right.merge(first).merge(inner)
    assert left.to_dicts() == whole.to_dicts() == right.to_dicts()
    assert left.total == whole.total == sum(map(len, chunks))
    model, copy = whole.prune(2), pickle.loads(pickle.dumps(left.prune(2)))
    assert len(model) == len(copy)
    for table in whole.to_dicts()[1:]:
        for gram in table:
            assert model.log_prob(gram) == copy.log_prob(gram)


def test_piece_merge_is_exact(poem_lines):
    chunks = chunks_of(poem_lines)
    counts = NgramCounts(6)
    counts.add(chunks)
    model = pickle.loads(pickle.dumps(counts.prune(2)))
    assert isinstance(model, NgramModel)
    whole = PieceCounts()
    model.count_pieces(chunks, whole)
    parts = []
    for k in range(3):
        part = PieceCounts()
        model.count_pieces(chunks[k::3], part)
        parts.append(pickle.loads(pickle.dumps(part)))
    merged = PieceCounts().merge(parts[2]).merge(parts[0]).merge(parts[1])
    assert merged.to_dict() == whole.to_dict()
    assert sum(merged.to_dict().values()) == sum(whole.to_dict().values())


def _old_ngram_blob(counts):
    """``counts`` in the blob of earlier releases: per table, its keys then its counts."""
    tables = counts.to_dicts()
    words = [0x314D4152474504E, counts.order, counts.total]
    words += [tables[1].get(bytes([b]), 0) for b in range(256)]
    for table in tables[2:]:
        words.append(len(table))
        words += [int.from_bytes(gram, "little") for gram in table]
        words += list(table.values())
    return np.asarray(words, dtype=np.uint64).tobytes()


def test_ngram_counts_pickle_as_an_image_of_their_tables(poem_lines):
    counts = NgramCounts(6)
    counts.add(chunks_of(poem_lines))
    want = counts.to_dicts()
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(counts, protocol)).to_dicts() == want
    buffers = []  # protocol 5 with a buffer callback, as Ray pickles: the blob travels out of band
    stream = pickle.dumps(counts, 5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(stream) < 200
    assert pickle.loads(stream, buffers=[memoryview(b).toreadonly() for b in buffers]).to_dicts() == want
    assert NgramCounts.from_bytes(_old_ngram_blob(counts)).to_dicts() == want  # earlier releases' pickles
    model, pieces = counts.prune(2), PieceCounts()
    model.count_pieces(chunks_of(poem_lines), pieces)
    for value, same in ((model, lambda m: m.segment(b"\xe6\x98\xa5\xe7\x9c\xa0")),
                        (pieces, lambda p: p.to_dict())):
        buffers = []  # the model and piece counts travel out of band too
        stream = pickle.dumps(value, 5, buffer_callback=buffers.append)
        assert len(buffers) == 1
        assert same(pickle.loads(stream, buffers=buffers)) == same(value)

    words = np.frombuffer(counts.to_bytes(), dtype=np.uint64).copy()
    head = 4 + 256 + 2  # magic, order, total, unigrams, budget, lo, hi: the table of 2-grams
    cap, slots = int(words[head]), words[head + 2:head + 2 + int(words[head])]
    home = [i for i in range(cap) if slots[i] and not slots[i - 1] and not slots[(i + 1) % cap]]
    alone = [i for i in range(cap) if not slots[i - 1] and not slots[i] and not slots[(i + 1) % cap]]
    damaged = {"capacity": (head, cap - 1), "size": (head + 1, int(words[head + 1]) + 1),
               "free slot": (head + 1, cap), "moved key": None}
    for what, change in damaged.items():
        bad = words.copy()
        if change is None:  # a key that sits alone moves to another lone free slot: lookups miss it
            bad[head + 2 + alone[len(alone) // 2]] = slots[home[0]]
            bad[head + 2 + home[0]] = 0
        else:
            bad[change[0]] = change[1]
        with pytest.raises(ValueError, match="corrupt NgramCounts blob"):
            NgramCounts.from_bytes(bad.tobytes())
    for cut in (8, 8 * (head + 2), 8 * (head + 3), 8 * (head + 5), len(words) * 8 - 8):
        with pytest.raises(ValueError, match="NgramCounts blob"):
            NgramCounts.from_bytes(words.tobytes()[:cut])
    rng = np.random.default_rng(0)
    for _ in range(300):  # random damage: an error or sound counts, never a crash
        bad = bytearray(words.tobytes())
        for at in rng.integers(0, len(bad), size=3):
            bad[at] ^= 1 << int(rng.integers(0, 8))
        try:
            loaded = NgramCounts.from_bytes(bytes(bad))
        except ValueError:
            continue
        loaded.merge(counts)
        loaded.prune(2)


def test_merge_rejects_other_orders():
    with pytest.raises(ValueError, match="order"):
        NgramCounts(3).merge(NgramCounts(4))
    with pytest.raises(ValueError):
        NgramCounts.from_bytes(b"garbage" * 10)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(max_vocab_size=258), "max_vocab_size"),
        (dict(max_vocab_size=[1000, 100]), "max_vocab_size"),
        (dict(order=0), "order"),
        (dict(order=8), "order"),
        (dict(min_count=0), "min_count"),
        (dict(max_piece_length=0), "max_piece_length"),
    ],
)
def test_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Trainer(**kwargs)


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_generator_is_read_once_and_trains_like_a_list(poem_lines, algorithm):
    want = Trainer(max_vocab_size=500, verbose=False, algorithm=algorithm).train(poem_lines[:400])
    drawn = []

    def lines():
        for line in poem_lines[:400]:
            drawn.append(line)
            yield line

    trainer = Trainer(max_vocab_size=500, verbose=False, algorithm=algorithm)
    assert trainer.train(lines()) == want
    assert len(drawn) == 400  # consumed exactly once
    assert Trainer(max_vocab_size=500, verbose=False, algorithm=algorithm).train(iter(poem_lines[:400])) == want


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_single_string_is_refused(algorithm):
    with pytest.raises(TypeError, match="list"):
        Trainer(max_vocab_size=500, verbose=False, algorithm=algorithm).train("one text, not a list")


def test_empty_corpus():
    trainer = Trainer(max_vocab_size=500, verbose=False)
    with pytest.raises(ValueError, match="empty"):
        trainer.train([])
    with pytest.raises(ValueError, match="empty"):
        trainer.train(["", ""])


def test_non_str_text():
    with pytest.raises(TypeError, match="str"):
        Trainer(max_vocab_size=500, verbose=False).train([b"bytes"])


def test_save_before_train(tmp_path):
    with pytest.raises(RuntimeError):
        Trainer(verbose=False).save(tmp_path / "m")


def test_tiny_corpus_gives_all_bytes(tmp_path):
    trainer = Trainer(max_vocab_size=300, verbose=False)
    vocab = trainer.train(["hello hello\n"] * 3)[300]
    assert all(bytes([b]) in vocab for b in range(256))
    assert len(vocab) <= 297


def test_progress_goes_to_stderr(poem_lines, capsys):
    Trainer(max_vocab_size=500, verbose=True, algorithm="bnlm").train(poem_lines[:50])
    captured = capsys.readouterr()
    assert captured.out == ""
    for phase in ("count n-grams", "segment", "prune"):
        assert phase in captured.err
    Trainer(max_vocab_size=500, verbose=False).train(poem_lines[:50])
    assert capsys.readouterr().err == ""


def test_algorithm_compress_through_trainer(tmp_path):
    from bytepiece import Tokenizer

    lines = (ROOT / "corpora" / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    trainer = Trainer(max_vocab_size=[600, 400], algorithm="compress", verbose=False)
    assert trainer.max_piece_length == 16
    vocabs = trainer.train(lines, workers=2)
    assert set(vocabs) == {600, 400}
    for size, counts in vocabs.items():
        assert len(counts) <= size - 3
        assert all(bytes([b]) in counts for b in range(256))
    written = trainer.save(tmp_path / "c.model")
    tok = Tokenizer(written[0])
    assert all(tok.decode(tok.encode(line)) == line for line in lines[:200])


def test_unknown_algorithm_is_rejected():
    with pytest.raises(ValueError, match="algorithm"):
        Trainer(algorithm="bpe")


@pytest.mark.parametrize("algorithm,passes", [("bnlm", ["count n-grams", "segment"]),
                                              ("compress", ["compress: read"])])
def test_every_pass_has_a_progress_bar_in_bytes(poem_lines, capsys, tmp_path, algorithm, passes):
    path = tmp_path / "poems.txt"
    path.write_text("".join(poem_lines[:300]), encoding="utf-8")
    Trainer(max_vocab_size=500, verbose=True, algorithm=algorithm).train(path)
    err = capsys.readouterr().err
    for name in passes:
        line = [part for part in err.replace("\r", "\n").split("\n") if part.startswith(name)][-1]
        assert "100%" in line and "B/s" in line, line  # a file: bytes, rate, and the total
    Trainer(max_vocab_size=500, verbose=False, algorithm=algorithm).train(path)
    assert capsys.readouterr().err == ""
