"""Training benchmark: wall time and peak memory of BytePiece vs SentencePiece.

Trains on corpora/handbook.zh-CN.txt + handbook.en-US.txt (vocabulary 8,000,
digits isolated, 2 workers), each trainer in its own subprocess so that its
peak resident memory can be read with ``resource.getrusage(RUSAGE_CHILDREN)``.
SentencePiece (unigram and BPE, lossless settings) runs when installed.
A 1x/2x/4x corpus row set shows how BytePiece scales.

    python benchmarks/train.py [--workers 2] [--repeat 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "corpora" / "handbook.zh-CN.txt", ROOT / "corpora" / "handbook.en-US.txt"]

BYTEPIECE = """
import sys
sys.path.insert(0, {root!r})
from bytepiece.trainer import Trainer
from bytepiece.inputs import Corpus
files, copies, workers, out = {files!r}, {copies}, {workers}, {out!r}
# Stream the files as `bytepiece train` does (SentencePiece too gets paths,
# not a list in memory); copies > 1 repeats the file list.
corpus = Corpus([str(name) for name in files] * copies)
trainer = Trainer(order=6, max_vocab_size=8000, min_count=2, isolate_digits=True, verbose=False,
                  algorithm="bnlm")
trainer.train(corpus, workers=workers)
trainer.save(out)
"""

SENTENCEPIECE = """
import sentencepiece as spm
spm.SentencePieceTrainer.train(
    input={files!r}, model_prefix={out!r}, model_type={kind!r}, vocab_size=8000,
    normalization_rule_name="identity", remove_extra_whitespaces=False,
    add_dummy_prefix=False, byte_fallback=True, num_threads={workers},
    minloglevel=2,
)
"""


def run_child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; wall seconds and peak RSS (MB) of that child."""
    # RUSAGE_CHILDREN reports the largest child so far, so give every
    # measurement a fresh parent: a tiny launcher that runs one child.
    launcher = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run([sys.executable, '-c', sys.argv[1]]).returncode\n"
        "wall = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(rc, wall, peak)\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher, code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    rc, wall, peak = out.stdout.split()
    if int(rc) != 0:
        raise RuntimeError(f"benchmark child failed (exit {rc})")
    return {"wall": float(wall), "peak_mb": float(peak)}


def best_of(code: str, repeat: int) -> dict:
    runs = [run_child(code) for _ in range(repeat)]
    return min(runs, key=lambda r: r["wall"])


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    args = parser.parse_args(argv)
    files = [str(f) for f in FILES]
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for copies in (1, 2, 4):
            code = BYTEPIECE.format(root=str(ROOT), files=files, copies=copies, workers=args.workers,
                                    out=os.path.join(tmp, f"bp{copies}.model"))
            rows.append((f"BytePiece ({copies}x corpus)", copies * size_mb, best_of(code, args.repeat)))
        try:
            import sentencepiece  # noqa: F401
        except ImportError:
            print("sentencepiece is not installed: skipping it", file=sys.stderr)
        else:
            for kind in ("unigram", "bpe"):
                code = SENTENCEPIECE.format(files=",".join(files), out=os.path.join(tmp, f"sp-{kind}"),
                                            kind=kind, workers=args.workers)
                rows.append((f"SentencePiece {kind}", size_mb, best_of(code, args.repeat)))
    print(f"vocab 8000, isolate_digits, {args.workers} workers, best of {args.repeat}")
    print(f"{'trainer':<28} {'corpus MB':>9} {'wall s':>8} {'MB/s':>7} {'peak MB':>8}")
    for name, mb, result in rows:
        print(f"{name:<28} {mb:>9.1f} {result['wall']:>8.2f} {mb / result['wall']:>7.2f} {result['peak_mb']:>8.0f}")
    print(json.dumps({name: result for name, _, result in rows}))


if __name__ == "__main__":
    main()
