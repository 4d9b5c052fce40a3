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
                 "--workers", "2", "--quiet")
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
                 "--no-ensure-unicode", "--max-piece-length", "8", "-q")
    assert result.exit_code == 0, result.output
    ref = json.loads((REFERENCE / "train" / "poems.o4.noeu.model").read_text(encoding="utf-8"))
    assert json.loads(out.read_text(encoding="utf-8")) == ref


def test_txt_gz_jsonl_and_stdin_give_the_same_model(tmp_path):
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
        result = run("train", *args, "-o", str(out), "--vocab-size", "600", "-q", input=stdin)
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
    assert result.exit_code == 1 and "max_vocab_size" in result.output

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


@pytest.mark.parametrize("command", [[], ["train"], ["encode"], ["decode"], ["info"]])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) < 40
