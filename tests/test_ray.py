"""The Ray engine on a local cluster of 2 CPUs: ordered maps, merges on the
driver and in a tree of tasks, errors, a worker killed mid-task, and token
files (.npy and shard directories) identical to the local engine's."""
from __future__ import annotations

import functools
import json
import operator
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bytepiece import inputs
from bytepiece.bulk_encoding import encode_blocks_to_token_file, encode_with_engine
from bytepiece.cli import _blocks, main
from bytepiece.engine import LocalEngine
from bytepiece.token_files import TokenFileWriter, TokenShards
from bytepiece.tokenizer import Tokenizer

from conftest import CORPORA

pytest.importorskip("ray")
from bytepiece.ray_engine import RayEngine  # noqa: E402


@pytest.fixture(scope="module")
def engine(ray_cluster):
    with RayEngine(max_retries=3) as running:
        yield running


@pytest.fixture
def corpus(tmp_path) -> Path:
    """About 300 KB of text in both scripts, one document per line."""
    text = (CORPORA / "handbook.en-US.txt").read_text(encoding="utf-8")[:150_000]
    text += (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8")[:50_000]
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 KB, so that a small corpus makes many blocks and shards."""
    monkeypatch.setattr(inputs, "_BLOCK", 8192)


def _square(x):
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("item 3 is bad")
    return x


class _Counts:
    """A partial result whose merge updates its first argument in place."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.int64)

    def __eq__(self, other):
        return np.array_equal(self.values, other.values)


def _counts(x):
    values = np.zeros(8, dtype=np.int64)
    values[x % 8] = x
    return _Counts(values)


def _add_counts(a, b):
    a.values += b.values
    return a


# -- the engine --------------------------------------------------------------------


def test_map_keeps_input_order(engine):
    assert list(engine.map(_square, range(40))) == [x * x for x in range(40)]
    assert list(engine.map(_square, [])) == []
    assert engine.stats[-2]["tasks"] == 40


@pytest.mark.parametrize("tree_bytes", [1 << 30, 0])
def test_map_reduce_merges_in_input_order_on_the_driver_or_in_a_tree(engine, tree_bytes, monkeypatch):
    monkeypatch.setattr(engine, "tree_bytes", tree_bytes)
    # str + str is associative but not commutative: the order shows.
    assert engine.map_reduce(str, range(37), operator.add) == "".join(map(str, range(37)))
    merged_in_tasks = engine.stats[-1]["merge_tasks"]
    assert (merged_in_tasks > 0) == (tree_bytes == 0)
    assert engine.map_reduce(str, [], operator.add) is None
    assert engine.map_reduce(str, [5], operator.add) == "5"


def _add_on_driver(a, b):
    return a + b


_add_on_driver.merges_on_driver = True


def test_a_merge_may_ask_to_run_on_the_driver(engine, monkeypatch):
    monkeypatch.setattr(engine, "tree_bytes", 0)
    assert engine.map_reduce(str, range(37), _add_on_driver) == "".join(map(str, range(37)))
    assert engine.stats[-1]["merge_tasks"] == 0 and len(engine.stats[-1]["driver_seconds"]) == 37


@pytest.mark.parametrize("tree_bytes", [1 << 30, 0])
def test_map_reduce_merge_may_update_arrays_that_came_from_the_store(engine, tree_bytes, monkeypatch):
    monkeypatch.setattr(engine, "tree_bytes", tree_bytes)
    expected = LocalEngine(1).map_reduce(_counts, range(30), _add_counts)
    assert engine.map_reduce(_counts, range(30), _add_counts) == expected


def _fill(partial, item):
    partial.append(item)
    return partial


class _Partial:
    def __init__(self):
        self.seen = []

    def __call__(self, item):
        self.seen.append(item)
        return os.getpid(), self.seen


class _Calls:
    """Counts its calls (state a real fn must not keep: here it shows the reuse)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, item):
        self.calls += 1
        return os.getpid(), self.calls


def test_each_task_gets_fn_as_it_was_put(engine):
    # fn carries an empty partial result that each task fills: a task must
    # never see what an earlier task on the same worker put in it.
    fn = functools.partial(_fill, [])
    assert engine.map_reduce(fn, range(30), operator.add) == list(range(30))
    assert list(engine.map(fn, range(30))) == [[i] for i in range(30)]
    assert [seen for _pid, seen in engine.map(_Partial(), range(20))] == [[i] for i in range(20)]


def test_fn_is_unpickled_once_per_worker_otherwise(engine):
    results = list(engine.map(_Calls(), range(40)))
    by_worker = {}
    for pid, calls in results:
        by_worker.setdefault(pid, []).append(calls)
    # Each worker process unpickled fn once, then counted its calls with it.
    assert sum(len(calls) for calls in by_worker.values()) == 40
    assert all(sorted(calls) == list(range(1, len(calls) + 1)) for calls in by_worker.values())
    assert len(by_worker) < 40


def test_an_error_of_fn_is_raised_as_itself_and_not_retried(engine, tmp_path):
    with pytest.raises(ValueError, match="item 3 is bad"):
        list(engine.map(_fail_on_three, range(10)))
    attempts = tmp_path / "attempts"
    with pytest.raises(ValueError, match="always fails"):
        list(engine.map(_AlwaysFails(str(attempts)), [1]))
    assert attempts.read_text() == "x"  # one attempt: an exception of fn is not retried


class _AlwaysFails:
    def __init__(self, log):
        self.log = log

    def __call__(self, item):
        with open(self.log, "a") as handle:
            handle.write("x")
        raise ValueError("always fails")


class _KillOnce:
    """Runs ``fn``, but the first attempt at item ``victim`` kills its own worker
    process: after ``fn`` has done its work (its output written, the result not
    yet returned), or in the middle of writing a token file."""

    def __init__(self, fn, victim, marker, attempts, mid_write=False):
        self.fn, self.victim, self.marker, self.attempts = fn, victim, marker, attempts
        self.mid_write = mid_write

    def __call__(self, item):
        index = getattr(item, "index", item)
        if index == self.victim:
            with open(self.attempts, "a") as handle:
                handle.write("x")
        if index == self.victim and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            directory = getattr(self.fn, "directory", None)
            if self.mid_write and directory is not None:
                writer = TokenFileWriter(os.path.join(directory, "shard-999999.npy"), "<u2")
                writer.write(np.arange(100))
                writer._handle.flush()
            else:
                self.fn(item)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.fn(item)


class _Killing:
    """An engine whose tasks are wrapped in :class:`_KillOnce`."""

    def __init__(self, engine, victim, tmp_path, mid_write=False):
        self.engine, self.victim, self.mid_write = engine, victim, mid_write
        self.marker, self.attempts = str(tmp_path / "killed"), str(tmp_path / "attempts")
        self.workers = engine.workers

    def map(self, fn, items):
        return self.engine.map(_KillOnce(fn, self.victim, self.marker, self.attempts, self.mid_write), items)


def test_a_killed_worker_is_retried(engine, tmp_path):
    killing = _Killing(engine, 7, tmp_path)
    assert list(killing.map(_square, range(20))) == [x * x for x in range(20)]
    assert os.path.exists(killing.marker)
    assert Path(killing.attempts).read_text() == "xx"  # killed once, then retried once


# -- token files --------------------------------------------------------------------


def _local_npy(tokenizer, path, out, alpha=-1.0, seed=None):
    encode_blocks_to_token_file(tokenizer, _blocks([str(path)], "text", "strict"), out, alpha=alpha, seed=seed)
    return np.load(out)


@pytest.mark.parametrize("alpha,seed", [(-1.0, None), (0.1, 42)])
def test_ray_token_files_equal_the_local_ones(engine, tang_model, corpus, tmp_path, small_blocks, alpha, seed):
    tokenizer = Tokenizer(tang_model)
    expected = _local_npy(tokenizer, corpus, tmp_path / "local.npy", alpha, seed)
    blocks = list(_blocks([str(corpus)], "text", "strict", count=alpha >= 0))
    assert len(blocks) > 20
    for shard_bytes in (1, 50_000, 1 << 30):
        out = tmp_path / f"ray-{shard_bytes}.npy"
        tokens, documents = encode_with_engine(tokenizer, iter(blocks), out, engine, alpha=alpha, seed=seed,
                                               shard_bytes=shard_bytes)
        assert (out.read_bytes() == (tmp_path / "local.npy").read_bytes())
        assert tokens == len(expected) and documents == corpus.read_text(encoding="utf-8").count("\n")
    for runner in (engine, LocalEngine(2)):
        directory = tmp_path / f"shards-{type(runner).__name__}"
        encode_with_engine(tokenizer, iter(blocks), str(directory) + "/", runner, alpha=alpha, seed=seed,
                           shard_bytes=40_000)
        shards = TokenShards(directory)
        assert len(shards.shards) > 3
        assert np.array_equal(shards.to_numpy(), expected)
    names = sorted(os.listdir(tmp_path / "shards-RayEngine"))
    assert names == sorted(os.listdir(tmp_path / "shards-LocalEngine"))
    for name in names:
        assert (tmp_path / "shards-RayEngine" / name).read_bytes() == \
               (tmp_path / "shards-LocalEngine" / name).read_bytes()


class _SometimesElsewhere:
    """Encodes odd shards as a task on a node that does not see the driver's
    file system would: the handoff directory is not there for it."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, task):
        if task.index % 2:
            import copy

            elsewhere = copy.copy(self.encoder)
            elsewhere.directory = os.path.join(elsewhere.directory, "on-another-node")
            return elsewhere(task)
        return self.encoder(task)


class _Nodes:
    def __init__(self, engine):
        self.engine, self.workers, self.stats = engine, engine.workers, engine.stats

    def map(self, fn, items):
        return self.engine.map(_SometimesElsewhere(fn), items)


def test_tasks_that_do_not_see_the_handoff_directory_return_their_ids(engine, tang_model, corpus, tmp_path,
                                                                      small_blocks):
    tokenizer = Tokenizer(tang_model)
    _local_npy(tokenizer, corpus, tmp_path / "local.npy")
    shipped = {}
    for name, runner in (("files", engine), ("mixed", _Nodes(engine))):
        out = tmp_path / f"{name}.npy"
        encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), out, runner, shard_bytes=30_000)
        assert out.read_bytes() == (tmp_path / "local.npy").read_bytes()
        shipped[name] = engine.stats[-1]["result_bytes"]
    assert shipped["mixed"] > 10 * shipped["files"]  # half the ids came back as results
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "files.npy", "local.npy", "mixed.npy"]


