"""The ``bytepiece`` command line: train, encode, decode, info.

User errors (missing or unreadable files, text that is not UTF-8, bad
parameters) end with a one-line message and a non-zero exit status, never a
traceback.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import sys
from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple

import click

__all__ = ["main", "Corpus"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_BATCH = 2000


class CorpusError(ValueError):
    """A corpus file that cannot be read as asked (message names file and line)."""


def _open_binary(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot open ({exc.strerror})") from None
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _is_jsonl(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    return name.endswith(".jsonl")


def _decode(raw: bytes, path: str, number: int, errors: str) -> str:
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}, line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
            "use --errors replace to substitute U+FFFD"
        ) from None


def read_lines(path: str, errors: str = "strict") -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of a text file, newline kept, as Python's text mode yields them.

    ``\\r\\n`` and lone ``\\r`` become ``\\n`` (universal newlines), the file is
    decoded line by line so that an encoding error names its line, and
    ``.gz`` files are decompressed on the fly. ``-`` is standard input.
    """
    handle = _open_binary(path)
    try:
        for number, raw in enumerate(handle, 1):
            text = _decode(raw, path, number, errors)
            if "\r" in text:
                for line in _LINE.findall(text.replace("\r\n", "\n").replace("\r", "\n")):
                    yield number, line
            else:
                yield number, text
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CorpusError(f"{path}: read error ({exc})") from None
    finally:
        if path != "-":
            handle.close()


def read_records(path: str, field: str, errors: str = "strict") -> Iterator[Tuple[int, str]]:
    """``(line number, text)`` of each JSON Lines record, taking ``record[field]``."""
    for number, line in read_lines(path, errors):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or field not in record:
            raise CorpusError(f"{path}, line {number}: no field {field!r} in this record")
        text = record[field]
        if not isinstance(text, str):
            raise CorpusError(
                f"{path}, line {number}: field {field!r} is {type(text).__name__}, not a string"
            )
        yield number, text


class Corpus:
    """The texts of some files, re-iterable (the trainer reads them twice).

    ``.txt`` (or any other name): one text per line, newline kept;
    ``.jsonl``: one text per record, from ``field``; ``.gz`` is decompressed.
    Standard input (``-``) can only be read once, so it is kept in memory.
    """

    def __init__(self, paths: Sequence[str], field: str = "text", errors: str = "strict") -> None:
        self.paths = list(paths)
        self.field = field
        self.errors = errors
        self._stdin: Optional[List[str]] = None
        for path in self.paths:
            if path != "-" and not os.path.exists(path):
                raise CorpusError(f"{path}: no such file")
            if path != "-" and os.path.isdir(path):
                raise CorpusError(f"{path}: is a directory")

    def _texts(self, path: str) -> Iterator[str]:
        reader = read_records(path, self.field, self.errors) if _is_jsonl(path) else read_lines(path, self.errors)
        for _number, text in reader:
            yield text

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            if path == "-":
                if self._stdin is None:
                    self._stdin = list(self._texts(path))
                yield from self._stdin
            else:
                yield from self._texts(path)


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


def _strip_newline(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


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
@click.option("--max-piece-length", default=36, show_default=True, help="Longest piece, in bytes.")
@click.option("--isolate-digits", is_flag=True, help="Make every digit a piece of its own.")
@click.option("--no-ensure-unicode", is_flag=True, help="Allow pieces to start inside a character.")
@click.option("--workers", default=0, show_default=True, help="Threads (0: one per CPU).")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_user_errors
def train(files, output, vocab_sizes, order, min_count, max_piece_length, isolate_digits,
          no_ensure_unicode, workers, jsonl_field, errors, quiet) -> None:
    """Train a model on FILES (.txt: a text per line; .jsonl; .gz; - for stdin)."""
    from .trainer import Trainer

    corpus = Corpus(files, jsonl_field, errors)
    sizes = list(vocab_sizes)
    trainer = Trainer(
        order=order,
        max_vocab_size=sizes if len(sizes) > 1 else sizes[0],
        max_piece_length=max_piece_length,
        min_count=min_count,
        isolate_digits=isolate_digits,
        ensure_unicode=not no_ensure_unicode,
        verbose=not quiet,
    )
    trainer.train(corpus, workers=workers)
    for path in trainer.save(output):
        if not quiet:
            click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--alpha", default=-1.0, show_default=True,
              help="Sampling sharpness; negative: deterministic (Viterbi).")
@click.option("--seed", type=int, default=None, help="Random seed for sampling.")
@click.option("--format", "fmt", type=click.Choice(["ids", "pieces"]), default="ids", show_default=True,
              help="Print ids, or pieces (spaces shown as \u2581).")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@_user_errors
def encode(model, files, alpha, seed, fmt, errors) -> None:
    """Encode each line of FILES (default: stdin) to one line of output."""
    tokenizer = _load_tokenizer(model, seed)
    out = sys.stdout
    lines = _input_lines(files, errors)
    while True:
        batch = [line for _, (_, _, line) in zip(range(_BATCH), lines)]
        if not batch:
            break
        if fmt == "pieces":
            rendered = [
                " ".join(_show_piece(p) for p in tokenizer.tokenize(text, alpha=alpha)) for text in batch
            ]
        elif alpha >= 0:
            rendered = [" ".join(map(str, tokenizer.encode(text, alpha=alpha))) for text in batch]
        else:
            rendered = [" ".join(map(str, ids)) for ids in tokenizer.encode_batch(batch)]
        out.write("\n".join(rendered) + "\n")
    out.flush()


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
