"""Every command and function that writes a file, against hostile output paths.

The same set of paths for all of them: one of the inputs (the model
included, also spelled through a symlink or ``./``), a symlink to another
file, a missing directory, a read-only directory, a named pipe, a
directory, and ``-``. A refused path gives exit status 1 and one line
naming the path as given (or a ``ValueError``/``OSError`` from Python),
leaves the inputs untouched and no temporary file behind; a symlink is
written through. Outputs get the mode ``open()`` would give.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bytepiece import Tokenizer
from bytepiece.cli import main

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def leftovers(*directories: Path):
    return [name for d in directories if d.is_dir() for name in os.listdir(d) if name.startswith(".tmp-")]


@pytest.fixture
def workspace(tmp_path, tang_model):
    """An input corpus, a word list and a model, each a file of its own."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text((CORPORA / "song100.zh.txt").read_text(encoding="utf-8"), encoding="utf-8")
    words = tmp_path / "words.txt"
    words.write_text("中国 125 ns\n中国人 400 n\n人 200\n", encoding="utf-8")
    model = tmp_path / "input.model"
    model.write_bytes(Path(tang_model).read_bytes())
    return tmp_path


def commands(ws: Path, out: str):
    """``(name, argv)`` of every output-writing command, writing to ``out``."""
    corpus, words, model = str(ws / "corpus.txt"), str(ws / "words.txt"), str(ws / "input.model")
    return {
        "train": ["train", corpus, "-o", out, "--vocab-size", "400", "--order", "3", "-q"],
        "train-compress": ["train", corpus, "-o", out, "--vocab-size", "400", "--algorithm", "compress",
                           "--max-piece-length", "6", "-q"],
        "encode-1": ["encode", "-m", model, corpus, "-o", out, "--workers", "1", "-q"],
        "encode-2": ["encode", "-m", model, corpus, "-o", out, "--workers", "2", "-q"],
        "import-words": ["import-words", words, "-o", out, "-q"],
    }


def api_writers(ws: Path):
    """``name -> write(out)`` of every Python function that writes a file."""
    from bytepiece.convert import convert_to_sentencepiece, export_huggingface, import_words
    from bytepiece.bulk_encoding import encode_to_token_file
    from bytepiece.trainer import Trainer

    model, words, corpus = str(ws / "input.model"), str(ws / "words.txt"), str(ws / "corpus.txt")

    def save(out):
        trainer = Trainer(order=3, max_vocab_size=300, verbose=False)
        trainer.train(["你好 hello 你好 hello\n"] * 5)
        trainer.save(out)

    def token_file(out):
        with open(corpus, encoding="utf-8") as handle:
            encode_to_token_file(Tokenizer(model), handle, out)

    return {
        "Trainer.save": save,
        "convert_to_sentencepiece": lambda out: convert_to_sentencepiece(Tokenizer(model), out),
        "export_huggingface": lambda out: export_huggingface(model, out),
        "import_words": lambda out: import_words(words, out),
        "encode_to_token_file": token_file,
    }


COMMANDS = ["train", "train-compress", "encode-1", "encode-2", "import-words"]
INPUTS = {"train": "corpus.txt", "train-compress": "corpus.txt", "encode-1": "input.model",
          "encode-2": "corpus.txt", "import-words": "words.txt"}


def snapshot(ws: Path):
    return {name: (ws / name).read_bytes() for name in ("corpus.txt", "words.txt", "input.model")}


