#!/usr/bin/env python
"""Differential fuzzer of the compiled tokenizer core against the readable twin.

Every input is a byte string segmented by a random vocabulary. The compiled
core (``bytepiece._core`` behind ``bytepiece.Tokenizer``) must agree with
``bytepiece._educational.EducationalTokenizer`` on:

* matching: ``Segmenter.matches`` lists the same occurrences in the same order;
* Viterbi: the same pieces, ties included (ALGORITHM.md §4), as lists of ids,
  lists of pieces and NumPy arrays, with and without ``<bos>``/``<eos>``;
* sampling: every draw is a valid segmentation into vocabulary pieces that
  respects chunk boundaries, and the same seed gives the same draw;
* batches: ``encode_batch`` equals per-item ``encode`` for any ``num_threads``
  (sampled batches included: item ``i`` uses the stream of ``(seed, i)``; now
  and then repeated past 64 KB, so that several threads really run), and
  unchunked ``encode_concat`` equals the twin's Viterbi of the whole text;
* ``split_counts``: equals summing the twin's Viterbi pieces times the weights;
* batches whose list changes during the call (another thread, or a ``str``
  subclass's ``__str__``): no crash, only encodings of texts that were in it.

Vocabularies have 256 to 5,000 pieces (pieces up to 64 bytes) with counts
drawn from several regimes: small, all equal, tie-prone (1, 2, 3, 4, 6, 12:
2*6 = 3*4), log-uniform up to 2**62, and a few astronomically large ones that
force the log-domain sampler.

Two drivers:

* ``--mode random`` (default when atheris is missing): seeded pseudo-random
  generation. Block ``b`` of ``--vocab-every`` inputs uses its own vocabulary
  and ``random.Random(f"{seed}:{b}")``, so a failure is replayed with
  ``--seed S --first-block b --iterations 1`` plus the printed input index.
* ``--mode atheris``: coverage-guided (Python coverage) over a fixed pool of
  vocabularies; the fuzz bytes choose the vocabulary, alpha, seed and text.

``--iterations N`` is the number of texts checked. Exit status 1 on the first
disagreement (a reproducer JSON is written to ``--crash-dir``).
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import pickle
import random
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

try:
    import bytepiece  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from bytepiece import _core
from bytepiece._educational import EducationalTokenizer
from bytepiece.model_io import model_dict
from bytepiece.tokenizer import Tokenizer

#: Alphas exercised by sampling: uniform (0), almost uniform, ordinary, and
#: large enough to switch to the log-domain sampler on wide vocabularies.
ALPHAS = (0.0, 1e-12, 1e-3, 0.1, 0.5, 1.0, 5.0, 50.0, 500.0)
#: Multiplier of the per-text seed derivation in ``_core`` (text_seed).
_SEED_MIX = 0xD1B54A32D192ED03
_MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------
# Random vocabularies and texts
# ---------------------------------------------------------------------------


def _alphabet(rng: random.Random) -> bytes:
    """The bytes multi-byte pieces and texts are mostly made of."""
    kind = rng.randrange(6)
    if kind == 0:
        return b"ab"
    if kind == 1:
        return b"abc\n"
    if kind == 2:
        return b"aaaab"
    if kind == 3:
        return "the quick brown fox 你好世界 ñé\n".encode("utf-8")
    if kind == 4:
        return bytes(rng.sample(range(256), rng.randint(2, 12)))
    return bytes(range(256))


def _piece_length(rng: random.Random, max_len: int) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.randint(2, min(6, max_len))
    if r < 0.9:
        return rng.randint(2, min(16, max_len))
    return rng.randint(2, max_len)


def _count_sampler(rng: random.Random):
    """A function drawing one count, in one of several regimes."""
    regime = rng.randrange(7)
    if regime == 0:
        return lambda: rng.randint(1, 100)
    if regime == 1:
        value = rng.choice([1, 2, 7])
        return lambda: value
    if regime == 2:
        return lambda: rng.choice((1, 2, 3, 4, 6, 12))
    if regime == 3:
        return lambda: int(2 ** rng.uniform(0, 62))
    if regime == 4:
        return lambda: rng.choice((1, (1 << 63) - 1, (1 << 62) + rng.randint(0, 99)))
    if regime == 5:
        # Rare astronomically frequent pieces: a score spread of ~600 nats.
        return lambda: 10 ** rng.randint(200, 260) if rng.random() < 0.01 else rng.randint(1, 5)
    return lambda: rng.randint(1, 10 ** 6)


def random_counts(rng: random.Random, min_size: int = 256, max_size: int = 5000,
                  max_len: int = 64) -> Tuple[Dict[bytes, int], bytes]:
    """A random vocabulary ``{piece: count}`` (all 256 bytes present) and its alphabet."""
    size = int(round(math.exp(rng.uniform(math.log(min_size), math.log(max_size)))))
    alphabet = _alphabet(rng)
    draw = _count_sampler(rng)
    pieces: Dict[bytes, int] = {bytes([b]): draw() for b in range(256)}
    found = list(pieces)
    attempts = 0
    while len(pieces) < size and attempts < 20 * size:
        attempts += 1
        r = rng.random()
        if r < 0.5:
            piece = bytes(rng.choice(alphabet) for _ in range(_piece_length(rng, max_len)))
        elif r < 0.8:
            # Extend a known piece: deep, branching trie paths.
            base = rng.choice(found)
            piece = base + bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3)))
        else:
            piece = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3))) + rng.choice(found)
        piece = piece[:max_len]
        if len(piece) < 2 or piece in pieces:
            continue
        pieces[piece] = draw()
        found.append(piece)
    # Keep the total within what the model format accepts (2**1000).
    while sum(pieces.values()) > 2 ** 990:
        biggest = max(pieces, key=pieces.__getitem__)
        pieces[biggest] //= 10 ** 30
    return pieces, alphabet


def random_text(rng: random.Random, alphabet: bytes, pieces: Sequence[bytes]) -> bytes:
    """A byte string likely to contain many (and long) vocabulary matches."""
    r = rng.random()
    length = int(math.exp(rng.uniform(0, math.log(400)))) - 1
    if rng.random() < 0.02:
        length = rng.randint(400, 4000)
    if r < 0.35:
        text = bytes(rng.choice(alphabet) for _ in range(length))
    elif r < 0.7:
        parts: List[bytes] = []
        total = 0
        while total < length:
            part = rng.choice(pieces) if rng.random() < 0.9 else bytes([rng.randrange(256)])
            parts.append(part)
            total += len(part)
        text = b"".join(parts)
    elif r < 0.8:
        text = rng.choice(pieces) * rng.randint(1, 40)
    elif r < 0.9:
        text = bytes(rng.randrange(256) for _ in range(length))
    else:
        text = bytes(rng.choice(b"\n\na") for _ in range(length))
    if text and rng.random() < 0.3:
        cut = list(text)
        for _ in range(rng.randint(1, 4)):
            cut.insert(rng.randint(0, len(cut)), 10)
        text = bytes(cut)
    return text


# ---------------------------------------------------------------------------
# One vocabulary under test
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """A vocabulary compiled both ways."""

    counts: Dict[bytes, int]
    alphabet: bytes
    tok: Tokenizer = field(init=False)
    twin: EducationalTokenizer = field(init=False)
    pieces: List[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.tok = Tokenizer(model_dict(self.counts))
        self.twin = EducationalTokenizer(self.counts)
        self.pieces = list(self.counts)
        # The twin is the slow half: list the occurrences of a chunk once and
        # reuse them in its Viterbi, the batch and the split_counts checks.
        memo: Dict[bytes, list] = {}
        plain_matches = self.twin.matches

        def matches(chunk: bytes) -> list:
            found = memo.get(chunk)
            if found is None:
                if len(memo) > 256:
                    memo.clear()
                found = memo[chunk] = plain_matches(chunk)
            return found

        self.twin.matches = matches  # type: ignore[method-assign]

    @property
    def seg(self) -> "_core.Segmenter":
        return self.tok._segmenter


class Mismatch(AssertionError):
    """The compiled core and the twin disagree (or an invariant broke)."""


def _require(ok: bool, what: str, **details) -> None:
    if not ok:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in details.items())
        raise Mismatch(f"{what}: {shown}")


def _short(value, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def chunk_bounds(text: bytes) -> List[int]:
    """End offsets of the chunks of ``text`` (§1, bytes: non-newlines then newlines)."""
    bounds = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] != 10:
            i += 1
        while i < n and text[i] == 10:
            i += 1
        bounds.append(i)
    return bounds


def check_segmentation(case: Case, text: bytes, pieces: List[bytes], what: str) -> None:
    """``pieces`` is a segmentation of ``text`` into vocabulary pieces, cut at chunk ends."""
    _require(b"".join(pieces) == text, f"{what}: pieces do not join to the text", text=text, pieces=pieces)
    ends = set()
    pos = 0
    for piece in pieces:
        _require(piece in case.counts, f"{what}: not a vocabulary piece", piece=piece)
        pos += len(piece)
        ends.add(pos)
    missing = [b for b in chunk_bounds(text) if b not in ends]
    _require(not missing, f"{what}: a piece spans a chunk boundary", text=text, at=missing)


def per_item_seed(seed: int, index: int) -> int:
    """The ``encode`` seed whose stream equals item ``index`` of a batch seeded ``seed``."""
    return (seed ^ (index * _SEED_MIX)) & _MASK64


def check_text(case: Case, text: bytes, rng: random.Random) -> None:
    """All single-text properties of ``text`` under ``case``."""
    tok, twin = case.tok, case.twin
    # Matching (one chunk, whole text).
    if len(text) <= 1500:
        got = case.seg.matches(text)
        want = twin.matches(text)
        _require(got == want, "matches differ", text=text, core=got, twin=want)
    # Viterbi.
    got_pieces = tok.tokenize(text)
    want_pieces = twin.tokenize(text)
    _require(got_pieces == want_pieces, "Viterbi differs", text=text, core=got_pieces, twin=want_pieces)
    ids = tok.encode(text)
    _require(ids == [twin.piece_to_id[p] for p in want_pieces], "encode ids differ", text=text)
    bos, eos = rng.random() < 0.5, rng.random() < 0.5
    framed = tok.encode(text, add_bos=bos, add_eos=eos, out_type=np.ndarray)
    want_framed = [1] * bos + ids + [2] * eos
    _require(framed.dtype == np.int32 and framed.tolist() == want_framed, "numpy encode differs", text=text)
    _require(tok.decode_bytes(ids) == text, "decode_bytes does not round-trip", text=text)
    # Sampling.
    alpha = rng.choice(ALPHAS) if rng.random() < 0.8 else rng.uniform(0, 20)
    seed = rng.getrandbits(64)
    drawn = tok.tokenize(text, alpha=alpha, seed=seed)
    check_segmentation(case, text, drawn, f"sample alpha={alpha}")
    again = tok.tokenize(text, alpha=alpha, seed=seed)
    _require(drawn == again, "same seed, different draw", text=text, alpha=alpha, seed=seed)
    drawn_ids = tok.encode(text, alpha=alpha, seed=seed)
    _require(drawn_ids == [twin.piece_to_id[p] for p in drawn], "sampled ids != sampled pieces",
             text=text, alpha=alpha, seed=seed)


# Code points mixed into str texts: CJK, Hangul, Latin-1, combining marks,
# Devanagari (NFC-changing nukta forms), musical symbols and emoji (astral).
STR_EXTRAS = ([0x4E00, 0x9FA5, 0x3042, 0xAC00, 0xD7A3, 0xE9, 0xFF, 0x301, 0x323, 0x958, 0x93C,
               0x1D15E, 0x1D165, 0x1F600, 0x20000, 0x2126, 0x212B, 0x3099, 0x1100, 0x1161]
              + list(range(0x300, 0x310)))


def check_packing_under_threads(tok, big: List[bytes], rng: random.Random) -> None:
    """A threaded batch packs its texts while the helpers segment. Items the
    sizing pass cannot count (bytearray, memoryview, strings whose NFC is
    longer than their storage allows) at random places make the buffers grow
    under running helpers; a bad item at a random place must raise and
    release them."""
    mixed = list(big)
    for _ in range(rng.randint(1, 4)):
        j = rng.randrange(len(mixed))
        kind = rng.randrange(3)
        if kind == 0:
            mixed[j] = bytearray(big[j])
        elif kind == 1:
            mixed[j] = memoryview(big[j])
        else:   # U+1D15E: 4 bytes of UTF-8, its NFC 8
            mixed[j] = "\U0001D15E" * rng.randint(1, 3000)
    want = [tok.encode(unicodedata.normalize("NFC", t).encode() if isinstance(t, str) else bytes(t))
            for t in mixed]
    threads = rng.choice((2, 3))
    _require(tok.encode_batch(mixed, num_threads=threads) == want,
             "threaded batch with growing buffers != per-item encode", threads=threads)
    flat, bounds = tok.encode_batch_flat(mixed, num_threads=threads)
    _require([flat[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])] == want,
             "threaded flat batch with growing buffers != per-item encode", threads=threads)
    if rng.random() < 0.3:
        bad = list(big)
        bad.insert(rng.randrange(len(bad) + 1), rng.choice((7, None, 1.5)))
        try:
            tok.encode_batch(bad, num_threads=2)
        except TypeError:
            pass
        else:
            _require(False, "a batch with a non-text item did not raise TypeError")


class _Rewriting(str):
    """A str whose ``__str__`` (which packing calls for a subclass) rewrites the
    batch list it sits in: clears it, or fills it with other texts."""

    batch: Optional[list] = None
    fill: Sequence = ()

    def __str__(self) -> str:
        if _Rewriting.batch is not None:
            _Rewriting.batch.clear()
            _Rewriting.batch.extend(_Rewriting.fill)
        return str.__str__(self)


def check_mutated_batch(tok, texts: List[bytes], rng: random.Random) -> None:
    """The list of a batch changes while the batch runs: another thread clears,
    refills, shortens and reorders it, and ``str`` subclasses in it rewrite it
    from their ``__str__``. The core must work on a snapshot: no crash, and
    every result item is the encoding of one of the texts that were ever in
    the list (nothing read from a freed or missing item)."""
    import threading

    strs = [t.decode("utf-8", "replace") for t in texts]
    pool: List = list(texts) + strs + [_Rewriting(s) for s in strs[:3]]
    allowed = {tuple(tok.encode(t)) for t in texts} | {tuple(tok.encode(s)) for s in strs}
    batch = [rng.choice(pool) for _ in range(rng.randint(1, 3000))]
    _Rewriting.batch, _Rewriting.fill = batch, [rng.choice(pool) for _ in range(rng.randint(0, 200))]
    stop = threading.Event()
    seed = rng.getrandbits(32)

    def mutate() -> None:
        local = random.Random(seed)
        while not stop.is_set():
            op = local.randrange(4)
            if op == 0:
                batch.clear()
            elif op == 1:
                batch.extend(local.choice(pool) for _ in range(local.randint(1, 500)))
            elif op == 2:
                del batch[local.randint(0, len(batch)):]
            else:
                batch.reverse()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=mutate, daemon=True)
    thread.start()
    try:
        for _ in range(rng.randint(1, 6)):
            threads = rng.choice((1, 2, 3))
            if rng.random() < 0.5:
                got = [tuple(ids) for ids in tok.encode_batch(batch, num_threads=threads)]
            else:
                flat, bounds = tok.encode_batch_flat(batch, num_threads=threads)
                got = [tuple(flat[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:])]
            _require(all(ids in allowed for ids in got), "a batch mutated during the call gave ids of no text",
                     threads=threads)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
        _Rewriting.batch = None


def check_batch(case: Case, texts: List[bytes], rng: random.Random) -> None:
    """``encode_batch`` (any threads, deterministic or sampled) equals per-item ``encode``."""
    tok = case.tok
    threads = rng.choice((0, 1, 2, 3, 8))
    bos, eos = rng.random() < 0.5, rng.random() < 0.5
    if rng.random() < 0.5:
        got = tok.encode_batch(texts, add_bos=bos, add_eos=eos, num_threads=threads)
        want = [tok.encode(t, add_bos=bos, add_eos=eos) for t in texts]
        _require(got == want, "deterministic batch != per-item encode", threads=threads)
    else:
        alpha = rng.choice(ALPHAS)
        seed = rng.getrandbits(64)
        got = tok.encode_batch(texts, add_bos=bos, add_eos=eos, alpha=alpha, seed=seed,
                               num_threads=threads)
        want = [tok.encode(t, add_bos=bos, add_eos=eos, alpha=alpha, seed=per_item_seed(seed, i))
                for i, t in enumerate(texts)]
        _require(got == want, "sampled batch != per-item encode", threads=threads, alpha=alpha, seed=seed)
        other = tok.encode_batch(texts, add_bos=bos, add_eos=eos, alpha=alpha, seed=seed,
                                 num_threads=rng.choice((1, 4)), out_type=np.ndarray)
        _require([a.tolist() for a in other] == got, "sampled batch depends on num_threads")
    # Batches past 64 KB run on several threads (smaller ones on one): the
    # threaded list path allocates the lists under the GIL and fills them
    # in the workers. Repeat the texts to get there now and then.
    size = sum(len(t) for t in texts) + len(texts)
    if rng.random() < 0.2 and size < 40000:
        times = min(2000, 140000 // size + 1)
        big = texts * times
        got = tok.encode_batch(big, add_bos=bos, add_eos=eos, num_threads=rng.choice((0, 2, 3)))
        want = [tok.encode(t, add_bos=bos, add_eos=eos) for t in texts] * times
        _require(got == want, "large threaded batch != per-item encode", times=times)
        alpha, seed = rng.choice(ALPHAS), rng.getrandbits(64)
        one = tok.encode_batch(big, alpha=alpha, seed=seed, num_threads=1)
        _require(tok.encode_batch(big, alpha=alpha, seed=seed, num_threads=2) == one,
                 "large sampled batch depends on num_threads", alpha=alpha, seed=seed)
        check_packing_under_threads(tok, big, rng)
    # str texts: packing checks and encodes them in C (with NFC through the
    # exact path when the table cannot show it); the oracle is the bytes of
    # unicodedata's NFC. Random code points from the scripts the table
    # covers, combining marks and astral planes are mixed in.
    if rng.random() < 0.3:
        strs = [t.decode("utf-8", "replace") + "".join(
                    chr(rng.choice(STR_EXTRAS)) for _ in range(rng.randint(0, 6))) for t in texts]
        nfc = [unicodedata.normalize("NFC", t).encode("utf-8") for t in strs]
        threads = rng.choice((1, 2))
        _require(tok.encode_batch(strs, num_threads=threads) == tok.encode_batch(nfc, num_threads=threads),
                 "str batch != batch of its NFC bytes", threads=threads)
        _require([tok.encode(t) for t in strs[:5]] == [tok.encode(t) for t in nfc[:5]],
                 "str encode != encode of its NFC bytes")
        packed, offs = _core.pack_texts(strs, lambda t: unicodedata.normalize("NFC", t).encode("utf-8"))
        _require(bytes(packed) == b"".join(nfc) and offs.tolist()[1:] == np.cumsum([len(b) for b in nfc]).tolist(),
                 "pack_texts != NFC UTF-8 of the texts")
    if rng.random() < 0.1:
        check_mutated_batch(tok, texts, rng)
    # Unchunked batches: each text is one chunk (the trainer's mode).
    data = b"".join(texts)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=offsets[1:])
    flat, bounds = case.seg.encode_concat(data, offsets, -1.0, 0, rng.choice((1, 2, 5)), False)
    for i, text in enumerate(texts):
        want_ids = [case.twin.piece_to_id[p] for p in case.twin.viterbi(text)]
        got_ids = flat[bounds[i]:bounds[i + 1]].tolist()
        _require(got_ids == want_ids, "unchunked encode_concat differs from twin Viterbi", text=text)


def check_split(case: Case, items: List[bytes], rng: random.Random) -> None:
    """``split_counts`` equals the twin's weighted piece counts."""
    weights = [rng.choice((0, 1, rng.randint(1, 1000), rng.randint(1, 1 << 40))) for _ in items]
    data = b"".join(items)
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in items], out=offsets[1:])
    threads = rng.choice((0, 1, 2, 7))
    got = case.seg.split_counts(data, offsets, np.asarray(weights, dtype=np.int64), threads)
    want = np.zeros(len(case.pieces), dtype=np.int64)
    for item, weight in zip(items, weights):
        for piece in case.twin.viterbi(item):
            want[case.twin.piece_to_id[piece] - 3] += weight
    _require(got.dtype == np.int64 and np.array_equal(got, want), "split_counts differs",
             threads=threads, diff=np.nonzero(got != want)[0][:10])


