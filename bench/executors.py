"""Benchmark: the same landing zone with one process, two worker processes and Ray tasks.

    python bench/executors.py [--files 8] [--events-per-file 250000] [--rounds 2]

Eight landing files of 250k events each (minified JSON arrays, a week each, cached in bench/out/), run
by `etl run` in a fresh warehouse with `--workers 1`, `--workers 2` and `--executor ray` (a Ray started
for the run, inside a network namespace with only loopback, as the tests run it), in alternating
rounds. Reports wall time, CPU-seconds, the cores they kept busy (CPU-seconds over wall time) and
peak RSS of the whole process tree (bench/measure.py), the ratios against one worker, and what stays
serial in the driver: planning (discover), the quarantine and registry, and everything outside the
timed steps (start-up, lock, commit, publish). Then the floor of two workers: their CPU-seconds spread
over every core. One worker already keeps more than one core busy (its reading, judging and writing
overlap on threads), so on two cores two workers gain less than half its time even with no overhead.

Before and after the runs it measures what the machine's cores give at that moment: the work of a
polars group-by in one process, then in one process per core at once (a virtual machine's cores may
give less than one core's work each when its host is busy; two workers cannot beat that).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.feedgen import START, journeys, write_feed  # noqa: E402
from tests.support.netns import loopback_only, namespace_problem  # noqa: E402

KINDS = {
    "--workers 1": ["--workers", "1"],
    "--workers 2": ["--workers", "2"],
    "--executor ray": ["--executor", "ray", "--workers", "2"],
}


def landing_zone(files: int, events: int) -> Path:
    landing = HERE / "out" / f"executors-{files}x{events}"
    for index in range(files):
        path = landing / f"week-{index:02d}.json"
        if not path.exists():
            print(f"generating {path} …", flush=True)
            week = START + timedelta(weeks=index)
            write_feed(path, journeys(events, seed=300 + index, campaign_offset=1001 + 100 * index, start=week), "feed")
    return landing


def measured(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "measure.py"), *command], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if result["code"] not in (0, 3):
        raise SystemExit(f"{' '.join(command[:6])} failed with exit {result['code']}: {done.stderr[-2000:]}")
    return result


def driver_serial(warehouse: Path, seconds: float) -> tuple[float, dict[str, float]]:
    """Seconds the driver works alone: discover, quarantine and registry, and what no step times."""
    manifest = json.loads(next((warehouse / "_runs").glob("*.json")).read_text())
    timings: dict[str, float] = manifest["timings"]
    untimed = seconds - sum(timings.values())
    return timings.get("discover", 0.0) + timings.get("quarantine", 0.0) + untimed, timings


def _group_bys(seconds: float, done: Any) -> None:
    """In a process of its own (one polars thread): how many group-bys it does in `seconds`."""
    import time

    import polars as pl

    frame = pl.DataFrame({"n": pl.int_range(0, 2_000_000, eager=True)}).with_columns(
        key=pl.col("n") % 50_000, text=pl.col("n").cast(pl.String)
    )
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        frame.group_by("key").agg(pl.col("text").n_unique(), bytes=pl.col("text").str.len_bytes().sum())
        count += 1
    done.put(count)


def core_scaling(seconds: float = 4.0) -> float:
    """The work of one process per core at once, against one process alone (cores: ideally that many)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    before = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"  # (inherited by the probes only: this process never uses polars)
    try:
        work = []
        for processes in (1, os.cpu_count() or 1):
            done = context.Queue()
            probes = [context.Process(target=_group_bys, args=(seconds, done)) for _ in range(processes)]
            for probe in probes:
                probe.start()
            work.append(sum(done.get() for _ in probes))
            for probe in probes:
                probe.join()
    finally:
        if before is None:
            del os.environ["POLARS_MAX_THREADS"]
        else:
            os.environ["POLARS_MAX_THREADS"] = before
    return work[1] / max(1, work[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--events-per-file", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    landing = landing_zone(args.files, args.events_per_file)
    problem = namespace_problem()
    kinds = dict(KINDS)
    if problem:
        print(f"(Ray left out: {problem})")
        kinds.pop("--executor ray")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ETL_"))}
    env |= {"RAY_USAGE_STATS_ENABLED": "0"}
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    scaling = [core_scaling()]
    for _ in range(args.rounds):
        for kind, options in kinds.items():
            work = Path(tempfile.mkdtemp(prefix="etl-bench-exec-", dir="/tmp"))
            warehouse = work / "wh"
            command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse)]
            command += [*options, "-q"]
            run_env = dict(env)
            if kind == "--executor ray":  # loopback only, Ray's files in the work folder
                command = loopback_only(command)
                run_env |= {"RAY_TMPDIR": str(work / "ray"), "HOME": str(work)}
                (work / "ray").mkdir()
            try:
                result = measured(command, run_env)
                result["serial"], result["timings"] = driver_serial(warehouse, float(result["seconds"]))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[kind].append(result)
    scaling.append(core_scaling())
    events = args.files * args.events_per_file
    print(f"\n{args.files} files × {args.events_per_file:,} events ({events:,}), median of {args.rounds} rounds, "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print("| executor | wall s | CPU-s | cores busy | peak RSS MB (tree) | wall vs 1 worker | driver alone s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = _median([r["seconds"] for r in results["--workers 1"]])
    for kind, runs in results.items():
        wall = _median([r["seconds"] for r in runs])
        cpu = _median([r["cpu_seconds"] for r in runs])
        peak = max(r["peak_kib"] for r in runs) / 1024
        serial = _median([r["serial"] for r in runs])
        busy = cpu / wall
        print(f"| {kind} | {wall:.1f} | {cpu:.1f} | {busy:.2f} | {peak:,.0f} | {wall / base:.2f} | {serial:.1f} |")
    for kind, runs in results.items():
        print(f"{kind} steps (last round): {runs[-1]['timings']}")
    cores = os.cpu_count() or 1
    # Two workers cannot take less than their CPU-seconds spread over every core: one worker that
    # already keeps more than one core busy leaves them less to gain than the number of cores.
    two = _median([r["cpu_seconds"] for r in results["--workers 2"]])
    print(f"--workers 2 with all {cores} cores busy all the time would take {two / cores:.1f} s: "
          f"{two / cores / base:.2f}× one worker (its floor at this CPU)")  # fmt: skip
    print(f"{cores} processes at once did {scaling[0]:.2f}× the work of one before the runs, {scaling[1]:.2f}× after")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    main()
