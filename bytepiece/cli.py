"""The ``bytepiece`` command line: train, encode, decode, info, import-words, extend.

User errors (missing or unreadable files, text that is not UTF-8, bad
parameters, unusable output paths) end with a one-line message naming the
file or the flag, and exit status 1, never a traceback. Outputs are checked
(:mod:`bytepiece.outputs`) before any work starts. SIGTERM cleans up as
Ctrl-C does (no partial or temporary file is left) and exits with 143; a
closed standard output (``| head``) ends the command quietly.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
from typing import Dict, Iterator, Optional, Sequence, Tuple

import click

from .inputs import (
    Corpus,
    CorpusError,
    _blocks,
    _check_input,
    _input_texts,
    _mappable,
    _strip_newline,
    read_lines,
)
from .model_io import MAX_PIECE_BYTES
from .outputs import check_output
from .trainer import MAX_MIN_COUNT

__all__ = ["main", "Corpus"]

_BATCH = 2000
#: Most threads or processes a command starts, whatever --workers asks.
_MAX_WORKERS = 1024

#: Parameter names of the Python API, as the flags that set them.
_FLAGS = {"max_vocab_size": "--vocab-size", "min_count": "--min-count",
          "max_piece_length": "--max-piece-length", "num_threads": "--workers",
          "workers": "--workers", "jsonl_field": "--jsonl-field",
          "memory_budget": "--memory-budget"}
_FLAG_NAMES = re.compile(r"\b(" + "|".join(_FLAGS) + r")\b")


def _flag_message(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"out of memory ({message}); try a smaller --vocab-size or fewer --workers"
    return _FLAG_NAMES.sub(lambda m: _FLAGS[m.group(1)], message)


def _user_errors(func):
    """Turn the expected failures of a command into a one-line message."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, BrokenPipeError):
            raise
        except (ValueError, TypeError, OSError, MemoryError, OverflowError) as exc:
            raise click.ClickException(_flag_message(exc)) from None

    return wrapper


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: unwinds (and cleans up) like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends at once
    raise _Terminated()


class _Group(click.Group):
    """The command group, run so that every error is one line and exit status 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(1)
        except click.Abort as exc:
            if isinstance(exc.__context__, _Terminated):
                sys.exit(128 + signal.SIGTERM)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        sys.exit(0)


def _int_option(*names, low: int, high: int, **kwargs):
    """An int option whose bad values name the flag (click checks the range)."""
    return click.option(*names, type=click.IntRange(low, high), **kwargs)


def _finite(ctx, param, value: float) -> float:
    """A float option that must be a finite number (click names the flag)."""
    import math

    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


def _workers(workers: int) -> int:
    """Threads or processes for ``--workers`` (0: one per CPU; never far beyond the CPUs)."""
    from .bulk_encoding import cpu_count

    cpus = cpu_count()
    return cpus if workers == 0 else min(workers, max(2, cpus))


def _load_tokenizer(model: str, seed: Optional[int] = None):
    from .tokenizer import Tokenizer

    return Tokenizer(model, seed=seed)


def _make_engine(engine: str, workers: int, ray_address: Optional[str]):
    """The engine that runs the tasks: ``None`` for the local default, or a
    :class:`~bytepiece.ray_engine.RayEngine`; without Ray installed, a
    one-line error saying how to install it."""
    if engine != "ray":
        if ray_address is not None:
            raise click.UsageError("--ray-address applies to --engine ray only")
        return None
    from .ray_engine import RayEngine, RayNotInstalled

    try:
        return RayEngine(address=ray_address, num_cpus=workers or None)
    except RayNotInstalled as exc:
        raise click.ClickException(str(exc)) from None


_ENGINE_OPTIONS = [
    click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                 help="ray: as Ray tasks, on --ray-address ADDR."),
    # Described by --engine's help (the help screens stay short).
    click.option("--ray-address", metavar="ADDR", default=None, hidden=True),
]


def _engine_options(func):
    for option in reversed(_ENGINE_OPTIONS):
        func = option(func)
    return func


def _input_lines(files: Sequence[str], errors: str) -> Iterator[Tuple[str, int, str]]:
    for path in files or ["-"]:
        for number, line in read_lines(path, errors, hint=False):
            yield path, number, _strip_newline(line)


def _show_piece(piece) -> str:
    if isinstance(piece, str):  # a special token
        return piece
    return piece.decode("utf-8", "backslashreplace").replace(" ", "\u2581").replace("\n", "\\n")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bytepiece", message="bytepiece %(version)s")
def main() -> None:
    """BytePiece: train and use byte-level Unigram tokenizers."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (MODEL.SIZE for each size if several).")
