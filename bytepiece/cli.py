"""The ``bytepiece`` command line: train, encode, decode, info, import-words.

User errors (missing or unreadable files, text that is not UTF-8, bad
parameters) end with a one-line message and a non-zero exit status, never a
traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, Iterator, Optional, Sequence, Tuple

import click

from .inputs import (
    Corpus,
    CorpusError,
    _blocks,
    _check_input,
    _input_texts,
    _strip_newline,
    read_lines,
)

__all__ = ["main", "Corpus"]

_BATCH = 2000


def _user_errors(func):
    """Turn the expected failures of a command into a one-line message."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (ValueError, TypeError, OSError, MemoryError) as exc:
            raise click.ClickException(str(exc) or type(exc).__name__) from None

    return wrapper


def _load_tokenizer(model: str, seed: Optional[int] = None):
    from .tokenizer import Tokenizer

    return Tokenizer(model, seed=seed)


def _input_lines(files: Sequence[str], errors: str) -> Iterator[Tuple[str, int, str]]:
    for path in files or ["-"]:
        for number, line in read_lines(path, errors):
            yield path, number, _strip_newline(line)


def _show_piece(piece: bytes) -> str:
    return piece.decode("utf-8", "backslashreplace").replace(" ", "\u2581").replace("\n", "\\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bytepiece", message="bytepiece %(version)s")
