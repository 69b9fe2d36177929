"""Benchmark: `etl run` against an expert's hand-written DuckDB job (bench/peer_duckdb.py), same feeds, same outputs.

    python bench/speed.py [--events 2000000] [--rounds 3] [--shapes feed-pretty,feed,api,ndjson,one-day]

For every shape it generates one feed (deterministic, cached in bench/out/), reads it once so both
start from the page cache, then runs ours and the peer in alternating rounds (ours, peer, ours,
peer, …), each in a fresh process measured by bench/measure.py: wall time, CPU-seconds (user + system
of the process tree) and peak RSS. Ours runs as users run it, installed beside pandas: from this
interpreter (the project's venv, `make bench`), which must have pandas. After each shape it checks that
both produced the same events (count per date and the set of event_ids), the same messages table and
the same daily and lifetime funnels, and stops loudly if not.

It prints a Markdown table (medians of wall and CPU time, the largest peak RSS of the rounds), where
our wall time went by stage (from the run manifests' `timings`), and the import time of the CLI with
and without pandas installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.feedgen import journeys, one_day_journeys, write_feed  # noqa: E402


@dataclass(frozen=True)
class Shape:
    """A feed shape: how feedgen writes it, and how the peer is told to read it."""

    label: str  # as the README's table names it
    kind: str  # feedgen shape: feed | api | ndjson
    suffix: str
    peer: str  # bench/peer_duckdb.py SHAPE: array | ndjson | api
    pretty: bool = False
    one_per_line: bool = False
    one_day: bool = False


SHAPES = {
    "feed-pretty": Shape("JSON array, pretty-printed", "feed", "json", "array", pretty=True),
    "feed": Shape("JSON array, minified", "feed", "json", "array"),
    "api": Shape("API payloads (JSON array)", "api", "json", "api"),
    "ndjson": Shape("NDJSON", "ndjson", "ndjson", "ndjson"),
    "one-day": Shape(
        "JSON array, one element a line, all on one day", "feed", "json", "array", one_per_line=True, one_day=True
    ),
}
SEED = 42
MESSAGE_KEY = ["campaign_id", "user_id", "message_id"]


def measured(command: list[str]) -> dict[str, Any]:
    """Run `command` under bench/measure.py: seconds, cpu_seconds, peak_kib, code and its stdout (`out`)."""
    done = subprocess.run(
        [sys.executable, str(HERE / "measure.py"), *command], stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if result["code"] not in (0, 3):
        raise SystemExit(f"{command[:4]} failed with exit {result['code']}")
    return result


def runtime_python() -> str:
    """Python of a venv holding the package as users install it: runtime dependencies only, no pandas.

    bench/memory.py and bench/incremental.py run ours from it; this benchmark runs ours beside pandas
    (see `ours_python`) and uses this venv only to time the CLI's import without pandas.
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
    check = subprocess.run([str(python), "-c", "import etl.cli.app"], capture_output=True, text=True)
    if check.returncode:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(
            f"{python} cannot import the CLI ({last}): does the code import a package pyproject.toml's "
            "dependencies do not list?"
        )
    return str(python)


def ours_python() -> str:
    """The Python ours is timed with: this one (the project's venv under `make bench`), with pandas
    installed, as in most users' environments (pandera then imports it)."""
    if importlib.util.find_spec("pandas") is None:
        raise SystemExit(f"{sys.executable} has no pandas: run the benchmark from the project's venv (make bench)")
    return sys.executable


def feed_for(shape: str, events: int) -> Path:
    spec = SHAPES[shape]
    path = HERE / "out" / f"{shape}-{events}" / f"feed.{spec.suffix}"
    if not path.exists():
        print(f"generating {path} …", flush=True)
        generate = one_day_journeys if spec.one_day else journeys
        partial = path.with_name(f".{path.name}.partial")  # not a feed file: a landing zone ignores it
        write_feed(partial, generate(events, seed=SEED), spec.kind, spec.pretty, spec.one_per_line)
        partial.rename(path)
    return path


