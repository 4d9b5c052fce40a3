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
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

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
    results (the driver's work: writing) and whose ``map_reduce`` records each
    pass's wall time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.workers = engine.workers
        self.in_process = getattr(engine, "in_process", False)
        self.driver = 0.0
        self.results = 0
        self.pass_walls: List[float] = []

    def map(self, fn, items):
        for value in self.engine.map(fn, items):
            tick = time.perf_counter()
            yield value
            self.driver += time.perf_counter() - tick
            self.results += 1

    def map_reduce(self, fn, items, merge, total_bytes=None):
        tick = time.perf_counter()
        try:
            return self.engine.map_reduce(fn, items, merge, total_bytes=total_bytes)
        finally:
            self.pass_walls.append(time.perf_counter() - tick)

    def close(self) -> None:
        pass


def _pass_rows(engine: Any, first: int, driver: float = 0.0) -> List[Dict[str, float]]:
    """One row per pass (engine call) since record ``first``: the work in tasks
    split into map and merging, the driver's serial seconds (fetching and
    merging partials, plus ``driver``: the caller's own, for a single call),
    the merge tasks, the bytes shipped and the wall time."""
    records = [record for record in engine.stats[first:] if record["tasks"]]
    rows = []
    for record in records:
        task_seconds = sum(record["task_seconds"])
        timed_merges = engine.merge_task_seconds(record)
        merge_tasks = [seconds for seconds, _fetching in timed_merges]
        merge_fetching = sum(fetching for _seconds, fetching in timed_merges)
        per_task = record["driver_seconds"]  # fetched and merged on the driver, one per task
        later = per_task[len(per_task) // 2:]  # once the partials are as small as they get
        if record["merge_tasks"] and not per_task:  # all in a tree: the driver only fetches the result
            steady = 0.0
        elif later:
            steady = sum(later) / len(later)
        else:  # map: the caller's own time between results
            steady = (record["fetch_seconds"] + driver) / record["tasks"]
        rows.append({
            "driver_steady": steady,
            "tasks": record["tasks"],
            "items": record["items"],
            "map": task_seconds - record["task_merge_seconds"],
            "merge_work": record["task_merge_seconds"] + sum(merge_tasks),
            "merge_task_mean": sum(merge_tasks) / len(merge_tasks) if merge_tasks else 0.0,
            "merge_fetching": merge_fetching,
            "driver": record["fetch_seconds"] + record["merge_seconds"] + (driver if len(records) == 1 else 0.0),
            "shipped": record["result_bytes"] + record["argument_bytes"],
            "wall": record["wall"],
        })
    return rows


def _print_passes(label: str, rows: List[Dict[str, float]], local_walls: Sequence[float] = ()) -> None:
    print(f"    {label}: pass, tasks (shards), map s in tasks, merging s (in tasks + merge tasks; "
          "of which merge tasks fetching partials), driver s, MB shipped, wall s"
          + (" (local wall s)" if local_walls else ""))
    for i, row in enumerate(rows):
        local = f" ({local_walls[i]:.2f})" if i < len(local_walls) else ""
        print(f"      {i + 1:2d}  {row['tasks']:4d} ({row['items']:4d})  {row['map']:7.2f}  "
              f"{row['merge_work']:6.3f} ({row['merge_fetching']:5.3f})  {row['driver']:6.3f}  "
              f"{row['shipped'] / MB:7.1f}  {row['wall']:6.2f}{local}")


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
    rows = _pass_rows(ray_engine, first, timed.driver)
    with LocalEngine(workers) as local:
        tick = time.perf_counter()
        _encode_shards(tokenizer, [str(corpus)], str(out / "local-dir") + "/", local, shard_mb=16)
        results["local DIR/"] = time.perf_counter() - tick
    first_dir = len(ray_engine.stats)
    timed_dir = Timed(ray_engine)
    tick = time.perf_counter()
    _encode_shards(tokenizer, [str(corpus)], str(out / "ray-dir") + "/", timed_dir, shard_mb=16)
    results["ray DIR/"] = time.perf_counter() - tick
    dir_rows = _pass_rows(ray_engine, first_dir, timed_dir.driver)
    for name in os.listdir(out / "local-dir"):
        same = same and (out / "local-dir" / name).read_bytes() == (out / "ray-dir" / name).read_bytes()
    print(f"  encoding {size / MB:.0f} MB, {workers} workers (identical outputs: {same})")
    for name, seconds in results.items():
        print(f"    {name:<11} {seconds:7.2f} s  {size / MB / seconds:6.1f} MB/s")
    print(f"    Ray/local: .npy {results['ray .npy'] / results['local .npy']:.2f}x, "
          f"DIR/ {results['ray DIR/'] / results['local DIR/']:.2f}x")
    _print_passes("ray .npy", rows)
    _print_passes("ray DIR/", dir_rows)
    return {"size": size, "rows": rows, "dir_rows": dir_rows, **results}


def _train_supports_engine() -> bool:
    import inspect

    from bytepiece.trainer import Trainer

    return "engine" in inspect.signature(Trainer.train).parameters


def bench_training(corpus: Path, ray_engine: Any, workers: int, out: Path, algorithm: str,
                   vocab: int, local: bool = True) -> Optional[Dict[str, Any]]:
    from bytepiece.trainer import Trainer

    size = corpus.stat().st_size
    walls = {}
    local_walls: List[float] = []
    for name in ("local", "ray") if local else ("ray",):
        trainer = Trainer(max_vocab_size=vocab, algorithm=algorithm, verbose=False)
        first = len(ray_engine.stats)
        timed = Timed(ray_engine if name == "ray" else LocalEngine(workers))
        tick = time.perf_counter()
        trainer.train([corpus], engine=timed)
        walls[name] = time.perf_counter() - tick
        trainer.save(str(out / f"{name}.model"))
        if name == "local":
            local_walls = timed.pass_walls
            timed.engine.close()
    rows = _pass_rows(ray_engine, first)
    if local:
        same = (out / "local.model").read_bytes() == (out / "ray.model").read_bytes()
        print(f"  training {algorithm} {vocab} pieces, {size / MB:.0f} MB, {workers} workers "
              f"(identical models: {same})")
        print(f"    local {walls['local']:7.2f} s, ray {walls['ray']:7.2f} s: "
              f"Ray/local {walls['ray'] / walls['local']:.2f}x")
    else:
        print(f"  training {algorithm} {vocab} pieces, {size / MB:.0f} MB, {workers} workers: "
              f"ray {walls['ray']:.2f} s (no local run)")
    _print_passes("ray", rows, local_walls)
    return {"size": size, "rows": rows, "wall": walls["ray"], "local": walls.get("local")}


# -- the scaling model ----------------------------------------------------------------


def _pass_model(row: Dict[str, float], size: int, workers: int, fanout: int) -> Dict[str, float]:
    """One pass's costs, from its row measured on ``size`` bytes with ``workers``
    workers: work per input byte (map, merging), the driver's serial seconds
    per task, the bytes per task, and what is left of the wall time."""
    tasks = max(1, row["tasks"])
    steady = row["driver_steady"]
    model = {
        "map": row["map"] / size,  # seconds per byte, spread over the workers
        "merge": row["merge_work"] / size,  # merging in tasks and merge tasks: spread too
        "driver": steady,  # serial: once per task, in order
        # Serial, once per pass: the first partials, larger than later ones
        # (compress's sample before its threshold settles), and the result of
        # a tree of merges fetched at the end.
        "once": max(0.0, row["driver"] - steady * tasks),
        "group": size / tasks,
        "merge_task": row["merge_task_mean"],
        "fanout": fanout,
    }
    modelled = max((row["map"] + row["merge_work"]) / workers, row["driver"]) + _tree_tail(model, tasks)
    model["fixed"] = min(1.0, max(0.0, row["wall"] - modelled))
    return model


def _tree_tail(model: Dict[str, float], tasks: float) -> float:
    """The merge tasks left after the last map: one per level of the tree."""
    if not model["merge_task"] or tasks <= 1:
        return 0.0
    return math.ceil(math.log(tasks, model["fanout"])) * model["merge_task"]


def _pass_time(model: Dict[str, float], size: float, workers: int) -> float:
    tasks = size / model["group"]
    parallel = size * (model["map"] + model["merge"]) / workers
    serial = model["once"] + tasks * model["driver"]
    return max(parallel, serial) + _tree_tail(model, tasks) + model["fixed"]


def scaling_model(run: Dict[str, Any], label: str, fanout: int) -> None:
    """Print, from the measured passes of ``run``, each pass's merge and driver
    work at 1 GB against its map work, the number of workers where it stops
    being linear, and the predicted time at 1 GB and 1 TB with 8, 64, 512 workers."""
    size = run["size"]
    models = [_pass_model(row, size, run["workers"], fanout) for row in run["rows"]]
    serial = max(0.0, run["wall"] - sum(row["wall"] for row in run["rows"]))  # in no pass
    print(f"  scaling model ({label}; from {size / MB:.0f} MB, {len(models)} passes, "
          f"{serial:.1f} s in no pass): at 1 GB, per pass")
    print("      pass  map s  merging s  driver s  (merging+driver)/map  tasks of MB  linear to W*")
    knees = []
    totals = [0.0, 0.0]
    for i, model in enumerate(models):
        gigabyte = 1e9
        map_work = gigabyte * model["map"]
        driver = model["once"] + gigabyte / model["group"] * model["driver"]
        overhead = gigabyte * model["merge"] + driver
        totals[0] += map_work
        totals[1] += overhead
        work_per_task = model["group"] * (model["map"] + model["merge"])
        knee = work_per_task / model["driver"] if model["driver"] else float("inf")
        knees.append(knee)
        print(f"      {i + 1:4d} {map_work:6.1f} {gigabyte * model['merge']:10.2f} "
              f"{driver:9.3f}  {100 * overhead / map_work:19.2f} % "
              f"{model['group'] / MB:12.1f}  {knee:12,.0f}")
    print(f"      all passes: merging+driver = {100 * totals[1] / totals[0]:.2f} % of the map work; "
          f"linear up to W* = {min(knees):,.0f} workers (the first pass whose driver work per "
          "task then equals a worker's work per task)")
    for total in (1e9, 1e12):
        cells = []
        for workers in (8, 64, 512):
            seconds = sum(_pass_time(model, total, workers) for model in models) + serial
            ideal = sum(total * model["map"] / workers for model in models)
            cells.append(f"{workers} workers {_hours(seconds)} ({100 * ideal / seconds:.0f} % of linear)")
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
    parser.add_argument("--no-local", action="store_true",
                        help="training: the Ray run only (for the per-pass figures at a large size)")
    parser.add_argument("--group-mb", type=float, default=None, help="RayEngine group_bytes, MB")
    parser.add_argument("--fanout", type=int, default=None, help="RayEngine fanout (tree merges)")
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
    if args.group_mb is not None:
        engine.group_bytes = int(args.group_mb * (1 << 20))
    if args.fanout is not None:
        engine.fanout = args.fanout
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
                scaling_model({**run, "workers": args.workers, "wall": run["ray .npy"]}, "encoding to .npy",
                              engine.fanout)
                scaling_model({**run, "workers": args.workers, "wall": run["ray DIR/"], "rows": run["dir_rows"]},
                              "encoding to DIR/", engine.fanout)
            if args.no_train:
                continue
            if not _train_supports_engine():
                print("  training: Trainer.train takes no engine in this version; skipped")
                continue
            for algorithm in args.algorithms:
                run = bench_training(corpus, engine, args.workers, out, algorithm, args.vocab,
                                     local=not args.no_local)
                scaling_model({**run, "workers": args.workers}, f"training {algorithm}", engine.fanout)
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
