"""Benchmark: `etl run` against the hand-written DuckDB job (bench/peer_duckdb.py) on the same feeds.

    python bench/speed.py [--events 2000000] [--rounds 3] [--shapes feed-pretty,feed,api,ndjson]

For every shape it generates one feed (cached in bench/out/), then runs ours and the peer alternately,
each in a fresh process (ours from a venv with the package's runtime dependencies only, as users
install it), and prints median wall time, MB/s, events/s, peak RSS and the ratios
ours/peer. It also checks that both produced the same event count and daily funnel counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.feedgen import journeys, write_feed  # noqa: E402

SHAPES = {  # name: (feedgen shape, pretty, file suffix, peer shape)
    "feed-pretty": ("feed", True, "json", "feed"),
    "feed": ("feed", False, "json", "feed"),
    "api": ("api", False, "json", "api"),
    "ndjson": ("ndjson", False, "ndjson", "ndjson"),
}
# Run a command and report its own peak RSS (VmHWM of the child image, not of this process).
MEASURE = """
import os, re, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
peak = 0
while child.poll() is None:
    try:
        status = open(f"/proc/{child.pid}/status").read()
        peak = max(peak, int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)))
    except (OSError, AttributeError):
        pass
    time.sleep(0.02)
out = child.stdout.read().decode()
print(json.dumps({"seconds": time.perf_counter() - started, "peak_kib": peak, "code": child.returncode, "out": out}))
""".replace("import os,", "import json, os,")


def measured(command: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    if result["code"] not in (0, 3):
        raise SystemExit(f"{command[:4]} failed with exit {result['code']}")
    return result


def runtime_python() -> str:
    """Python of a venv holding the package as users install it: runtime dependencies only.

    The project's own venv also holds the test tools; pandas among them makes pandera import it,
    which no user install does (about 0.45 s and 60 MB more per run).
    """
    venv = HERE / "out" / "runtime-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    project = HERE.parent / "pyproject.toml"
    if not stamp.exists() or stamp.stat().st_mtime < project.stat().st_mtime:
        print(f"installing the package (runtime dependencies only) into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(HERE.parent)], check=True)
        stamp.touch()
    return str(python)


def feed_for(shape: str, events: int) -> Path:
    kind, pretty, suffix, _ = SHAPES[shape]
    path = HERE / "out" / f"{shape}-{events}" / f"feed.{suffix}"
    if not path.exists():
        print(f"generating {path} …", flush=True)
        write_feed(path, journeys(events, seed=42), kind, pretty)
    return path


def our_counts(warehouse: Path) -> dict[str, object]:
    events = pl.scan_parquet(str(warehouse / "events" / "**" / "*.parquet"), hive_partitioning=True)
    daily = pl.scan_parquet(str(warehouse / "campaign_daily_funnel" / "**" / "*.parquet"), hive_partitioning=True)
    names = ["sent", "delivered", "viewed", "clicked", "unsubscribed", "soft_bounced", "hard_bounced", "marked_as_spam"]
    totals = daily.select(pl.col(names).sum()).collect().row(0, named=True)
    return {"events": events.select(pl.len()).collect().item(), "funnel": {k: int(v) for k, v in totals.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    python = runtime_python()
    work = Path(tempfile.mkdtemp(prefix="etl-bench-speed-"))
    rows = []
    try:
        for shape in args.shapes.split(","):
            feed = feed_for(shape, args.events)
            mb = feed.stat().st_size / 1e6
            ours, peer = [], []
            for round_ in range(args.rounds):
                warehouse, peer_out = work / f"{shape}-{round_}-ours", work / f"{shape}-{round_}-peer"
                ours.append(measured([python, "-m", "etl", "run", "--landing", str(feed.parent),
                                      "--warehouse", str(warehouse), "-q"]))  # fmt: skip
                peer.append(measured([sys.executable, str(HERE / "peer_duckdb.py"), str(feed), str(peer_out),
                                      SHAPES[shape][3]]))  # fmt: skip
            same = our_counts(work / f"{shape}-0-ours") == json.loads(str(peer[0]["out"]))
            for round_ in range(args.rounds):
                shutil.rmtree(work / f"{shape}-{round_}-ours", ignore_errors=True)
                shutil.rmtree(work / f"{shape}-{round_}-peer", ignore_errors=True)
            t_ours = statistics.median(float(r["seconds"]) for r in ours)  # type: ignore[arg-type]
            t_peer = statistics.median(float(r["seconds"]) for r in peer)  # type: ignore[arg-type]
            m_ours = max(int(r["peak_kib"]) for r in ours) / 1024  # type: ignore[call-overload]
            m_peer = max(int(r["peak_kib"]) for r in peer) / 1024  # type: ignore[call-overload]
            rows.append((shape, mb, t_ours, t_peer, m_ours, m_peer, same))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.events:,} events, {args.rounds} rounds, {os.cpu_count()} cores; medians; peak RSS is the maximum")
    header = ("shape", "MB", "ours s", "peer s", "time ratio", "ours MB/s", "ours ev/s", "ours RSS MB", "peer RSS MB",
              "RSS ratio", "same counts")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape, mb, t_ours, t_peer, m_ours, m_peer, same in rows:
        print(
            f"| {shape} | {mb:,.0f} | {t_ours:.2f} | {t_peer:.2f} | {t_ours / t_peer:.2f} | {mb / t_ours:,.0f} | "
            f"{args.events / t_ours:,.0f} | {m_ours:,.0f} | {m_peer:,.0f} | {m_ours / m_peer:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
