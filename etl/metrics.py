"""Read the published tables back: funnels for `etl metrics` and the report, quarantine summaries."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from contracts import DailyFunnel, LifetimeFunnel, QuarantineRecord
from etl import storage
from etl.warehouse import DAILY_FUNNEL, EVENTS, QUARANTINE, Layout


def _empty(model: type) -> pl.DataFrame:
    schema = model.to_schema()  # type: ignore[attr-defined]
    return pl.DataFrame(schema={name: column.dtype.type for name, column in schema.columns.items()})


def _scan_table(root: Path, table: str) -> pl.LazyFrame | None:
    return storage.scan_table(root / table)


def lifetime(warehouse: Path) -> pl.DataFrame:
    path = Layout(warehouse).lifetime_funnel
    return storage.read_parquet(path) if path.is_file() else _empty(LifetimeFunnel)


def daily(warehouse: Path, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    scan = _scan_table(warehouse, DAILY_FUNNEL)
    if scan is None:
        return _empty(DailyFunnel).select("event_date", *LifetimeFunnel.to_schema().columns)
    if start:
        scan = scan.filter(pl.col("event_date") >= start)
    if end:
        scan = scan.filter(pl.col("event_date") <= end)
    columns = ["event_date", *LifetimeFunnel.to_schema().columns]
    return scan.select(columns).sort("event_date", "campaign_id", nulls_last=True).collect()


def quarantine(warehouse: Path) -> pl.DataFrame:
    scan = _scan_table(warehouse, QUARANTINE)
    if scan is None:
        return _empty(QuarantineRecord)
    return scan.collect()


def event_count(warehouse: Path) -> int:
    scan = _scan_table(warehouse, EVENTS)
    return 0 if scan is None else int(scan.select(pl.len()).collect().item())


def metrics(
    warehouse: Path, campaign: str | None = None, start: date | None = None, end: date | None = None
) -> pl.DataFrame:
    """Lifetime funnel per campaign; with a date bound, the daily funnel rows in that range."""
    frame = daily(warehouse, start, end) if (start or end) else lifetime(warehouse)
    if campaign is not None:
        frame = frame.filter(pl.col("campaign_id") == campaign)
    return frame
