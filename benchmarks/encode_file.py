"""Throughput of ``bytepiece encode FILE -o tokens.npy`` with 1 and 2 workers.

Builds a corpus of about ``--mb`` MB by repeating the files of ``corpora/``,
then encodes it to a token file with ``--workers 1`` and ``--workers 2``,
``--repeat`` times each (alternating), and prints the best and median MB/s.

Three timings per run:

* ``core``: ``Tokenizer.encode_batch_flat`` alone on the same blocks already
  read, decoded and split in memory (no reading, decoding, normalizing nor
  writing), on ``workers`` native threads: the ceiling of the compiled core
  and its scaling on this machine;
* ``stream``: the whole pipeline of the command (cut the input into blocks;
  ``workers`` processes read, decode, NFC-normalize and encode them; the
  parent writes the ids), measured in-process around the function the CLI
  calls, with the seconds of each phase (summed over the workers for
  ``prepare`` and ``encode``);
* ``cli``: the whole command in a fresh process (Python start-up and model
  loading included), as a user would time it.

With 1 worker everything runs in one thread, so ``stream`` with 1 worker
uses one core and the 2-worker ratio is the real scaling.

Usage::

    python benchmarks/encode_file.py [--model PATH] [--mb 30] [--repeat 3]

The default model is ``../shared/reference/bytepiece.eu.plus.40k.model`` when
present; otherwise a small model is trained on the corpora first.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bytepiece.cli import _encode_files  # noqa: E402
from bytepiece.inputs import _document_batches  # noqa: E402
from bytepiece.tokenizer import Tokenizer  # noqa: E402

REFERENCE_MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"


def build_corpus(directory: Path, megabytes: float) -> Path:
    """The files of ``corpora/`` concatenated and repeated to about ``megabytes`` MB."""
    parts = []
    for name in sorted(os.listdir(ROOT / "corpora")):
        if name.endswith(".txt"):
            data = (ROOT / "corpora" / name).read_bytes()
            parts.append(data if data.endswith(b"\n") else data + b"\n")
    unit = b"".join(parts)
    path = directory / "corpus.txt"
    with open(path, "wb") as handle:
        written = 0
        while written < megabytes * 1e6:
            handle.write(unit)
            written += len(unit)
    return path


def train_small_model(directory: Path) -> Path:
    from bytepiece.trainer import Trainer

    lines = []
    for name in ("tang300.zh.txt", "song100.zh.txt", "handbook.en-US.txt"):
        lines += (ROOT / "corpora" / name).read_text(encoding="utf-8").splitlines(keepends=True)
    trainer = Trainer(order=4, max_vocab_size=8000, verbose=False, algorithm="bnlm")
    trainer.train(lines)
    path = directory / "small.model"
    trainer.save(str(path))
    return path


def time_stream(tokenizer: Tokenizer, corpus: Path, output: Path, workers: int, phases: dict) -> float:
    stats: dict = {}
    start = time.perf_counter()
    _encode_files(tokenizer, [str(corpus)], str(output), workers=workers, stats=stats)
    elapsed = time.perf_counter() - start
    if elapsed < phases.get("elapsed", float("inf")):
        phases.clear()
        phases.update(stats, elapsed=elapsed)
    return elapsed


def time_core(tokenizer: Tokenizer, batches, workers: int) -> float:
    start = time.perf_counter()
    for documents, _size in batches:
        tokenizer.encode_batch_flat(documents, add_eos=True, num_threads=workers)
    return time.perf_counter() - start


def time_cli(model: Path, corpus: Path, output: Path, workers: int) -> float:
    command = [sys.executable, "-m", "bytepiece.cli", "encode", "-m", str(model), str(corpus),
               "-o", str(output), "--workers", str(workers), "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--mb", type=float, default=30.0, help="corpus size in MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-command timings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        model = args.model or (REFERENCE_MODEL if REFERENCE_MODEL.exists() else train_small_model(directory))
        corpus = build_corpus(directory, args.mb)
        size_mb = corpus.stat().st_size / 1e6
        tokenizer = Tokenizer(str(model))
        output = directory / "tokens.npy"
        print(f"model {model.name} ({tokenizer.vocab_size} ids), corpus {size_mb:.1f} MB, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        batches = list(_document_batches([str(corpus)], "text", "strict"))
        core = {1: [], 2: []}
        stream = {1: [], 2: []}
        cli = {1: [], 2: []}
        phases = {1: {}, 2: {}}
        for _ in range(args.repeat):
            for workers in (1, 2):
                core[workers].append(size_mb / time_core(tokenizer, batches, workers))
                stream[workers].append(size_mb / time_stream(tokenizer, corpus, output, workers,
                                                             phases[workers]))
                if not args.no_cli:
                    cli[workers].append(size_mb / time_cli(model, corpus, output, workers))
        print()
        print(f"{'timing':<8} {'workers':>7} {'best MB/s':>10} {'median MB/s':>12}")
        rows = [("core", core), ("stream", stream)] + ([] if args.no_cli else [("cli", cli)])
        for name, table in rows:
            for workers in (1, 2):
                print(f"{name:<8} {workers:>7} {max(table[workers]):>10.2f} "
                      f"{statistics.median(table[workers]):>12.2f}")
        print()
        for name, table in rows:
            best = max(table[2]) / max(table[1])
            median = statistics.median(table[2]) / statistics.median(table[1])
            print(f"{name}: 2 workers / 1 worker = {best:.2f}x (best), {median:.2f}x (median)")
        print()
        names = ["start", "read", "prepare", "encode", "wait", "write", "commit", "total"]
        print("phases of the best stream run, seconds (prepare, encode: summed over workers;")
        print("start: forking the workers; read: cutting the input; wait: parent idle)")
        print(f"{'workers':>7} " + " ".join(f"{name:>8}" for name in names))
        for workers in (1, 2):
            print(f"{workers:>7} " + " ".join(f"{phases[workers].get(name, 0.0):>8.3f}" for name in names))
        print()
        for workers in (1, 2):
            print(f"stream / core with {workers} worker(s): "
                  f"{max(stream[workers]) / max(core[workers]):.2f} (best)")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
