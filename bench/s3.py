"""Benchmark: a landing object in S3 is read in bounded memory, as a file on disk is.

    python bench/s3.py [--events 2000000] [--rounds 2]

Starts the S3 test server (moto, `moto_server -H 127.0.0.1`, a separate process whose memory is not
counted), uploads the flat minified feed of `--events` events, and runs `etl run` (from the
runtime-only venv, as bench/speed.py does) with the landing zone on disk and in the bucket, then with
the warehouse in the bucket too, in alternating rounds; each run in a fresh process and warehouse.
Prints wall time and peak RSS of the `etl` process, and the ratio against disk (the target is within
10 % on memory). The server is local, so time measures the client's work, not a network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.speed import feed_for, measured, runtime_python  # noqa: E402
from etl.storage import open_store  # noqa: E402
from tests.support.s3 import free_port  # noqa: E402

BUCKET = "bench"


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the S3 test server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    python = runtime_python()
    feed = feed_for("feed", args.events)
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_METADATA_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # never the network
    )
    server = start_server(port)
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT"))
        with open(feed, "rb") as data:
            open_store(f"s3://{BUCKET}/landing").put(feed.name, data.read())
        kinds = {
            "landing on disk": (str(feed.parent), None),
            "landing in S3": (f"s3://{BUCKET}/landing", None),
            "landing and warehouse in S3": (f"s3://{BUCKET}/landing", "s3"),
        }
        results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            for kind, (landing, where) in kinds.items():
                local = Path(tempfile.mkdtemp(prefix="etl-bench-s3-"))
                warehouse = f"s3://{BUCKET}/wh-{round_}-{len(results[kind])}" if where else str(local / "wh")
                try:
                    result = measured(
                        [python, "-m", "etl", "run", "--landing", landing, "--warehouse", warehouse, "-q"]
                    )
                finally:
                    shutil.rmtree(local, ignore_errors=True)
                results[kind].append((float(result["seconds"]), int(result["peak_kib"]) / 1024))  # type: ignore[call-overload]
    finally:
        server.kill()
        server.wait()
    base_seconds = min(s for s, _ in results["landing on disk"])
    base_peak = min(p for _, p in results["landing on disk"])
    print(f"\n{args.events:,} events ({feed.stat().st_size / 1e6:,.0f} MB), best of {args.rounds} rounds, 2 cores\n")
    print("| where | seconds | peak RSS MB | time vs disk | memory vs disk |")
    print("|---|---:|---:|---:|---:|")
    for kind, runs in results.items():
        seconds, peak = min(s for s, _ in runs), min(p for _, p in runs)
        print(f"| {kind} | {seconds:.1f} | {peak:,.0f} | {seconds / base_seconds:.2f} | {peak / base_peak:.2f} |")


if __name__ == "__main__":
    main()
