"""A/B of two builds of the compiled tokenizer core, alternated in one run.

    python benchmarks/ab_core.py --ref-a 4d3c526 [--rounds 7] [--lines N]

Variant A is ``bytepiece/`` at git revision ``--ref-a``, exported to a
temporary directory and built there (the core's modules; the trainers'
extensions are copied from this tree); variant B is this working tree as built in place
(``python setup.py build_ext --inplace``), or ``--tree-b DIR``. Each round runs one child process
per variant, in the order A B then B A, so that a slow spell of the shared
machine hits both alike. A child loads the reference model and every line of
``corpora/`` (NFC) and times each mode (best of ``--repeat`` calls); the
table gives the median over rounds of MB/s per mode and the ratio B/A.
Both variants must produce the same ids (checked once per child against a
digest).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "reference" / "bytepiece.eu.plus.40k.model"

MODES = [
    "encode per line",
    "encode_batch 1 thread",
    "encode_batch 2 threads",
    "encode_batch_flat 2 threads",
    "sampling a=0.1 per line",
    "sampling a=0.1 batch 2 threads",
]


def child(tree: str, model: str, lines_limit: int, repeat: int, modes: list) -> None:
    """Time every mode with the ``bytepiece`` package found in ``tree``."""
    sys.path.insert(0, tree)
    import unicodedata

    import bytepiece._core as core
    from bytepiece import Tokenizer

    assert Path(core.__file__).resolve().is_relative_to(Path(tree).resolve()), core.__file__
    lines = []
    for path in sorted((ROOT / "corpora").glob("*.txt")):
        lines += path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines = [unicodedata.normalize("NFC", line) for line in lines]
    if lines_limit:
        lines = lines[:lines_limit]
    megabytes = sum(len(line.encode()) for line in lines) / 1e6
    tok = Tokenizer(model)
    fns = {
        "encode per line": lambda: [tok.encode(line) for line in lines],
        "encode_batch 1 thread": lambda: tok.encode_batch(lines, num_threads=1),
        "encode_batch 2 threads": lambda: tok.encode_batch(lines, num_threads=2),
        "encode_batch_flat 2 threads": lambda: tok.encode_batch_flat(lines, num_threads=2),
        "sampling a=0.1 per line": lambda: [tok.encode(line, alpha=0.1, seed=1) for line in lines],
        "sampling a=0.1 batch 2 threads": lambda: tok.encode_batch(lines, alpha=0.1, seed=1, num_threads=2),
    }
    digest = hashlib.sha256()
    for ids in tok.encode_batch(lines, num_threads=1) + tok.encode_batch(lines, alpha=0.1, seed=1, num_threads=2):
        digest.update(bytes(str(ids), "ascii"))
    result = {"digest": digest.hexdigest(), "mb_s": {}, "mb_cpu_s": {}}
    for mode in modes:
        best = best_cpu = float("inf")
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fns[mode]()
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
            del out
        result["mb_s"][mode] = megabytes / best
        result["mb_cpu_s"][mode] = megabytes / best_cpu
    print(json.dumps(result))


HOT = ["viterbi", "sample", "sample_linear", "sample_log", "encode_text", "run_block", "run_batch",
       "fill_ready", "chunk_entropy", "edges_ending_at", "trie_build"]


def functions(tree: str) -> dict:
    """C functions of the core's modules in ``tree``: name -> (.so file, symbol)."""
    found = {}
    for so in sorted(glob.glob(os.path.join(tree, "bytepiece", "_*.so"))):
        if not re.match(r"_(core|trie|lattice)\.", os.path.basename(so)):
            continue
        symbols = subprocess.run(["nm", so], capture_output=True, text=True).stdout
        for symbol in set(re.findall(r"\b(__pyx_f_9bytepiece_\d+_(?:core|trie|lattice)_\w+)", symbols)):
            found[re.sub(r"^__pyx_f_9bytepiece_\d+_(core|trie|lattice)_", "", symbol)] = (so, symbol)
    return found


