"""Shared helpers: write feeds into a landing zone, run the pipeline with a fixed clock, read tables back."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etl.ingest import FileOutcome, Provenance, ingest_file
from etl.landing import LandingFile
from etl.pipeline import RunResult, run
from etl.reading import Limits
from etl.settings import Settings
from etl.storage import open_store

INGESTED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fixed_clock(at: datetime = INGESTED_AT):  # type: ignore[no-untyped-def]
    return lambda: at


def write(landing: Path, name: str, content: Any) -> Path:
    """Write a feed file: bytes exactly as given; str, or anything else as JSON, encoded (and gzipped
    for `.gz` names)."""
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    data = (content if isinstance(content, str) else json.dumps(content)).encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def ndjson(records: list[Any]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def ingest_text(
    name: str, content: Any, tmp_path: Path, at: datetime = INGESTED_AT, limits: Limits | None = None
) -> FileOutcome:
    path = write(tmp_path, name, content)
    file = LandingFile(name, "0" * 64, path.stat().st_size)
    return ingest_file(open_store(tmp_path), file, Provenance(at, "test-run"), limits)


def run_at(landing: Path, warehouse: Path, at: datetime = INGESTED_AT, **options: Any) -> RunResult:
    return run(Settings(landing, warehouse, **options), clock=fixed_clock(at))


def events(warehouse: Path) -> pl.DataFrame:
    files = sorted((warehouse / "events").glob("*/*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.read_parquet([str(f) for f in files], hive_partitioning=True)


def table(warehouse: Path, name: str) -> pl.DataFrame:
    files = sorted((warehouse / name).rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.read_parquet([str(f) for f in files], hive_partitioning=name != "campaign_funnel")


def record(
    user: str = "U1", event: str = "Message Sent", ts: str = "2024-05-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    return {"id": user, "event": event, "timestamp": ts, **fields}


def assert_accounted(manifest: dict[str, Any]) -> None:
    """read = loaded + quarantined + duplicates, per file and in total."""
    for entry in [*manifest["files"], manifest["totals"]]:
        assert entry["read"] == entry["loaded"] + entry["quarantined"] + entry["duplicates"], entry


def day_file_records(day: int, users: range, campaign: str = "C1") -> list[dict[str, Any]]:
    """Sent and Delivered for each user on 2024-05-<day>."""
    ts = f"2024-05-{day:02d}T10:00:00Z"
    return [
        record(f"u{u}", event, ts, campaignId=campaign)
        for u in users
        for event in ("Message Sent", "Message Delivered")
    ]


def snapshot(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every table's rows in a canonical order, run metadata aside."""
    frames = {}
    for name in ("events", "campaign_daily_funnel", "campaign_funnel", "quarantine"):
        frame = table(warehouse, name)
        if name in ("events", "quarantine"):
            frame = frame.drop("run_id", "ingested_at", "ingest_date", strict=False)
        frames[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return frames


def assert_same_tables(a: Path, b: Path) -> None:
    left, right = snapshot(a), snapshot(b)
    for name in left:
        assert left[name].equals(right[name]), name