def read_table(root: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(str(root / table / "**" / "*.parquet"), hive_partitioning=True)


def _equal(what: str, ours: pl.DataFrame, peer: pl.DataFrame) -> None:
    missing, extra = set(ours.columns) - set(peer.columns), set(peer.columns) - set(ours.columns)
    if missing or extra:
        raise SystemExit(f"MISMATCH in {what}: the peer lacks {sorted(missing)}, has more {sorted(extra)}")
    try:
        assert_frame_equal(ours, peer.select(ours.columns))
    except AssertionError as error:
        raise SystemExit(f"MISMATCH in {what} between ours and the peer:\n{error}") from None


def check_same_outputs(ours: Path, peer: Path) -> dict[str, int]:
    """Stop loudly unless both wrote the same events (per date, and their ids), messages and funnels."""
    counts = {}
    for table, date in (("events", "event_date"), ("messages", "send_date")):
        per_date = [read_table(root, table).group_by(date).len().sort(date) for root in (ours, peer)]
        _equal(f"{table} per {date}", *per_date)
        counts[table] = int(per_date[0]["len"].sum())
    ids = [read_table(root, "events").select(pl.col("event_id").sort()) for root in (ours, peer)]
    _equal("event_ids", *ids)
    key = ["send_date", *MESSAGE_KEY]
    _equal("messages", *(read_table(root, "messages").sort(key, nulls_last=True) for root in (ours, peer)))
    for table, keys in (("campaign_daily_funnel", ["send_date", "campaign_id"]), ("campaign_funnel", ["campaign_id"])):
        _equal(table, *(read_table(root, table).sort(keys, nulls_last=True) for root in (ours, peer)))
    return counts


def stage_timings(warehouse: Path) -> dict[str, float]:
    """The `timings` of the run manifest in `warehouse`: wall seconds per stage of ours."""
    (path,) = (warehouse / "_runs").glob("*.json")
    timings: dict[str, float] = json.loads(path.read_text())["timings"]
    return timings


@dataclass(frozen=True)
class Run:
    """What one measured run cost."""

    seconds: float
    cpu_seconds: float
    peak_mb: float

    @classmethod
    def of(cls, result: dict[str, Any]) -> Run:
        return cls(float(result["seconds"]), float(result["cpu_seconds"]), int(result["peak_kib"]) / 1024)


@dataclass
class Result:
    """The rounds of one shape: ours and the peer's runs, our stage timings, the tables' row counts."""

    shape: str
    ours: list[Run] = field(default_factory=list)
    peer: list[Run] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def seconds(self, side: str) -> float:
        return statistics.median(run.seconds for run in getattr(self, side))

    def cpu(self, side: str) -> float:
        return statistics.median(run.cpu_seconds for run in getattr(self, side))

    def peak_mb(self, side: str) -> float:
        return max(run.peak_mb for run in getattr(self, side))


def bench_shape(shape: str, events: int, rounds: int, work: Path) -> Result:
    """Alternating rounds of ours and the peer on one shape; then the check that their outputs are equal."""
    feed = feed_for(shape, events)
    feed.read_bytes()  # into the page cache, so the first round reads it as the others do
    ours = [ours_python(), "-m", "etl", "run", "--landing", str(feed.parent), "-q", "--warehouse"]
    peer = [sys.executable, str(HERE / "peer_duckdb.py"), str(feed)]
    result = Result(shape)
    for round_ in range(rounds):
        warehouse, peer_out = work / f"{shape}-{round_}-ours", work / f"{shape}-{round_}-peer"
        result.ours.append(Run.of(measured([*ours, str(warehouse)])))
        result.timings.append(stage_timings(warehouse))
        result.peer.append(Run.of(measured([*peer, str(peer_out), SHAPES[shape].peer])))
        took = f"ours {result.ours[-1].seconds:.2f} s, peer {result.peer[-1].seconds:.2f} s"
        print(f"  {shape} round {round_ + 1}: {took}", flush=True)
        if round_:  # the first round's outputs are kept for the comparison
            shutil.rmtree(warehouse)
            shutil.rmtree(peer_out)
    first_ours, first_peer = work / f"{shape}-0-ours", work / f"{shape}-0-peer"
    result.counts = check_same_outputs(first_ours, first_peer)
    rows = f"{result.counts['events']:,} events, {result.counts['messages']:,} messages"
    print(f"  {shape}: same outputs ({rows}, daily and lifetime funnels)", flush=True)
    shutil.rmtree(first_ours)
    shutil.rmtree(first_peer)
    return result


def print_table(results: list[Result], events: int, rounds: int) -> None:
    how = "medians of wall and CPU time, the largest peak RSS of the rounds"
    print(f"\n{events:,} events, {rounds} alternating rounds, {os.cpu_count()} cores; {how}\n")
    header = ["shape", "ours s", "peer s", "time ratio", "ours CPU-s", "peer CPU-s"]
    header += ["ours MB", "peer MB", "memory ratio"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for r in results:
        t_ours, t_peer, m_ours, m_peer = r.seconds("ours"), r.seconds("peer"), r.peak_mb("ours"), r.peak_mb("peer")
        cells = [f"{t_ours:.2f}", f"{t_peer:.2f}", f"{t_ours / t_peer:.2f}", f"{r.cpu('ours'):.1f}"]
        cells += [f"{r.cpu('peer'):.1f}", f"{m_ours:,.0f}", f"{m_peer:,.0f}", f"{m_ours / m_peer:.2f}"]
        print(f"| {SHAPES[r.shape].label} | " + " | ".join(cells) + " |")


def print_stage_timings(results: list[Result]) -> None:
    """Where our wall time went: the stages of the run manifests' `timings`, and the rest."""
    stages = list(dict.fromkeys(stage for r in results for timings in r.timings for stage in timings))
    print(
        "\nours by stage: wall s, medians of the rounds (the run manifests' `timings`; untimed: interpreter "
        "start and imports, the lock, the commit after the manifest is written, exit)\n"
    )
    header = [*stages, "untimed", "total", "CPU-s"]
    print("| shape | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for r in results:
        medians = [statistics.median(timings.get(stage, 0.0) for timings in r.timings) for stage in stages]
        total = r.seconds("ours")
        cells = [*medians, total - sum(medians), total, r.cpu("ours")]
        print(f"| {r.shape} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")


def import_overhead(runs: int = 5) -> None:
    """Print the time of `python -c "import etl.cli.app"` with and without pandas installed (medians)."""
    code = "import etl.cli.app"
    try:
        without = runtime_python()
    except SystemExit as error:
        print(f"\nimport etl.cli.app without pandas: not measured ({error})")
        return
    pythons = {"with pandas": ours_python(), "without pandas": without}
    times: dict[str, list[float]] = {name: [] for name in pythons}
    for _ in range(runs):
        for name, python in pythons.items():
            started = time.perf_counter()
            subprocess.run([python, "-c", code], check=True)
            times[name].append(time.perf_counter() - started)
    with_, without_ = (statistics.median(times[name]) for name in ("with pandas", "without pandas"))
    measured_as = f"import etl.cli.app (new process, median of {runs})"
    print(
        f"\n{measured_as}: {without_:.2f} s without pandas installed, {with_:.2f} s with pandas installed "
        f"(+{with_ - without_:.2f} s a run)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes {unknown}: choose from {', '.join(SHAPES)}")
    ours_python()
    work = Path(tempfile.mkdtemp(prefix="etl-bench-speed-"))
    try:
        results = [bench_shape(shape, args.events, args.rounds, work) for shape in shapes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(results, args.events, args.rounds)
    print_stage_timings(results)
    import_overhead()


if __name__ == "__main__":
    main()
