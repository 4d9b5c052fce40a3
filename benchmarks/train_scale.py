"""Training at scale: wall time and peak memory against corpus size.

Builds non-repeating corpora of each ``--sizes`` MB from ``corpora/`` with a
seed (see ``scale_corpus.py``), then trains, each in a fresh child process
whose peak RSS is read with ``getrusage(RUSAGE_CHILDREN)``:

* ``compress`` and ``bnlm``: ``bytepiece train FILE --algorithm ...`` (the CLI,
  so the benchmark follows whatever the trainers do internally); with
  ``--memory-budget MB`` also ``bnlm@<MB>M``, i.e. ``bnlm`` with that budget
  for its n-gram tables;
* ``sp-unigram``, ``sp-bpe``: SentencePiece with comparable settings (same
  vocabulary size, byte fallback, character coverage 1.0, no normalization,
  every sentence: ``input_sentence_size=0``, ``num_threads=--workers``);
* ``hf-bpe``: Hugging Face ``tokenizers`` byte-level BPE (``RAYON_NUM_THREADS``).

Competitors that are not installed are left out. Before each run the peak
is estimated from the trainer's bytes of memory per corpus byte at the
largest smaller size already measured; a run whose estimate exceeds 80 % of
the memory available is skipped, and the table says so. After training,
bytes per token on the held-out lines of each source file are printed.

    python benchmarks/train_scale.py --sizes 30,120 [--vocab-size 32000] [--workers 2] [--memory-budget 64]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale_corpus import ROOT, available_mb, build_corpus, measure  # noqa: E402

TRAINERS = ["compress", "bnlm", "sp-unigram", "sp-bpe", "hf-bpe"]
#: A trainer is skipped when its estimated peak exceeds this share of the available memory.
MEMORY_SHARE = 0.8

BYTEPIECE_CLI = "import sys; sys.path.insert(0, {root!r}); from bytepiece.cli import main; main()"

SENTENCEPIECE = """
import sentencepiece as spm
spm.SentencePieceTrainer.train(
    input={corpus!r}, model_prefix={prefix!r}, model_type={kind!r}, vocab_size={vocab},
    character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
    remove_extra_whitespaces=False, add_dummy_prefix=False, allow_whitespace_only_pieces=True,
    split_digits=False, max_sentence_length=1 << 16, input_sentence_size=0,
    train_extremely_large_corpus={large}, num_threads={workers}, minloglevel=2,
)
"""

HF_BPE = """
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
bpe = trainers.BpeTrainer(vocab_size={vocab}, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                          special_tokens=[], show_progress=False)
tok.train([{corpus!r}], bpe)
tok.save({out!r})
"""


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def command(trainer: str, corpus: Path, out: Path, vocab: int, workers: int):
    """``(argv, env, model path)`` of one training run."""
    env = dict(os.environ)
    if trainer.startswith(("compress", "bnlm")):
        algorithm, _, budget = trainer.partition("@")
        argv = [sys.executable, "-c", BYTEPIECE_CLI.format(root=str(ROOT)), "train", str(corpus),
                "-o", str(out), "--vocab-size", str(vocab), "--algorithm", algorithm,
                "--workers", str(workers), "-q"]
        if budget:
            argv += ["--memory-budget", budget.rstrip("M")]
        return argv, env, out
    if trainer.startswith("sp-"):
        # SentencePiece needs its 64-bit suffix array beyond 2^31 characters.
        large = corpus.stat().st_size > 2 ** 31 // 2
        code = SENTENCEPIECE.format(corpus=str(corpus), prefix=str(out), kind=trainer[3:], vocab=vocab,
                                    large=large, workers=workers)
        return [sys.executable, "-c", code], env, Path(str(out) + ".model")
    env["RAYON_NUM_THREADS"] = str(workers)
    code = HF_BPE.format(corpus=str(corpus), vocab=vocab, out=str(out) + ".json")
    return [sys.executable, "-c", code], env, Path(str(out) + ".json")


def encoder(trainer: str, model: Path) -> Callable[[str], int]:
    """``line -> number of tokens`` for a trained model."""
    if trainer.startswith(("compress", "bnlm")):
        sys.path.insert(0, str(ROOT))
        from bytepiece import Tokenizer

        tok = Tokenizer(str(model))
        return lambda line: len(tok.encode(line))
    if trainer.startswith("sp-"):
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model))
        return lambda line: len(sp.encode(line))
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(model))
    return lambda line: len(hf.encode(line).ids)


def bytes_per_token(trainer: str, model: Path, heldout: Path) -> Dict[str, float]:
    count = encoder(trainer, model)
    result = {}
    for path in sorted(heldout.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        n_bytes = sum(len(line.encode("utf-8")) for line in lines)
        n_tokens = sum(count(line) for line in lines)
        result[path.stem] = n_bytes / max(n_tokens, 1)
    return result


def estimate_mb(history: List[tuple], size_mb: float) -> Optional[float]:
    """Peak at ``size_mb`` from the bytes-per-corpus-byte of the largest measured size."""
    if not history:
        return None
    measured_size, peak = max(history)
    return peak / measured_size * size_mb


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,120,500", help="corpus sizes in MB, comma-separated")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--memory-budget", type=int, default=None,
                        help="MB: also run bnlm@<MB>M, i.e. bnlm with --memory-budget MB")
    parser.add_argument("--cache-dir", default=None, help="where built corpora are kept")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--previous", default=None,
                        help="a --json file of an earlier run: its peaks feed the memory estimates")
    args = parser.parse_args(argv)
    sizes = sorted(float(s) for s in args.sizes.split(","))
    trainers = [t for t in args.trainers.split(",") if t]
    if args.memory_budget:
        trainers.insert(trainers.index("bnlm") + 1 if "bnlm" in trainers else 0, f"bnlm@{args.memory_budget}M")
    for name in trainers:
        if name not in TRAINERS and not name.startswith("bnlm@"):
            parser.error(f"unknown trainer {name!r}; choose from {', '.join(TRAINERS)}")
    needs = {"sp-unigram": "sentencepiece", "sp-bpe": "sentencepiece", "hf-bpe": "tokenizers"}
    for name in list(trainers):
        if name in needs and not installed(needs[name]):
            print(f"{needs[name]} is not installed: leaving out {name}", file=sys.stderr)
            trainers.remove(name)

    rows = []
    history: Dict[str, List[tuple]] = {name: [] for name in trainers}
    if args.previous:
        for row in json.loads(Path(args.previous).read_text()):
            if row.get("ok") and row["trainer"] in history:
                history[row["trainer"]].append((row["mb"], row["peak_mb"]))
    header = (f"{'trainer':<11} {'MB':>5} {'wall s':>8} {'peak MB':>8} {'B/B':>5}  "
              "bytes/token on held-out lines")
    print(f"vocab {args.vocab_size}, {args.workers} workers, seed {args.seed}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            corpus, heldout = build_corpus(size, args.seed, args.cache_dir and Path(args.cache_dir))
            real_mb = corpus.stat().st_size / 1e6
            for name in trainers:
                row = {"trainer": name, "mb": size}
                guess = estimate_mb(history[name], real_mb)
                limit = MEMORY_SHARE * available_mb()
                if guess is not None and guess > limit:
                    row["skipped"] = f"skipped: needs ~{guess:,.0f} MB > {limit:,.0f} MB available"
                    print(f"{name:<11} {size:>5g} {row['skipped']}", flush=True)
                    rows.append(row)
                    continue
                argv_, env, model = command(name, corpus, Path(tmp) / f"{name}-{size:g}", args.vocab_size,
                                            args.workers)
                result = measure(argv_, env)
                row.update(result)
                if not result["ok"]:
                    print(f"{name:<11} {size:>5g} failed: {result['error']}", flush=True)
                    rows.append(row)
                    continue
                history[name].append((real_mb, result["peak_mb"]))
                row["bytes_per_token"] = bytes_per_token(name, model, heldout)
                bpt = "  ".join(f"{k} {v:.2f}" for k, v in row["bytes_per_token"].items())
                print(f"{name:<11} {size:>5g} {result['wall']:>8.1f} {result['peak_mb']:>8.0f} "
                      f"{result['peak_mb'] / real_mb:>5.1f}  {bpt}", flush=True)
                rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
