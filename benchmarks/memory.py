#!/usr/bin/env python
"""Memory (RSS) and time of the tokenizer under long and large workloads.

Measures, and prints as a table:

1. RSS over ``--encode-calls`` (default 10**6) ``encode`` calls on short texts:
   it must stay flat (no leak per call);
2. RSS over ``--batch-calls`` (default 10**5) ``encode_batch`` calls;
3. one string without newlines (a single chunk) of each ``--big-mb`` size
   (default 50, 100, 200 MB), each in a fresh subprocess: time and peak RSS
   must grow linearly with the size;
4. RSS while loading and dropping the model ``--loads`` (default 1,000) times.

Usage::

    python benchmarks/memory.py                       # the full run
    python benchmarks/memory.py --quick               # a small smoke run
    python benchmarks/memory.py --model path/to.model

The model defaults to the reference ``bytepiece.eu.plus.40k.model`` when it
is present, else to a vocabulary built from the bundled corpora.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bytepiece import Tokenizer  # noqa: E402
from bytepiece.model_io import model_dict  # noqa: E402

REFERENCE_MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"
CORPUS = ROOT / "corpora" / "handbook.en-US.txt"


def rss_mb() -> float:
    """Current resident set size in MB (from /proc, no dependency)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:  # not Linux: fall back to the peak
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def corpus_text() -> str:
    if CORPUS.exists():
        return CORPUS.read_text(encoding="utf-8")
    return "The quick brown fox jumps over the lazy dog. " * 20000


def fallback_model() -> Dict[str, list]:
    """A vocabulary from substrings of the corpus, when the reference model is absent."""
    data = corpus_text()[:200_000].encode("utf-8")
    grams: Counter = Counter(data[i:i + j] for i in range(len(data)) for j in range(2, 7))
    counts = {bytes([b]): 1 + data.count(bytes([b])) for b in range(256)}
    counts.update({g: c for g, c in grams.items() if c >= 5})
    return model_dict(counts)


def model_source(path: Optional[str]):
    if path:
        return path, Path(path).name
    if REFERENCE_MODEL.exists():
        return str(REFERENCE_MODEL), REFERENCE_MODEL.name
    return fallback_model(), "corpus substrings (reference model absent)"


Row = Tuple[str, str, str, str, str]


def leak_run(label: str, calls: int, step, rows: List[Row]) -> None:
    """Run ``step(i)`` ``calls`` times; report RSS after 1%, at the end and the growth."""
    gc.collect()
    warm = max(1, calls // 100)
    start = time.perf_counter()
    for i in range(warm):
        step(i)
    gc.collect()
    before = rss_mb()
    for i in range(warm, calls):
        step(i)
    gc.collect()
    elapsed = time.perf_counter() - start
    after = rss_mb()
    growth_per_call = (after - before) * 2 ** 20 / max(1, calls - warm)
    rows.append((label, f"{calls:,} calls", f"{elapsed:.1f} s",
                 f"RSS {before:.0f} -> {after:.0f} MB",
                 f"{after - before:+.1f} MB ({growth_per_call:+.2f} B/call)"))


def big_child(model, megabytes: int) -> dict:
    """In a fresh process: encode one ``megabytes`` MB string without newlines."""
    tok = Tokenizer(model)
    base = corpus_text().replace("\r", " ").replace("\n", " ")
    target = megabytes * 10 ** 6
    text = (base * (target // len(base.encode("utf-8")) + 1))
    text = text[: target]          # characters; close to the byte size for this text
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    ids = tok.encode(text, out_type=np.ndarray)
    elapsed = time.perf_counter() - start
    peak = peak_rss_mb()
    n_bytes = len(text.encode("utf-8"))
    return {"mb": megabytes, "bytes": n_bytes, "tokens": int(ids.size), "seconds": elapsed,
            "rss_before": before, "peak": peak}


def run_big(model_arg: Optional[str], sizes: List[int], rows: List[Row]) -> None:
    results = []
    for mb in sizes:
        cmd = [sys.executable, __file__, "--child-big", str(mb)]
        if model_arg:
            cmd += ["--model", model_arg]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            rows.append((f"single {mb} MB string", "-", "-", f"FAILED rc={out.returncode}",
                         out.stderr.strip().splitlines()[-1][:60] if out.stderr.strip() else ""))
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(res)
        extra = res["peak"] - res["rss_before"]
        rows.append((f"single {mb} MB string (no newline)", f"{res['tokens']:,} tokens",
                     f"{res['seconds']:.2f} s ({res['bytes'] / res['seconds'] / 1e6:.0f} MB/s)",
                     f"peak {res['peak']:.0f} MB (+{extra:.0f} MB)",
                     f"{extra * 2 ** 20 / res['bytes']:.1f} B/input byte"))
    if len(results) >= 2:
        a, b = results[0], results[-1]
        rows.append(("  linearity (largest / smallest)", f"size x{b['bytes'] / a['bytes']:.2f}",
                     f"time x{b['seconds'] / a['seconds']:.2f}",
                     f"extra RSS x{(b['peak'] - b['rss_before']) / max(1e-9, a['peak'] - a['rss_before']):.2f}",
                     ""))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file (default: reference eu.plus.40k)")
    parser.add_argument("--encode-calls", type=int, default=10 ** 6)
    parser.add_argument("--batch-calls", type=int, default=10 ** 5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--big-mb", default="50,100,200", help="sizes of the single-chunk strings")
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="1% of every count, 5/10 MB strings")
    parser.add_argument("--child-big", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    model, name = model_source(args.model)
    if args.child_big:
        print(json.dumps(big_child(model, args.child_big)))
        return 0
    if args.quick:
        args.encode_calls //= 100
        args.batch_calls //= 100
        args.loads //= 100
        args.big_mb = "5,10"

    lines = [line for line in corpus_text().splitlines() if line.strip()][:5000]
    tok = Tokenizer(model, seed=0)
    rows: List[Row] = []
    print(f"model: {name} (vocab {tok.vocab_size}); python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs", flush=True)

    n_lines = len(lines)
    leak_run("encode (short line)", args.encode_calls,
             lambda i: tok.encode(lines[i % n_lines]), rows)
    print(" ".join(rows[-1]), flush=True)
    leak_run("encode, sampled alpha=0.1", args.encode_calls // 10,
             lambda i: tok.encode(lines[i % n_lines], alpha=0.1, seed=i), rows)
    print(" ".join(rows[-1]), flush=True)
    size = args.batch_size
    leak_run(f"encode_batch ({size} lines, 2 threads)", args.batch_calls,
             lambda i: tok.encode_batch(lines[(i * size) % n_lines:(i * size) % n_lines + size],
                                        num_threads=2), rows)
    print(" ".join(rows[-1]), flush=True)
    leak_run(f"encode_batch numpy, sampled", args.batch_calls // 10,
             lambda i: tok.encode_batch(lines[(i * size) % n_lines:(i * size) % n_lines + size],
                                        alpha=0.5, seed=i, out_type=np.ndarray), rows)
    print(" ".join(rows[-1]), flush=True)

    def load_drop(i: int) -> None:
        loaded = Tokenizer(model)
        loaded.encode("load and drop")
        del loaded

    leak_run("load + drop the model", args.loads, load_drop, rows)
    print(" ".join(rows[-1]), flush=True)
    del tok
    gc.collect()
    run_big(args.model, [int(x) for x in args.big_mb.split(",") if x], rows)

    widths = [max(len(r[i]) for r in rows + [("workload", "size", "time", "memory", "growth")])
              for i in range(5)]
    header = ("workload", "size", "time", "memory", "growth / per unit")
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