@click.option("--vocab-size", "vocab_sizes", multiple=True, type=click.IntRange(259, 2 ** 31 - 1),
              required=True, help="Vocabulary size incl. 3 special tokens (>= 259); repeatable.")
@_int_option("--order", low=1, high=7, default=6, show_default=True, help="Byte n-gram order (1-7).")
@_int_option("--min-count", low=1, high=MAX_MIN_COUNT, default=2, show_default=True,
             help="Drop n-grams/pieces seen less often.")
@_int_option("--max-piece-length", low=1, high=MAX_PIECE_BYTES, default=None,
             help="Longest piece, in bytes.  [default: 36 for bnlm, 16 for compress]")
@click.option("--algorithm", type=click.Choice(["compress", "bnlm"]), default="compress", show_default=True,
              help="compress: fewer tokens per text; bnlm: the reference (bit-exact with 0.6.3).")
@click.option("--isolate-digits", is_flag=True, help="Make every digit a piece of its own.")
@click.option("--no-ensure-unicode", is_flag=True, help="Allow pieces to start inside a character.")
@_int_option("--workers", low=0, high=_MAX_WORKERS, default=0, show_default=True,
             help="Threads (0: one per CPU).")
@click.option("--memory-budget", type=click.IntRange(min=1), default=None,
              help="bnlm: MiB for its n-gram tables.")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("--special-token", "special_tokens", multiple=True, metavar="TEXT",
              help="Add a special token (ids after the last piece; the text is cut at it); repeatable.")
@click.option("--candidate-mb", type=click.IntRange(min=1), default=24, show_default=True,
              help="compress: MiB of text held in memory for candidates.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_engine_options
@_user_errors
def train(files, output, vocab_sizes, order, min_count, max_piece_length, algorithm, isolate_digits,
          no_ensure_unicode, workers, memory_budget, jsonl_field, errors, special_tokens, candidate_mb,
          quiet, engine, ray_address) -> None:
    """Train a model on FILES (.txt: a text per line; .jsonl; .gz; - for stdin),
    streamed on every pass (stdin and pipes are copied to a temporary file)."""
    from .trainer import Trainer

    corpus = Corpus(files, jsonl_field, errors)
    sizes = list(vocab_sizes)
    if len(set(sizes)) != len(sizes):
        raise click.UsageError(f"--vocab-size lists a size twice: {sizes}")
    targets = [output] if len(sizes) == 1 else [f"{output}.{size}" for size in sizes]
    for target in targets:  # before training, naming the path given
        check_output(target, files, option="-o")
    trainer = Trainer(
        order=order,
        max_vocab_size=sizes if len(sizes) > 1 else sizes[0],
        max_piece_length=max_piece_length,
        algorithm=algorithm,
        min_count=min_count,
        isolate_digits=isolate_digits,
        ensure_unicode=not no_ensure_unicode,
        verbose=not quiet,
        special_tokens=list(special_tokens),
        candidate_bytes=candidate_mb << 20,
        memory_budget=None if memory_budget is None else memory_budget << 20,
    )
    runner = _make_engine(engine, workers, ray_address)
    try:
        if runner is None:
            trainer.train(corpus, workers=_workers(workers))
        else:
            trainer.train(corpus, workers=runner.workers, engine=runner)
    finally:
        corpus.close()
        if runner is not None:
            runner.close()
    for target in targets:  # the inputs may have moved in the meantime
        check_output(target, files, option="-o")
    for path in trainer.save(output):
        if not quiet:
            click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", type=click.Path(),
              help="Write one flat .npy array of ids, <eos> after each document; "
                   "DIR/: a shard file per input shard plus an index.")
