"""Malformed and hostile model files: each must fail with a clear ``ValueError``.

Table-driven: every case writes a file, loads it with ``Tokenizer`` and
expects a ``ValueError`` whose message names the file and the problem.
Nothing may crash, hang or exhaust memory; a valid-looking model with a
million entries must load (or fail cleanly) in reasonable time.
"""
from __future__ import annotations

import base64
import itertools
import json
import random
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple, Union

import numpy as np
import pytest

from bytepiece.model_io import MAX_PIECE_BYTES, load_vocabulary, model_dict
from bytepiece.tokenizer import Tokenizer

Model = Dict[str, list]


def base_model(extra: Dict[bytes, int] = None) -> Model:
    """A valid model: every single byte plus a few longer pieces."""
    counts = {bytes([b]): b + 1 for b in range(256)}
    counts.update(extra or {b"ab": 7, b"abc": 3, "分词".encode(): 5})
    return model_dict(counts)


def key(piece: bytes) -> str:
    return base64.b64encode(piece).decode("ascii")


def with_value(piece: bytes, value) -> Model:
    model = base_model()
    model[key(piece)] = value
    return model


def without(*pieces: bytes) -> Model:
    """The base model minus ``pieces``, ids renumbered so only the loss is wrong."""
    counts = {bytes([b]): b + 1 for b in range(256)}
    counts.update({b"ab": 7})
    for piece in pieces:
        del counts[piece]
    return model_dict(counts)


def dumps(model) -> bytes:
    return json.dumps(model, ensure_ascii=False, indent=4).encode("utf-8")


def shifted_ids(delta_at: int) -> Model:
    """Ids with a gap: from position ``delta_at`` on, every id is one higher."""
    model = base_model()
    for i, value in enumerate(model.values()):
        if i >= delta_at:
            value[0] += 1
    return model


def duplicate_id() -> Model:
    model = base_model()
    values = list(model.values())
    values[-1][0] = values[-2][0]
    return model


def huge_count_sum() -> Model:
    model = base_model()
    for value in list(model.values())[:3]:
        value[2] = 2 ** 999
    return model


