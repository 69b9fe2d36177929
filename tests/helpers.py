"""Shared helpers: run the pipeline with a fixed clock, read tables back (feed builders: `support.feeds`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl import storage
from etl.ingest import FileOutcome, Provenance, ingest_file
from etl.landing import LandingFile
from etl.pipeline import RunResult, run
from etl.reading import Limits
from etl.settings import Settings
from etl.storage import open_store
from tests.support.feeds import day_file_records as day_file_records  # re-exported: the feed builders
from tests.support.feeds import ndjson as ndjson
from tests.support.feeds import record as record
from tests.support.feeds import write

INGESTED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fixed_clock(at: datetime = INGESTED_AT):  # type: ignore[no-untyped-def]
    return lambda: at


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


def assert_accounted(manifest: dict[str, Any]) -> None:
    """read = loaded + quarantined + duplicates + ignored, per file and in total."""
    for entry in [*manifest["files"], manifest["totals"]]:
        counted = entry["loaded"] + entry["quarantined"] + entry["duplicates"] + entry["ignored"]
        assert entry["read"] == counted, entry


def snapshot(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every table's rows in a canonical order, run metadata aside."""
    frames = {}
    for name in ("events", "messages", "campaign_daily_funnel", "campaign_funnel", "quarantine"):
        frame = table(warehouse, name)
        if name in ("events", "quarantine"):
            frame = frame.drop("run_id", "ingested_at", "ingest_date", strict=False)
        frames[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return frames


def assert_same_tables(a: Path, b: Path) -> None:
    left, right = snapshot(a), snapshot(b)
    for name in left:
        assert left[name].equals(right[name]), name


def deny_reading(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """Make the landing file `key` unreadable (permission denied) to hashing and parsing alike, as
    `chmod 000` would for a user who is not root."""
    real_hash, real_bytes = storage.sha256_of, storage.iter_bytes

    def refusing(real: Any) -> Any:
        def denied(store: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            if name == key:
                raise PermissionError(13, "Permission denied", name)
            return real(store, name, *args, **kwargs)

        return denied

    monkeypatch.setattr(storage, "sha256_of", refusing(real_hash))
    monkeypatch.setattr(storage, "iter_bytes", refusing(real_bytes))