def check_pickle(case: Case, texts: List[bytes]) -> None:
    """A pickled tokenizer and segmenter encode like the original."""
    clone = pickle.loads(pickle.dumps(case.tok))
    seg = pickle.loads(pickle.dumps(case.seg))
    for text in texts[:5]:
        _require(clone.encode(text) == case.tok.encode(text), "pickled tokenizer differs", text=text)
        _require(seg.encode_bytes(text, out_type=2).tolist() == case.tok.encode(text),
                 "pickled segmenter differs", text=text)


# ---------------------------------------------------------------------------
# Drivers
# ---------------------------------------------------------------------------


@dataclass
class Stats:
    """What one run did."""

    inputs: int = 0
    batches: int = 0
    splits: int = 0
    vocabularies: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        return (f"{self.inputs} inputs ({self.bytes} bytes), {self.batches} batches, "
                f"{self.splits} split_counts, {self.vocabularies} vocabularies in "
                f"{self.seconds:.1f} s ({rate:.0f} inputs/s)")


def _write_reproducer(crash_dir: str, case: Case, payload: dict) -> str:
    os.makedirs(crash_dir, exist_ok=True)
    payload = dict(payload)
    payload["counts"] = {base64.b64encode(p).decode(): str(c) for p, c in case.counts.items()}
    path = os.path.join(crash_dir, f"mismatch-{int(time.time() * 1000)}.json")
    with open(path, "w") as handle:
        json.dump(payload, handle)
    return path


