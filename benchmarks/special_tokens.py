"""Special tokens: encoding speed with and without them, and agreement with transformers.

    python benchmarks/special_tokens.py [--model PATH] [--repeat 7]

1. Speed. The same vocabulary without and with added special tokens
   (``<|im_start|> <|im_end|> <|endoftext|>`` and 100 ``<|reserved_k|>``),
   none of them allowed, encodes every line of ``corpora/`` with
   ``encode_batch`` (lists, all threads) and ``encode_batch_flat``; then with
   ``allowed_special="all"`` on the plain lines and on chat-formatted lines.
   Round robin: each round times every mode once, the best round is kept.
2. Agreement. ``save_pretrained`` then ``transformers.AutoTokenizer`` on
   chat-formatted lines built from ``corpora/`` (each line as a user turn,
   the next line as the assistant turn); ids compared with ours
   (``allowed_special="all"``). Each difference is classified: the same
   pieces in another order, another segmentation of exactly the same
   probability (exact fractions of the counts), or anything else.
   Skipped when transformers is not installed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import unicodedata
from pathlib import Path

from encode import best_time  # benchmarks/encode.py: the call only, result freed after

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"
CHAT = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def corpus_lines():
    lines = []
    for path in sorted((ROOT / "corpora").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [unicodedata.normalize("NFC", line) for line in lines]


def chat_lines(lines):
    """One chat exchange per line: the line as the user turn, the next as the reply."""
    out = []
    for a, b in zip(lines, lines[1:] + lines[:1]):
        out.append(f"<|im_start|>user\n{a.rstrip()}<|im_end|>\n<|im_start|>assistant\n"
                   f"{b.rstrip()}<|im_end|>\n<|endoftext|>")
    return out


def timed_rounds(modes, repeat):
    """Best time of each mode, round robin (every round times each mode once)."""
    best = [float("inf")] * len(modes)
    for _ in range(repeat):
        for k, (_name, fn) in enumerate(modes):
            best[k] = min(best[k], best_time(fn, 1))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from bytepiece import Tokenizer
    from bytepiece.lattice import exact_probability

    lines = corpus_lines()
    chats = chat_lines(lines)
    mb = sum(len(x.encode()) for x in lines) / 1e6
    chat_mb = sum(len(x.encode()) for x in chats) / 1e6
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"text: {len(lines)} lines, {mb:.2f} MB ({len(chats)} chat lines, {chat_mb:.2f} MB); "
          f"model: {args.model}; cores: {cores}")
    plain = Tokenizer(args.model)
    special = Tokenizer(args.model)
    special.add_special_tokens(CHAT + [f"<|reserved_{k}|>" for k in range(100)])

    modes = [
        ("without special tokens: encode_batch", lambda: plain.encode_batch(lines)),
        ("with, none allowed:     encode_batch", lambda: special.encode_batch(lines)),
        ("without special tokens: encode_batch_flat", lambda: plain.encode_batch_flat(lines)),
        ("with, none allowed:     encode_batch_flat", lambda: special.encode_batch_flat(lines)),
        ("with, all allowed:      encode_batch (plain lines)",
         lambda: special.encode_batch(lines, allowed_special="all")),
    ]
    chat_modes = [
        ("without special tokens: encode_batch (chat lines)", lambda: plain.encode_batch(chats)),
        ("with, all allowed:      encode_batch (chat lines)",
         lambda: special.encode_batch(chats, allowed_special="all")),
    ]
    best = timed_rounds(modes + chat_modes, args.repeat)
    print(f"\n{'mode':52s} {'MB/s':>8s} {'ratio':>7s}")
    for k, ((name, _), seconds) in enumerate(zip(modes + chat_modes, best)):
        size = chat_mb if k >= len(modes) else mb
        base = best[k - 1] if name.startswith("with, none") else None
        ratio = f"{base / seconds:6.3f}x" if base else ""
        print(f"{name:52s} {size / seconds:8.2f} {ratio:>7s}")

    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("\ntransformers not installed: agreement skipped")
        return
    with tempfile.TemporaryDirectory() as directory:
        special.save_pretrained(directory)
        hf = AutoTokenizer.from_pretrained(directory)
        theirs = hf(chats, add_special_tokens=False)["input_ids"]
    ours = special.encode_batch(chats, allowed_special="all")
    same = reordered = ties = other = 0
    for a, b in zip(ours, theirs):
        if a == b:
            same += 1
        elif sorted(a) == sorted(b):
            reordered += 1  # the same pieces in another order: exactly equal probability
        elif exact_probability(special._vocab, a) == exact_probability(special._vocab, b):
            ties += 1
        else:
            other += 1
    n = len(chats)
    print(f"\ntransformers {hf.__class__.__name__} (fast: {hf.is_fast}) vs encode(allowed_special='all') "
          f"on {n} chat lines:")
    print(f"  identical ids:                    {same:6d}  {100 * same / n:6.2f} %")
    print(f"  same pieces, another order (tie): {reordered:6d}  {100 * reordered / n:6.2f} %")
    print(f"  other exact ties:                 {ties:6d}  {100 * ties / n:6.2f} %")
    print(f"  other differences:                {other:6d}  {100 * other / n:6.2f} %")


if __name__ == "__main__":
    sys.exit(main())
