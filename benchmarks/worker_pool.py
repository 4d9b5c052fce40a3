"""The token-file worker pool: hand-written against the standard library's.

    python benchmarks/worker_pool.py [--ref-a 4d3c526] [--mb 100] [--workers 2] [--rounds 3] [--seed 0]

``bytepiece encode FILE -o tokens.npy --workers N`` calls
``pipelines.encode_blocks_to_token_file``. Up to 4d3c526 it ran on a
hand-written pool of forked processes (one task pipe and one result pipe per
worker, ids sent back as raw bytes, two blocks queued per worker); it now
runs on ``concurrent.futures.ProcessPoolExecutor`` (forked, one shared
queue, ids pickled). This times the function at ``--ref-a`` (exported to a
temporary directory, run with this tree's compiled extensions) against this
tree's, and both against ``multiprocessing.Pool.imap`` on the same job: the
same blocks (``inputs._blocks``), the same work per block
(``pipelines._encode_block``: read, decode, NFC, encode), at most
``4 * workers`` blocks in flight (``imap`` reads ahead as it likes) and the
same ordered writer (``TokenFileWriter``).

The corpus is ``corpora/`` re-cut with ``--seed`` to about ``--mb`` MB (each
line's words shuffled, or chunks of 2-6 characters where a line has no
spaces; a line already written is skipped, so no line repeats). Each variant
runs in its own child process, alternating over ``--rounds``; the table gives
the median wall time of the encoding call, MB/s, and the peak RSS of the
parent and of the largest worker (``ru_maxrss`` of the child process and of
its waited-for children). All variants must write the same file (checked by
digest).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"
VARIANTS = ["hand-written pipe pool (ref-a)", "ProcessPoolExecutor (now)", "multiprocessing.Pool.imap"]


def build_corpus(path: Path, megabytes: float, seed: int) -> Path:
    """``corpora/`` re-cut with ``seed`` until about ``megabytes`` MB, no line twice."""
    if path.exists():
        return path
    rng = random.Random(seed)
    lines = []
    for source in sorted((ROOT / "corpora").glob("*.txt")):
        lines += [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen = set()
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        while written < megabytes * 1e6:
            before = written
            for line in lines:
                if written >= megabytes * 1e6:
                    break
                words = line.split(" ")
                if len(words) < 2:
                    size = len(line)
                    cuts, i = [], 0
                    while i < size:
                        step = rng.randint(2, 6)
                        cuts.append(line[i:i + step])
                        i += step
                    rng.shuffle(cuts)
                    new = "".join(cuts)
                else:
                    rng.shuffle(words)
                    new = " ".join(words)
                key = hashlib.blake2b(new.encode(), digest_size=8).digest()
                if key in seen:
                    continue
                seen.add(key)
                out.write(new + "\n")
                written += len(new.encode()) + 1
            if written == before:
                break
    os.replace(tmp, path)
    return path


_TOKENIZER = None


def _set_tokenizer(tokenizer) -> None:
    global _TOKENIZER
    _TOKENIZER = tokenizer


def _encode(block, dtype):
    from bytepiece.pipelines import _encode_block

    ids, count, _, _ = _encode_block(_TOKENIZER, block, 0, -1.0, None, dtype)
    return ids, count


def run_variant(variant: str, corpus: str, output: str, workers: int, tree: str) -> dict:
    sys.path.insert(0, tree)
    from bytepiece import Tokenizer
    from bytepiece.inputs import _blocks
    from bytepiece.pipelines import TokenFileWriter, encode_blocks_to_token_file, token_dtype

    tok = Tokenizer(str(MODEL))
    blocks = _blocks([corpus], "text", "strict", count=False, workers=workers)
    start = time.perf_counter()
    import bytepiece.pipelines

    assert Path(bytepiece.pipelines.__file__).resolve().is_relative_to(Path(tree).resolve())
    if variant != VARIANTS[2]:
        tokens, documents = encode_blocks_to_token_file(tok, blocks, output, workers=workers)
    else:
        dtype = token_dtype(tok.vocab_size)
        context = multiprocessing.get_context("fork")
        tokens = documents = 0
        with TokenFileWriter(output, dtype) as writer:
            with context.Pool(workers, initializer=_set_tokenizer, initargs=(tok,)) as pool:
                for ids, count in pool.imap(_encode_star, ((b, dtype) for b in blocks)):
                    writer.write(ids)
                    tokens += len(ids)
                    documents += count
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(Path(output).read_bytes()).hexdigest()
    return {
        "seconds": seconds,
        "tokens": tokens,
        "documents": documents,
        "digest": digest,
        "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _encode_star(args):
    return _encode(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref-a", default="4d3c526", help="git revision with the hand-written pool")
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default=None, help="use this file instead of building one")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.corpus, args.output, args.workers, args.tree)))
        return
    corpus = Path(args.corpus) if args.corpus else build_corpus(
        Path(tempfile.gettempdir()) / f"bytepiece-recut-{args.mb:g}MB-seed{args.seed}.txt", args.mb, args.seed)
    megabytes = corpus.stat().st_size / 1e6
    print(f"corpus: {corpus} ({megabytes:.1f} MB); workers: {args.workers}; model: {MODEL.name}", flush=True)
    results = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="worker_pool_") as tmp:
        ref_tree = os.path.join(tmp, "ref")
        os.mkdir(ref_tree)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref_a, "bytepiece"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", ref_tree], input=archive, check=True)
        for so in (ROOT / "bytepiece").glob("*.so"):
            shutil.copy(so, os.path.join(ref_tree, "bytepiece"))
        trees = {VARIANTS[0]: ref_tree, VARIANTS[1]: str(ROOT), VARIANTS[2]: str(ROOT)}
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                out = subprocess.run([sys.executable, __file__, "--child", variant, "--corpus", str(corpus),
                                      "--output", os.path.join(tmp, "tokens.npy"),
                                      "--workers", str(args.workers), "--tree", trees[variant]],
                                     check=True, capture_output=True, text=True).stdout
                results[variant].append(json.loads(out.strip().splitlines()[-1]))
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
    digests = {run["digest"] for runs in results.values() for run in runs}
    print(f"\nmedian over {args.rounds} rounds; same token file from every variant: "
          f"{'yes' if len(digests) == 1 else 'NO'}")
    print(f"{'variant':28s} {'seconds':>8s} {'MB/s':>7s} {'range s':>13s} {'parent MB':>10s} {'worker MB':>10s}")
    for variant in VARIANTS:
        runs = results[variant]
        seconds = [run["seconds"] for run in runs]
        median = statistics.median(seconds)
        print(f"{variant:28s} {median:8.2f} {megabytes / median:7.2f} {min(seconds):6.2f}-{max(seconds):<6.2f} "
              f"{max(run['parent_mb'] for run in runs):10.0f} {max(run['worker_mb'] for run in runs):10.0f}")
    if len(digests) != 1:
        sys.exit("the variants wrote different token files")


if __name__ == "__main__":
    main()
