#!/usr/bin/env python
"""Plot the encoding figures that ``benchmarks/encode.py`` prints.

Reads the Markdown table ``| tokenizer | mode | MB/s |`` from a file (or
stdin) holding the output of ``encode.py``, and draws one bar per tokenizer
and task (one call per line, a batch on one thread, a batch on every thread,
sampling) into a PNG. Needs matplotlib (``pip install ".[bench]"``).

    python benchmarks/encode.py --repeat 15 | tee encode.txt
    python benchmarks/plot_encode.py encode.txt -o docs/encoding.png --date 2026-12-03
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Dict, List, Optional, Tuple

TOKENIZERS = [("bytepiece", "BytePiece"), ("sentencepiece", "SentencePiece"), ("hf tokenizers", "HF tokenizers")]
# (task label, regular expression matching the mode printed by encode.py)
TASKS = [
    ("one call per line", r"^encode per line$"),
    ("batch, 1 thread", r"^encode[_ ]batch 1 thread$"),
    ("batch, all threads", r"^encode[_ ]batch \(?\d+ threads\)?$"),
    ("sampling α=0.1, batch", r"^sampling a=0\.1 batch 1 thr$"),
]


def read_rows(text: str) -> Dict[Tuple[str, str], float]:
    """``{(tokenizer, mode): MB/s}`` from the rows of the printed table."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in dict(TOKENIZERS):
            continue
        try:
            rows[(cells[0], cells[1])] = float(cells[2])
        except ValueError:
            continue
    if not rows:
        raise ValueError("no '| tokenizer | mode | MB/s |' rows found: pass the output of benchmarks/encode.py")
    return rows


def task_speeds(rows: Dict[Tuple[str, str], float]) -> List[List[Optional[float]]]:
    """For each task, the MB/s of each tokenizer (None where it was not measured)."""
    table = []
    for _, pattern in TASKS:
        speeds = []
        for name, _ in TOKENIZERS:
            found = [value for (tok, mode), value in rows.items() if tok == name and re.match(pattern, mode)]
            speeds.append(found[0] if found else None)
        table.append(speeds)
    return table


def plot(table: List[List[Optional[float]]], output: str, date: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=120)
    width = 0.8 / len(TOKENIZERS)
    for k, (_, label) in enumerate(TOKENIZERS):
        xs = [i + (k - (len(TOKENIZERS) - 1) / 2) * width for i in range(len(TASKS))]
        values = [row[k] or 0.0 for row in table]
        bars = ax.bar(xs, values, width, label=label)
        for bar, value in zip(bars, (row[k] for row in table)):
            text = "–" if value is None else f"{value + 1e-9:.1f}"  # 37.55 -> 37.6, as in the tables
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(range(len(TASKS)))
    ax.set_xticklabels([label for label, _ in TASKS], fontsize=8)
    ax.set_ylabel("MB/s (higher is better)", fontsize=8)
    ax.set_title(f"Encoding corpora/ (2.41 MB), same 40k vocabulary, 2-core machine, {date}", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(output)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default="-", help="output of encode.py (default: stdin)")
    parser.add_argument("-o", "--output", default="encoding.png")
    parser.add_argument("--date", default="", help="date of the run, shown in the title")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.input == "-" else open(args.input, encoding="utf-8").read()
    table = task_speeds(read_rows(text))
    plot(table, args.output, args.date)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
