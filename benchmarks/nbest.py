#!/usr/bin/env python
"""Time and peak memory of ``Tokenizer.nbest`` on ordinary and on tied texts.

Each case runs in a child process (peak RSS is the child's
``ru_maxrss``, from ``os.wait4`` when it exits), killed after ``--timeout``
seconds. The tied cases are the ones where every segmentation
of a run has exactly the same score, so that a search that expands every
tied partial path grows exponentially with the length:

* ``tabs``: ``("x" + "\\t" * 8) * 20`` with pieces ``\\t``, ``\\t\\t``,
  ``\\t\\t\\t`` of equal count (3**20 tied best segmentations);
* ``uniform``: 3,000 characters of Chinese and English whose pieces (every
  2, 3, 4 and 6-byte substring) all score the same;
* ``plain``: the first 5,000 characters of ``corpora/handbook.zh-CN.txt`` with
  a model trained on the Tang poems (few ties).

Usage::

    python benchmarks/nbest.py [--n 1 10 50] [--timeout 60]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys
sys.path.insert(0, sys.argv[3])
from bytepiece import Tokenizer
from bytepiece.model_io import model_dict
case, n = sys.argv[1], int(sys.argv[2])
counts = {bytes([b]): 1 for b in range(256)}
if case == "tabs":
    counts.update({b"\t\t": 1, b"\t\t\t": 1, b"x": 5})
    text = ("x" + "\t" * 8) * 20
elif case == "uniform":
    text = ("BytePiece 把文本切成 pieces，每个字节都有归宿。" * 80)[:3000]
    data = text.encode()
    for i in range(len(data)):
        for j in (2, 3, 4, 6):
            counts[data[i:i + j]] = 1
else:
    from bytepiece.trainer import Trainer
    lines = open(sys.argv[3] + "/corpora/tang300.zh.txt", encoding="utf-8").readlines()
    trainer = Trainer(order=4, max_vocab_size=1000, verbose=False)
    counts = trainer.train(lines)[1000]
    text = open(sys.argv[3] + "/corpora/handbook.zh-CN.txt", encoding="utf-8").read()[:5000]
tok = Tokenizer(model_dict(counts))
import time
start = time.perf_counter()
result = tok.nbest(text, n)
print(f"{time.perf_counter() - start:.3f} {len(result)} {len(text.encode())}")
"""


def run_case(case: str, n: int, timeout: float) -> str:
    """One case in a child process; its own peak RSS comes from ``wait4``."""
    import os
    import tempfile

    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, case, str(n), str(ROOT)], stdout=out,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                return f"| {case} | {n} | killed after {timeout:.0f} s | — | — |"
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            return f"| {case} | {n} | failed (exit {proc.returncode}) | — | — |"
        out.seek(0)
        seconds, found, size = out.read().split()
    return (f"| {case} ({size} bytes) | {n} | {float(seconds):.3f} s | {found} | "
            f"{usage.ru_maxrss / 1024:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    print("| text | n | nbest time | results | peak RSS of the child |")
    print("|---|---|---|---|---|")
    started = time.perf_counter()
    for case in ("plain", "tabs", "uniform"):
        for n in args.n:
            print(run_case(case, n, args.timeout), flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
