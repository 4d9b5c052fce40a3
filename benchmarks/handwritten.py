"""Hand-written code against the library that could do its job.

    python benchmarks/handwritten.py [--rounds 7]

Prints one table per case (the worker pool has its own script,
``benchmarks/worker_pool.py``):

* **SentencePiece model writer** (``convert.sentencepiece_model_bytes``,
  protobuf fields encoded by hand) against ``google.protobuf`` with
  sentencepiece's own ``sentencepiece_model_pb2``: time to build and
  serialize the ModelProto of the reference model, the cost of importing
  the library in a fresh process, and whether the two outputs parse to
  the same message. Skipped when ``protobuf`` is not installed.
* **Per-text random streams** (xoshiro256** seeded by splitmix64 in the
  core, one stream per text) against a NumPy generator per text
  (``np.random.Generator(np.random.PCG64(seed))``, the cheapest way to get
  an independent NumPy stream per text): its construction alone, per text,
  next to the time the core takes to sample a whole average line.
* **Read-ahead thread** (``pipelines.Prefetcher``) against
  ``concurrent.futures.ThreadPoolExecutor(1)`` keeping the same number of
  ``next()`` calls ahead: items per second, and how long a process takes to
  exit after giving up on a producer that is blocked (e.g. on stdin).

Medians over ``--rounds``; the machine is shared, so compare within a run.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"


def median_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_import_seconds(statement: str, rounds: int) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                                  text=True).stdout) for _ in range(rounds))


def protobuf_case(rounds: int) -> None:
    from bytepiece import Tokenizer
    from bytepiece.convert import SP_SPECIAL_PIECES, SP_UNK_PIECE, _sentencepiece_layout, _as_vocabulary
    from bytepiece.convert import sentencepiece_model_bytes

    print("\nSentencePiece model writer (reference 40k model)")
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError:
        print("  protobuf not installed: skipped")
        return
    vocab = _as_vocabulary(Tokenizer(str(MODEL)))

    import bytepiece.convert as convert

    def with_protobuf() -> bytes:
        # The same layout, its pieces as (text, score, type) set on the message.
        hand_piece = convert._sp_piece
        convert._sp_piece = lambda text, score, kind: (text, score, kind)
        try:
            records, _, _ = _sentencepiece_layout(vocab)
        finally:
            convert._sp_piece = hand_piece
        model = pb.ModelProto()
        for text, score, kind in records:
            piece = model.pieces.add()
            piece.piece, piece.score, piece.type = text, score, kind
        size = len(records)
        spec = model.trainer_spec
        spec.model_type = pb.TrainerSpec.UNIGRAM
        spec.vocab_size = size
        spec.max_sentencepiece_length = max(1, max(len(p) for p in vocab.pieces))
        spec.split_by_whitespace = False
        spec.byte_fallback = True
        spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = size - 1, 1, 2, 0
        spec.unk_piece, spec.bos_piece, spec.eos_piece, spec.pad_piece = (
            SP_UNK_PIECE, SP_SPECIAL_PIECES[1], SP_SPECIAL_PIECES[2], SP_SPECIAL_PIECES[0])
        norm = model.normalizer_spec
        norm.name = "identity"
        norm.add_dummy_prefix = False
        norm.remove_extra_whitespaces = False
        norm.escape_whitespaces = False
        return model.SerializeToString()

    hand = sentencepiece_model_bytes(vocab)[0]
    library = with_protobuf()
    same = pb.ModelProto.FromString(hand) == pb.ModelProto.FromString(library)
    t_hand = median_time(lambda: sentencepiece_model_bytes(vocab), rounds)
    t_lib = median_time(with_protobuf, rounds)
    imp = fresh_import_seconds("from sentencepiece import sentencepiece_model_pb2", rounds)
    print(f"  {'by hand (convert.py)':34s} {t_hand * 1e3:8.1f} ms   {len(hand)} bytes")
    print(f"  {'google.protobuf + sp model_pb2':34s} {t_lib * 1e3:8.1f} ms   {len(library)} bytes "
          f"(+ {imp * 1e3:.0f} ms to import it)")
    print(f"  same message when parsed: {'yes' if same else 'NO'}; same bytes: {'yes' if hand == library else 'no'}")


def rng_case(rounds: int) -> None:
    import numpy as np

    from bytepiece import Tokenizer

    print("\nPer-text random streams")
    lines = []
    for path in sorted((ROOT / "corpora").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [unicodedata.normalize("NFC", line) for line in lines]
    n = len(lines)
    tok = Tokenizer(str(MODEL))
    batch = median_time(lambda: tok.encode_batch(lines, alpha=0.1, seed=1, num_threads=1), rounds)
    per_call = median_time(lambda: [tok.encode(line, alpha=0.1, seed=i) for i, line in enumerate(lines)], rounds)
    numpy_gen = median_time(lambda: [np.random.Generator(np.random.PCG64(i)) for i in range(n)], rounds)
    numpy_seedseq = median_time(lambda: [np.random.default_rng([1, i]) for i in range(n)], rounds)
    print(f"  {n} lines; microseconds per line (median of {rounds})")
    print(f"  {'core: sample a line, batch, 1 thread':44s} {batch / n * 1e6:8.2f}")
    print(f"  {'core: sample a line, one encode() call':44s} {per_call / n * 1e6:8.2f}")
    print(f"  {'NumPy: Generator(PCG64(seed)) per text':44s} {numpy_gen / n * 1e6:8.2f}  (construction only)")
    print(f"  {'NumPy: default_rng([seed, index]) per text':44s} {numpy_seedseq / n * 1e6:8.2f}  (construction only)")


def _prefetch_executor(iterable, depth: int):
    """What Prefetcher does, on a ThreadPoolExecutor: ``depth`` next() calls ahead."""
    from concurrent.futures import ThreadPoolExecutor

    iterator = iter(iterable)
    done = object()
    with ThreadPoolExecutor(1) as pool:
        ahead = [pool.submit(next, iterator, done) for _ in range(depth)]
        while True:
            item = ahead.pop(0).result()
            if item is done:
                return
            ahead.append(pool.submit(next, iterator, done))
            yield item


_BLOCKED_EXIT = """
import sys, threading, time
sys.path.insert(0, {root!r})
from bytepiece.pipelines import Prefetcher
sys.path.insert(0, {bench!r})
from handwritten import _prefetch_executor
never = threading.Event()
def blocked():
    yield 1
    never.wait()          # a producer stuck on input, e.g. stdin
    yield 2
