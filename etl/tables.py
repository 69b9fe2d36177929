"""Read the published tables back: funnels for `etl metrics` and the report, quarantine, counts."""

from __future__ import annotations

from datetime import date

import pandera.polars as pa
import polars as pl

from contracts import DailyFunnel, LifetimeFunnel, QuarantineRecord
from etl import storage
from etl.errors import EtlError
from etl.storage import Store, open_store
from etl.warehouse import Layout
from etl.warehouse.layout import DAILY_FUNNEL, EVENTS, QUARANTINE

LIFETIME_COLUMNS = list(LifetimeFunnel.to_schema().columns)
DAILY_COLUMNS = ["send_date", *LIFETIME_COLUMNS]
#: How a row without a campaign is shown, everywhere.
NO_CAMPAIGN = "(no campaign)"


def open_warehouse(location: str) -> Store:
    """The warehouse at `location`, for reading; an error when nothing of a warehouse is there (a
    mistyped location must not read as an empty warehouse)."""
    store = open_store(location)
    if not Layout(store).is_warehouse():
        raise EtlError(
            f"{store.describe()} is not a warehouse (it holds no tables and no runs): "
            "check --warehouse (or ETL_WAREHOUSE), or run `etl run` first"
        )
    return store


def empty_table(model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A frame with no rows and the model's columns and types."""
    return pl.DataFrame(schema={name: column.dtype.type for name, column in model.to_schema().columns.items()})


def lifetime(store: Store) -> pl.DataFrame:
    key = Layout(store).lifetime_funnel
    return storage.read_parquet(store, key) if store.head(key) else empty_table(LifetimeFunnel)


def daily(store: Store, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    scan = storage.scan_table(store, DAILY_FUNNEL)
    if scan is None:
        return empty_table(DailyFunnel).select(DAILY_COLUMNS)
    if start:
        scan = scan.filter(pl.col("send_date") >= start)
    if end:
        scan = scan.filter(pl.col("send_date") <= end)
    return scan.select(DAILY_COLUMNS).sort("send_date", "campaign_id", nulls_last=True).collect()


def quarantine(store: Store) -> pl.DataFrame:
    scan = storage.scan_table(store, QUARANTINE)
    return empty_table(QuarantineRecord) if scan is None else scan.collect()


def row_count(store: Store, table: str = EVENTS) -> int:
    scan = storage.scan_table(store, table)
    return 0 if scan is None else int(scan.select(pl.len()).collect().item())


def metrics(
    store: Store, campaign: str | None = None, start: date | None = None, end: date | None = None
) -> pl.DataFrame:
    """Lifetime funnel per campaign; with a date bound, the daily funnel rows of the send dates in that range."""
    frame = daily(store, start, end) if (start or end) else lifetime(store)
    if campaign is not None:
        frame = frame.filter(pl.col("campaign_id") == campaign)
    return frame
