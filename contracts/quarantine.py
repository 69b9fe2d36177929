"""The quarantine table: every record the contract rejected, with its original text and the reason."""

from __future__ import annotations

import pandera.polars as pa
from pandera.engines.polars_engine import Date, DateTime

from contracts.events import UTC_MICROS
from contracts.reasons import REASONS


class QuarantineRecord(pa.DataFrameModel):
    """One rejected record; the `quarantine` table."""

    raw: str = pa.Field(description="The original text of the record (invalid UTF-8 bytes shown as U+FFFD).")
    source_file: str = pa.Field(description="Landing file, relative to the landing zone.")
    position: str = pa.Field(description="`line N`, `element N` (0-based), `… event K`, or `file`.")
    reason: str = pa.Field(
        isin=[reason.code for reason in REASONS],
        description="Reason code; the contract lists each with what the sender should fix.",
    )
    detail: str = pa.Field(description="Which field, what was wrong; for bad JSON the line and column.")
    source_sha256: str = pa.Field(description="SHA-256 of the landing file's bytes.")
    run_id: str = pa.Field(description="The run that first ingested the source file.")
    ingested_at: DateTime = pa.Field(
        dtype_kwargs=UTC_MICROS, description="When the source file was first ingested (UTC)."
    )
    ingest_date: Date = pa.Field(
        description="UTC date of ingested_at; the Hive partition key (in the path, not in the files).",
        metadata={"partition": True},
    )

    class Config:
        strict = False
        coerce = False
