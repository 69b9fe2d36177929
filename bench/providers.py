"""Benchmark: other providers' exports load at what share of the platform's own NDJSON speed.

    python bench/providers.py [--events 500000] [--rounds 2]

The same user journeys as the platform's NDJSON, a SendGrid Event Webhook array, an SES Firehose
NDJSON file, Mailgun and Postmark webhook bodies and Segment track calls (NDJSON), and Braze Currents
Avro files, one per event type, written with Braze's published schemas from ../shared/providers
(left out where that folder is not beside the project) (bench/providers_feedgen.py, cached in
bench/out/), each loaded by `etl run` (the project venv, as users run it) in a fresh warehouse, in
alternating rounds. Reports events/s (events read / wall time of the run) and the ratio against the
platform's NDJSON (the target for SendGrid arrays and SES NDJSON is at least 0.5).

    python bench/providers.py --only "platform NDJSON,SES Firehose NDJSON"    # some of them
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.feedgen import journeys, write_feed  # noqa: E402
from bench.providers_feedgen import (  # noqa: E402
    mailgun_events,
    postmark_events,
    segment_events,
    sendgrid_events,
    ses_events,
    write_braze_avro,
    write_json_array,
    write_ndjson,
)

BRAZE_SCHEMAS = HERE.parent.parent / "shared" / "providers" / "braze" / "schemas"


def feeds(events: int) -> dict[str, Path]:
    """Each feed's landing folder, written when missing."""
    folder = HERE / "out" / f"providers-{events}"
    writers: dict[str, tuple[str, Callable[[Path], object]]] = {
        "platform NDJSON": ("platform/feed.ndjson", lambda p: write_feed(p, journeys(events, seed=7), "ndjson")),
        "SendGrid array": ("sendgrid/events.json", lambda p: write_json_array(p, sendgrid_events(events))),
        "SES Firehose NDJSON": ("ses/events.ndjson", lambda p: write_ndjson(p, ses_events(events))),
        "Mailgun webhooks NDJSON": ("mailgun/events.ndjson", lambda p: write_ndjson(p, mailgun_events(events))),
        "Postmark webhooks NDJSON": ("postmark/events.ndjson", lambda p: write_ndjson(p, postmark_events(events))),
        "Segment track NDJSON": ("segment/events.ndjson", lambda p: write_ndjson(p, segment_events(events))),
        "Braze Currents Avro": (
            "braze/users.messages.email.Send.avro",
            lambda p: write_braze_avro(p.parent, BRAZE_SCHEMAS, events),
        ),
    }
    if not BRAZE_SCHEMAS.is_dir():
        print(f"(Braze left out: no schemas at {BRAZE_SCHEMAS})")
        writers.pop("Braze Currents Avro")
    paths = {}
    for name, (relative, write) in writers.items():
        path = folder / relative
        if not path.exists():
            print(f"generating {path} …", flush=True)
            write(path)
        paths[name] = path
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
    parser.add_argument("--only", help="comma-separated feed names (the platform NDJSON is always run)")
    args = parser.parse_args()
    paths = feeds(args.events)
    if args.only:
        wanted = {"platform NDJSON", *args.only.split(",")}
        paths = {name: path for name, path in paths.items() if name in wanted}
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
        mb = sum(path.stat().st_size for path in paths[name].parent.iterdir()) / 1e6
        print(
            f"| {name} | {mb:,.0f} | {run['read']:,} | {run['seconds']:.1f} | {rate:,.0f} | {rate / base:.2f} "
            f"| {run['read_seconds']:.1f} | {run['peak_kib'] / 1024:,.0f} |"
        )


if __name__ == "__main__":
    main()