def disassembly(so: str, symbol: str) -> list:
    """The instructions of ``symbol`` in ``so``, addresses, offsets and immediates blanked."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}", so],
                          check=True, capture_output=True, text=True).stdout
    body = [line.split("\t", 1)[-1] for line in text.splitlines() if re.match(r"^\s+[0-9a-f]+:\t", line)]
    # Immediates blanked too: the source line numbers of error paths differ.
    return [re.sub(r"<[^>]*>", "<>", re.sub(r"\$0x[0-9a-f]+|\b(0x)?[0-9a-f]{4,}\b", "X", line)) for line in body]


def compare_code(tree_a: str, tree_b: str) -> None:
    """Whether the hot functions compiled to the same instructions in both builds
    (a function called across modules can no longer be inlined by its caller)."""
    fa, fb = functions(tree_a), functions(tree_b)
    print("machine code of the hot functions (objdump; addresses, offsets, immediates blanked):")
    for function in HOT:
        a = disassembly(*fa[function]) if function in fa else []
        b = disassembly(*fb[function]) if function in fb else []
        if not a and not b:
            state = "inlined in both"
        elif not a or not b:
            state = f"inlined in {'A' if not a else 'B'} only"
        else:
            state = "identical" if a == b else f"differs ({len(a)} vs {len(b)} instructions)"
        where = os.path.basename(fb[function][0]).split(".")[0] if function in fb else "-"
        print(f"  {function:18s} {state:36s} B: in {where}")
    common = sorted(set(fa) & set(fb))
    differ = [f for f in common if disassembly(*fa[f]) != disassembly(*fb[f])]
    print(f"  C functions in both builds: {len(common)}, same instructions: {len(common) - len(differ)}; "
          f"only in A: {sorted(set(fa) - set(fb))}; only in B: {sorted(set(fb) - set(fa))}")


def build_ref(ref: str, where: Path) -> Path:
    """Export ``bytepiece/`` at ``ref`` and build its ``_core`` there."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "bytepiece", "setup.py", "pyproject.toml",
                              "README.md"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    for so in glob.glob(str(ROOT / "bytepiece" / "*.so")):
        if not re.match(r"_(core|trie|lattice)\.", Path(so).name):
            shutil.copy(so, where / "bytepiece")
    env = dict(os.environ, BYTEPIECE_ONLY="_core,_trie,_lattice")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=where, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref-a", default="4d3c526", help="git revision of variant A")
    parser.add_argument("--tree-b", default=str(ROOT), help="directory holding variant B's built bytepiece/")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="calls per mode in a child (best kept)")
    parser.add_argument("--lines", type=int, default=0, help="only the first N lines (0: all)")
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of the modes")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {sorted(unknown)}; known: {MODES}")
    if args.child:
        child(args.child, args.model, args.lines, args.repeat, modes)
        return
    with tempfile.TemporaryDirectory(prefix="ab_core_") as tmp:
        print(f"building variant A ({args.ref_a}) in {tmp} ...", flush=True)
        trees = {"A": str(build_ref(args.ref_a, Path(tmp))), "B": args.tree_b}
        if shutil.which("objdump"):
            compare_code(trees["A"], trees["B"])
        runs = {"A": [], "B": []}
        digests = set()
        for r in range(args.rounds):
            for variant in ("AB" if r % 2 == 0 else "BA"):
                cmd = [sys.executable, __file__, "--child", trees[variant], "--model", args.model,
                       "--lines", str(args.lines), "--repeat", str(args.repeat), "--modes", args.modes]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp).stdout
                result = json.loads(out.strip().splitlines()[-1])
                digests.add(result["digest"])
                runs[variant].append(result)
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
        if len(digests) != 1:
            sys.exit("the two variants produced different ids")
        print(f"\nA = {args.ref_a}, B = {args.tree_b}; median over {args.rounds} rounds "
              f"(each the best of {args.repeat} calls); same ids: yes")
        for key, unit in (("mb_s", "MB per wall second"), ("mb_cpu_s", "MB per CPU second of the process")):
            print(f"\n{unit}")
            print(f"{'mode':34s} {'A':>9s} {'B':>9s} {'B/A':>7s}   {'A range':>15s} {'B range':>15s}")
            for mode in modes:
                a = [run[key][mode] for run in runs["A"]]
                b = [run[key][mode] for run in runs["B"]]
                ma, mb = statistics.median(a), statistics.median(b)
                print(f"{mode:34s} {ma:9.2f} {mb:9.2f} {mb / ma:7.3f}   "
                      f"{min(a):6.2f}-{max(a):<8.2f} {min(b):6.2f}-{max(b):<8.2f}")


if __name__ == "__main__":
    main()
