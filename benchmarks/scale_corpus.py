"""Large benchmark corpora re-cut from ``corpora/*.txt``, and child-process measurements.

Training benchmarks need corpora of any size whose lines do not repeat
(repeated text would let a trainer's hash tables stop growing, which hides
exactly the memory cost being measured). :func:`build_corpus` makes one from
the bundled texts with a seed:

* the last ``HOLDOUT`` share of every file's lines is held out (written
  beside the corpus, one file per source, for bytes-per-token checks);
* every other line is re-cut: a line with spaces has its words shuffled, a
  line without (Chinese) is cut into chunks of 2-6 characters which are
  shuffled; consecutive lines are grouped until a group has at least
  ``MIN_UNITS`` words or chunks, so that a group has too many orderings to
  come out twice;
* a line already written is never written again (checked with a hash).

Rounds over the source lines continue until the size is reached. The file
is cached under ``cache_dir`` (default: ``$BYTEPIECE_BENCH_CACHE`` or
``<tmp>/bytepiece-bench``), keyed by size and seed, and written atomically.

:func:`measure` runs a command in a fresh child and reports its wall time
and peak RSS (``getrusage(RUSAGE_CHILDREN)`` in a launcher that runs only
that child), for ``train_scale.py`` and the cluster benchmark.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bytepiece.model_io import atomic_write  # noqa: E402

CORPORA = ROOT / "corpora"
#: Share of each source file's lines held out of every built corpus.
HOLDOUT = 0.05
#: Fewest words or chunks per output line (12! orderings).
MIN_UNITS = 12
MB = 1_000_000


def default_cache_dir() -> Path:
    return Path(os.environ.get("BYTEPIECE_BENCH_CACHE") or Path(tempfile.gettempdir()) / "bytepiece-bench")


def source_lines(files: Optional[Sequence[Path]] = None) -> Tuple[List[str], Dict[str, List[str]]]:
    """Training lines of all source files (no newline, no blank lines) and held-out lines per file."""
    files = sorted(CORPORA.glob("*.txt")) if files is None else list(files)
    train: List[str] = []
    held: Dict[str, List[str]] = {}
    for path in files:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        cut = int(round(len(lines) * (1.0 - HOLDOUT)))
        train.extend(line for line in lines[:cut] if line.strip())
        held[Path(path).stem] = [line for line in lines[cut:] if line.strip()]
    return train, held


def _units(line: str, rng: random.Random) -> List[str]:
    """The words of a line, or chunks of 2-6 characters if it has no spaces."""
    if " " in line.strip():
        return [w for w in line.split(" ") if w]
    units = []
    i = 0
    while i < len(line):
        step = rng.randint(2, 6)
        units.append(line[i:i + step])
        i += step
    return units


def _round(lines: List[str], rng: random.Random):
    """One pass over ``lines``: grouped, re-cut, shuffled output lines."""
    group: List[str] = []
    spaced = False
    for line in lines:
        units = _units(line, rng)
        spaced = spaced or " " in line.strip()
        group.extend(units)
        if len(group) >= MIN_UNITS:
            rng.shuffle(group)
            yield (" " if spaced else "").join(group)
            group = []
            spaced = False


def build_corpus(megabytes: float, seed: int = 0, cache_dir: Optional[Path] = None,
                 quiet: bool = False) -> Tuple[Path, Path]:
    """``(corpus, heldout_dir)``: a re-cut corpus of about ``megabytes`` MB (cached).

    ``heldout_dir`` holds ``<source>.txt`` with the held-out lines of each
    source file (the same for every size and seed).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    lines, held = source_lines()
    heldout_dir = cache / "heldout"
    heldout_dir.mkdir(exist_ok=True)
    for name, held_lines in held.items():
        target = heldout_dir / f"{name}.txt"
        if not target.exists():
            data = "".join(line + "\n" for line in held_lines).encode("utf-8")
            atomic_write(target, lambda handle, data=data: handle.write(data))
    path = cache / f"recut-{megabytes:g}MB-seed{seed}.txt"
    if path.exists():
        return path, heldout_dir
    goal = int(megabytes * MB)
    if not quiet:
        print(f"building {path} ...", file=sys.stderr, flush=True)

    def write(handle) -> None:
        rng = random.Random(seed)
        seen = set()
        written = 0
        buffer: List[bytes] = []
        while written < goal:
            for out in _round(lines, rng):
                key = hash(out)
                if key in seen:
                    continue
                seen.add(key)
                data = (out + "\n").encode("utf-8")
                buffer.append(data)
                written += len(data)
                if len(buffer) >= 10000:
                    handle.write(b"".join(buffer))
                    buffer.clear()
                if written >= goal:
                    break
        handle.write(b"".join(buffer))

    atomic_write(path, write)
    return path, heldout_dir


_LAUNCHER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - t\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "sys.stderr.write(p.stderr.decode('utf-8', 'replace')[-2000:])\n"
    "print(p.returncode, wall, peak)\n"
)


def measure(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> dict:
    """Run ``argv`` in a fresh child: ``{"ok", "wall", "peak_mb", "error"}``.

    ``RUSAGE_CHILDREN`` reports the largest child so far, so every command
    gets a fresh launcher process that runs it and nothing else.
    """
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        return {"ok": False, "wall": 0.0, "peak_mb": 0.0, "error": out.stderr[-500:]}
    rc, wall, peak = out.stdout.split()
    return {"ok": int(rc) == 0, "wall": float(wall), "peak_mb": float(peak),
            "error": "" if int(rc) == 0 else (out.stderr.strip().splitlines() or [""])[-1]}


def available_mb() -> float:
    """Memory a new process can take now (``MemAvailable``), or the total RAM."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def total_mb() -> float:
    """Total RAM of the machine in MB."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
