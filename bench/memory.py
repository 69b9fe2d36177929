"""Benchmark: peak memory does not grow with the input.

    python bench/memory.py [--small 2000000] [--large 10000000]

Runs `etl run --workers N` (default 1; from the runtime-only venv) on a flat minified feed of each
size, in a fresh process and a fresh warehouse, and prints wall time, peak RSS and the ratio of the
peaks (the target is at most 1.2). Feeds are generated once and cached in bench/out/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.speed import feed_for, measured, runtime_python  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=1, help="etl run --workers (peak memory: the whole tree)")
    args = parser.parse_args()
    python = runtime_python()
    rows = []
    for events in (args.small, args.large):
        feed = feed_for("feed", events)
        warehouse = Path(tempfile.mkdtemp(prefix="etl-bench-memory-"))
        try:
            result = measured([python, "-m", "etl", "run", "--landing", str(feed.parent),
                               "--warehouse", str(warehouse), "--workers", str(args.workers), "-q"])  # fmt: skip
        finally:
            shutil.rmtree(warehouse, ignore_errors=True)
        rows.append((events, feed.stat().st_size / 1e6, float(result["seconds"]), int(result["peak_kib"]) / 1024))  # type: ignore[call-overload]
    print("\n| events | feed MB | seconds | peak RSS MB |")
    print("|---:|---:|---:|---:|")
    for events, mb, seconds, peak in rows:
        print(f"| {events:,} | {mb:,.0f} | {seconds:.1f} | {peak:,.0f} |")
    print(f"\npeak RSS {args.large:,} / {args.small:,} events: {rows[1][3] / rows[0][3]:.2f} (target ≤ 1.2)")


if __name__ == "__main__":
    main()
