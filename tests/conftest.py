"""Shared helpers: where the reference data lives, random vocabularies, a chi-square p-value."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "corpora"
REFERENCE = ROOT.parent / "shared" / "reference"


def reference_file(name: str) -> Path:
    """A file of ``../shared/reference``; skips the test when it is absent."""
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference data not available: {path}")
    return path


def random_vocab(rng: random.Random, size: int = 400, max_len: int = 8,
                 alphabet: Optional[bytes] = None) -> Dict[bytes, int]:
    """All 256 single bytes plus random multi-byte pieces, with random counts.

    A small ``alphabet`` makes the pieces overlap a lot, which is what stresses
    the lattice (many edges per position, many ties).
    """
    alphabet = alphabet or bytes(range(256))
    possible = sum(len(alphabet) ** n for n in range(2, max_len + 1))
    if size - 256 > possible:
        raise ValueError(f"only {possible} multi-byte pieces exist over this alphabet")
    vocab = {bytes([b]): rng.randint(1, 1000) for b in range(256)}
    while len(vocab) < size:
        length = rng.randint(2, max_len)
        piece = bytes(rng.choice(alphabet) for _ in range(length))
        vocab[piece] = rng.choice([1, 2, 3, rng.randint(1, 10 ** 6)])
    return vocab


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom.

    Regularized upper incomplete gamma Q(dof/2, x/2), by series / continued
    fraction: enough precision for goodness-of-fit thresholds.
    """
    a, z = dof / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    if z < a + 1:  # series for the lower part
        term = total = 1.0 / a
        n = 1
        while abs(term) > 1e-15 * abs(total):
            term *= z / (a + n)
            total += term
            n += 1
        return max(0.0, 1.0 - total * math.exp(-z + a * math.log(z) - math.lgamma(a)))
    # Lentz continued fraction for the upper part
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-z + a * math.log(z) - math.lgamma(a)) * h


def chi_square_pvalue(observed: Dict, expected_prob: Dict, min_expected: float = 5.0) -> float:
    """Pearson goodness of fit; categories with small expectation are pooled."""
    n = sum(observed.values())
    unknown = set(observed) - set(expected_prob)
    if unknown:
        return 0.0  # an outcome that should be impossible
    cells, pooled_obs, pooled_exp = [], 0.0, 0.0
    for key, p in expected_prob.items():
        e = p * n
        if e < min_expected:
            pooled_obs += observed.get(key, 0)
            pooled_exp += e
        else:
            cells.append((observed.get(key, 0), e))
    if pooled_exp > 0:
        cells.append((pooled_obs, pooled_exp))
    if len(cells) < 2:
        return 1.0
    stat = sum((o - e) ** 2 / e for o, e in cells)
    return chi2_sf(stat, len(cells) - 1)


@pytest.fixture(scope="session")
def tang_model(tmp_path_factory) -> str:
    """A small model trained on the Tang poems (order 4, 1,000 ids): runs
    anywhere, no reference data needed."""
    from bytepiece.trainer import Trainer

    lines = (CORPORA / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    trainer = Trainer(order=4, max_vocab_size=1000, verbose=False, algorithm="bnlm")
    trainer.train(lines)
    path = tmp_path_factory.mktemp("models") / "tang.model"
    trainer.save(path)
    return str(path)
