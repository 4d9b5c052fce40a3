"""Model load time: JSON parse + validation + compiled trie build, and unpickling.

    python benchmarks/load.py [--pieces 80000]

Builds a synthetic model of ``--pieces`` pieces: the published 40k model's
pieces plus frequent corpus substrings, with realistic counts.
"""
import argparse
import base64
import json
import os
import pickle
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"


def synthetic_counts(size: int) -> dict:
    counts = {}
    if MODEL.exists():
        for key, (_, _, count) in json.load(open(MODEL, encoding="utf-8")).items():
            counts[base64.b64decode(key)] = count
    for b in range(256):
        counts.setdefault(bytes([b]), 1)
    rng = random.Random(0)
    text = b"".join(p.read_bytes() for p in sorted((ROOT / "corpora").glob("*.txt")))
    seen = Counter()
    while len(counts) + len(seen) < size * 1.2:
        start = rng.randrange(len(text) - 40)
        seen[text[start:start + rng.randint(2, 24)]] += 1
    for piece, count in seen.most_common():
        if len(counts) >= size:
            break
        counts.setdefault(piece, count)
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pieces", type=int, default=80000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from bytepiece import Tokenizer
    from bytepiece.model_io import save_model

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic.model")
        save_model(synthetic_counts(args.pieces), path)
        best_load = best_unpickle = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            tok = Tokenizer(path)
            best_load = min(best_load, time.perf_counter() - start)
            blob = pickle.dumps(tok)
            start = time.perf_counter()
            pickle.loads(blob)
            best_unpickle = min(best_unpickle, time.perf_counter() - start)
        print(f"| pieces | model file | load (best of {args.repeat}) | unpickle |")
        print("|---:|---:|---:|---:|")
        print(f"| {tok.vocab_size - 3} | {os.path.getsize(path) / 1e6:.1f} MB | {best_load:.3f} s | {best_unpickle:.3f} s |")


if __name__ == "__main__":
    main()