def run_block(seed: int, block: int, inputs: int, stats: Stats, min_size: int = 256,
              max_size: int = 5000, batch_every: int = 25) -> None:
    """Check ``inputs`` texts against one random vocabulary (block ``block`` of ``seed``)."""
    rng = random.Random(f"{seed}:{block}")
    counts, alphabet = random_counts(rng, min_size, max_size)
    case = Case(counts, alphabet)
    stats.vocabularies += 1
    recent: List[bytes] = []
    for index in range(inputs):
        text = random_text(rng, alphabet, case.pieces)
        try:
            check_text(case, text, rng)
            recent.append(text)
            if len(recent) == batch_every or index == inputs - 1:
                check_batch(case, recent, rng)
                stats.batches += 1
                items = recent + rng.sample(case.pieces, min(len(case.pieces), 20)) + [b""]
                check_split(case, items, rng)
                stats.splits += 1
                if rng.random() < 0.05:
                    check_pickle(case, recent)
                recent = []
        except Mismatch as exc:
            exc.args = (f"{exc.args[0]}\n  replay: --seed {seed} --first-block {block} "
                        f"--vocab-every {inputs} --iterations {inputs} (input {index})",)
            exc.case = case  # type: ignore[attr-defined]
            exc.text = text  # type: ignore[attr-defined]
            raise
        stats.inputs += 1
        stats.bytes += len(text)


