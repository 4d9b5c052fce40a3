"""Inputs a hostile but realistic user gives: files that shrink or grow while
they are read, one-shot inputs (pipes, ``<(...)``, ``/dev/stdin``), a single
string where a list of texts is expected, escaped lone surrogates in JSON
Lines, out-of-range numbers, and a standard output closed early."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bytepiece import Tokenizer
from bytepiece.cli import main

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
SONG = CORPORA / "song100.zh.txt"


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def python(code: str, *args: str, timeout: float = 300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout)


def _write_big(path: Path, megabytes: int) -> None:
    text = (CORPORA / "handbook.en-US.txt").read_bytes()
    with open(path, "wb") as handle:
        for _ in range(max(1, megabytes * 1000000 // len(text))):
            handle.write(text)


# -- files that change while they are read -----------------------------------------


def test_blocks_of_a_file_that_shrinks(tmp_path):
    """The cuts were found through a memory map: pages past the new end of the
    file faulted (SIGBUS, exit 135). Now a read comes up short, and the error
    says the file changed. Run in a child process so a crash fails the test."""
    path = tmp_path / "shrinks.txt"
    _write_big(path, 8)
    code = """
        import os, sys
        from bytepiece.inputs import CorpusError, _blocks
        path = sys.argv[1]
        blocks = _blocks([path], "text", "strict")
        first = next(blocks)
        os.truncate(path, first.size + 100)
        try:
            for block in blocks:
                pass
        except CorpusError as exc:
            print(exc)
            sys.exit(3)
    """
    proc = python(code, str(path))
    assert proc.returncode == 3, proc.stderr
    assert "changed while it was being read" in proc.stdout


def test_blocks_of_a_file_that_grows(tmp_path):
    path = tmp_path / "grows.txt"
    _write_big(path, 3)
    from bytepiece.inputs import CorpusError, _blocks

    blocks = _blocks([str(path)], "text", "strict")
    next(blocks)
    with open(path, "ab") as handle:
        handle.write(b"more text\n" * 100000)
    with pytest.raises(CorpusError, match="changed while it was being read"):
        list(blocks)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_encode_to_token_file_of_a_changing_file(tmp_path, tang_model, workers, change):
    path = tmp_path / "input.txt"
    _write_big(path, 24)
    out = tmp_path / "out"
    out.mkdir()
    code = """
        import os, sys
        from bytepiece import Tokenizer
        from bytepiece.cli import _encode_files
        from bytepiece.inputs import CorpusError
        model, path, output, workers, change = sys.argv[1:]
        state = []
        def on_block(*counts):
            if not state:
                state.append(1)
                if change == "shrink":
                    os.truncate(path, 1000000)
                else:
                    with open(path, "ab") as handle:
                        handle.write(b"appended\\n" * 1000)
        try:
            _encode_files(Tokenizer(model), [path], output, workers=int(workers), on_block=on_block)
        except CorpusError as exc:
            print(exc)
            sys.exit(3)
    """
    proc = python(code, tang_model, str(path), str(out / "t.npy"), str(workers), change)
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-2000:])
    assert "changed while it was being read" in proc.stdout
    assert os.listdir(out) == []


# -- one-shot inputs for train -------------------------------------------------------


def _model_of(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_train_on_one_shot_inputs(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    args = ["--vocab-size", "400", "--order", "4", "-q"]
    reference = tmp_path / "reference.model"
    assert run("train", str(SONG), "-o", str(reference), *args).exit_code == 0
    bnlm = [sys.executable, "-m", "bytepiece.cli", "train"]
    # A named pipe: the second pass used to wait forever for a new writer.
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["/bin/sh", "-c", f'cat "{SONG}" > "{fifo}"'])
    proc = subprocess.run(bnlm + [str(fifo), "-o", str(tmp_path / "fifo.model"), *args],
                          capture_output=True, text=True, timeout=300)
    writer.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _model_of(tmp_path / "fifo.model") == _model_of(reference)
    # /dev/stdin on a pipe, and a pipe opened as /dev/fd/N (what <(...) gives).
    with open(SONG, "rb") as source:
        feeder = subprocess.Popen(["cat"], stdin=source, stdout=subprocess.PIPE)
        proc = subprocess.run(bnlm + ["/dev/stdin", "-o", str(tmp_path / "stdin.model"), *args],
                              stdin=feeder.stdout, capture_output=True, text=True, timeout=300)
        feeder.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _model_of(tmp_path / "stdin.model") == _model_of(reference)
    read_end, write_end = os.pipe()
    with open(SONG, "rb") as source:
        feeder = subprocess.Popen(["cat"], stdin=source, stdout=write_end)
    os.close(write_end)
    proc = subprocess.run(bnlm + [f"/dev/fd/{read_end}", "-o", str(tmp_path / "fd.model"), *args],
                          capture_output=True, text=True, timeout=300, pass_fds=(read_end,))
    os.close(read_end)
    feeder.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _model_of(tmp_path / "fd.model") == _model_of(reference)


def test_corpus_reads_a_pipe_on_every_pass():
    """A one-shot input is copied aside on the first pass and read again from
    there, small ones (that a write buffer would hold back) included."""
    import threading

    from bytepiece.inputs import Corpus

    for payload in (b"c\nd\n", b"x" * 70000 + b"\ny\n", b""):
        read_end, write_end = os.pipe()

        def feed(end=write_end, data=payload):
            os.write(end, data)
            os.close(end)

        writer = threading.Thread(target=feed)
        writer.start()
        corpus = Corpus([f"/dev/fd/{read_end}"])
        try:
            first, second = list(corpus), list(corpus)
        finally:
            corpus.close()
            os.close(read_end)
            writer.join()
        assert first == second == payload.decode().splitlines(keepends=True)


# -- a single string where texts are expected ----------------------------------------


def test_single_string_is_not_a_corpus(tmp_path, tang_model):
    from bytepiece.pipelines import encode_to_token_file
    from bytepiece.trainer import Trainer

    text = SONG.read_text(encoding="utf-8")
    for algorithm in ("bnlm", "compress"):
        with pytest.raises(TypeError, match="list of texts"):
            Trainer(max_vocab_size=300, algorithm=algorithm, verbose=False).train(text)
    with pytest.raises(TypeError, match="iterable of texts"):
        encode_to_token_file(Tokenizer(tang_model), "hello", tmp_path / "t.npy")
    assert not (tmp_path / "t.npy").exists()


# -- JSON Lines ----------------------------------------------------------------------


def test_info_reads_the_jsonl_text_field(tmp_path, tang_model):
    texts = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]
    jsonl = tmp_path / "poem.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)),
                     encoding="utf-8")
    result = run("info", "-m", tang_model, str(jsonl))
    assert result.exit_code == 0, result.output
    tok = Tokenizer(tang_model)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(tok.encode(t)) for t in texts)
    assert f"2 records, {n_bytes} bytes, {n_tokens} tokens" in result.output
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts), encoding="utf-8")
    result = run("info", "-m", tang_model, str(other), "--jsonl-field", "body")
    assert f"2 records, {n_bytes} bytes, {n_tokens} tokens" in result.output


def test_escaped_lone_surrogate_in_jsonl(tmp_path, tang_model):
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"text": "ok"}\n{"text": "a\\ud800b"}\n', encoding="utf-8")
    tok = Tokenizer(tang_model)
    # strict: one line naming the file and line, whichever command.
    for args in (["encode", "-m", tang_model, str(jsonl)],
                 ["encode", "-m", tang_model, str(jsonl), "-o", str(tmp_path / "t.npy"), "-q"],
                 ["train", str(jsonl), "-o", str(tmp_path / "m"), "--vocab-size", "300", "-q"]):
        one_line_error(run(*args), "s.jsonl, line 2", "surrogate", "--errors replace")
    # replace: U+FFFD, as for bad bytes.
    result = run("encode", "-m", tang_model, str(jsonl), "--errors", "replace")
    assert result.exit_code == 0, result.output
    assert [int(i) for i in result.output.splitlines()[1].split()] == tok.encode("a\ufffdb")
    out = tmp_path / "t.npy"
    result = run("encode", "-m", tang_model, str(jsonl), "-o", str(out), "--errors", "replace", "-q")
    assert result.exit_code == 0, result.output
    assert np.load(out).tolist() == tok.encode("ok") + [2] + tok.encode("a\ufffdb") + [2]
    result = run("train", str(jsonl), "-o", str(tmp_path / "m"), "--vocab-size", "300", "-q",
                 "--errors", "replace", "--min-count", "1")
    assert result.exit_code == 0, result.output


# -- command-line values -------------------------------------------------------------


def test_trainer_refuses_a_min_count_the_core_cannot_take():
    from bytepiece.trainer import Trainer

    with pytest.raises(ValueError, match="min_count must be at most"):
        Trainer(min_count=3_000_000_000)


@pytest.mark.parametrize("args, flag", [
    (["--min-count", "3000000000"], "--min-count"),
    (["--workers", "99999999999999999999"], "--workers"),
    (["--vocab-size", "100"], "--vocab-size"),
    (["--order", "9"], "--order"),
    (["--max-piece-length", "0"], "--max-piece-length"),
    (["--vocab-size", "500"], "--vocab-size"),   # twice: 300 is given below too
])
def test_train_errors_name_the_flag(tmp_path, args, flag):
    result = run("train", str(SONG), "-o", str(tmp_path / "m"), "--vocab-size", "500", *args, "-q")
    one_line_error(result, flag)
    assert "max_vocab_size" not in result.output and "min_count" not in result.output


@pytest.mark.parametrize("alpha", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("output", [False, True])
def test_encode_alpha_must_be_finite(tmp_path, tang_model, alpha, output):
    extra = ["-o", str(tmp_path / "t.npy"), "-q"] if output else []
    one_line_error(run("encode", "-m", tang_model, str(SONG), "--alpha", alpha, *extra), "--alpha")
    assert not (tmp_path / "t.npy").exists()


def test_encode_workers_are_bounded(tmp_path, tang_model):
    from bytepiece.cli import _workers
    from bytepiece.pipelines import cpu_count

    assert _workers(0) == cpu_count()
    assert _workers(10000) <= max(2, cpu_count())
    result = run("encode", "-m", tang_model, str(SONG), "-o", str(tmp_path / "t.npy"), "--workers", "1000", "-q")
    assert result.exit_code == 0, result.output


def test_compress_on_an_empty_corpus_and_a_huge_vocabulary(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    for algorithm in ("bnlm", "compress"):
        result = run("train", str(empty), "-o", str(tmp_path / f"{algorithm}.model"), "--vocab-size", "300",
                     "--algorithm", algorithm, "-q")
        one_line_error(result, "corpus is empty")
        assert not (tmp_path / f"{algorithm}.model").exists()
    small = tmp_path / "small.txt"
    small.write_text(SONG.read_text(encoding="utf-8")[:3000], encoding="utf-8")
    result = run("train", str(small), "-o", str(tmp_path / "big.model"), "--vocab-size", "100000000",
                 "--algorithm", "compress", "-q")
    assert result.exit_code == 0, result.output
    assert len(Tokenizer(str(tmp_path / "big.model"))._vocab) >= 256


def test_decode_does_not_suggest_a_missing_option(tmp_path, tang_model):
    bad = tmp_path / "ids.txt"
    bad.write_bytes(b"\n\xff\n")
    result = run("decode", "-m", tang_model, str(bad))
    one_line_error(result, "ids.txt, line 2", "UTF-8")
    assert "--errors" not in result.output


def test_closed_stdout_ends_quietly(tang_model):
    """``bytepiece encode ... | head`` printed ``Error: [Errno 32] Broken pipe``."""
    proc = subprocess.Popen([sys.executable, "-m", "bytepiece.cli", "encode", "-m", tang_model,
                             str(CORPORA / "handbook.en-US.txt")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert err == b"", err
    assert proc.returncode in (0, 1)


def test_entropy_is_never_negative(tang_model):
    tok = Tokenizer(tang_model)
    lines = (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(True)[:400]
    values = [tok.entropy(line, alpha) for line in lines for alpha in (50.0, 1e4)]
    assert min(values) >= 0.0
    assert any(v == 0.0 for v in values)  # these sharp alphas leave no uncertainty on some lines