def test_token_shards_reads_across_shard_boundaries(engine, tang_model, corpus, tmp_path, small_blocks):
    tokenizer = Tokenizer(tang_model)
    expected = _local_npy(tokenizer, corpus, tmp_path / "local.npy")
    encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), str(tmp_path / "d") + "/", engine,
                       shard_bytes=30_000)
    shards = TokenShards(tmp_path / "d")
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["tokens"] == len(expected) == len(shards)
    assert sum(s["documents"] for s in index["shards"]) == index["documents"] == shards.documents
    assert sorted(os.listdir(tmp_path / "d")) == sorted([s["file"] for s in index["shards"]] + ["index.json"])
    bounds = np.cumsum([s["tokens"] for s in index["shards"]])
    edge = int(bounds[1])
    rng = np.random.default_rng(0)
    cuts = [slice(edge - 5, edge + 5), slice(0, len(expected)), slice(None, None, 7), slice(None, None, -3),
            slice(edge + 3, edge - 40, -2), slice(-10, None), slice(5, 5), slice(len(expected) + 9, None)]
    cuts += [slice(*sorted(rng.integers(0, len(expected), 2))) for _ in range(50)]
    for cut in cuts:
        assert np.array_equal(shards[cut], expected[cut]), cut
    for i in (0, edge - 1, edge, len(expected) - 1, -1, -len(expected)):
        assert shards[i] == expected[i]
    with pytest.raises(IndexError):
        shards[len(expected)]
    with pytest.raises(TypeError, match="int or slice"):
        shards[1.5]