def refused(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def run(argv):
    return CliRunner().invoke(main, argv)


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_refuse_hostile_outputs(workspace, command):
    ws = workspace
    before = snapshot(ws)
    own_input = INPUTS[command]
    # An input, spelled as given, with ./ and through a symlink.
    os.symlink(ws / own_input, ws / "alias")
    for spelling in (str(ws / own_input), str(ws) + "/./" + own_input, str(ws / "alias")):
        refused(run(commands(ws, spelling)[command]), spelling, "also an input")
    if command.startswith("encode"):  # the model is an input too, whichever file list
        refused(run(commands(ws, str(ws / "input.model"))[command]), "input.model", "also an input")
    # A missing directory, named as given, found before any work.
    missing = str(ws / "no" / "such" / "out")
    refused(run(commands(ws, missing)[command]), missing, "does not exist")
    # A named pipe, a directory, standard output.
    fifo = ws / "fifo"
    os.mkfifo(fifo)
    refused(run(commands(ws, str(fifo))[command]), str(fifo), "named pipe")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (ws / "adir").mkdir()
    refused(run(commands(ws, str(ws / "adir"))[command]), "is a directory")
    refused(run(commands(ws, "-")[command]), "-o -")
    assert snapshot(ws) == before
    assert leftovers(ws) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_write_through_symlinks_and_keep_modes(workspace, command):
    ws = workspace
    target = ws / "real.out"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link = ws / "link.out"
    os.symlink(target, link)
    result = run(commands(ws, str(link))[command])
    assert result.exit_code == 0, result.output
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # as open() would leave it
    assert leftovers(ws) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_read_only_directory(workspace, command):
    ws = workspace
    locked = ws / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        out = str(locked / "out")
        result = run(commands(ws, out)[command])
        if IS_ROOT:  # permissions do not stop root: the write must then succeed, whole
            assert result.exit_code == 0, result.output
            assert os.path.getsize(out) > 0
        else:
            refused(result, out, "not writable")
            assert os.listdir(locked) == []
        assert leftovers(locked) == []
    finally:
        os.chmod(locked, 0o755)


def test_train_checks_the_output_before_training(workspace, monkeypatch):
    from bytepiece.trainer import Trainer

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(Trainer, "train", no_training)
    missing = str(workspace / "nodir" / "m.model")
    result = run(["train", str(workspace / "corpus.txt"), "-o", missing, "--vocab-size", "300",
                  "--vocab-size", "400", "-q"])
    refused(result, "nodir", "does not exist")
    assert ".tmp-" not in result.output


@pytest.mark.parametrize("name", ["Trainer.save", "convert_to_sentencepiece", "export_huggingface",
                                  "import_words", "encode_to_token_file"])
def test_python_writers_refuse_hostile_outputs(workspace, name):
    ws = workspace
    write = api_writers(ws)[name]
    before = snapshot(ws)
    own = {"convert_to_sentencepiece": "input.model", "export_huggingface": "input.model",
           "import_words": "words.txt", "encode_to_token_file": "corpus.txt"}.get(name)
    if own is not None:
        with pytest.raises(ValueError, match="also an input"):
            write(str(ws / own))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write(str(ws / "missing" / "out"))
    os.mkfifo(ws / "fifo")
    with pytest.raises(ValueError, match="named pipe"):
        write(str(ws / "fifo"))
    assert snapshot(ws) == before
    target = ws / "real.out"
    target.write_bytes(b"old")
    os.symlink(target, ws / "link.out")
    write(str(ws / "link.out"))
    assert os.path.islink(ws / "link.out") and target.read_bytes() != b"old"
    assert leftovers(ws) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_outputs_get_the_umask_mode(tmp_path, umask):
    from bytepiece.model_io import save_model
    from bytepiece.token_files import TokenFileWriter

    counts = {bytes([b]): 1 for b in range(256)}
    old = os.umask(umask)
    try:
        save_model(counts, tmp_path / "new.model")
        with TokenFileWriter(tmp_path / "new.npy", "<u2") as writer:
            writer.write([1, 2, 3])
        existing = tmp_path / "existing.model"
        existing.write_bytes(b"")
        os.chmod(existing, 0o644)
        save_model(counts, existing)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.model").st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "new.npy").st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o644
    assert np.load(tmp_path / "new.npy").tolist() == [1, 2, 3]


# -- SIGTERM -----------------------------------------------------------------------


def _big_corpus(path: Path, megabytes: int) -> None:
    text = (CORPORA / "handbook.en-US.txt").read_bytes()
    with open(path, "wb") as handle:
        for _ in range(max(1, megabytes * 1000000 // len(text))):
            handle.write(text)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_during_encode_leaves_no_file(tmp_path, tang_model, workers):
    import time

    corpus = tmp_path / "big.txt"
    _big_corpus(corpus, 60)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bytepiece.cli", "encode", "-m", tang_model, str(corpus),
                             "-o", str(out / "tokens.npy"), "--workers", workers, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not leftovers(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leftovers(out), "the run never started writing"
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert os.listdir(out) == []


def test_sigterm_during_train_leaves_no_file(tmp_path):
    import time

    import random

    # Lines that never repeat (words shuffled), so that no trainer can skip
    # work on repeated text and finish before the signal.
    rng = random.Random(0)
    lines = (CORPORA / "handbook.en-US.txt").read_text(encoding="utf-8").splitlines()
    corpus = tmp_path / "big.txt"
    with open(corpus, "w", encoding="utf-8") as handle:
        for _ in range(8):
            for line in lines:
                words = line.split()
                rng.shuffle(words)
                handle.write(" ".join(words) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bytepiece.cli", "train", str(corpus), "-o",
                             str(out / "m.model"), "--vocab-size", "8000", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert proc.poll() is None, "training ended before the signal"
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert os.listdir(out) == []


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_token_file_writer_appends_shard_files(tmp_path, monkeypatch, kernel_copy):
    from bytepiece.token_files import TokenFileWriter

    if not kernel_copy:  # a file system pair without copy_file_range
        def refused(*args):
            raise OSError(18, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
    parts = [np.arange(n, dtype="<u2") * 3 for n in (5, 0, 70_000, 1)]
    for i, part in enumerate(parts):
        with TokenFileWriter(tmp_path / f"part{i}.npy", "<u2", durable=False) as writer:
            writer.write(part)
    with TokenFileWriter(tmp_path / "all.npy", "<u2") as writer:
        writer.write([7, 8])
        for i, part in enumerate(parts):
            writer.append_file(tmp_path / f"part{i}.npy", len(part))
            writer.write([9])
    assert np.array_equal(np.load(tmp_path / "all.npy"),
                          np.concatenate([[7, 8]] + [np.append(p, 9) for p in parts]))
    with pytest.raises(ValueError, match="part0.npy: ends 2 bytes short of 6 ids"):
        with TokenFileWriter(tmp_path / "short.npy", "<u2") as writer:
            writer.append_file(tmp_path / "part0.npy", 6)
    assert not (tmp_path / "short.npy").exists()
