"""Concurrency: one Tokenizer shared by threads, and pickled into processes.

Eight Python threads mixing ``encode``, seeded sampling and multi-threaded
``encode_batch`` on one shared tokenizer must reproduce the sequential
results exactly, without crashing or deadlocking; the same holds in worker
processes started with ``fork`` and with ``spawn`` (the tokenizer is pickled).
"""
from __future__ import annotations

import multiprocessing
import pickle
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from bytepiece.model_io import model_dict
from bytepiece.tokenizer import Tokenizer

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
N_THREADS = 8
N_OPS = 400
JOIN_TIMEOUT = 120.0


def sample_text() -> str:
    """Some English and Chinese text (falls back to a built-in sample)."""
    parts = []
    for name in ("handbook.en-US.txt", "tang300.zh.txt"):
        path = CORPORA / name
        if path.exists():
            parts.append(path.read_text(encoding="utf-8")[:20000])
    if not parts:
        parts.append("The quick brown fox jumps over the lazy dog.\n字节级分词器。\n" * 300)
    return "\n".join(parts)


def build_counts(text: str, max_len: int = 6) -> Dict[bytes, int]:
    """Every byte plus substrings of up to ``max_len`` bytes seen at least 3 times."""
    data = text.encode("utf-8")
    grams: Counter = Counter()
    for i in range(len(data)):
        for j in range(2, max_len + 1):
            grams[data[i:i + j]] += 1
    counts = {bytes([b]): 1 + data.count(bytes([b])) for b in range(256)}
    counts.update({g: c for g, c in grams.items() if c >= 3 and len(g) > 1})
    return counts


TEXT = sample_text()
LINES = [line for line in TEXT.splitlines(True) if line.strip()]
COUNTS = build_counts(TEXT[:15000])
TOK = Tokenizer(model_dict(COUNTS), seed=7)

Op = Tuple


def make_ops(rng: random.Random, n: int) -> List[Op]:
    """A mixed workload: deterministic, seeded sampling and batches."""
    ops: List[Op] = []
    for _ in range(n):
        kind = rng.choice(("encode", "sample", "batch", "sample_batch", "tokenize"))
        if kind in ("batch", "sample_batch"):
            texts = rng.sample(LINES, rng.randint(1, 30))
            ops.append((kind, tuple(texts), rng.choice((0.0, 0.1, 1.0, 500.0)),
                        rng.getrandbits(64), rng.choice((0, 1, 2, 4))))
        else:
            text = "".join(rng.sample(LINES, rng.randint(1, 5)))
            ops.append((kind, text, rng.choice((0.0, 0.1, 1.0, 500.0)), rng.getrandbits(64), 0))
    return ops


def run_op(tok: Tokenizer, op: Op):
    """Result of one operation, in a comparable form."""
    kind, payload, alpha, seed, threads = op
    if kind == "encode":
        return tok.encode(payload, add_bos=True)
    if kind == "tokenize":
        return tok.tokenize(payload)
    if kind == "sample":
        return tok.encode(payload, alpha=alpha, seed=seed)
    if kind == "batch":
        return tok.encode_batch(list(payload), num_threads=threads)
    return [a.tolist() for a in tok.encode_batch(list(payload), alpha=alpha, seed=seed,
                                                 num_threads=threads, out_type=np.ndarray)]


OPS = make_ops(random.Random(2024), N_OPS)
EXPECTED = [run_op(TOK, op) for op in OPS]


def run_threads(target, n: int = N_THREADS) -> List:
    """Start ``n`` threads on ``target(index)`` at once; return their results or raise."""
    barrier = threading.Barrier(n)
    results: List = [None] * n
    errors: List[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target(index)
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    if errors:
        raise errors[0]
    return results


def test_threads_sharing_one_tokenizer_match_sequential() -> None:
    def work(index: int) -> List:
        order = list(range(len(OPS)))
        random.Random(index).shuffle(order)
        got = [None] * len(OPS)
        for i in order:
            got[i] = run_op(TOK, OPS[i])
        return got

    for got in run_threads(work):
        for i, (a, b) in enumerate(zip(got, EXPECTED)):
            assert a == b, f"op {i} ({OPS[i][0]}) differs under threads"


def test_threads_with_unseeded_sampling_stay_valid() -> None:
    """Calls without a seed share the tokenizer's seed stream: results vary, stay valid."""
    tok = Tokenizer(model_dict(COUNTS), seed=1)
    texts = LINES[:40]

    def work(index: int) -> int:
        for text in texts:
            pieces = tok.tokenize(text, alpha=0.5)
            assert b"".join(pieces) == text.encode("utf-8")
            batch = tok.encode_batch(texts[:8], alpha=0.5, num_threads=2)
            assert [tok.decode(ids) for ids in batch] == texts[:8]
        return index

    assert run_threads(work) == list(range(N_THREADS))


def test_set_seed_from_threads_does_not_crash() -> None:
    tok = Tokenizer(model_dict(COUNTS), seed=3)

    def work(index: int) -> None:
        for j in range(200):
            if j % 7 == 0:
                tok.set_seed(index * 1000 + j)
            tok.encode(LINES[j % len(LINES)], alpha=1.0)

    run_threads(work)


def test_pickling_while_other_threads_encode() -> None:
    def work(index: int):
        if index % 2:
            clone = pickle.loads(pickle.dumps(TOK))
            return [run_op(clone, op) for op in OPS[:40]]
        return [run_op(TOK, op) for op in OPS[:40]]

    for got in run_threads(work):
        assert got == EXPECTED[:40]


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_WORKER_TOK = None


def _init_worker(blob: bytes) -> None:
    global _WORKER_TOK
    _WORKER_TOK = pickle.loads(blob)


def _worker_run(indexes: List[int]) -> List:
    ops = make_ops(random.Random(2024), N_OPS)
    return [(i, run_op(_WORKER_TOK, ops[i])) for i in indexes]


def _direct_run(args) -> List:
    """Run ops on a tokenizer pickled into the task itself (no initializer)."""
    tok, indexes = args
    ops = make_ops(random.Random(2024), N_OPS)
    return [(i, run_op(tok, ops[i])) for i in indexes]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_processes_with_a_pickled_tokenizer_match_sequential(method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} not available")
    ctx = multiprocessing.get_context(method)
    chunks = [list(range(i, len(OPS), 4)) for i in range(4)]
    with ctx.Pool(2, initializer=_init_worker, initargs=(pickle.dumps(TOK),)) as pool:
        results = pool.map(_worker_run, chunks)
        direct = pool.map(_direct_run, [(TOK, chunk[:10]) for chunk in chunks])
    got = dict(pair for part in results for pair in part)
    assert sorted(got) == list(range(len(OPS)))
    for i, value in got.items():
        assert value == EXPECTED[i], f"op {i} differs in a {method} worker"
    for part in direct:
        for i, value in part:
            assert value == EXPECTED[i]


def test_fork_after_threads_used_the_tokenizer() -> None:
    """Native threads of encode_batch must not leave state that breaks a forked child."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork not available")
    TOK.encode_batch(LINES[:200], num_threads=4)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply(_fork_child_batch, ())
    assert got == TOK.encode_batch(LINES[:50], num_threads=4)


def _fork_child_batch() -> List:
    return TOK.encode_batch(LINES[:50], num_threads=4)