def main() -> None:
    """BytePiece: train and use byte-level Unigram tokenizers."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (MODEL.SIZE for each size if several).")
@click.option("--vocab-size", "vocab_sizes", multiple=True, type=int, required=True,
              help="Vocabulary size incl. 3 special tokens (>= 259); repeatable.")
@click.option("--order", default=6, show_default=True, help="Byte n-gram order (1-7).")
@click.option("--min-count", default=2, show_default=True, help="Drop n-grams/pieces seen less often.")
@click.option("--max-piece-length", type=int, default=None,
              help="Longest piece, in bytes.  [default: 36 for bnlm, 16 for compress]")
@click.option("--algorithm", type=click.Choice(["bnlm", "compress"]), default="bnlm", show_default=True,
              help="bnlm: the reference n-gram trainer (bit-exact with 0.6.3); "
                   "compress: fewer tokens per text.")
@click.option("--isolate-digits", is_flag=True, help="Make every digit a piece of its own.")
@click.option("--no-ensure-unicode", is_flag=True, help="Allow pieces to start inside a character.")
@click.option("--workers", default=0, show_default=True, help="Threads (0: one per CPU).")
@click.option("--memory-budget", type=click.IntRange(min=1), default=None,
              help="MB for the n-gram tables of bnlm (more passes, same model).  [default: no limit]")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_user_errors
def train(files, output, vocab_sizes, order, min_count, max_piece_length, algorithm, isolate_digits,
          no_ensure_unicode, workers, memory_budget, jsonl_field, errors, quiet) -> None:
    """Train a model on FILES (.txt: a text per line; .jsonl; .gz; - for stdin)."""
    from .trainer import Trainer

    corpus = Corpus(files, jsonl_field, errors)
    sizes = list(vocab_sizes)
    trainer = Trainer(
        order=order,
        max_vocab_size=sizes if len(sizes) > 1 else sizes[0],
        max_piece_length=max_piece_length,
        algorithm=algorithm,
        min_count=min_count,
        isolate_digits=isolate_digits,
        ensure_unicode=not no_ensure_unicode,
        verbose=not quiet,
        memory_budget=None if memory_budget is None else memory_budget * 2**20,
    )
    trainer.train(corpus, workers=workers)
    for path in trainer.save(output):
        if not quiet:
            click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write one flat .npy array of ids, <eos> after each document.")
@click.option("--dtype", type=click.Choice(["auto", "uint16", "uint32"]), default="auto", show_default=True,
              help="Id type of the .npy file (auto: uint16 if the vocabulary fits).")
@click.option("--alpha", default=-1.0, show_default=True,
              help="Sampling sharpness; negative: deterministic (Viterbi).")
@click.option("--seed", type=int, default=None, help="Random seed for sampling.")
@click.option("--workers", default=0, show_default=True,
              help="Encoding threads; with -o, worker processes (0: one per CPU).")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--format", "fmt", type=click.Choice(["ids", "pieces"]), default="ids", show_default=True,
              help="Text output: ids, or pieces (spaces shown as \u2581).")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_user_errors
def encode(model, files, output, dtype, alpha, seed, workers, jsonl_field, fmt, errors, quiet) -> None:
    """Encode FILES (default: stdin): a document per line (.jsonl: per record).

    Without -o, print one line of ids per input line. With -o, write a
    token file for LM training: every document (its newline included) then
    <eos>, as one .npy array that np.load(path, mmap_mode="r") reads.
    """
    if workers < 0:
        raise click.BadParameter("must be >= 0 (0: one per CPU)", param_hint="--workers")
    if output is None:
        if dtype != "auto":
            raise click.UsageError("--dtype applies to .npy output only (-o)")
        _encode_to_text(model, files, alpha, seed, workers, jsonl_field, fmt, errors)
        return
    if fmt != "ids":
        raise click.UsageError("--format applies to text output only (without -o)")
    _encode_to_npy(model, files, output, dtype, alpha, seed, workers, jsonl_field, errors, quiet)


def _encode_to_text(model, files, alpha, seed, workers, field, fmt, errors) -> None:
    tokenizer = _load_tokenizer(model, seed)
    if alpha >= 0 and seed is None:
        seed = tokenizer.next_seed()
    out = sys.stdout
    lines = _input_texts(files, field, errors)
    done = 0
    while True:
        batch = [line for _, line in zip(range(_BATCH), lines)]
        if not batch:
            break
        encoded = tokenizer.encode_batch(batch, alpha=alpha, seed=seed, num_threads=workers,
                                         first_index=done)
        done += len(batch)
        if fmt == "pieces":
            rendered = [" ".join(_show_piece(tokenizer.id_to_piece(i)) for i in ids) for ids in encoded]
        else:
            rendered = [" ".join(map(str, ids)) for ids in encoded]
        out.write("\n".join(rendered) + "\n")
    out.flush()


def _encode_to_npy(model, files, output, dtype, alpha, seed, workers, field, errors, quiet) -> None:
    from .pipelines import token_dtype
    from .progress import Progress

    paths = list(files) or ["-"]
    for path in paths:
        _check_input(path)
    for path in paths:
        if path != "-" and os.path.exists(output) and os.path.samefile(path, output):
            raise CorpusError(f"{output}: is also an input file")
    tokenizer = _load_tokenizer(model, seed)
    token_dtype(tokenizer.vocab_size, dtype)  # fail before reading anything
    plain = all(p != "-" and not p.endswith(".gz") for p in paths)
    total = sum(os.path.getsize(p) for p in paths) if plain else None
    progress = Progress("encoding", total=total, unit="B", enabled=not quiet)
    counts = {"tokens": 0}

    def on_block(input_bytes: int, tokens: int, documents: int) -> None:
        counts["tokens"] += tokens
        progress.description = f"encoding [{_count(counts['tokens'])} tokens]"
        progress.update(input_bytes)

    try:
        tokens, documents = _encode_files(tokenizer, paths, output, dtype=dtype, alpha=alpha, seed=seed,
                                          workers=workers, field=field, errors=errors, on_block=on_block)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"wrote {output}: {tokens} tokens, {documents} documents "
                   f"({token_dtype(tokenizer.vocab_size, dtype).name})", err=True)


def _encode_files(tokenizer, paths: Sequence[str], output: str, dtype: str = "auto", alpha: float = -1.0,
                  seed: Optional[int] = None, workers: int = 0, field: str = "text",
                  errors: str = "strict", on_block=None, stats: Optional[Dict[str, float]] = None):
    """Encode the documents of ``paths`` into the token file ``output``:
    ``workers`` processes (0: one per CPU) each read, decode, normalize and
    encode blocks of the input; with one, all of it runs in this thread."""
    from .pipelines import cpu_count, encode_blocks_to_token_file

    workers = workers or cpu_count()
    # First indices of sampled blocks are needed before they are dispatched.
    blocks = _blocks(paths, field, errors, count=alpha >= 0 and workers > 1, workers=workers)
    return encode_blocks_to_token_file(tokenizer, blocks, output, dtype=dtype, alpha=alpha, seed=seed,
                                       workers=workers, on_block=on_block, stats=stats)


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


@main.command("import-words")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
@_user_errors
def import_words_command(file, output, quiet) -> None:
    """Make a model from a word-frequency list (lines of 'word count [tag]',
    e.g. jieba's dict.txt)."""
    from .convert import import_words, read_word_counts

    _check_input(file)
    if file == "-":
        raise CorpusError("import-words reads a file, not standard input")
    if not read_word_counts(file):
        raise CorpusError(f"{file}: no 'word count' entries found")
    pieces = import_words(file, output)
    if not quiet:
        click.echo(f"wrote {output}: {len(pieces) + 3} ids ({len(pieces)} pieces + 3 special tokens)",
                   err=True)


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@_user_errors
def decode(model, files) -> None:
    """Decode lines of space-separated ids (FILES or stdin) back to text."""
    tokenizer = _load_tokenizer(model)
    out = sys.stdout
    for path, number, line in _input_lines(files, "strict"):
        try:
            ids = [int(tok) for tok in line.split()]
            text = tokenizer.decode(ids)
        except (ValueError, TypeError) as exc:
            raise CorpusError(f"{path}, line {number}: {exc}") from None
        out.write(text + "\n")
    out.flush()


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file.")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@_user_errors
def info(model, file, errors) -> None:
    """Describe a model; with FILE, also its compression (bytes per token)."""
    tokenizer = _load_tokenizer(model)
    pieces = [tokenizer.id_to_piece(i) for i in range(3, tokenizer.vocab_size)]
    longest = max(pieces, key=len)
    click.echo(f"vocab size:     {tokenizer.vocab_size} ({len(pieces)} pieces + 3 special tokens)")
    click.echo(f"longest piece:  {len(longest)} bytes {longest.decode('utf-8', 'backslashreplace')!r}")
    multi = sum(1 for p in pieces if len(p) > 1)
    click.echo(f"multi-byte:     {multi} pieces")
    if file:
        n_bytes = n_tokens = n_lines = 0
        lines = read_lines(file, errors)
        while True:
            batch = [line for _, (_, line) in zip(range(_BATCH), lines)]
            if not batch:
                break
            n_lines += len(batch)
            n_bytes += sum(len(line.encode("utf-8")) for line in batch)
            n_tokens += sum(len(ids) for ids in tokenizer.encode_batch(batch))
        ratio = n_bytes / n_tokens if n_tokens else 0.0
        click.echo(f"file:           {file}: {n_lines} lines, {n_bytes} bytes, {n_tokens} tokens")
        click.echo(f"bytes/token:    {ratio:.3f}")


if __name__ == "__main__":  # pragma: no cover
    main()