# Each case: (name, file content, words the error message must contain).
Content = Union[bytes, Callable[[], bytes]]
CASES: List[Tuple[str, Content, str]] = [
    ("truncated JSON", lambda: dumps(base_model())[:-40], "not valid JSON"),
    ("empty file", b"", "not valid JSON"),
    ("not UTF-8", b"\xff\xfe{}", "not UTF-8"),
    ("JSON array, not object", b"[[3, \"a\", 1]]", "top level must be a JSON object"),
    ("JSON string", b"\"model\"", "top level must be a JSON object"),
    ("empty object", b"{}", "no pieces"),
    ("deeply nested", b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
    ("huge id", lambda: dumps(with_value(b"ab", [10 ** 30, "ab", 7])), "out of range"),
    ("reserved id", lambda: dumps(with_value(b"ab", [1, "ab", 7])), "reserved"),
    ("negative id", lambda: dumps(with_value(b"ab", [-5, "ab", 7])), "reserved"),
    ("negative count", lambda: dumps(with_value(b"ab", [259, "ab", -3])), "must be positive"),
    # Count 0 marks a special token: its key must be NFC text other than <pad> <bos> <eos>.
    ("zero count on bytes that are not text",
     lambda: dumps(base_model({b"\xff\xfe": 0, b"ab": 7})), "special token"),
    ("zero count on text that is not NFC",
     lambda: dumps(base_model({"e\u0301".encode(): 0, b"ab": 7})), "not NFC"),
    ("zero count on <bos>", lambda: dumps(base_model({b"<bos>": 0, b"ab": 7})), "duplicate"),
    ("zero count on a single byte", lambda: dumps(with_value(b"a", [100, "a", 0])), "identical to a learned piece"),
    ("float count", lambda: dumps(with_value(b"ab", [259, "ab", 1.5])), "must be an int"),
    ("integral float count", lambda: dumps(with_value(b"ab", [259, "ab", 7.0])), "must be an int"),
    ("NaN count", lambda: dumps(base_model()).replace(b"7\n", b"NaN\n", 1), "must be an int"),
    ("Infinity count", lambda: dumps(base_model()).replace(b"7\n", b"Infinity\n", 1), "must be an int"),
    ("string count", lambda: dumps(with_value(b"ab", [259, "ab", "7"])), "must be an int"),
    ("bool count", lambda: dumps(with_value(b"ab", [259, "ab", True])), "must be an int"),
    ("bool id", lambda: dumps(with_value(b"ab", [True, "ab", 7])), "must be an int"),
    ("string id", lambda: dumps(with_value(b"ab", ["259", "ab", 7])), "must be an int"),
    ("null id", lambda: dumps(with_value(b"ab", [None, "ab", 7])), "must be an int"),
    ("value is a dict", lambda: dumps(with_value(b"ab", {"id": 259})), "[id, display, count]"),
    ("value is a number", lambda: dumps(with_value(b"ab", 259)), "[id, display, count]"),
    ("value is null", lambda: dumps(with_value(b"ab", None)), "[id, display, count]"),
    ("value too short", lambda: dumps(with_value(b"ab", [259, 7])), "[id, display, count]"),
    ("value too long", lambda: dumps(with_value(b"ab", [259, "ab", 7, 0])), "[id, display, count]"),
    ("missing single bytes", lambda: dumps(without(b"\x00", b"\xff")), "single-byte pieces missing"),
    ("missing one byte", lambda: dumps(without(b"\n")), "0x0a"),
    ("ids with a gap", lambda: dumps(shifted_ids(100)), "out of range"),
    ("duplicate id", lambda: dumps(duplicate_id()), "used twice"),
    ("duplicate key", lambda: dumps(base_model())[:-2] + b',\n    "YWI=": [300, "ab", 1]\n}',
     "appears twice"),
    ("same piece, two base64 spellings",
     lambda: dumps({**base_model(), "YR==": [262, "a", 1]}), "same piece"),
    ("key not base64", lambda: dumps({**base_model(), "!!not base64!!": [262, "", 1]}),
     "not valid base64"),
    ("key not ASCII", lambda: dumps({**base_model(), "分词": [262, "", 1]}), "not valid base64"),
    ("key with bad padding", lambda: dumps({**base_model(), "YWJ": [262, "", 1]}),
     "not valid base64"),
    ("empty key", lambda: dumps({**base_model(), "": [262, "", 1]}), "empty piece"),
    ("piece longer than 1 MB",
     lambda: dumps({**base_model(), key(b"x" * (1 << 20) + b"y"): [262, "", 1]}), "bytes long"),
    ("counts too large to score", lambda: dumps(huge_count_sum()), "too large"),
]


@pytest.mark.parametrize("name, content, problem", CASES, ids=[c[0] for c in CASES])
def test_malformed_model_file_raises_value_error(tmp_path: Path, name: str, content: Content,
                                                 problem: str) -> None:
    data = content() if callable(content) else content
    path = tmp_path / "hostile.model"
    path.write_bytes(data)
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        Tokenizer(path)
    message = str(info.value)
    assert str(path) in message, f"error does not name the file: {message}"
    assert problem in message, f"error does not name the problem {problem!r}: {message}"
    assert time.monotonic() - start < 30


def test_count_with_too_many_digits_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "digits.model"
    path.write_bytes(dumps(base_model()).replace(b"7\n", b"7" * 5000 + b"\n", 1))
    with pytest.raises(ValueError, match="digits.model"):
        Tokenizer(path)


@pytest.mark.parametrize("name, content, problem",
                         [c for c in CASES if c[0] not in ("duplicate key",)
                          and not isinstance(c[1], bytes)],
                         ids=[c[0] for c in CASES if c[0] not in ("duplicate key",)
                              and not isinstance(c[1], bytes)])
def test_malformed_model_dict_raises_value_error(name: str, content: Content, problem: str) -> None:
    """The same problems passed as an already-parsed dict name ``<dict>``."""
    try:
        model = json.loads(content().decode("utf-8"))
    except ValueError:
        pytest.skip("not parseable as JSON: file-only case")
    with pytest.raises(ValueError) as info:
        Tokenizer(model)
    assert "<dict>" in str(info.value) and problem in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.model"):
        Tokenizer(tmp_path / "nope.model")
    with pytest.raises(ValueError, match="directory"):
        Tokenizer(tmp_path)


@pytest.mark.parametrize("model", [None, 42, [1, 2], b"{}"])
def test_model_of_the_wrong_type_raises_type_error(model) -> None:
    with pytest.raises(TypeError):
        Tokenizer(model)


def test_valid_variants_load(tmp_path: Path) -> None:
    """Shuffled entries, non-string display, BOM-free compact JSON and big counts are fine."""
    model = base_model()
    items = list(model.items())
    items.reverse()
    shuffled = dict(items)
    shuffled[key(b"ab")][1] = 12345            # display is informational only
    shuffled[key(b"abc")][2] = 2 ** 80         # beyond int64
    path = tmp_path / "ok.model"
    path.write_text(json.dumps(shuffled, separators=(",", ":")))
    tok = Tokenizer(path)
    assert tok.vocab_size == len(model) + 3
    assert tok.decode(tok.encode("abc分词\x00")) == "abc分词\x00"
    assert tok.piece_to_id(b"ab") == model[key(b"ab")][0]


def test_piece_at_the_length_limit_loads() -> None:
    # Random bytes, not a run: a run of one byte that long makes every position
    # walk the whole trie path (quadratic time, see fuzz/README.md).
    rng = random.Random(5)
    long_piece = bytes(rng.randrange(11, 256) for _ in range(MAX_PIECE_BYTES))  # no newline
    model = base_model()
    model[key(long_piece)] = [len(model) + 3, "", 10 ** 9]
    tok = Tokenizer(model)
    assert tok.max_piece_length == MAX_PIECE_BYTES
    assert tok.tokenize(b"z" + long_piece + b"z") == [b"z", long_piece, b"z"]


def write_big_model(path: Path, entries: int) -> None:
    """A valid-looking model with ``entries`` pieces (compact JSON, streamed)."""
    counts = {bytes([b]): 1 for b in range(256)}
    letters = bytes(range(33, 127))
    grams = itertools.chain(itertools.product(letters, repeat=3), itertools.product(letters, repeat=4))
    for i, gram in enumerate(grams):
        if len(counts) >= entries:
            break
        counts[bytes(gram)] = i % 997 + 1
    path.write_text(json.dumps(model_dict(counts), separators=(",", ":")))


def load_big(tmp_path: Path, entries: int, budget: float) -> None:
    path = tmp_path / "big.model"
    write_big_model(path, entries)
    start = time.monotonic()
    tok = Tokenizer(path)
    elapsed = time.monotonic() - start
    assert tok.vocab_size == entries + 3
    assert tok.decode(tok.encode("hello, world!")) == "hello, world!"
    assert elapsed < budget, f"{entries} entries took {elapsed:.1f} s"


def test_hundred_thousand_entries_load(tmp_path: Path) -> None:
    load_big(tmp_path, 100_000, budget=40)


@pytest.mark.slow
def test_million_entries_load_in_reasonable_time(tmp_path: Path) -> None:
    load_big(tmp_path, 1_000_000, budget=240)


@pytest.mark.slow
def test_million_entries_with_a_bad_last_entry_fail_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "big-bad.model"
    write_big_model(path, 1_000_000)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b',"' + key(b"\x01\x02").encode() + b'":[5,"",1]}')
    with pytest.raises(ValueError, match="used twice"):
        Tokenizer(path)


