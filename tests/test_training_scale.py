"""Training at any scale: shards, every kind of input, the streamed compress
trainer, and the same model file whatever the workers and the cut of the corpus."""
from __future__ import annotations

import functools
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from bytepiece import compress
from bytepiece.compress import Scan, SpilledCorpus, hard_em, load_corpus, scan_shard, train_compress
from bytepiece.engine import LocalEngine, run_pass
from bytepiece.inputs import Corpus, Shard, TrainingCorpus, check_corpus, plan_shards, shard_texts
from bytepiece.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"


@pytest.fixture(scope="module")
def lines():
    text = (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8") + \
        (CORPORA / "handbook.en-US.txt").read_text(encoding="utf-8")[:60000]
    return text.splitlines(keepends=True)


# -- shards --------------------------------------------------------------------


@pytest.mark.parametrize("shard_bytes", [1, 100, 5000, 1 << 22])
def test_shards_of_a_file_give_its_lines(tmp_path, shard_bytes):
    path = tmp_path / "mixed.txt"
    path.write_bytes("一行\r\nsecond\rthird\n\nno newline at the end".encode("utf-8"))
    shards = plan_shards([str(path)], shard_bytes=shard_bytes)
    assert all(pickle.loads(pickle.dumps(s)) == s for s in shards)
    assert [t for s in shards for t in shard_texts(s)] == list(Corpus([str(path)]))
    assert sum(s.size for s in shards) == path.stat().st_size
    if shard_bytes == 1:
        assert len(shards) == 4  # cut at every newline


def test_shard_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n" * 50 + b"broken \xff\n")
    with pytest.raises(ValueError, match="bad.txt, line 51"):
        [t for s in plan_shards([str(bad)], shard_bytes=64) for t in shard_texts(s)]
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "a"}\n' * 30 + '{"other": 1}\n')
    with pytest.raises(ValueError, match="x.jsonl, line 31"):
        [t for s in plan_shards([str(jsonl)], shard_bytes=50) for t in shard_texts(s)]


def test_a_single_string_is_not_a_corpus():
    for single in ("text", b"bytes"):
        with pytest.raises(TypeError, match="list"):
            check_corpus(single)
    with pytest.raises(TypeError, match="text_column"):
        TrainingCorpus(["a"], text_column="text")


# -- inputs people have ------------------------------------------------------------


def _texts(corpus: TrainingCorpus):
    return [t for s in corpus.shards() for t in shard_texts(s)]


def test_every_kind_of_input_gives_the_same_texts(tmp_path, lines):
    path = tmp_path / "c.txt"
    path.write_text("".join(lines), encoding="utf-8")
    want = list(lines)
    with TrainingCorpus(lines, shard_bytes=999) as listed:
        assert _texts(listed) == want and _texts(listed) == want  # read again
    with TrainingCorpus(path) as one, TrainingCorpus([path, path]) as two:
        assert _texts(one) == want and _texts(two) == want + want
    with TrainingCorpus(line for line in lines) as spilled:
        workdir = spilled._workdir
        assert os.path.isdir(workdir)
        assert _texts(spilled) == want and _texts(spilled) == want
    assert not os.path.exists(workdir)  # the spill is removed


def test_named_pipe_is_copied_once(tmp_path, lines):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w", encoding="utf-8") as out:
            out.writelines(lines)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with TrainingCorpus(Corpus([str(fifo)])) as corpus:
            assert _texts(corpus) == list(lines) and _texts(corpus) == list(lines)
    finally:
        writer.join()


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_datasets_column(lines, algorithm):
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"id": list(range(len(lines))), "body": list(lines)})
    want = Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm).train(list(lines))
    assert Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm).train(table, text_column="body") == want
    streamed = table.to_iterable_dataset()
    assert Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm).train(
        streamed, text_column="body") == want
    with pytest.raises(ValueError, match="no column 'text'"):
        Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm).train(table)


# -- the streamed compress trainer -----------------------------------------------


