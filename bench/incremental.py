"""Benchmark: the one-small-file nightly run on warehouses of 1, 10 and 30 weeks of history.

    python bench/incremental.py [--events-per-file 100000] [--small-events 1000] [--sizes 1,10,30]

Each warehouse is built by `etl run` over N large files, file i holding week i of the history; then
one small file lands and `etl run` is timed, twice: with the next day's events (new campaigns), and
with late events for the first day of the last week (that week's campaigns). The cost should follow
the new file and the rows of the days and campaigns it touches, not the size of the warehouse.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.feedgen import START, journeys, write_feed
from bench.speed import runtime_python

PYTHON = runtime_python()  # the package as users install it (see bench/speed.py)


def timed_run(landing: Path, warehouse: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse), "-q"],
        check=True,
    )
    return time.perf_counter() - started


def small_file_run(
    work: Path, landing: Path, warehouse: Path, count: int, args: argparse.Namespace, kind: dict[str, Any]
) -> float:
    """Median time of `etl run` after one small file of one day lands (on a fresh copy each round)."""
    times = []
    for round_ in range(args.rounds):
        trial = work / f"trial-{count}-{round_}"
        shutil.copytree(warehouse, trial)
        small = landing / "nightly" / f"small-{round_}.json"
        write_feed(small, journeys(args.small_events, seed=900 + round_, days=1, **kind), "feed")
        times.append(timed_run(landing, trial))
        small.unlink()
        shutil.rmtree(trial)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-per-file", type=int, default=100_000)
    parser.add_argument("--small-events", type=int, default=1_000)
    parser.add_argument("--sizes", default="1,10,30", help="comma-separated numbers of large files (weeks)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="etl-bench-incremental-"))
    print(f"machine: {os.cpu_count()} cores; {args.events_per_file:,} events per large file; work dir {work}")
    print(f"{'large files':>11} {'warehouse events':>17} {'build s':>8} {'next day s':>11} {'late day s':>11}")
    try:
        for count in (int(n) for n in args.sizes.split(",")):
            landing, warehouse = work / f"landing-{count}", work / f"wh-{count}"
            for index in range(count):
                records = journeys(
                    args.events_per_file,
                    seed=100 + index,
                    campaign_offset=1001 + 1000 * index,
                    start=START + timedelta(weeks=index),
                )
                write_feed(landing / f"large-{index:02d}.json", records, "feed")
            build = timed_run(landing, warehouse)
            last_week = START + timedelta(weeks=count - 1)
            next_day = {"start": last_week + timedelta(weeks=1), "campaign_offset": 900_001}
            late_day = {"start": last_week, "campaign_offset": 1001 + 1000 * (count - 1)}
            medians = [small_file_run(work, landing, warehouse, count, args, kind) for kind in (next_day, late_day)]
            events = count * args.events_per_file
            print(f"{count:>11} {events:>17,} {build:>8.1f} {medians[0]:>11.2f} {medians[1]:>11.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