def run_random(iterations: int, seed: int, vocab_every: int, first_block: int = 0,
               report_every: float = 30.0, min_size: int = 256, max_size: int = 5000,
               crash_dir: Optional[str] = None, out=sys.stdout) -> Stats:
    """The seeded driver: ``iterations`` texts over fresh vocabularies."""
    stats = Stats()
    start = last = time.monotonic()
    block = first_block
    while stats.inputs < iterations:
        todo = min(vocab_every, iterations - stats.inputs)
        try:
            run_block(seed, block, todo, stats, min_size, max_size)
        except Mismatch as exc:
            stats.seconds = time.monotonic() - start
            if crash_dir:
                path = _write_reproducer(crash_dir, exc.case, {  # type: ignore[attr-defined]
                    "error": str(exc), "text": base64.b64encode(exc.text).decode()})  # type: ignore[attr-defined]
                print(f"reproducer written to {path}", file=out)
            raise
        block += 1
        now = time.monotonic()
        if report_every and now - last >= report_every:
            stats.seconds = now - start
            print(f"[fuzz] block {block}: {stats.line()}", file=out, flush=True)
            last = now
    stats.seconds = time.monotonic() - start
    return stats


def run_atheris(argv: List[str], pool_size: int = 8, seed: int = 0) -> None:
    """Coverage-guided fuzzing with atheris over a pool of random vocabularies."""
    import atheris

    pool = []
    for b in range(pool_size):
        rng = random.Random(f"atheris:{seed}:{b}")
        counts, alphabet = random_counts(rng, 256, 5000 if b % 2 else 600)
        pool.append(Case(counts, alphabet))

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        case = pool[fdp.ConsumeIntInRange(0, len(pool) - 1)]
        mode = fdp.ConsumeIntInRange(0, 2)
        text_seed = fdp.ConsumeInt(8)
        raw = fdp.ConsumeBytes(fdp.remaining_bytes())
        if mode == 1:     # map onto the vocabulary's alphabet: many matches
            text = bytes(case.alphabet[b % len(case.alphabet)] for b in raw)
        elif mode == 2:   # build from pieces chosen by the bytes
            text = b"".join(case.pieces[(b * 131) % len(case.pieces)] for b in raw)
        else:
            text = raw
        rng = random.Random(text_seed)
        check_text(case, text, rng)
        if len(text) < 64:
            check_batch(case, [text, text[::-1], b"", text[: len(text) // 2]], rng)
            check_split(case, [text, text[1:]], rng)

    atheris.instrument_all()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10_000, help="texts to check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("auto", "atheris", "random"), default="random",
                        help="auto: atheris when importable, else random")
    parser.add_argument("--vocab-every", type=int, default=500, help="texts per random vocabulary")
    parser.add_argument("--first-block", type=int, default=0, help="first vocabulary block (replay)")
    parser.add_argument("--min-vocab", type=int, default=256)
    parser.add_argument("--max-vocab", type=int, default=5000)
    parser.add_argument("--report-every", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--crash-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                            "bytepiece-fuzz-crashes"))
    args, rest = parser.parse_known_args(argv)
    print(f"[fuzz] core: {_core.__file__}", flush=True)
    mode = args.mode
    if mode == "auto":
        try:
            import atheris  # noqa: F401
            mode = "atheris"
        except ImportError:
            mode = "random"
    if mode == "atheris":
        if not any(arg.startswith("-max_len=") for arg in rest):
            rest.append("-max_len=2048")
        run_atheris([sys.argv[0], f"-runs={args.iterations}", *rest], seed=args.seed)
        return 0
    try:
        stats = run_random(args.iterations, args.seed, args.vocab_every, args.first_block,
                           args.report_every, args.min_vocab, args.max_vocab, args.crash_dir)
    except Mismatch as exc:
        print(f"[fuzz] MISMATCH: {exc}", flush=True)
        return 1
    print(f"[fuzz] done: {stats.line()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