def _scan(lines, shard_bytes, workers, budget, spill_dir=None, hinted=True, hints=None):
    with TrainingCorpus(lines, shard_bytes=shard_bytes) as corpus, LocalEngine(workers) as engine:
        fn = functools.partial(scan_shard, False, budget, spill_dir)
        merger = compress.ScanMerger()
        shards = merger.hinted(corpus.shards()) if hinted else corpus.shards()
        if hints is not None:
            shards = (hints.append(shard.threshold) or shard for shard in shards)
        scan, _ = run_pass(engine, fn, shards, merger, "scan", None, False)
    return scan


@pytest.mark.parametrize("budget", [1 << 30, 20000])
def test_a_group_of_shards_scans_into_the_sample_of_their_merged_scans(lines, budget, tmp_path):
    merger = compress.ScanMerger()
    with TrainingCorpus(lines, shard_bytes=400) as corpus:
        shards = list(corpus.shards())
    assert len(shards) > 20
    # Hints as the driver hands them out: the merged sample's threshold so far.
    hinted = []
    for shard in merger.hinted(shards):
        hinted.append(shard)
        merger.threshold = compress._lower(merger.threshold) if len(hinted) % 7 == 0 and budget < 1 << 30 \
            else merger.threshold
    assert (hinted[-1].threshold < compress._ALL) == (budget < 1 << 30)
    scanner = compress.ShardScanner(False, budget, str(tmp_path))
    parts = [scanner(shard) for shard in hinted]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    grouped = scanner.map_group(hinted)
    assert grouped.threshold == merged.threshold
    assert list(grouped.sample.items()) == list(merged.sample.items())
    assert list(grouped.hashes) == list(merged.hashes) and grouped.sample_bytes == merged.sample_bytes
    assert grouped.total_bytes == merged.total_bytes and grouped.chars == merged.chars
    assert np.array_equal(grouped.byte_counts, merged.byte_counts)
    assert [block[1:] for block in grouped.blocks] == [block[1:] for block in merged.blocks]
    assert scanner.map_group([]).total_bytes == 0


@pytest.mark.parametrize("budget", [1 << 30, 20000])
def test_candidate_sample_does_not_depend_on_the_cut(lines, budget):
    hints = []
    scans = [_scan(lines, b, w, budget, hinted=h, hints=hints if h else None)
             for b, w, h in ((1 << 22, 1, False), (300, 2, True), (7000, 3, True), (300, 1, False))]
    # Shards handed out after the merged sample outgrew the budget carry its
    # lower threshold, and leave out what the final sample drops.
    assert (min(hints) < compress._ALL) == (budget < 1 << 30)
    for scan in scans:
        assert len(scan.hashes) == len(scan.sample)
        assert list(scan.hashes) == [compress._chunk_hash(c) for c in scan.sample]
        assert scan.threshold == scans[0].threshold
        assert list(scan.sample.items()) == list(scans[0].sample.items())
        assert scan.sample_bytes <= budget
        assert np.array_equal(scan.byte_counts, scans[0].byte_counts) and scan.chars == scans[0].chars
    whole = load_corpus(lines)
    if budget > len(whole.data):
        assert scans[0].complete
        assert list(scans[0].sample.items()) == [
            (whole.data[a:b], int(w)) for a, b, w in zip(whole.offsets[:-1], whole.offsets[1:], whole.weights)]
    else:
        assert not scans[0].complete and 0 < scans[0].sample_bytes


def test_streamed_hard_em_equals_in_memory(tmp_path, lines):
    whole = load_corpus(lines)
    scan = _scan(lines, 5000, 2, 1 << 30, str(tmp_path))
    assert len(scan.blocks) > 3
    pieces = [bytes([b]) for b in range(256)] + ["的".encode(), b"the ", b"in", "月".encode()]
    counts = np.arange(1, len(pieces) + 1, dtype=np.int64)
    with LocalEngine(2) as engine:
        spilled = SpilledCorpus(scan.blocks, scan.total_bytes, engine)
        assert spilled.total_bytes == whole.total_bytes
        for use_core in (True, False):
            got = hard_em(pieces, counts, spilled, use_core=use_core)
            assert np.array_equal(got, hard_em(pieces, counts, whole, use_core=use_core))


