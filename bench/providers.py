"""Benchmark: other providers' exports load at what share of the platform's own NDJSON speed.

    python bench/providers.py [--events 500000] [--rounds 2]

The same user journeys as a SendGrid Event Webhook array, an SES Firehose NDJSON file and the
platform's NDJSON (bench/providers_feedgen.py, cached in bench/out/), each loaded by `etl run` (the
project venv, as users run it) in a fresh warehouse, in alternating rounds. Reports events/s (events
read / wall time of the run) and the ratio against the platform's NDJSON (the target is at least 0.5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.feedgen import journeys, write_feed  # noqa: E402
from bench.providers_feedgen import sendgrid_events, ses_events, write_json_array, write_ndjson  # noqa: E402


def feeds(events: int) -> dict[str, Path]:
    folder = HERE / "out" / f"providers-{events}"
    paths = {
        "platform NDJSON": folder / "platform" / "feed.ndjson",
        "SendGrid array": folder / "sendgrid" / "events.json",
        "SES Firehose NDJSON": folder / "ses" / "events.ndjson",
    }
    if not paths["platform NDJSON"].exists():
        write_feed(paths["platform NDJSON"], journeys(events, seed=7), "ndjson")
    if not paths["SendGrid array"].exists():
        write_json_array(paths["SendGrid array"], sendgrid_events(events, seed=7))
    if not paths["SES Firehose NDJSON"].exists():
        write_ndjson(paths["SES Firehose NDJSON"], ses_events(events, seed=7))
    return paths


def run_once(feed: Path) -> dict[str, Any]:
    warehouse = Path(tempfile.mkdtemp(prefix="etl-bench-providers-"))
    try:
        command = [sys.executable, "-m", "etl", "run", "--landing", str(feed.parent), "--warehouse", str(warehouse)]
        done = subprocess.run(
            [sys.executable, str(HERE / "measure.py"), *command, "-q"], capture_output=True, text=True, check=True
        )
        result: dict[str, Any] = json.loads(done.stdout)
        manifest = json.loads(next((warehouse / "_runs").glob("*.json")).read_text())
        result["read"] = manifest["totals"]["read"]
        result["read_seconds"] = manifest["timings"]["read"]
        return result
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    paths = feeds(args.events)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, path in paths.items():
            results[name].append(run_once(path))
    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    base = best["platform NDJSON"]["read"] / best["platform NDJSON"]["seconds"]
    print(f"\n{args.events:,} journeys' events, best of {args.rounds} rounds (`etl run`, whole run)\n")
    print("| file | MB | events read | run s | events/s | vs platform NDJSON | read step s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, run in best.items():
        rate = run["read"] / run["seconds"]
        mb = paths[name].stat().st_size / 1e6
        print(
            f"| {name} | {mb:,.0f} | {run['read']:,} | {run['seconds']:.1f} | {rate:,.0f} | {rate / base:.2f} "
            f"| {run['read_seconds']:.1f} | {run['peak_kib'] / 1024:,.0f} |"
        )


if __name__ == "__main__":
    main()