@click.option("--dtype", type=click.Choice(["auto", "uint16", "uint32"]), default="auto", show_default=True,
              help="Id type of the .npy file (auto: uint16 if the vocabulary fits).")
@click.option("--alpha", default=-1.0, show_default=True, callback=_finite,
              help="Sampling sharpness; negative: deterministic (Viterbi).")
@click.option("--seed", type=int, default=None, help="Random seed for sampling.")
@_int_option("--workers", low=0, high=_MAX_WORKERS, default=0, show_default=True,
             help="Encoding threads; with -o, worker processes (0: one per CPU).")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--format", "fmt", type=click.Choice(["ids", "pieces"]), default="ids", show_default=True,
              help="Text output: ids, or pieces (spaces shown as \u2581).")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("--allow-special", is_flag=True,
              help="Encode the text of every special token as its id (default: as ordinary text).")
@click.option("--shard-mb", type=int, default=None,
              help="Input megabytes per shard with -o DIR/ or --engine ray  [default: 64 for DIR/]")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@_engine_options
@_user_errors
def encode(model, files, output, dtype, alpha, seed, workers, jsonl_field, fmt, errors, allow_special,
           shard_mb, quiet, engine, ray_address) -> None:
    """Encode FILES (default: stdin): a document per line (.jsonl: per record).

    Without -o, print one line of ids per input line. With -o, write a
    token file for LM training: every document (its newline included) then
    <eos>, as one .npy array that np.load(path, mmap_mode="r") reads; with
    -o DIR/, as one .npy per shard of the input plus DIR/index.json, which
    bytepiece.pipelines.TokenShards reads as one sequence.
    """
    allowed = "all" if allow_special else None
    if shard_mb is not None and shard_mb < 1:
        raise click.BadParameter("must be >= 1", param_hint="--shard-mb")
    if output is None:
        if dtype != "auto":
            raise click.UsageError("--dtype applies to .npy output only (-o)")
        if engine != "local" or shard_mb is not None:
            raise click.UsageError("--engine and --shard-mb apply to token files only (-o)")
        _encode_to_text(model, files, alpha, seed, workers, jsonl_field, fmt, errors, allowed)
        return
    if fmt != "ids":
        raise click.UsageError("--format applies to text output only (without -o)")
    runner = _make_engine(engine, workers, ray_address)
    try:
        _encode_to_npy(model, files, output, dtype, alpha, seed, workers, jsonl_field, errors, quiet,
                       allowed, runner, shard_mb)
    finally:
        if runner is not None:
            runner.close()


def _encode_to_text(model, files, alpha, seed, workers, field, fmt, errors, allowed=None) -> None:
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
                                         first_index=done, allowed_special=allowed)
        done += len(batch)
        if fmt == "pieces":
            rendered = [" ".join(_show_piece(tokenizer.id_to_piece(i)) for i in ids) for ids in encoded]
        else:
            rendered = [" ".join(map(str, ids)) for ids in encoded]
        out.write("\n".join(rendered) + "\n")
    out.flush()


def _encode_to_npy(model, files, output, dtype, alpha, seed, workers, field, errors, quiet,
                   allowed=None, engine=None, shard_mb=None) -> None:
    from .token_files import check_shard_directory, is_shard_directory_path, token_dtype
    from .progress import progress_bar

    paths = list(files) or ["-"]
    for path in paths:
        _check_input(path)
    if is_shard_directory_path(output):
        check_shard_directory(output, paths + [model])
    else:
        check_output(output, paths + [model], option="-o")
    tokenizer = _load_tokenizer(model, seed)
    token_dtype(tokenizer.vocab_size, dtype)  # fail before reading anything
    plain = all(_mappable(p) for p in paths)
    total = sum(os.path.getsize(p) for p in paths) if plain else None
    progress = progress_bar("encoding", total=total, unit="B", enabled=not quiet)
    counts = {"tokens": 0}

    def on_block(input_bytes: int, tokens: int, documents: int) -> None:
        counts["tokens"] += tokens
        progress.set_postfix_str(f"{_count(counts['tokens'])} tokens", refresh=False)
        progress.update(input_bytes)

    try:
        if engine is None and not is_shard_directory_path(output):
            tokens, documents = _encode_files(tokenizer, paths, output, dtype=dtype, alpha=alpha, seed=seed,
                                              workers=_workers(workers), field=field, errors=errors,
                                              on_block=on_block, inputs=paths + [model],
                                              allowed_special=allowed)
        else:
            tokens, documents = _encode_shards(tokenizer, paths, output, engine, dtype=dtype, alpha=alpha,
                                               seed=seed, workers=_workers(workers), field=field,
                                               errors=errors, shard_mb=shard_mb, total=total,
                                               on_block=on_block, inputs=paths + [model],
                                               allowed_special=allowed)
    finally:
        progress.close()
    if not quiet:
        click.echo(f"wrote {output}: {tokens} tokens, {documents} documents "
                   f"({token_dtype(tokenizer.vocab_size, dtype).name})", err=True)