def test_token_shards_rejects_what_is_not_a_shard_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index.json"):
        TokenShards(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        TokenShards(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "bytepiece-token-shards", "dtype": "uint16",
                                                     "documents": 1, "shards": [{"file": "../x", "tokens": 1}]}))
    with pytest.raises(ValueError, match="malformed shard entry"):
        TokenShards(tmp_path)


@pytest.mark.parametrize("mid_write", [False, True])
def test_a_killed_encoding_task_neither_loses_nor_duplicates_documents(engine, tang_model, corpus, tmp_path,
                                                                      small_blocks, mid_write):
    tokenizer = Tokenizer(tang_model)
    expected = _local_npy(tokenizer, corpus, tmp_path / "local.npy")
    killing = _Killing(engine, 2, tmp_path, mid_write)
    directory = tmp_path / "out"
    tokens, documents = encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"),
                                           str(directory) + "/", killing, shard_bytes=30_000)
    assert os.path.exists(killing.marker)
    assert np.array_equal(TokenShards(directory).to_numpy(), expected)
    assert documents == corpus.read_text(encoding="utf-8").count("\n")
    assert all(name.startswith("shard-0") or name == "index.json" for name in os.listdir(directory))
    os.unlink(killing.marker)
    out = tmp_path / "out.npy"
    encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), out, killing, shard_bytes=30_000)
    assert os.path.exists(killing.marker)
    assert out.read_bytes() == (tmp_path / "local.npy").read_bytes()


