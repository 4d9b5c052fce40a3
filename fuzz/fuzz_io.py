#!/usr/bin/env python
"""Fuzzer of the command line against a changing world: input files that are
truncated or grown while they are read, and SIGTERM or SIGINT at random points.

Each round writes a random corpus (text lines or JSON Lines, 0.2-24 MB),
picks a command (``encode -o`` on 1 or 2 worker processes, ``encode`` to
text, ``train`` with either algorithm), starts it as a child process and, at
a random moment, truncates or extends an input, or sends a signal (or does
nothing). Whatever happens, the run must end with one of the expected
outcomes, never a crash:

* exit 0 with a complete output (a ``.npy`` file that loads and ends with
  ``<eos>``, or a model that loads);
* exit 1 with a one-line message and no traceback (for a changed file:
  "file changed while it was being read", or "texts changed between the
  two passes" for ``train``);
* 143 after SIGTERM, or 1 ("Aborted!") after SIGINT: no output file;
* killed by the signal itself (or Python's ``KeyboardInterrupt`` traceback
  from an import) only if it arrived before the program installed its
  handlers (no output yet) or after it removed them on its way out (the
  output is complete).

And never a temporary ``.tmp-*`` file left, nor a partial output. ``--seed``
makes the rounds reproducible (the timing of the events is not: it depends
on the machine). Exit status 1 on the first violation, with its round.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"


class Violation(AssertionError):
    pass


def _lines() -> List[str]:
    lines: List[str] = []
    for name in ("handbook.en-US.txt", "handbook.zh-CN.txt", "tang300.zh.txt"):
        path = CORPORA / name
        if path.exists():
            lines += path.read_text(encoding="utf-8").splitlines(keepends=True)
    return lines or ["The quick brown fox jumps over the lazy dog.\n", "字节级分词器。\n"]


def write_corpus(path: Path, rng: random.Random, lines: List[str], megabytes: float, jsonl: bool) -> None:
    target = int(megabytes * 1e6)
    with open(path, "w", encoding="utf-8") as handle:
        written = 0
        while written < target:
            chunk = rng.sample(lines, min(len(lines), 2000))
            text = "".join(json.dumps({"text": line}) + "\n" for line in chunk) if jsonl else "".join(chunk)
            handle.write(text)
            written += len(text)


def check_result(out: Path, kind: str) -> None:
    if kind == "npy":
        import numpy as np

        ids = np.load(out, mmap_mode="r")
        if len(ids) and int(ids[-1]) != 2:
            raise Violation(f"{out}: token file does not end with <eos>")
    elif kind == "model":
        from bytepiece import Tokenizer

        Tokenizer(str(out))


def one_round(rng: random.Random, work: Path, model: str, lines: List[str], verbose: bool) -> str:
    for entry in work.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    jsonl = rng.random() < 0.3
    corpus = work / ("corpus.jsonl" if jsonl else "corpus.txt")
    command = rng.choice(["encode-npy-1", "encode-npy-2", "encode-text", "train-bnlm", "train-compress"])
    megabytes = rng.uniform(0.2, 3.0) if command.startswith("train") else rng.uniform(0.2, 24.0)
    write_corpus(corpus, rng, lines, megabytes, jsonl)
    outdir = work / "out"
    outdir.mkdir()
    exe = [sys.executable, "-m", "bytepiece.cli"]
    kind = "none"
    if command.startswith("encode-npy"):
        out = outdir / "tokens.npy"
        argv = exe + ["encode", "-m", model, str(corpus), "-o", str(out), "--workers", command[-1], "-q"]
        kind = "npy"
    elif command == "encode-text":
        out = outdir / "ids.txt"
        argv = exe + ["encode", "-m", model, str(corpus)]
    else:
        out = outdir / "m.model"
        argv = exe + ["train", str(corpus), "-o", str(out), "--vocab-size", "600", "--order", "4",
                      "--algorithm", command.split("-")[1], "--max-piece-length", "8", "-q"]
        kind = "model"
    event = rng.choice(["none", "truncate", "grow", "sigterm", "sigint"])
    delay = rng.uniform(0.0, 2.5)
    stdout = open(out, "wb") if command == "encode-text" else subprocess.DEVNULL
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.005)
        happened = proc.poll() is None
        if happened:
            if event == "truncate":
                os.truncate(corpus, rng.randrange(0, max(1, os.path.getsize(corpus))))
            elif event == "grow":
                with open(corpus, "ab") as handle:
                    handle.write(b"grown\n" * rng.randint(1, 100000))
            elif event == "sigterm":
                proc.send_signal(signal.SIGTERM)
            elif event == "sigint":
                proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=900)
    finally:
        if stdout is not subprocess.DEVNULL:
            stdout.close()
    code = proc.returncode
    message = err.decode("utf-8", "replace").strip()
    when = f"after {delay:.2f}s" if happened else f"(not sent: ended within {delay:.2f}s)"
    where = f"{command} {event} {when} (exit {code}): {message[-500:]}"
    left = [name for name in os.listdir(outdir) if name.startswith(".tmp-")] + \
           [name for name in os.listdir(work) if name.startswith(".tmp-")]
    if left:
        raise Violation(f"temporary files left {left}: {where}")
    # Ctrl-C while the interpreter still imports the modules (before the
    # command runs: inside it, Ctrl-C gives "Aborted!") is Python's own
    # KeyboardInterrupt traceback; nothing can have been written yet.
    starting = (event == "sigint" and message.endswith("KeyboardInterrupt")
                and not (kind != "none" and out.exists()))
    if "Traceback" in message and not starting:
        raise Violation(f"traceback: {where}")
    exists = out.exists() and kind != "none"
    if code == 0:
        if kind != "none":
            if not exists:
                raise Violation(f"exit 0 without output: {where}")
            check_result(out, kind)
    elif code == 1:
        if exists and kind != "none":
            raise Violation(f"failed run left its output: {where}")
        if event == "sigint" and happened:
            pass  # "Aborted!" (or an error met first, or still starting)
        elif len(message.splitlines()) != 1:
            raise Violation(f"error is not one line: {where}")
        elif event in ("truncate", "grow") and happened and not any(
                s in message for s in ("changed while it was being read", "changed between the two passes",
                                       "not valid", "corpus is empty", "no field")):
            raise Violation(f"unexpected error for a changed file: {where}")
        elif event == "none" or not happened:
            raise Violation(f"error without a cause: {where}")
    elif code == 128 + signal.SIGTERM and event == "sigterm" and happened:
        if exists:
            raise Violation(f"SIGTERM left an output: {where}")
    elif code in (-signal.SIGTERM, -signal.SIGINT) and happened and event in ("sigterm", "sigint"):
        # Killed before the handlers were in place (nothing written yet), or
        # after they were removed at the very end (the output is complete).
        if exists:
            check_result(out, kind)
    else:
        raise Violation(f"unexpected exit status: {where}")
    if verbose:
        print(f"  ok: {where[:160]}", flush=True)
    return f"{command}/{event if happened else 'none'}/{code}"


def run(rounds: int, seed: int, verbose: bool = False, out=sys.stdout) -> dict:
    """``rounds`` rounds seeded by ``seed``; returns the count of each outcome."""
    from bytepiece.model_io import model_dict
    from bytepiece.trainer import Trainer

    rng = random.Random(seed)
    lines = _lines()
    outcomes: dict = {}
    with tempfile.TemporaryDirectory(prefix="bytepiece-fuzz-io-") as tmp:
        base = Path(tmp)
        model = base / "m.model"
        trainer = Trainer(order=4, max_vocab_size=2000, verbose=False)
        trainer.train(rng.sample(lines, min(len(lines), 5000)))
        trainer.save(model)
        work = base / "work"
        work.mkdir()
        for index in range(rounds):
            try:
                outcome = one_round(rng, work, str(model), lines, verbose)
            except Violation as exc:
                raise Violation(f"round {index} of --seed {seed}: {exc}") from None
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        outcomes = run(args.rounds, args.seed, args.verbose)
    except Violation as exc:
        print(f"[fuzz-io] VIOLATION: {exc}", flush=True)
        return 1
    print(f"[fuzz-io] {args.rounds} rounds in {time.monotonic() - start:.0f} s, no violation")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