if {variant!r} == "Prefetcher":
    source = Prefetcher(blocked())
    next(iter(source))
    source._stop.set()    # what close() does, without its bounded join
else:
    source = _prefetch_executor(blocked(), 2)
    next(source)
print("giving up", flush=True)
"""


def prefetch_case(rounds: int) -> None:
    from bytepiece.pipelines import Prefetcher

    print("\nRead-ahead thread (2 items ahead)")
    small = range(20000)

    def slow_items():
        for i in range(200):
            time.sleep(0.0005)     # a block being read and decoded
            yield i

    rows = []
    for name, make in (("Prefetcher (pipelines)", lambda it: Prefetcher(it, 2)),
                       ("ThreadPoolExecutor(1)", lambda it: _prefetch_executor(it, 2))):
        fast = median_time(lambda: sum(1 for _ in make(small)), rounds)
        slow = median_time(lambda: sum(1 for _ in make(slow_items())), rounds)
        exit_s = []
        for _ in range(min(rounds, 3)):
            code = _BLOCKED_EXIT.format(root=str(ROOT), bench=str(Path(__file__).parent), variant=name.split()[0])
            start = time.perf_counter()
            try:
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=10)
                exit_s.append(time.perf_counter() - start)
            except subprocess.TimeoutExpired:
                exit_s.append(float("inf"))
        rows.append((name, len(small) / fast, 200 / slow, statistics.median(exit_s)))
    print(f"  {'':26s} {'items/s (no work)':>18s} {'items/s (0.5 ms each)':>22s} {'exit when blocked':>18s}")
    for name, fast, slow, exit_s in rows:
        shown = "hangs (>10 s)" if exit_s == float("inf") else f"{exit_s:.2f} s"
        print(f"  {name:26s} {fast:18.0f} {slow:22.0f} {shown:>18s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    protobuf_case(args.rounds)
    rng_case(args.rounds)
    prefetch_case(args.rounds)


if __name__ == "__main__":
    main()