def test_a_failed_run_leaves_no_partial_output(engine, tang_model, corpus, tmp_path, small_blocks):
    tokenizer = Tokenizer(tang_model)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(corpus.read_bytes() + b"fine\nnot \xff utf-8\n")
    lines = corpus.read_text(encoding="utf-8").count("\n") + 2
    (tmp_path / "old").mkdir()
    for output in (tmp_path / "out.npy", str(tmp_path / "dir") + "/", str(tmp_path / "old") + "/"):
        with pytest.raises(ValueError, match=f"bad.txt, line {lines}: not valid UTF-8"):
            encode_with_engine(tokenizer, _blocks([str(bad)], "text", "strict"), output, engine,
                               shard_bytes=20_000)
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "corpus.txt", "old"]
    assert os.listdir(tmp_path / "old") == []


def test_a_shard_directory_replaces_an_earlier_one_but_nothing_else(engine, tang_model, corpus, tmp_path):
    tokenizer = Tokenizer(tang_model)
    directory = str(tmp_path / "d") + "/"
    encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), directory, engine, shard_bytes=1)
    first = TokenShards(directory).to_numpy()
    encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), directory, engine,
                       shard_bytes=1 << 30)
    assert np.array_equal(TokenShards(directory).to_numpy(), first)
    assert sorted(os.listdir(directory)) == ["index.json", "shard-000000.npy"]
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt", "d"]
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a token shard directory"):
        encode_with_engine(tokenizer, _blocks([str(corpus)], "text", "strict"), directory, engine)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


# -- the command line --------------------------------------------------------------


def test_cli_encode_with_ray_equals_local(engine, tang_model, corpus, tmp_path):
    runner = CliRunner()
    base = ["encode", "-m", tang_model, str(corpus), "-q", "--shard-mb", "1"]
    for args in (["-o", str(tmp_path / "local.npy")],
                 ["-o", str(tmp_path / "ray.npy"), "--engine", "ray"],
                 ["-o", str(tmp_path / "local-dir") + "/"],
                 ["-o", str(tmp_path / "ray-dir") + "/", "--engine", "ray"]):
        result = runner.invoke(main, base + args)
        assert result.exit_code == 0, result.output
    expected = np.load(tmp_path / "local.npy")
    assert (tmp_path / "ray.npy").read_bytes() == (tmp_path / "local.npy").read_bytes()
    for name in ("local-dir", "ray-dir"):
        assert np.array_equal(TokenShards(tmp_path / name).to_numpy(), expected)
    result = runner.invoke(main, ["encode", "-m", tang_model, str(corpus), "--engine", "ray"])
    assert result.exit_code != 0 and "token files only" in result.output


