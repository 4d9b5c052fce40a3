"""Ray engine against the local engine on the same cores, and a scaling model.

For each corpus size (re-cut from ``corpora/`` with a seed, no line repeated)
it measures, on this machine:

* encoding into one ``.npy``: the local process pool (the default of
  ``bytepiece encode -o``) against the Ray engine, and into a shard
  directory (``-o DIR/``) with both engines;
* training (when ``Trainer.train`` takes ``engine=``): the local engine
  against the Ray engine, same workers, and that both write the same model.

Ray runs on a cluster started once (``ray.init(num_cpus=WORKERS)``) and
warmed up, as a job would find a running cluster; the start-up of a local
cluster is reported on its own line. For every pass of the Ray runs it
prints the tasks, the map seconds per shard (mean, in the task), the merge
seconds, the driver's own seconds (writing, merging) and the bytes shipped
(task results plus task arguments).

The scaling model takes, per pass, the map cost per input byte (summed task
seconds / bytes), the driver cost per shard (serial: it waits, merges, writes
in order) and the fixed cost per pass, and predicts the wall time at a size
and a number of workers as ``passes * (max(bytes * map_cost / W, shards *
driver_cost) + fixed) + serial``, ``serial`` being the part of training that is
no pass (candidate selection, pruning: measured as wall minus the passes).
Scaling stops being linear where the driver's serial work per pass catches up
with the map work spread over the workers: ``W* = shard_bytes * map_cost /
driver_cost``.

    python benchmarks/ray_scale.py --sizes 30 120 --workers 2
    python benchmarks/ray_scale.py --sizes 30 --two-nodes   # also a 2-node cluster on this machine
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from bytepiece.engine import LocalEngine  # noqa: E402
from encode_file import train_small_model as small_model  # noqa: E402
from bytepiece.tokenizer import Tokenizer  # noqa: E402

MB = 1_000_000
#: The pieces of the vocabulary the model predicts the time of.
TARGET_PIECES = 32_000


# -- corpora --------------------------------------------------------------------


def _recut(line: str, rng: random.Random) -> str:
    """A line with its words shuffled, or, without spaces, its 2-6 character chunks."""
    if " " in line.strip():
        units = line.split(" ")
        rng.shuffle(units)
        return " ".join(units)
    units, i = [], 0
    while i < len(line):
        step = rng.randint(2, 6)
        units.append(line[i:i + step])
        i += step
    rng.shuffle(units)
    return "".join(units)


def build_corpus(megabytes: float, seed: int, directory: Path) -> Path:
    """A corpus of about ``megabytes`` MB: ``benchmarks/scale_corpus.py`` when it
    is there, else the lines of ``corpora/*.txt`` re-cut with ``seed``, round
    after round, a line never written twice."""
    try:
        from scale_corpus import build_corpus as shared
    except ImportError:
        shared = None
    if shared is not None:
        return Path(shared(megabytes, seed=seed, quiet=True)[0])
    path = directory / f"corpus-{megabytes:g}mb-seed{seed}.txt"
    if path.exists():
        return path
    lines = []
    for name in sorted(os.listdir(ROOT / "corpora")):
        if name.endswith(".txt"):
            lines += [line for line in (ROOT / "corpora" / name).read_text(encoding="utf-8").splitlines()
                      if line.strip()]
    rng = random.Random(seed)
    seen = set()
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        while written < megabytes * MB:
            for line in lines:
                cut = _recut(line, rng)
                key = hash(cut)
                if key in seen:
                    continue
                seen.add(key)
                data = cut + "\n"
                handle.write(data)
                written += len(data.encode("utf-8"))
                if written >= megabytes * MB:
                    break
    os.replace(tmp, path)
    return path


# -- measuring --------------------------------------------------------------------


class Timed:
    """An engine whose ``map`` also measures the caller's own time between
    results (the driver's work: writing, merging) and the number of results."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.workers = engine.workers
        self.in_process = getattr(engine, "in_process", False)
        self.driver = 0.0
        self.results = 0

    def map(self, fn, items):
        for value in self.engine.map(fn, items):
            tick = time.perf_counter()
            yield value
            self.driver += time.perf_counter() - tick
            self.results += 1

    def map_reduce(self, fn, items, merge):
        return self.engine.map_reduce(fn, items, merge)

    def close(self) -> None:
        pass


def _pass_rows(engine: Any, first: int, timed: Optional[Timed] = None) -> List[Dict[str, float]]:
    rows = []
    for record in engine.stats[first:]:
        tasks = record["tasks"]
        if not tasks:
            continue
        seconds = record["task_seconds"]
        rows.append({
            "tasks": tasks,
            "map_per_shard": sum(seconds) / len(seconds),
            "map_total": sum(seconds),
            "merge": engine.merge_seconds(record),
            "shipped": record["result_bytes"] + record["argument_bytes"],
            "wall": record["wall"],
        })
    return rows


def _print_passes(label: str, rows: List[Dict[str, float]], driver: Optional[float] = None) -> None:
    for i, row in enumerate(rows):
        extra = f", driver {driver:.2f} s" if driver is not None and len(rows) == 1 else ""
        print(f"    {label} pass {i + 1}: {row['tasks']:4d} tasks, map {row['map_per_shard']:.3f} s/shard "
              f"({row['map_total']:.1f} s in all), merge {row['merge']:.3f} s{extra}, "
              f"shipped {row['shipped'] / MB:.1f} MB, wall {row['wall']:.2f} s")


def bench_encoding(corpus: Path, model: Path, ray_engine: Any, workers: int, out: Path) -> Dict[str, float]:
    from bytepiece.cli import _encode_files, _encode_shards

    tokenizer = Tokenizer(str(model))
    size = corpus.stat().st_size
    results = {}
    tick = time.perf_counter()
    _encode_files(tokenizer, [str(corpus)], str(out / "local.npy"), workers=workers)
    results["local .npy"] = time.perf_counter() - tick
    first = len(ray_engine.stats)
    timed = Timed(ray_engine)
    tick = time.perf_counter()
    _encode_shards(tokenizer, [str(corpus)], str(out / "ray.npy"), timed, total=size)
    results["ray .npy"] = time.perf_counter() - tick
    same = (out / "local.npy").read_bytes() == (out / "ray.npy").read_bytes()
    rows = _pass_rows(ray_engine, first)
    with LocalEngine(workers) as local:
        tick = time.perf_counter()
        _encode_shards(tokenizer, [str(corpus)], str(out / "local-dir") + "/", local, shard_mb=16)
        results["local DIR/"] = time.perf_counter() - tick
    first_dir = len(ray_engine.stats)
    timed_dir = Timed(ray_engine)
    tick = time.perf_counter()
    _encode_shards(tokenizer, [str(corpus)], str(out / "ray-dir") + "/", timed_dir, shard_mb=16)
    results["ray DIR/"] = time.perf_counter() - tick
    dir_rows = _pass_rows(ray_engine, first_dir)
    for name in os.listdir(out / "local-dir"):
        same = same and (out / "local-dir" / name).read_bytes() == (out / "ray-dir" / name).read_bytes()
    print(f"  encoding {size / MB:.0f} MB, {workers} workers (identical outputs: {same})")
    for name, seconds in results.items():
        print(f"    {name:<11} {seconds:7.2f} s  {size / MB / seconds:6.1f} MB/s")
    print(f"    Ray/local: .npy {results['ray .npy'] / results['local .npy']:.2f}x, "
          f"DIR/ {results['ray DIR/'] / results['local DIR/']:.2f}x")
    _print_passes("ray .npy", rows, timed.driver)
    _print_passes("ray DIR/", dir_rows, timed_dir.driver)
    return {"size": size, "rows": rows, "driver": timed.driver, "dir_rows": dir_rows,
            "dir_driver": timed_dir.driver, **results}


def _train_supports_engine() -> bool:
    import inspect

    from bytepiece.trainer import Trainer

    return "engine" in inspect.signature(Trainer.train).parameters


def bench_training(corpus: Path, ray_engine: Any, workers: int, out: Path, algorithm: str,
                   vocab: int) -> Optional[Dict[str, Any]]:
    from bytepiece.trainer import Trainer

    size = corpus.stat().st_size
    walls = {}
    for name in ("local", "ray"):
        trainer = Trainer(max_vocab_size=vocab, algorithm=algorithm, verbose=False)
        first = len(ray_engine.stats)
        timed = Timed(ray_engine if name == "ray" else LocalEngine(workers))
        tick = time.perf_counter()
        trainer.train([corpus], engine=timed)
        walls[name] = time.perf_counter() - tick
        trainer.save(str(out / f"{name}.model"))
        if name == "local":
            timed.engine.close()
    same = (out / "local.model").read_bytes() == (out / "ray.model").read_bytes()
    rows = _pass_rows(ray_engine, first)
    print(f"  training {algorithm} {vocab} pieces, {size / MB:.0f} MB, {workers} workers "
          f"(identical models: {same})")
    print(f"    local {walls['local']:7.2f} s, ray {walls['ray']:7.2f} s: Ray/local {walls['ray'] / walls['local']:.2f}x")
    _print_passes("ray", rows)
    print(f"    driver's own time between results, all passes: {timed.driver:.2f} s")
    return {"size": size, "rows": rows, "driver": timed.driver, "wall": walls["ray"], "local": walls["local"]}


# -- the scaling model ----------------------------------------------------------------


def scaling_model(run: Dict[str, Any], shard_bytes: int, label: str) -> None:
    """Print the predicted time of the measured job at 1 GB and 1 TB with 8, 64, 512 workers."""
    rows = run["rows"]
    size = run["size"]
    map_cost = sum(r["map_total"] for r in rows) / size  # task seconds per input byte, all passes
    tasks = sum(r["tasks"] for r in rows)
    driver_per_shard = (run["driver"] + sum(r["merge"] for r in rows)) / max(1, tasks)
    passes = len(rows)
    fixed = sum(max(0.0, r["wall"] - r["map_total"] / run["workers"]) for r in rows) / max(1, passes)
    fixed = min(fixed, 1.0)  # what is left of a pass beyond its work, per pass
    serial = max(0.0, run["wall"] - sum(r["wall"] for r in rows))  # not in any pass
    shards_per_byte = 1 / shard_bytes
    print(f"  scaling model ({label}; from {size / MB:.0f} MB): {passes} passes, map {map_cost * MB * 1e3:.1f} "
          f"ms/MB, driver+merge {driver_per_shard * 1e3:.2f} ms/shard of {shard_bytes / MB:.0f} MB, "
          f"fixed {fixed:.2f} s/pass, serial {serial:.1f} s")
    gb_map = map_cost * 1e9
    gb_driver = driver_per_shard * 1e9 * shards_per_byte + fixed
    print(f"    at 1 GB, per pass: map work {gb_map / passes:.1f} s, merge+driver {gb_driver:.2f} s "
          f"= {100 * gb_driver / (gb_map / passes):.2f} % of the map work")
    knee = shard_bytes * map_cost / passes / driver_per_shard if driver_per_shard else float("inf")
    print(f"    linear up to about W* = {knee:,.0f} workers (the driver's serial work per pass then "
          "equals the map work per worker)")
    for total in (1e9, 1e12):
        cells = []
        for workers in (8, 64, 512):
            per_pass = max(total * map_cost / passes / workers, total * shards_per_byte * driver_per_shard) + fixed
            cells.append(f"{workers} workers {_hours(passes * per_pass + serial)}")
        print(f"    {total / 1e9:>5,.0f} GB: " + ", ".join(cells))


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


# -- two nodes on this machine ----------------------------------------------------------


def two_nodes(corpus: Path, model: Path, out: Path) -> None:
    """Encoding on a head node of 1 CPU, then on it plus a worker node of 1 CPU,
    both started here and stopped after (only these processes: by their
    process groups)."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    port = 6400 + os.getpid() % 1000
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([str(ray_bin), "start", "--block", "--num-cpus=1", *args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))

    try:
        start("--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false")
        import ray

        from bytepiece.cli import _encode_shards
        from bytepiece.ray_engine import RayEngine

        time.sleep(8)
        tokenizer = Tokenizer(str(model))
        size = corpus.stat().st_size
        with RayEngine(address=f"127.0.0.1:{port}") as engine:
            for nodes in (1, 2):
                if nodes == 2:
                    start(f"--address=127.0.0.1:{port}")
                    while len([n for n in ray.nodes() if n["Alive"]]) < 2:
                        time.sleep(0.5)
                engine.in_flight = 2 * nodes
                for _ in range(2):  # the first run warms the new node's workers
                    shutil.rmtree(out / "two", ignore_errors=True)
                    tick = time.perf_counter()
                    _encode_shards(tokenizer, [str(corpus)], str(out / "two") + "/", engine, shard_mb=2)
                    seconds = time.perf_counter() - tick
                print(f"  {nodes} node(s) of 1 CPU: encoding {size / MB:.0f} MB to DIR/ in {seconds:.2f} s "
                      f"({size / MB / seconds:.1f} MB/s)")
    finally:
        for proc in reversed(procs):
            for sig in (15, 9):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=20)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(temp, ignore_errors=True)


# -- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[30, 120], help="corpus sizes, MB")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=TARGET_PIECES)
    parser.add_argument("--algorithms", nargs="+", default=["compress", "bnlm"])
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-encode", action="store_true")
    parser.add_argument("--two-nodes", action="store_true", help="also run a 2-node cluster on this machine")
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()

    import ray

    from bytepiece.ray_engine import RayEngine

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bytepiece-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    model = small_model(work)
    tick = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    started = time.perf_counter() - tick
    engine = RayEngine()
    tick = time.perf_counter()
    list(engine.map(abs, range(4 * args.workers)))  # workers up, bytepiece imported
    print(f"Ray: local cluster of {args.workers} CPUs started in {started:.1f} s, warm in "
          f"{time.perf_counter() - tick:.1f} s (not in the figures below)")
    try:
        for megabytes in args.sizes:
            corpus = build_corpus(megabytes, args.seed, work)
            out = work / f"out-{megabytes:g}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if not args.no_encode:
                run = bench_encoding(corpus, model, engine, args.workers, out)
                shard = max(1 << 20, min(64 << 20, run["size"] // (16 * args.workers)))
                scaling_model({**run, "workers": args.workers, "wall": run["ray .npy"]}, shard,
                              "encoding to .npy: the driver writes every id")
                scaling_model({**run, "workers": args.workers, "wall": run["ray DIR/"],
                               "rows": run["dir_rows"], "driver": run["dir_driver"]}, 16 << 20,
                              "encoding to DIR/: the tasks write")
            if args.no_train:
                continue
            if not _train_supports_engine():
                print("  training: Trainer.train takes no engine in this version; skipped")
                continue
            for algorithm in args.algorithms:
                run = bench_training(corpus, engine, args.workers, out, algorithm, args.vocab)
                from bytepiece.inputs import SHARD_BYTES

                scaling_model({**run, "workers": args.workers}, SHARD_BYTES, f"training {algorithm}")
    finally:
        engine.close()
        ray.shutdown()
    if args.two_nodes:
        corpus = build_corpus(args.sizes[0], args.seed, work)
        two_nodes(corpus, model, work)
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