def test_load_vocabulary_does_not_mutate_its_input() -> None:
    model = base_model()
    snapshot = json.dumps(model)
    load_vocabulary(model)
    assert json.dumps(model) == snapshot


def test_piece_length_cap_keeps_hostile_models_linear(tmp_path: Path) -> None:
    """A model may hold pieces up to MAX_PIECE_BYTES: a text matching its
    longest piece everywhere costs at most that many trie steps per byte."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"z" * MAX_PIECE_BYTES] = 5
    tok = Tokenizer(model_dict(counts))
    text = b"z" * (20 * MAX_PIECE_BYTES + 7)
    assert b"".join(tok.tokenize(text)) == text
    too_long = dict(counts)
    too_long[b"y" * (MAX_PIECE_BYTES + 1)] = 5
    with pytest.raises(ValueError, match="bytes long"):
        Tokenizer(model_dict(too_long))


def test_limits_are_enforced_where_models_are_made(tmp_path: Path) -> None:
    from bytepiece import _core
    from bytepiece.convert import convert_to_bytepiece
    from bytepiece.trainer import Trainer

    with pytest.raises(ValueError, match="max_piece_length"):
        Trainer(max_piece_length=MAX_PIECE_BYTES + 1)
    with pytest.raises(ValueError, match="bytes long"):
        convert_to_bytepiece({"x" * (MAX_PIECE_BYTES + 1): 3}, tmp_path / "w.model")
    with pytest.raises(ValueError, match="<= 0"):
        _core.Segmenter([bytes([b]) for b in range(256)], np.full(256, 0.5))