def _encode_files(tokenizer, paths: Sequence[str], output: str, dtype: str = "auto", alpha: float = -1.0,
                  seed: Optional[int] = None, workers: int = 0, field: str = "text",
                  errors: str = "strict", on_block=None, stats: Optional[Dict[str, float]] = None,
                  inputs: Sequence[str] = (), allowed_special=None):
    """Encode the documents of ``paths`` into the token file ``output``:
    ``workers`` processes (0: one per CPU) each read, decode, normalize and
    encode blocks of the input; with one, all of it runs in this thread.
    ``output`` must be none of ``paths`` and ``inputs``."""
    from .bulk_encoding import cpu_count, encode_blocks_to_token_file

    workers = workers or cpu_count()
    # First indices of sampled blocks are needed before they are dispatched.
    blocks = _blocks(paths, field, errors, count=alpha >= 0 and workers > 1, workers=workers)
    return encode_blocks_to_token_file(tokenizer, blocks, output, dtype=dtype, alpha=alpha, seed=seed,
                                       workers=workers, on_block=on_block, stats=stats,
                                       inputs=list(paths) + list(inputs), allowed_special=allowed_special)


def _encode_shards(tokenizer, paths: Sequence[str], output: str, engine=None, dtype: str = "auto",
                   alpha: float = -1.0, seed: Optional[int] = None, workers: int = 0, field: str = "text",
                   errors: str = "strict", shard_mb: Optional[int] = None, total: Optional[int] = None,
                   on_block=None, inputs: Sequence[str] = (), allowed_special=None):
    """Encode with an engine's tasks, a shard of the input each: into the token
    file ``output``, or a shard directory when it ends with ``/``. ``engine``
    ``None``: the local engine with ``workers`` threads (0: one per CPU)."""
    from .bulk_encoding import DEFAULT_SHARD_BYTES, encode_with_engine
    from .engine import LocalEngine
    from .token_files import is_shard_directory_path

    if shard_mb is not None:
        shard_bytes = shard_mb << 20
    elif is_shard_directory_path(output):
        shard_bytes = DEFAULT_SHARD_BYTES  # the files must not depend on the number of workers
    else:  # a few shards per worker, so that they finish together
        runners = engine.workers if engine is not None else (workers or 1)
        shard_bytes = max(1 << 20, min(DEFAULT_SHARD_BYTES, (total or DEFAULT_SHARD_BYTES) // (16 * runners)))
    blocks = _blocks(paths, field, errors, count=alpha >= 0)
    runner = engine if engine is not None else LocalEngine(workers)
    try:
        return encode_with_engine(tokenizer, blocks, output, runner, dtype=dtype, alpha=alpha, seed=seed,
                                  shard_bytes=shard_bytes, on_block=on_block, inputs=list(paths) + list(inputs),
                                  allowed_special=allowed_special)
    finally:
        if engine is None:
            runner.close()


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
    check_output(output, [file], option="-o")
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
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@_user_errors
def info(model, file, jsonl_field, errors) -> None:
    """Describe a model; with FILE, also its compression (bytes per token)."""
    tokenizer = _load_tokenizer(model)
    pieces = tokenizer._vocab.pieces
    longest = max(pieces, key=len)
    specials = tokenizer.special_tokens
    click.echo(f"vocab size:     {tokenizer.vocab_size} ({len(pieces)} pieces + {len(specials)} special tokens)")
    if len(specials) > 3:
        click.echo("special tokens: " + ", ".join(f"{t} ({i})" for t, i in list(specials.items())[3:]))
    click.echo(f"longest piece:  {len(longest)} bytes {longest.decode('utf-8', 'backslashreplace')!r}")
    multi = sum(1 for p in pieces if len(p) > 1)
    click.echo(f"multi-byte:     {multi} pieces")
    if file:
        from .normalization import nfc_utf8

        n_bytes = n_tokens = n_docs = 0
        # What encode and train read: each line with its newline, or each
        # JSONL record's text field.
        texts = Corpus([file], jsonl_field, errors)
        documents = iter(texts)
        try:
            while True:
                batch = [nfc_utf8(text) for _, text in zip(range(_BATCH), documents)]
                if not batch:
                    break
                n_docs += len(batch)
                n_bytes += sum(map(len, batch))
                n_tokens += sum(len(ids) for ids in tokenizer.encode_batch(batch))
        finally:
            texts.close()
        ratio = n_bytes / n_tokens if n_tokens else 0.0
        unit = "records" if (file[:-3] if file.endswith(".gz") else file).endswith(".jsonl") else "lines"
        click.echo(f"file:           {file}: {n_docs} {unit}, {n_bytes} bytes, {n_tokens} tokens")
        click.echo(f"bytes/token:    {ratio:.3f}")


@main.command()
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Base model file.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--words", type=click.Path(dir_okay=False),
              help="Add the words of a word-frequency list (lines of 'word count [tag]').")
@click.option("--train", "train_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Learn new pieces on this text file (.txt/.jsonl/.gz); repeatable.")
@click.option("--add", type=int, default=None,
              help="Number of pieces to add (required with --train; with --words: the words of most gain).")
@click.option("--text", "text_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Measure bytes/token on this file (default: the --train files); repeatable.")
@click.option("--algorithm", type=click.Choice(["bnlm", "compress"]), default="compress", show_default=True,
              help="Trainer that learns the candidate pieces (--train).")
@click.option("--jsonl-field", default="text", show_default=True, help="Text field of .jsonl records.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8.")
@click.option("-q", "--quiet", is_flag=True, help="No summary.")
@_user_errors
def extend(model, output, words, train_files, add, text_files, algorithm, jsonl_field, errors, quiet) -> None:
    """Add pieces to a model after its last id; every existing id keeps its piece."""
    from .convert import read_word_counts
    from .extend import bytes_per_token, extend_with_texts, extend_with_words

    if bool(words) == bool(train_files):
        raise click.UsageError("give exactly one of --words FILE and --train FILE")
    if train_files and add is None:
        raise click.UsageError("--train needs --add N (the number of pieces to learn)")
    base = _load_tokenizer(model)
    if words:
        _check_input(words)
        extension = extend_with_words(base, read_word_counts(words), add)
    else:
        extension = extend_with_texts(base, Corpus(train_files, jsonl_field, errors), add,
                                      algorithm=algorithm, verbose=not quiet)
    extension.tokenizer.save(output)
    if quiet:
        return
    click.echo(f"wrote {output}: {len(extension.added)} pieces added "
               f"(ids {extension.first_id}..{extension.tokenizer.vocab_size - 1}), "
               f"{extension.tokenizer.vocab_size} ids", err=True)
    if extension.kept:
        shown = ", ".join(_show_piece(p) for p in extension.kept[:10])
        more = f" and {len(extension.kept) - 10} more" if len(extension.kept) > 10 else ""
        click.echo(f"kept {len(extension.kept)} words that already are pieces: {shown}{more}", err=True)
    measure = list(text_files) or list(train_files)
    if measure:
        before = bytes_per_token(base, Corpus(measure, jsonl_field, errors))
        after = bytes_per_token(extension.tokenizer, Corpus(measure, jsonl_field, errors))
        old, new = before[0] / max(before[1], 1), after[0] / max(after[1], 1)
        click.echo(f"bytes/token:    {old:.3f} -> {new:.3f} ({(new / old - 1) * 100:+.1f} %) on "
                   f"{', '.join(measure)} ({before[1]} -> {after[1]} tokens)", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