# -- the documented Ray Data recipe --------------------------------------------------


def _doc_block(heading: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "ray.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_documented_map_batches_sampling_does_not_depend_on_the_blocks(ray_cluster, tang_model, tmp_path,
                                                                      monkeypatch):
    import shutil

    shutil.copy(tang_model, tmp_path / "tang.model")
    (tmp_path / "corpora").symlink_to(CORPORA)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "ray_doc_example"}
    exec(compile(_doc_block("## Tokenizing a Ray Dataset"), "docs/ray.md", "exec"), namespace)
    # The recipe asserted that 1 and 7 blocks agree; check what it gives, too.
    ds, encoded, texts = namespace["ds"], namespace["encoded"], namespace["texts"]
    got = encoded(ds.repartition(3))
    tokenizer = Tokenizer(tang_model)
    key = namespace["document_key"]
    from bytepiece import sampling_seed

    assert len(got) == len(texts)
    differs = 0
    for i, text in enumerate(texts):
        expected = tokenizer.encode(text, add_eos=True, alpha=0.1,
                                    seed=sampling_seed(1234, 0, key(f"tang-{i}")))
        assert got[f"tang-{i}"] == expected
        differs += expected != tokenizer.encode(text, add_eos=True)
    assert differs > len(texts) // 4  # it does sample


