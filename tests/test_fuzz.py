"""The short seeded slice of the fuzz harness that CI runs on every push,
plus directed edge cases of the compiled core found while fuzzing.

The long runs live in ``fuzz/fuzz_core.py`` (see ``fuzz/README.md``). Inputs
that crashed the process are replayed in a subprocess so that a regression
fails one test instead of killing the whole run.
"""
from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bytepiece import _core

ROOT = Path(__file__).resolve().parents[1]


def load_harness():
    """Import ``fuzz/fuzz_core.py`` (not a package) by path."""
    spec = importlib.util.spec_from_file_location("bytepiece_fuzz_core", ROOT / "fuzz" / "fuzz_core.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fuzz = load_harness()


# ---------------------------------------------------------------------------
# The seeded slice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [11, 12])
def test_seeded_fuzz_slice(seed: int) -> None:
    stats = fuzz.run_random(iterations=400, seed=seed, vocab_every=100, max_size=1500,
                            report_every=0, crash_dir=None)
    assert stats.inputs == 400 and stats.vocabularies == 4 and stats.batches >= 16


def test_io_fuzz_slice() -> None:
    """A few rounds of ``fuzz/fuzz_io.py``: commands whose input changes or
    that get a signal while they run end cleanly, leaving no partial file."""
    spec = importlib.util.spec_from_file_location("bytepiece_fuzz_io", ROOT / "fuzz" / "fuzz_io.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outcomes = module.run(rounds=4, seed=5)
    assert sum(outcomes.values()) == 4


@pytest.mark.slow
def test_long_fuzz_run() -> None:
    stats = fuzz.run_random(iterations=30_000, seed=99, vocab_every=500, report_every=0,
                            crash_dir=None)
    assert stats.inputs == 30_000


def test_harness_reports_a_mismatch(monkeypatch) -> None:
    """A broken core must be caught: feed the harness a lying twin."""
    rng = random.Random(1)
    counts, alphabet = fuzz.random_counts(rng, 256, 300)
    case = fuzz.Case(counts, alphabet)
    monkeypatch.setattr(case.twin, "tokenize", lambda text, *a, **k: [text[:1], text[1:]])
    with pytest.raises(fuzz.Mismatch, match="Viterbi differs"):
        fuzz.check_text(case, b"abcdef", rng)


def test_random_vocabularies_are_valid() -> None:
    rng = random.Random(3)
    for _ in range(5):
        counts, _alphabet = fuzz.random_counts(rng, 256, 800)
        assert all(bytes([b]) in counts for b in range(256))
        assert all(0 < len(p) <= 64 and c > 0 for p, c in counts.items())
        assert sum(counts.values()) <= 2 ** 1000


# ---------------------------------------------------------------------------
# Directed edge cases
# ---------------------------------------------------------------------------


def make_case(extra):
    counts = {bytes([b]): (b % 7) + 1 for b in range(256)}
    counts.update(extra)
    return fuzz.Case(counts, b"ab\n")


DEEP = make_case({b"a" * n: n for n in range(2, 65)} | {b"ab" * 16: 5, b"\n\n": 3, b"a\n": 9})

EDGE_TEXTS = [
    b"", b"a", b"\n", b"\n" * 300, b"\x00" * 50, bytes(range(256)), bytes(range(255, -1, -1)),
    b"a" * 5000, b"a" * 64, b"a" * 65, b"ab" * 2000, (b"a" * 63 + b"\n") * 20, b"\na\n\na",
    b"\xff" * 1000, "分词\r\n".encode() * 50,
]


@pytest.mark.parametrize("text", EDGE_TEXTS, ids=[f"len{len(t)}-{t[:4]!r}" for t in EDGE_TEXTS])
def test_edge_texts_core_equals_twin(text: bytes) -> None:
    fuzz.check_text(DEEP, text, random.Random(len(text)))
    fuzz.check_batch(DEEP, [text, text[: len(text) // 2], b""], random.Random(1))
    fuzz.check_split(DEEP, [text, b"", text[::-1]], random.Random(2))


@pytest.mark.parametrize("alpha", [0.0, 5e-324, 1e-300, 1e-12, 1.0, 50.0, 500.0, 1e5])
def test_alphas_across_the_range_give_valid_samples(alpha: float) -> None:
    text = b"a" * 300 + b"\n" + b"ab" * 100
    for seed in range(5):
        pieces = DEEP.tok.tokenize(text, alpha=alpha, seed=seed)
        fuzz.check_segmentation(DEEP, text, pieces, f"alpha={alpha}")


def test_one_megabyte_of_random_bytes() -> None:
    data = random.Random(8).randbytes(1 << 20)
    pieces = DEEP.tok.tokenize(data)
    assert b"".join(pieces) == data
    assert DEEP.tok.encode_batch([data, data[:1000]], num_threads=2)[1] == DEEP.tok.encode(data[:1000])
    assert b"".join(DEEP.tok.tokenize(data, alpha=0.3, seed=1)) == data


def test_ties_follow_the_twin() -> None:
    """Counts 2*6 = 3*4 make exactly tied segmentations (§3, §4)."""
    counts = {bytes([b]): 1 for b in range(256)}
    counts.update({b"a": 2, b"bc": 6, b"ab": 3, b"c": 4, b"abc": 1, b"b": 12})
    case = fuzz.Case(counts, b"abc")
    for text in (b"abc", b"abcabc", b"aabcc", b"abcab" * 20):
        assert case.tok.tokenize(text) == case.twin.tokenize(text)


# ---------------------------------------------------------------------------
# Bad arguments to the core: errors, never crashes
# ---------------------------------------------------------------------------

SEG = DEEP.seg


@pytest.mark.parametrize("offsets", [[2, 1], [-1, 3], [0, 99], [0, 1, 0], [0, 2**62]])
def test_encode_concat_rejects_bad_offsets(offsets) -> None:
    with pytest.raises(ValueError, match="offsets"):
        SEG.encode_concat(b"abc", np.asarray(offsets, dtype=np.int64))
    with pytest.raises(ValueError, match="offsets"):
        SEG.split_counts(b"abc", np.asarray(offsets, dtype=np.int64),
                         np.ones(len(offsets) - 1, dtype=np.int64))


def test_empty_offsets_and_mismatched_weights() -> None:
    with pytest.raises(ValueError):
        SEG.encode_concat(b"abc", np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="weights"):
        SEG.split_counts(b"abc", np.asarray([0, 3]), np.ones(2, dtype=np.int64))
    ids, bounds = SEG.encode_concat(b"", np.zeros(1, dtype=np.int64))
    assert ids.size == 0 and bounds.tolist() == [0]


@pytest.mark.parametrize("data", ["text", 12, memoryview(b"abcdef")[::2], [1, 2]])
def test_encode_bytes_rejects_non_buffers(data) -> None:
    with pytest.raises((TypeError, ValueError, BufferError)):
        SEG.encode_bytes(data, out_type=2)


def test_core_rejects_none_data() -> None:
    with pytest.raises(TypeError):
        SEG.encode_bytes(None, out_type=2)


@pytest.mark.parametrize("pieces, scores, error", [
    ([], [], ValueError),
    ([bytes([b]) for b in range(255)], np.zeros(255), ValueError),                 # a byte missing
    ([bytes([b]) for b in range(256)] + [b"a"], np.zeros(257), ValueError),        # duplicate
    ([bytes([b]) for b in range(256)] + [b""], np.zeros(257), ValueError),         # empty
    ([bytes([b]) for b in range(256)] + ["ab"], np.zeros(257), TypeError),         # str piece
    ([bytes([b]) for b in range(256)], np.zeros(255), ValueError),                 # short scores
    ([bytes([b]) for b in range(256)], np.full(256, np.nan), ValueError),          # NaN scores
    ([bytes([b]) for b in range(256)], np.full(256, -np.inf), ValueError),         # -inf scores
    ((bytes([b]) for b in range(256)), np.zeros(256), TypeError),                  # generator
])
def test_segmenter_rejects_bad_vocabularies(pieces, scores, error) -> None:
    with pytest.raises(error):
        _core.Segmenter(pieces, scores)


def test_segmenter_with_positive_and_huge_scores() -> None:
    """Scores are log-probabilities: positive ones are refused (the sampler
    relies on p ** alpha <= 1); huge negative ones stay exact and finite."""
    pieces = [bytes([b]) for b in range(256)] + [b"ab", b"abab"]
    for scores in (np.full(258, 3.0), np.linspace(-700, 700, 258)):
        with pytest.raises(ValueError, match="<= 0"):
            _core.Segmenter(pieces, scores)
    for scores in (np.linspace(-1400, 0, 258), np.full(258, -1e300)):
        seg = _core.Segmenter(pieces, scores)
        for alpha in (-1.0, 0.0, 1.0, 1e6):
            ids = seg.encode_bytes(b"ababab\nab", alpha=alpha, seed=3, out_type=2)
            assert b"".join(pieces[i - 3] for i in ids) == b"ababab\nab"


# ---------------------------------------------------------------------------
# Crashes found while fuzzing, replayed in a subprocess
# ---------------------------------------------------------------------------


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports the very ``bytepiece``
    under test (installed, or an in-place build), from a neutral directory so
    that an uncompiled checkout cannot shadow it."""
    import tempfile

    import bytepiece

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(bytepiece.__file__)))
    env = dict(os.environ, PYTHONPATH=package_parent + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=120, env=env, cwd=scratch)


PRELUDE = """
    import numpy as np
    from bytepiece import _core
    from bytepiece.model_io import model_dict
    from bytepiece.tokenizer import Tokenizer
"""


def test_huge_alpha_does_not_crash() -> None:
    result = run_isolated(PRELUDE + """
    counts = {bytes([b]): 1 for b in range(256)}
    counts[b"ab"] = 5
    tok = Tokenizer(model_dict(counts))
    for alpha in (1e306, 1e308):
        try:
            pieces = tok.tokenize(b"abcab" * 20, alpha=alpha, seed=0)
            assert b"".join(pieces) == b"abcab" * 20
        except ValueError:
            pass
    print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_failed_reinit_keeps_the_segmenter_intact() -> None:
    result = run_isolated(PRELUDE + """
    pieces = [bytes([b]) for b in range(256)] + [b"wxyz"]
    seg = _core.Segmenter(pieces, np.full(257, -5.5))
    before = seg.matches(b"wxyz")
    try:
        seg.__init__([b"x"], [0.0])
    except (TypeError, ValueError):
        pass
    assert seg.matches(b"wxyz") == before, seg.matches(b"wxyz")
    ids = seg.encode_bytes(b"wxyz\\x01" * 3, alpha=1.0, seed=1, out_type=2)
    assert ids.min() >= 3, ids
    print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, (result.stdout + result.stderr)[-2000:]


def test_short_id_table_does_not_crash() -> None:
    result = run_isolated(PRELUDE + """
    seg = _core.Segmenter([bytes([b]) for b in range(256)], np.full(256, -5.5))
    try:
        seg.encode_bytes(b"\\xff\\xfe" * 1000, out_type=0, table=[])
    except (IndexError, ValueError, TypeError):
        pass
    try:
        _core.split_lists(np.arange(3, dtype=np.int32), np.array([0, 10**9]), list(range(300)))
    except (IndexError, ValueError):
        pass
    print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
