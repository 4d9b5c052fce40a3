"""Compression benchmark: bytes per token on held-out text at equal vocabulary.

The last 10 % of the lines of every ``corpora/*.txt`` file is held out; the
rest of all files together is the training text. Each trainer runs in its own
subprocess (so its peak RSS can be read from ``getrusage``) and reports its
training time, peak memory, and UTF-8 bytes per token on every held-out slice
(each line encoded with its newline; lines that do not round-trip are counted
and reported).

Trainers: ``compress`` (this project's compression-first trainer), ``bnlm``
(the reference algorithm through ``bytepiece.Trainer``, skipped when that is
not importable), ``sp-unigram`` / ``sp-bpe`` (SentencePiece, lossless
settings) and ``hf-bpe`` (Hugging Face ``tokenizers`` byte-level BPE).

Quick run::

    python benchmarks/compression.py --sizes 8000 --trainers compress,sp-bpe

Full run::

    python benchmarks/compression.py --sizes 4000,8000,16000
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ALL_TRAINERS = ["bnlm", "compress", "sp-unigram", "sp-bpe", "hf-bpe"]


def split_corpora(files: List[str], holdout: float, at: str = "end") -> Tuple[List[str], Dict[str, List[str]]]:
    """Training lines of all files, and held-out lines per file (newlines kept).

    ``at="end"`` holds out the last ``holdout`` share of each file's lines,
    ``at="start"`` the first (a second, independent split for robustness)."""
    train: List[str] = []
    held: Dict[str, List[str]] = {}
    for path in files:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines(keepends=True)
        name = os.path.splitext(os.path.basename(path))[0]
        if at == "start":
            cut = int(round(len(lines) * holdout))
            train.extend(lines[cut:])
            held[name] = lines[:cut]
        else:
            cut = int(round(len(lines) * (1.0 - holdout)))
            train.extend(lines[:cut])
            held[name] = lines[cut:]
    return train, held


def peak_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# Child side: train one tokenizer, then measure it
# ---------------------------------------------------------------------------

def _train_and_encoder(trainer: str, size: int, train_path: str, workdir: str, opts: dict):
    """Train; return an ``encode(line) -> list of ids`` and ``decode(ids) -> str`` pair."""
    with open(train_path, encoding="utf-8") as handle:
        text = handle.read()
    if trainer == "compress":
        sys.path.insert(0, ROOT)
        from bytepiece.compress import train_compress

        lines = text.splitlines(keepends=True)
        # Hand the trainer documents of ~1000 lines, as a user would.
        docs = ["".join(lines[i:i + 1000]) for i in range(0, len(lines), 1000)]
        del lines
        counts = train_compress(
            docs, size, workers=opts["workers"], verbose=opts["verbose"],
            **opts.get("compress", {}),
        )[size]
        return _bytepiece_codec(counts)
    if trainer == "bnlm":
        sys.path.insert(0, ROOT)
        try:
            from bytepiece import Trainer  # type: ignore[attr-defined]
        except ImportError:
            from bytepiece.trainer import Trainer

        lines = text.splitlines(keepends=True)
        docs = ["".join(lines[i:i + 1000]) for i in range(0, len(lines), 1000)]
        trainer_obj = Trainer(max_vocab_size=size, verbose=opts["verbose"], algorithm="bnlm")
        counts = trainer_obj.train(docs, workers=opts["workers"])[size]
        return _bytepiece_codec(counts)
    if trainer in ("sp-unigram", "sp-bpe"):
        import sentencepiece as spm

        prefix = os.path.join(workdir, trainer)
        spm.SentencePieceTrainer.train(
            input=train_path,
            model_prefix=prefix,
            model_type="unigram" if trainer == "sp-unigram" else "bpe",
            vocab_size=size,
            character_coverage=1.0,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            byte_fallback=True,
            allow_whitespace_only_pieces=True,
            split_digits=False,
            max_sentence_length=1 << 20,
            num_threads=opts["workers"],
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        return (lambda line: sp.encode(line)), (lambda ids: sp.decode(ids))
    if trainer == "hf-bpe":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        bpe = trainers.BpeTrainer(
            vocab_size=size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[], show_progress=False,
        )
        tok.train_from_iterator(text.splitlines(keepends=True), bpe)
        return (lambda line: tok.encode(line).ids), (lambda ids: tok.decode(ids))
    raise ValueError(f"unknown trainer {trainer!r}")


def _bytepiece_codec(counts: Dict[bytes, int]):
    """Encoder for a BytePiece model: ``bytepiece.Tokenizer`` when it exists,
    otherwise §4 Viterbi through the compiled core (or ``_compress``)."""
    from bytepiece.model_io import model_dict

    model = model_dict(counts)
    try:
        try:
            from bytepiece import Tokenizer  # type: ignore[attr-defined]
        except ImportError:
            from bytepiece.tokenizer import Tokenizer

        tok = Tokenizer(model)
        return (lambda line: tok.encode(line)), (lambda ids: tok.decode(ids))
    except ImportError:
        pass
    import numpy as np

    from bytepiece.model_io import load_vocabulary
    from bytepiece.normalization import normalize

    vocab = load_vocabulary(model)
    try:
        from bytepiece._core import Segmenter  # type: ignore[import-not-found]

        seg = Segmenter(vocab.pieces, vocab.scores)

        def encode(line: str) -> List[int]:
            chunks = normalize(line)
            offs = np.zeros(len(chunks) + 1, dtype=np.int64)
            np.cumsum([len(c) for c in chunks], out=offs[1:])
            ids, _ = seg.encode_concat(b"".join(chunks), offs)
            return ids.tolist()
    except ImportError:
        from bytepiece._compress import PieceSet

        ps = PieceSet(vocab.pieces)

        def encode(line: str) -> List[int]:
            chunks = normalize(line)
            offs = np.zeros(len(chunks) + 1, dtype=np.int64)
            np.cumsum([len(c) for c in chunks], out=offs[1:])
            data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
            counts_ = ps.split_counts(data, offs, np.ones(len(chunks), dtype=np.int64), vocab.scores)
            # ids in no particular order: good enough to count tokens
            return [i + 3 for i, c in enumerate(counts_.tolist()) for _ in range(c)]

        return encode, None

    def decode(ids: List[int]) -> str:
        return b"".join(vocab.pieces[i - 3] for i in ids if i > 2).decode("utf-8", "ignore")

    return encode, decode


def child(args: argparse.Namespace) -> None:
    """Train one tokenizer and print one JSON line of measurements."""
    with open(args.child_spec, encoding="utf-8") as handle:
        spec = json.load(handle)
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        encode, decode = _train_and_encoder(args.trainer, args.size, spec["train"], workdir, spec["opts"])
        seconds = time.perf_counter() - start
        memory = peak_mb()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        result = {"trainer": args.trainer, "size": args.size, "seconds": seconds, "cpu_seconds": cpu,
                  "peak_mb": memory,
                  "bytes_per_token": {}, "not_lossless": {}}
        for name, lines in spec["held"].items():
            n_bytes = n_tokens = bad = 0
            for line in lines:
                ids = encode(line)
                n_bytes += len(line.encode("utf-8"))
                n_tokens += len(ids)
                if decode is not None and decode(ids) != line:
                    bad += 1
            result["bytes_per_token"][name] = n_bytes / max(n_tokens, 1)
            result["not_lossless"][name] = bad
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=",".join(sorted(glob.glob(os.path.join(ROOT, "corpora", "*.txt")))),
                        help="comma-separated text files (default: every corpora/*.txt)")
    parser.add_argument("--sizes", default="4000,8000,16000", help="comma-separated vocabulary sizes")
    parser.add_argument("--trainers", default=",".join(ALL_TRAINERS), help="comma-separated, from " + ",".join(ALL_TRAINERS))
    parser.add_argument("--holdout", type=float, default=0.1, help="share of each file's lines held out (from the end)")
    parser.add_argument("--holdout-at", choices=["end", "start"], default="end",
                        help="hold out the last (default) or the first lines of each file")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1,
                        help="train each tokenizer this many times and keep the fastest run")
    parser.add_argument("--json", help="also append the raw results to this JSONL file")
    parser.add_argument("--verbose", action="store_true", help="show the compress trainer's progress")
    parser.add_argument("--compress-opts", default="{}",
                        help='JSON keyword arguments for train_compress, e.g. \'{"max_piece_length": 24}\'')
    parser.add_argument("--label", default="", help="suffix for the compress trainer's name in the table")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", help=argparse.SUPPRESS)
    parser.add_argument("--trainer", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    files = [f for f in args.corpora.split(",") if f]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    trainers = [t for t in args.trainers.split(",") if t]
    train, held = split_corpora(files, args.holdout, args.holdout_at)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_path = os.path.join(tmp, "train.txt")
        with open(train_path, "w", encoding="utf-8") as handle:
            handle.write("".join(train))
        spec_path = os.path.join(tmp, "spec.json")
        opts = {"workers": args.workers, "verbose": args.verbose, "compress": json.loads(args.compress_opts)}
        with open(spec_path, "w", encoding="utf-8") as handle:
            json.dump({"train": train_path, "held": held, "opts": opts}, handle)
        train_mb = sum(len(l.encode("utf-8")) for l in train) / 1e6
        print(f"training text: {train_mb:.2f} MB from {len(files)} files; held out: "
              + ", ".join(f"{k} ({sum(len(l.encode('utf-8')) for l in v) / 1e3:.0f} kB)" for k, v in held.items()),
              flush=True)
        for size in sizes:
            for trainer in trainers:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", "--child-spec", spec_path,
                       "--trainer", trainer, "--size", str(size)]
                result = None
                for _ in range(max(1, args.repeat)):
                    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                                          stderr=None if args.verbose else subprocess.PIPE, text=True, cwd=ROOT)
                    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
                    if proc.returncode != 0 or not line:
                        err = (proc.stderr or "").strip().splitlines()
                        print(f"{trainer} {size}: skipped ({err[-1] if err else 'no result'})", flush=True)
                        break
                    run = json.loads(line[0][len("RESULT "):])
                    if result is None or run["seconds"] < result["seconds"]:
                        result = run  # the fastest of the repeats (least disturbed by other load)
                if result is None:
                    continue
                if trainer == "compress" and args.label:
                    result["trainer"] = f"compress{args.label}"
                rows.append(result)
                print(format_row(result, list(held)), flush=True)
                if args.json:
                    with open(args.json, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(result) + "\n")
    print()
    print(format_table(rows, list(held)))


def format_row(r: dict, names: List[str]) -> str:
    """One result as a Markdown table row."""
    cells = [r["trainer"], str(r["size"]), f"{r['seconds']:.1f}", f"{r.get('cpu_seconds', float('nan')):.1f}",
             f"{r['peak_mb']:.0f}"]
    for name in names:
        cell = f"{r['bytes_per_token'][name]:.3f}"
        if r["not_lossless"].get(name):
            cell += f" ({r['not_lossless'][name]} lossy)"
        cells.append(cell)
    return "| " + " | ".join(cells) + " |"


def format_table(rows: List[dict], names: List[str]) -> str:
    """All results as a Markdown table, bytes/token per held-out slice."""
    head = "| trainer | size | train s | CPU s | peak MB | " + " | ".join(names) + " |"
    sep = "|" + "---|" * (5 + len(names))
    return "\n".join([head, sep] + [format_row(r, names) for r in rows])


if __name__ == "__main__":
    main()
