"""Special tokens: encoding speed with and without them, and agreement with transformers.

    python benchmarks/special_tokens.py [--model PATH] [--repeat 7]

1. Speed. The same vocabulary without and with added special tokens
   (``<|im_start|> <|im_end|> <|endoftext|>`` and 100 ``<|reserved_k|>``,
   loaded from a model file), none of them allowed, encodes every line of ``corpora/`` with
   ``encode_batch`` (lists, all threads) and ``encode_batch_flat``; then with
   ``allowed_special="all"`` on the plain lines and on chat-formatted lines.
   Round robin: each round times every mode once. MB/s from the best round;
   the speed ratio of "with, none allowed" to "without" both as the ratio of
   best times and as the median of the per-round ratios (the machine is
   shared: the median is the steadier figure). A second load of the model
   without special tokens (A/A) shows how far two identical runs differ.
2. Agreement. ``save_pretrained`` then ``transformers.AutoTokenizer`` on
   chat-formatted lines built from ``corpora/`` (each line as a user turn,
   the next line as the assistant turn); ids compared with ours
   (``allowed_special="all"``). Each difference is classified: the same
   pieces in another order, another segmentation of exactly the same
   probability (exact fractions of the counts), or anything else.
   Skipped when transformers is not installed.
3. Extension. ``extend_with_texts`` adds ``--add`` pieces learned on the even
   lines of ``tang300.zh.txt``; bytes/token on the odd lines and on the
   English handbook, before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
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
    """Every round times each mode once, odd rounds in reverse order (so
    neither of two compared modes always runs first): ``times[mode][round]``."""
    times = [[] for _ in modes]
    for round_ in range(repeat):
        order = range(len(modes)) if round_ % 2 == 0 else reversed(range(len(modes)))
        for k in order:
            times[k].append(best_time(modes[k][1], 1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--add", type=int, default=2000, help="pieces to add in the extension run")
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
    control = Tokenizer(args.model)  # A/A: how much two loads of one model differ here
    with tempfile.TemporaryDirectory() as directory:
        adding = Tokenizer(args.model)
        adding.add_special_tokens(CHAT + [f"<|reserved_{k}|>" for k in range(100)])
        adding.save(os.path.join(directory, "special.model"))
        special = Tokenizer(os.path.join(directory, "special.model"))

    # (name, fn, index of the mode it is compared with)
    modes = [
        ("without special tokens: encode_batch", lambda: plain.encode_batch(lines), None),
        ("with, none allowed:     encode_batch", lambda: special.encode_batch(lines), 0),
        ("without, 2nd load (A/A): encode_batch", lambda: control.encode_batch(lines), 0),
        ("without special tokens: encode_batch_flat", lambda: plain.encode_batch_flat(lines), None),
        ("with, none allowed:     encode_batch_flat", lambda: special.encode_batch_flat(lines), 3),
        ("without, 2nd load (A/A): encode_batch_flat", lambda: control.encode_batch_flat(lines), 3),
        ("with, all allowed:      encode_batch (plain lines)",
         lambda: special.encode_batch(lines, allowed_special="all"), None),
        ("without special tokens: encode_batch (chat lines)", lambda: plain.encode_batch(chats), None),
        ("with, all allowed:      encode_batch (chat lines)",
         lambda: special.encode_batch(chats, allowed_special="all"), None),
    ]
    times = timed_rounds([m[:2] for m in modes], args.repeat)
    print(f"\n{'mode':52s} {'MB/s':>8s} {'ratio':>7s} {'median':>7s}")
    for (name, _, against), rounds in zip(modes, times):
        size = chat_mb if "chat" in name else mb
        ratio = median = ""
        if against is not None:  # speed against that mode: of the best times, median of the rounds
            base = times[against]
            ratio = f"{min(base) / min(rounds):6.3f}x"
            median = f"{statistics.median(b / r for b, r in zip(base, rounds)):6.3f}x"
        print(f"{name:52s} {size / min(rounds):8.2f} {ratio:>7s} {median:>7s}")

    # The fixed cost per call, where any check on the not-allowed path would show.
    one = lines[:1]
    calls = [("without", lambda: [plain.encode_batch_flat(one) for _ in range(2000)]),
             ("with, none allowed", lambda: [special.encode_batch_flat(one) for _ in range(2000)])]
    call_times = timed_rounds(calls, args.repeat)
    print("\nencode_batch_flat of a one-line batch, per call: "
          + ", ".join(f"{name} {min(t) / 2000 * 1e6:.2f} us" for (name, _), t in zip(calls, call_times)))

    # Extension: pieces learned on every other line of the Tang poems.
    from bytepiece.extend import bytes_per_token, extend_with_texts

    poems = (ROOT / "corpora" / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    english = (ROOT / "corpora" / "handbook.en-US.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    start = time.perf_counter()
    extension = extend_with_texts(plain, poems[::2], args.add)
    seconds = time.perf_counter() - start
    print(f"\nextend_with_texts(add={args.add}) on the even lines of tang300.zh.txt: "
          f"{len(extension.added)} pieces added in {seconds:.1f} s; bytes/token:")
    for name, texts in (("tang300 odd lines (held out)", poems[1::2]), ("handbook.en-US", english)):
        before, after = bytes_per_token(plain, texts), bytes_per_token(extension.tokenizer, texts)
        print(f"  {name:30s} {before[0] / before[1]:.3f} -> {after[0] / after[1]:.3f}")

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