# -- training ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_trainer_takes_a_ray_dataset(ray_cluster, tmp_path, algorithm):
    import ray

    from bytepiece.trainer import Trainer

    lines = (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    expected = Trainer(order=4, max_vocab_size=600, verbose=False, algorithm=algorithm)
    expected.train(lines)
    dataset = ray.data.from_items([{"body": line, "id": i} for i, line in enumerate(lines)]).repartition(5)
    trainer = Trainer(order=4, max_vocab_size=600, verbose=False, algorithm=algorithm)
    trainer.train(dataset, text_column="body", engine=RayEngine(), shard_bytes=20_000)
    assert trainer.vocabularies == expected.vocabularies
    if algorithm == "compress":
        return
    with pytest.raises(ValueError, match="no column 'text'"):
        Trainer(order=4, max_vocab_size=600, verbose=False).train(ray.data.from_items([{"body": "x"}]))
    with pytest.raises(TypeError, match="holds int, not str"):
        Trainer(order=4, max_vocab_size=600, verbose=False).train(ray.data.from_items([{"text": 5}]))


def _trainer_takes_an_engine() -> bool:
    import inspect

    from bytepiece.trainer import Trainer

    return "engine" in inspect.signature(Trainer.train).parameters


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_ray_training_writes_the_same_model_as_local(engine, tmp_path, algorithm):
    if not _trainer_takes_an_engine():
        pytest.fail("Trainer.train takes no engine=")
    runner = CliRunner()
    files = [str(CORPORA / "tang300.zh.txt"), str(CORPORA / "handbook.en-US.txt")]
    base = ["train", *files, "--vocab-size", "800", "--algorithm", algorithm, "-q"]
    local = runner.invoke(main, base + ["-o", str(tmp_path / "local.model"), "--workers", "2"])
    assert local.exit_code == 0, local.output
    ray_run = runner.invoke(main, base + ["-o", str(tmp_path / "ray.model"), "--engine", "ray"])
    assert ray_run.exit_code == 0, ray_run.output
    assert (tmp_path / "ray.model").read_bytes() == (tmp_path / "local.model").read_bytes()


@pytest.mark.parametrize("algorithm", ["bnlm", "compress"])
def test_tasks_over_groups_of_shards_train_the_same_model(engine, tmp_path, monkeypatch, algorithm):
    from bytepiece.trainer import Trainer

    files = [CORPORA / "tang300.zh.txt", CORPORA / "handbook.en-US.txt"]

    def model(runner, name):
        # A small candidate budget: compress spills, and hands out lowered thresholds.
        trainer = Trainer(max_vocab_size=700, algorithm=algorithm, verbose=False, candidate_bytes=60_000)
        trainer.train(files, engine=runner, shard_bytes=50_000)
        trainer.save(tmp_path / name)
        return (tmp_path / name).read_bytes()

    expected = model(LocalEngine(2), "local.model")
    for group_bytes in (0, 300_000):
        monkeypatch.setattr(engine, "group_bytes", group_bytes)
        first = len(engine.stats)
        assert model(engine, f"ray-{group_bytes}.model") == expected
        passes = [record for record in engine.stats[first:] if record["op"] == "map_reduce"]
        assert passes and all(record["items"] > 20 for record in passes)
        for record in passes:
            if group_bytes:
                assert 1 < record["tasks"] < record["items"] / 3
            else:
                assert record["tasks"] == record["items"]


class _Sized:
    def __init__(self, value, size):
        self.value, self.size = value, size


class _GroupedText:
    """``fn`` whose ``map_group`` makes a group's partial at once; the
    partial counts the groups made so, to show that the engine used it."""

    def __call__(self, item):
        return str(item.value), 0

    def map_group(self, items):
        return "".join(str(item.value) for item in items), 1


def _add_pairs(a, b):
    return a[0] + b[0], a[1] + b[1]


def test_a_task_over_a_group_calls_map_group_when_fn_has_it(engine, monkeypatch):
    monkeypatch.setattr(engine, "group_bytes", 10)
    items = [_Sized(i, 3) for i in range(20)]
    text, groups = engine.map_reduce(_GroupedText(), items, _add_pairs)
    assert text == "".join(map(str, range(20)))
    assert groups == engine.stats[-1]["tasks"] == 7 and engine.stats[-1]["task_merge_seconds"] == 0
    assert LocalEngine(2).map_reduce(_GroupedText(), items, _add_pairs) == (text, 0)


def test_groups_are_smaller_when_the_input_would_not_give_every_worker_two(engine):
    workers, most = engine.workers, engine.group_bytes
    assert engine.group_size() == engine.group_size(None) == engine.group_size(0) == most
    assert engine.group_size(1000 * most) == most
    assert engine.group_size(2 * workers * 1000) == 1000 and engine.group_size(1) == 1
    assert engine.group_size(2 * workers * 1000 + 1) == 1001  # rounded up: never one group too many


def test_items_are_grouped_by_size_in_order():
    from bytepiece.ray_engine import _grouped

    class Sized:
        def __init__(self, size):
            self.size = size

        def __repr__(self):
            return f"S{self.size}"

    items = [Sized(3), Sized(4), Sized(5), "no size", Sized(0), Sized(9), Sized(1), Sized(1)]
    groups = list(_grouped(items, 8))
    assert [[getattr(i, "size", i) for i in g] for g in groups] == [[3, 4], [5], ["no size"], [0], [9], [1, 1]]
    assert [i for g in groups for i in g] == items
    assert list(_grouped([], 8)) == []


def test_an_engine_shuts_down_only_the_cluster_it_started(engine):
    import subprocess
    import sys

    # Here the module's cluster was running before the engine: it still is.
    import ray

    assert ray.is_initialized()
    script = ("import ray\n"
              "from bytepiece.ray_engine import RayEngine\n"
              "engine = RayEngine(num_cpus=1)\n"
              "assert ray.is_initialized() and engine.workers == 1\n"
              "assert list(engine.map(abs, [-1, -2])) == [1, 2]\n"
              "engine.close()\n"
              "assert not ray.is_initialized()\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
