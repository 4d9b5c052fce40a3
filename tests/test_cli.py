"""The ``bytepiece`` command line, through click's CliRunner."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bytepiece.cli import main

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
POEMS = [str(CORPORA / "tang300.zh.txt"), str(CORPORA / "song100.zh.txt")]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "poems.model"
    result = CliRunner().invoke(main, ["train", *POEMS, "-o", str(path), "--vocab-size", "1500", "-q"])
    assert result.exit_code == 0, result.output
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_train_matches_golden(tmp_path):
    if not (REFERENCE / "train").is_dir():
        pytest.skip("reference data not available")
    out = tmp_path / "poems.o6.m2.model"
    result = run("train", *POEMS, "-o", str(out), "--vocab-size", "2000", "--vocab-size", "1000",
                 "--workers", "2", "--quiet", "--algorithm", "bnlm")
    assert result.exit_code == 0, result.output
    for size in (2000, 1000):
        mine = json.loads((tmp_path / f"poems.o6.m2.model.{size}").read_text(encoding="utf-8"))
        ref = json.loads((REFERENCE / "train" / f"poems.o6.m2.model.{size}").read_text(encoding="utf-8"))
        assert mine == ref


def test_train_options_match_golden(tmp_path):
    if not (REFERENCE / "train").is_dir():
        pytest.skip("reference data not available")
    out = tmp_path / "m"
    result = run("train", *POEMS, "-o", str(out), "--vocab-size", "1500", "--order", "4", "--min-count", "3",
                 "--no-ensure-unicode", "--max-piece-length", "8", "-q", "--algorithm", "bnlm")
    assert result.exit_code == 0, result.output
    ref = json.loads((REFERENCE / "train" / "poems.o4.noeu.model").read_text(encoding="utf-8"))
    assert json.loads(out.read_text(encoding="utf-8")) == ref


@pytest.mark.parametrize("algorithm", ["compress", "bnlm"])
def test_txt_gz_jsonl_and_stdin_give_the_same_model(tmp_path, algorithm):
    lines = (CORPORA / "song100.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    gz = tmp_path / "c.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.writelines(lines)
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps({"body": line, "id": i}) + "\n" for i, line in enumerate(lines)),
                     encoding="utf-8")
    models = []
    for name, args, stdin in [
        ("txt", [str(CORPORA / "song100.zh.txt")], None),
        ("gz", [str(gz)], None),
        ("jsonl", [str(jsonl), "--jsonl-field", "body"], None),
        ("stdin", ["-"], "".join(lines)),
    ]:
        out = tmp_path / f"{name}.model"
        result = run("train", *args, "-o", str(out), "--vocab-size", "600", "-q", "--algorithm", algorithm,
                     input=stdin)
        assert result.exit_code == 0, (name, result.output)
        models.append(json.loads(out.read_text(encoding="utf-8")))
    assert models[0] == models[1] == models[2] == models[3]


def test_train_user_errors(tmp_path):
    result = run("train", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "m"), "--vocab-size", "500")
    assert result.exit_code != 0
    assert "missing.txt" in result.output and "Traceback" not in result.output

    bad = tmp_path / "bad.txt"
    bad.write_bytes("fine line\n".encode() * 3 + b"broken \xff line\n")
    result = run("train", str(bad), "-o", str(tmp_path / "m"), "--vocab-size", "500", "-q")
    assert result.exit_code == 1
    assert "bad.txt, line 4" in result.output and "UTF-8" in result.output
    assert len(result.output.strip().splitlines()) == 1

    result = run("train", str(bad), "-o", str(tmp_path / "m"), "--vocab-size", "500", "-q", "--errors", "replace")
    assert result.exit_code == 0, result.output

    result = run("train", str(bad), "-o", str(tmp_path / "m"), "--vocab-size", "100", "-q")
    assert result.exit_code == 1 and "--vocab-size" in result.output and "max_vocab_size" not in result.output

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run("train", str(empty), "-o", str(tmp_path / "m"), "--vocab-size", "500", "-q")
    assert result.exit_code == 1 and "empty" in result.output

    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "a"}\n{"other": 1}\n')
    result = run("train", str(jsonl), "-o", str(tmp_path / "m"), "--vocab-size", "500", "-q")
    assert result.exit_code == 1 and "x.jsonl, line 2" in result.output


def test_encode_decode_roundtrip(model, tmp_path):
    text = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\nhello world\n"
    encoded = run("encode", "-m", model, input=text)
    assert encoded.exit_code == 0, encoded.output
    lines = encoded.output.splitlines()
    assert len(lines) == 4 and lines[2] == ""
    assert all(int(tok) > 2 for line in lines for tok in line.split())
    decoded = run("decode", "-m", model, input=encoded.output)
    assert decoded.exit_code == 0, decoded.output
    assert decoded.output == text

    source = tmp_path / "in.txt"
    source.write_text(text, encoding="utf-8")
    assert run("encode", "-m", model, str(source)).output == encoded.output


def test_encode_pieces_and_sampling(model):
    text = "床前明月光，疑是地上霜\n"
    pieces = run("encode", "-m", model, "--format", "pieces", input=text)
    assert pieces.exit_code == 0, pieces.output
    assert "".join(pieces.output.split()) == text.strip()
    first = run("encode", "-m", model, "--alpha", "0.1", "--seed", "7", input=text * 5)
    again = run("encode", "-m", model, "--alpha", "0.1", "--seed", "7", input=text * 5)
    assert first.exit_code == 0, first.output
    assert first.output == again.output
    assert len(first.output.splitlines()) == 5


def test_decode_bad_ids(model):
    result = run("decode", "-m", model, input="5 6\n99999999\n")
    assert result.exit_code == 1
    assert "line 2" in result.output and "Traceback" not in result.output
    result = run("decode", "-m", model, input="abc\n")
    assert result.exit_code == 1


def test_info(model):
    result = run("info", "-m", model)
    assert result.exit_code == 0, result.output
    assert "vocab size:     1500" in result.output
    assert "longest piece" in result.output
    result = run("info", "-m", model, POEMS[1])
    assert result.exit_code == 0, result.output
    ratio = float(result.output.split("bytes/token:")[1])
    assert ratio > 1.0


def test_missing_model(tmp_path):
    result = run("encode", "-m", str(tmp_path / "nope.model"), input="x\n")
    assert result.exit_code != 0
    assert "nope.model" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [[], ["train"], ["encode"], ["decode"], ["info"], ["import-words"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) < 40


# -- token files (encode -o tokens.npy) -----------------------------------------

import os  # noqa: E402

import numpy as np  # noqa: E402

from bytepiece import inputs as inputs_module  # noqa: E402
from bytepiece.tokenizer import Tokenizer  # noqa: E402


def split_documents(tokens: np.ndarray):
    """The id runs between <eos> marks (the file must end with one)."""
    ids = np.asarray(tokens)
    assert len(ids) == 0 or ids[-1] == 2
    ends = np.flatnonzero(ids == 2)
    starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else []
    return [ids[s:e] for s, e in zip(starts, ends)]


def leftovers(directory: Path):
    return [name for name in os.listdir(directory) if name.startswith(".tmp-")]


def test_encode_npy_round_trips_every_line(model, tmp_path):
    tok = Tokenizer(model)
    out = tmp_path / "tokens.npy"
    result = run("encode", "-m", model, *POEMS, "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    tokens = np.load(out, mmap_mode="r")
    assert tokens.dtype == np.uint16 and tokens.ndim == 1
    lines = []
    for path in POEMS:
        lines += Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    documents = split_documents(tokens)
    assert len(documents) == len(lines)
    assert [tok.decode(d) for d in documents] == lines
    expected = np.concatenate([tok.encode(line, add_eos=True, out_type=np.ndarray) for line in lines])
    assert np.array_equal(tokens, expected)
    assert leftovers(tmp_path) == []


def test_encode_npy_independent_of_workers_and_batching(model, tmp_path, monkeypatch):
    args = ["encode", "-m", model, *POEMS, "--alpha", "0.1", "--seed", "11", "-q"]
    outputs = []
    for workers, block in [(1, None), (2, None), (2, 97), (3, 5000)]:
        if block:
            monkeypatch.setattr(inputs_module, "_BLOCK", block)
        out = tmp_path / f"w{workers}-{block}.npy"
        result = run(*args, "--workers", str(workers), "-o", str(out))
        assert result.exit_code == 0, result.output
        outputs.append(np.load(out))
    for other in outputs[1:]:
        assert np.array_equal(outputs[0], other)
    # Document k of the corpus is drawn from the stream (seed, k).
    tok = Tokenizer(model)
    lines = []
    for path in POEMS:
        lines += Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    expected = np.concatenate(tok.encode_batch(lines, add_eos=True, alpha=0.1, seed=11, out_type=np.ndarray))
    assert np.array_equal(outputs[0], expected)
    deterministic = np.load(tmp_path / "w1-None.npy")
    out = tmp_path / "seed12.npy"
    assert run(*args[:-3], "--seed", "12", "-q", "-o", str(out)).exit_code == 0
    assert not np.array_equal(np.load(out), deterministic)
    assert [tok.decode(d) for d in split_documents(np.load(out))] == lines


def test_encode_npy_inputs_txt_gz_jsonl_stdin_crlf_nfc(model, tmp_path):
    tok = Tokenizer(model)
    lines = ["Cafe\u0301 au lait\n", "\u0301leading mark\n", "\n", "床前明月光\n", "last line, no newline"]
    nfc = ["Café au lait\n", "\u0301leading mark\n", "\n", "床前明月光\n", "last line, no newline"]
    txt = tmp_path / "a.txt"
    txt.write_bytes("".join(lines).encode("utf-8"))
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("".join(lines).replace("\n", "\r\n").encode("utf-8"))
    gz = tmp_path / "a.txt.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write("".join(lines).encode("utf-8"))
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps({"body": line, "n": i}) + "\n\n" for i, line in enumerate(lines)),
                     encoding="utf-8")
    expected = np.concatenate([tok.encode(line, add_eos=True, out_type=np.ndarray) for line in nfc])
    for name, args, stdin in [
        ("txt", [str(txt)], None),
        ("crlf", [str(crlf)], None),
        ("gz", [str(gz)], None),
        ("jsonl", [str(jsonl), "--jsonl-field", "body"], None),
        ("stdin", ["-"], "".join(lines)),
        ("default-stdin", [], "".join(lines)),
    ]:
        out = tmp_path / f"{name}.npy"
        result = run("encode", "-m", model, *args, "-o", str(out), "-q", input=stdin)
        assert result.exit_code == 0, (name, result.output)
        tokens = np.load(out, mmap_mode="r")
        assert np.array_equal(tokens, expected), name
        assert [tok.decode(d) for d in split_documents(tokens)] == nfc, name


def test_encode_npy_dtype_progress_and_empty_input(model, tmp_path):
    out = tmp_path / "t32.npy"
    result = run("encode", "-m", model, POEMS[1], "-o", str(out), "--dtype", "uint32")
    assert result.exit_code == 0, result.output
    assert np.load(out).dtype == np.uint32
    assert "/s" in result.stderr and "tokens" in result.stderr and "wrote" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "empty.npy"
    result = run("encode", "-m", model, str(empty), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert np.load(out, mmap_mode="r").shape == (0,)


def test_encode_npy_errors_leave_no_partial_file(model, tmp_path, monkeypatch):
    out = tmp_path / "tokens.npy"
    out.write_bytes(b"previous content")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("good line\n".encode() * 500 + b"broken \xff here\n")
    monkeypatch.setattr(inputs_module, "_BLOCK", 256)  # the error comes after several batches
    result = run("encode", "-m", model, str(bad), "-o", str(out), "-q")
    assert result.exit_code == 1
    assert "bad.txt, line 501" in result.output and "byte 7" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert out.read_bytes() == b"previous content"
    assert leftovers(tmp_path) == []

    result = run("encode", "-m", model, str(bad), "-o", str(out), "-q", "--errors", "replace")
    assert result.exit_code == 0, result.output
    assert Tokenizer(model).decode(split_documents(np.load(out))[-1]) == "broken \ufffd here\n"

    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"text": "a"}\n{"other": 1}\n')
    result = run("encode", "-m", model, str(jsonl), "-o", str(tmp_path / "j.npy"), "-q")
    assert result.exit_code == 1 and "x.jsonl, line 2" in result.output
    assert not (tmp_path / "j.npy").exists()


def test_encode_npy_interrupted_leaves_no_partial_file(model, tmp_path, monkeypatch):
    out = tmp_path / "tokens.npy"
    calls = []
    original = Tokenizer._encode_packed

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Tokenizer, "_encode_packed", interrupted)
    monkeypatch.setattr(inputs_module, "_BLOCK", 512)
    result = run("encode", "-m", model, *POEMS, "-o", str(out), "-q", "--workers", "1")
    assert result.exit_code != 0 and len(calls) == 3
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_encode_npy_interrupted_with_workers_leaves_no_partial_file(model, tmp_path, monkeypatch):
    # Ctrl-C reaches the parent (the workers ignore it) while it writes.
    from bytepiece.pipelines import TokenFileWriter

    out = tmp_path / "tokens.npy"
    calls = []
    original = TokenFileWriter.write

    def interrupted(self, ids):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, ids)

    monkeypatch.setattr(TokenFileWriter, "write", interrupted)
    monkeypatch.setattr(inputs_module, "_BLOCK", 512)
    result = run("encode", "-m", model, *POEMS, "-o", str(out), "-q", "--workers", "2")
    assert result.exit_code != 0 and len(calls) == 3
    assert not out.exists()
    assert leftovers(tmp_path) == []


def mixed_inputs(tmp_path):
    """A .txt with CRLF, NFD and blank lines, a .jsonl with blank and whitespace-only
    lines, and a .gz: every reader and every way of counting documents."""
    lines = ["Cafe\u0301 au lait\r\n", "\r\n", "床前明月光\r", "plain ascii\n"] * 40 + ["no newline"]
    txt = tmp_path / "mixed.txt"
    txt.write_bytes("".join(lines).encode("utf-8"))
    jsonl = tmp_path / "mixed.jsonl"
    records = []
    for i, line in enumerate(lines):
        records.append(json.dumps({"text": line, "i": i}, ensure_ascii=i % 2 == 0))
        records.append(["", "   ", "\u3000", "\x1c"][i % 4])  # blank lines, skipped
    jsonl.write_bytes(("\n".join(records) + "\r\n").encode("utf-8"))
    gz = tmp_path / "mixed.txt.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write("".join(reversed(lines)).encode("utf-8"))
    return [str(txt), str(jsonl), str(gz)]


@pytest.mark.parametrize("sampling", [False, True])
def test_encode_npy_same_file_for_one_and_two_workers(model, tmp_path, monkeypatch, sampling):
    inputs = mixed_inputs(tmp_path)
    args = ["encode", "-m", model, *inputs, *POEMS, "-q"]
    if sampling:
        args += ["--alpha", "0.1", "--seed", "7"]
    outputs = {}
    for workers, block in [(1, None), (2, None), (2, 200), (3, 64)]:
        if block:
            monkeypatch.setattr(inputs_module, "_BLOCK", block)
        out = tmp_path / f"w{workers}-{block}.npy"
        result = run(*args, "--workers", str(workers), "-o", str(out))
        assert result.exit_code == 0, result.output
        outputs[workers, block] = np.load(out)
    reference = outputs[1, None]
    for key, other in outputs.items():
        assert np.array_equal(reference, other), key
    tok = Tokenizer(model)
    texts = []
    for path in inputs[:1] + inputs[2:] + POEMS:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:  # universal newlines
            texts.append(handle.read().splitlines(keepends=True))
    jsonl = [json.loads(line)["text"] for line in Path(inputs[1]).read_text(encoding="utf-8").split("\n")
             if line.strip()]
    documents = texts[0] + jsonl + texts[1] + texts[2] + texts[3]
    expected = tok.encode_batch(documents, add_eos=True, out_type=np.ndarray,
                                **({"alpha": 0.1, "seed": 7} if sampling else {}))
    assert np.array_equal(reference, np.concatenate(expected))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_npy_worker_errors_name_file_and_line(model, tmp_path, monkeypatch, workers):
    out = tmp_path / "tokens.npy"
    out.write_bytes(b"previous content")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("good line\n".encode() * 500 + b"broken \xff here\n" + "good\n".encode() * 300
                    + b"\xfe second error\n")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "fine"}\n' * 300 + '{"text": 3}\n')
    gz = tmp_path / "bad.txt.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write(bad.read_bytes())
    monkeypatch.setattr(inputs_module, "_BLOCK", 256)  # the errors come after several blocks
    for inputs, fragment in [([bad], "bad.txt, line 501: not valid UTF-8"),
                             ([POEMS[1], gz], "bad.txt.gz, line 501: not valid UTF-8"),
                             ([jsonl, bad], "bad.jsonl, line 301: field 'text' is int")]:
        result = run("encode", "-m", model, *map(str, inputs), "-o", str(out), "-q",
                     "--workers", str(workers), "--alpha", "0.1")
        assert result.exit_code == 1, result.output
        assert fragment in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert out.read_bytes() == b"previous content"
        assert leftovers(tmp_path) == []


def test_encode_npy_worker_that_dies_is_a_clean_error(model, tmp_path, monkeypatch):
    import signal

    def killed(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(Tokenizer, "_encode_packed", killed)  # inherited by the forked workers
    out = tmp_path / "tokens.npy"
    result = run("encode", "-m", model, *POEMS, "-o", str(out), "-q", "--workers", "2")
    assert result.exit_code == 1, result.output
    assert "worker process died" in result.output and "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_block_document_counts_match_the_documents(tmp_path, monkeypatch):
    inputs = mixed_inputs(tmp_path)
    monkeypatch.setattr(inputs_module, "_BLOCK", 100)
    blocks = list(inputs_module._blocks(inputs, "text", "strict", count=True))
    assert len(blocks) > 30
    for block in blocks:
        data, offsets = block.prepare()
        assert block.count == len(offsets) - 1
        if not block.jsonl:
            raw = block.raw()
            assert data.splitlines(keepends=True) == inputs_module._text_documents(raw, block.path,
                                                                                block.number, "strict")
            assert [data[a:b] for a, b in zip(offsets, offsets[1:])] == data.splitlines(keepends=True)
    by_path = {}
    for block in blocks:  # line numbers follow each other within a file
        by_path.setdefault(block.path, []).append(block)
    for path, parts in by_path.items():
        assert parts[0].number == 1
        for before, after in zip(parts, parts[1:]):
            assert after.number == before.number + before.raw().count(b"\n")


def test_encode_npy_user_errors(model, tmp_path):
    def check(result, *fragments, code=1):
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        for fragment in fragments:
            assert fragment in result.output

    check(run("encode", "-m", model, str(tmp_path / "none.txt"), "-o", str(tmp_path / "t.npy")), "none.txt")
    check(run("encode", "-m", model, POEMS[1], "-o", str(tmp_path / "no" / "dir" / "t.npy")), "does not exist")
    check(run("encode", "-m", model, POEMS[1], "-o", str(tmp_path / "t.npy"), "--format", "pieces"),
          "--format", code=1)
    check(run("encode", "-m", model, POEMS[1], "--dtype", "uint16"), "--dtype", code=1)
    check(run("encode", "-m", model, POEMS[1], "-o", str(tmp_path / "t.npy"), "--workers", "-1"),
          "--workers", code=1)
    check(run("encode", "-m", model, POEMS[1], "-o", POEMS[1]), "also an input")
    assert leftovers(tmp_path) == []


def test_encode_text_output_options(model, tmp_path):
    text = "床前明月光\n疑是地上霜\n"
    single = run("encode", "-m", model, "--alpha", "0.2", "--seed", "5", "--workers", "1", input=text)
    double = run("encode", "-m", model, "--alpha", "0.2", "--seed", "5", "--workers", "2", input=text)
    assert single.exit_code == 0, single.output
    assert single.output == double.output
    pieces = run("encode", "-m", model, "--alpha", "0.2", "--seed", "5", "--format", "pieces", input=text)
    tok = Tokenizer(model)
    for ids_line, pieces_line in zip(single.output.splitlines(), pieces.output.splitlines()):
        ids = [int(i) for i in ids_line.split()]
        assert pieces_line.split() == [tok.id_to_piece(i).decode("utf-8", "backslashreplace") for i in ids]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": "床前明月光"}) + "\n", encoding="utf-8")
    result = run("encode", "-m", model, str(jsonl))
    assert result.exit_code == 0, result.output
    assert [int(i) for i in result.output.split()] == tok.encode("床前明月光")


# -- import-words ------------------------------------------------------------------

def test_import_words(tmp_path):
    words = tmp_path / "dict.txt"
    words.write_text("中国 125 ns\n中国人 400 n\n人 200\n\nAT&T 3 nz\n", encoding="utf-8")
    out = tmp_path / "words.model"
    result = run("import-words", str(words), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    tok = Tokenizer(str(out))
    assert tok.tokenize("中国人") == ["中国人".encode()]
    assert tok.decode(tok.encode("AT&T 中国")) == "AT&T 中国"


@pytest.mark.parametrize("content, fragments", [
    ("中国 12x\n", ["dict.txt:1", "positive integer"]),
    ("ok 3\nthree fields here extra\n", ["dict.txt:2", "word count"]),
    ("", ["no 'word count' entries"]),
    (b"\xff 3\n", ["dict.txt:1", "UTF-8"]),
])
def test_import_words_user_errors(tmp_path, content, fragments):
    words = tmp_path / "dict.txt"
    if isinstance(content, bytes):
        words.write_bytes(content)
    else:
        words.write_text(content, encoding="utf-8")
    out = tmp_path / "words.model"
    result = run("import-words", str(words), "-o", str(out))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output
    assert not out.exists()


def test_import_words_missing_file(tmp_path):
    result = run("import-words", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "m"))
    assert result.exit_code == 1 and "nope.txt: no such file" in result.output
    result = run("import-words", str(tmp_path / "nope.txt"))
    assert result.exit_code == 1 and "--output" in result.output


def test_train_algorithm_compress(tmp_path):
    from click.testing import CliRunner

    from bytepiece.cli import main
    from bytepiece import Tokenizer

    corpus = Path(__file__).resolve().parents[1] / "corpora" / "song100.zh.txt"
    out = tmp_path / "c.model"
    result = CliRunner().invoke(main, ["train", str(corpus), "-o", str(out), "--vocab-size", "500",
                                       "--algorithm", "compress", "--quiet"])
    assert result.exit_code == 0, result.output
    tok = Tokenizer(out)
    assert tok.vocab_size <= 500 and tok.max_piece_length <= 16
    bad = CliRunner().invoke(main, ["train", str(corpus), "-o", str(out), "--vocab-size", "500",
                                    "--algorithm", "bpe"])
    assert bad.exit_code != 0


def test_train_default_is_compress_and_budget_streams(tmp_path, capsys):
    from bytepiece.inputs import Corpus
    from bytepiece.model_io import model_dict
    from bytepiece.trainer import Trainer

    root = Path(__file__).resolve().parents[1] / "corpora"
    files = [str(root / "handbook.en-US.txt"), str(root / "handbook.zh-CN.txt")]
    out = tmp_path / "m.model"
    result = run("train", *files, "-o", str(out), "--vocab-size", "900", "-q", "--candidate-mb", "1")
    assert result.exit_code == 0, result.output
    trainer = Trainer(max_vocab_size=900, candidate_bytes=1 << 20)
    want = trainer.train(Corpus(files), workers=2)[900]
    assert "spilled blocks" in capsys.readouterr().err  # the corpus did not fit: streamed
    assert json.loads(out.read_text(encoding="utf-8")) == model_dict(want)