def test_streamed_training_is_close_to_in_memory(lines):
    small = train_compress(lines, 800, verbose=False)[800]
    streamed = train_compress(lines, 800, verbose=False, candidate_bytes=30000, shard_bytes=4000)[800]
    assert all(bytes([b]) in streamed for b in range(256)) and len(streamed) <= 797
    shared = set(small) & set(streamed)
    assert len(shared) > 0.6 * len(small)


# -- same arguments, same model file -------------------------------------------------


@pytest.mark.parametrize("algorithm,options", [
    ("bnlm", {}),
    ("compress", {}),
    ("compress", {"candidate_bytes": 25000}),  # streamed from a spill
])
def test_same_model_file_for_any_workers_and_cut(tmp_path, lines, algorithm, options):
    files = []
    path = tmp_path / "c.txt"
    path.write_text("".join(lines), encoding="utf-8")
    runs = [(lines, 1, 1 << 22), (lines, 2, 3000), (path, 2, 5000), (path, 1, 999)]
    for i, (texts, workers, shard_bytes) in enumerate(runs):
        trainer = Trainer(max_vocab_size=[900, 500], verbose=False, algorithm=algorithm, **options)
        trainer.train(texts, workers=workers, shard_bytes=shard_bytes)
        files.append([Path(p).read_bytes() for p in trainer.save(tmp_path / f"m{i}")])
    assert all(f == files[0] for f in files)


def test_an_error_during_training_leaves_no_model_and_no_spill(tmp_path, monkeypatch, lines):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(compress, "_em_block", failing)
    trainer = Trainer(max_vocab_size=600, verbose=False, candidate_bytes=25000)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(iter(lines), workers=2, shard_bytes=3000)
    assert calls
    assert not trainer.vocabularies
    assert list(tmp_path.iterdir()) == []  # spilled texts and chunks removed


# -- engines -------------------------------------------------------------------------


class _CopyingEngine(LocalEngine):
    """Runs every call on pickled copies of ``fn`` and its item and returns a pickled
    copy of the result, as an engine that runs calls in other processes does."""

    def map(self, fn, items):
        def remote(item):
            call = pickle.loads(pickle.dumps(fn))
            return pickle.loads(pickle.dumps(call(pickle.loads(pickle.dumps(item)))))

        return super().map(remote, items)


@pytest.mark.parametrize("algorithm,options", [("bnlm", {}), ("compress", {"candidate_bytes": 25000})])
def test_an_engine_that_copies_every_call_trains_the_same(lines, algorithm, options):
    want = Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm, **options).train(lines)
    with _CopyingEngine(2) as engine:
        got = Trainer(max_vocab_size=700, verbose=False, algorithm=algorithm, **options).train(
            lines, engine=engine, shard_bytes=5000)
        assert got == want
        # the engine is the caller's: still open after training
        assert list(engine.map(len, ["ab", "c"])) == [2, 1]


def test_byte_counts_weigh_repeated_chunks():
    import random
    from collections import Counter

    from bytepiece.compress import Corpus

    rng = random.Random(1)
    for _ in range(50):
        chunks = Counter({bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))): rng.choice([1, 1, 2, 5])
                          for _ in range(rng.randrange(0, 30))})
        want = np.zeros(256, dtype=np.int64)
        for chunk, n in chunks.items():
            for b in chunk:
                want[b] += n
        assert np.array_equal(Corpus(chunks).byte_counts(), want)


def test_a_file_that_outgrows_the_budget_when_normalized_is_spilled(tmp_path):
    # U+0958 is excluded from composition: NFC turns its 3 bytes into 6
    lines = ["\u0958" * 20 + f" {i} क़ख\n" for i in range(300)]
    path = tmp_path / "nfc.txt"
    path.write_text("".join(lines), encoding="utf-8")
    assert path.stat().st_size < 25000
    got = train_compress(path, 400, verbose=False, candidate_bytes=25000)[400]
    assert got == train_compress(lines, 400, verbose=False, candidate_bytes=25000)[400]
    assert all(bytes([b]) in got for b in range(256))
