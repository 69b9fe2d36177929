"""The quarantine table after a run: each ingest date's partition holds its earlier rows, with the
rows of the files this run read replaced by what they gave now."""

from __future__ import annotations

from datetime import date

import polars as pl

from contracts import QuarantineRecord, required_columns
from etl import storage
from etl.staging import StagedFile
from etl.warehouse import Journal, Layout


def stage_quarantine(layout: Layout, journal: Journal, staged: list[StagedFile]) -> None:
    """Stage the quarantine partitions this run changes in its journal."""
    store = layout.store
    reread = [file.file.sha256 for file in staged]
    keys = [file.quarantine_key for file in staged if file.quarantine_key]
    new_rows = storage.scan_parquet(store, keys).collect() if keys else None
    # A file read again may now quarantine nothing: its ingest date's partition still changes.
    days: set[date] = {file.ingest_date for file in staged}
    for day in sorted(days):
        key = layout.quarantine_partition(day)
        fresh = None if new_rows is None else new_rows.filter(pl.col("ingest_date") == day).drop("ingest_date")
        old = storage.read_parquet(store, key) if store.head(key) is not None else None
        kept = None if old is None else old.filter(~pl.col("source_sha256").is_in(reread))
        if (fresh is None or fresh.is_empty()) and (old is None or kept.height == old.height):  # type: ignore[union-attr]
            continue  # nothing of this run's files, before or now
        merged = pl.concat([frame for frame in (kept, fresh) if frame is not None], how="vertical")
        if merged.is_empty():
            journal.delete(key)
        else:
            journal.put_parquet(merged, key, required_columns(QuarantineRecord))
