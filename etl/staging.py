"""One landing file -> its staged copy and its quarantine rows, in the run's journal: the unit of work
of reading.

A staged copy holds a file's valid events as judged (duplicates included), in file order, one row
group per date of each batch, so that rebuilding a date reads only that date's rows. Its key is the
file's SHA-256, which a file hashed while it is read has only at the end: the copy is written to a
local file first and published under its hash when reading is done.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import polars as pl

from contracts import staged_event_schema
from etl import storage
from etl.faults import fault_point
from etl.ingest import Provenance, ingest_file
from etl.landing import LandingFile
from etl.overlap import Behind
from etl.reading import Limits
from etl.storage import ParquetSink, Store, open_store
from etl.warehouse import Layout, staging_key

log = logging.getLogger("etl")

# Columns of a staged copy with few distinct values, worth dictionary-encoding (the rest are mostly unique).
_FEW_VALUES = ["event", "channel", "message_type", "url", "campaign_id", "extra", "source_file", "run_id"]


@dataclass
class StagedFile:
    """What reading one file produced: small facts, and where its rows were staged."""

    file: LandingFile  # with its SHA-256
    read: int
    dates: list[date]
    quarantined: int
    reasons: dict[str, int]
    ingest_date: date
    staged_key: str  # the staged copy, in the journal
    quarantine_key: str | None  # its quarantine rows, in the journal (None: there are none)
    rejected: str = ""  # why the whole file was rejected, when nothing in it could be read
    notes: list[str] = field(default_factory=list)
    ignored: dict[str, dict[str, int]] = field(default_factory=dict)  # provider -> its event name -> count


def quarantine_rows_key(run_id: str, sha256: str) -> str:
    return staging_key(run_id, f"_state/quarantine-rows/{sha256}.parquet")


def stage_file(
    landing: str,
    warehouse: str,
    run_id: str,
    file: LandingFile,
    provenance: Provenance,
    limits: Limits,
    on_read: Callable[[int], None] | None = None,
) -> StagedFile:
    """Read, judge and stage one landing file (`on_read`: told the bytes read, for progress)."""
    store = open_store(warehouse)
    sink = staged_sink(store, staging_key(run_id, "_state/incoming.parquet"))
    write: Behind[pl.DataFrame] | None = None
    try:
        # Splitting by date and encoding one batch overlap the judging of the next.
        write = Behind(partial(write_by_date, sink=sink.write))
        outcome = ingest_file(open_store(landing), file, provenance, limits, on_read=on_read, sink=write)
        write.close()
    except BaseException:
        try:
            if write is not None:
                write.close()
        finally:  # (its local file goes, whatever the writes behind raise)
            sink.discard()
        raise
    sha256 = outcome.file.sha256
    staged_key = staging_key(run_id, Layout.staged(sha256))
    sink.close(staged_key)
    fault_point("staged")
    quarantine_key = None
    if outcome.quarantine.height:
        quarantine_key = quarantine_rows_key(run_id, sha256)
        storage.write_parquet(store, outcome.quarantine, quarantine_key)
    return StagedFile(
        file=outcome.file,
        read=outcome.read,
        dates=outcome.dates,
        quarantined=outcome.quarantine.height,
        reasons=dict(Counter(outcome.quarantine["reason"].to_list()).most_common()),
        ingest_date=provenance.ingested_at.date(),
        staged_key=staged_key,
        quarantine_key=quarantine_key,
        rejected=outcome.rejected,
        notes=outcome.notes,
        ignored=outcome.ignored,
    )


@dataclass(frozen=True)
class StageJob:
    """One landing file to stage: the unit of work of reading, with plain arguments."""

    landing: str
    warehouse: str
    run_id: str
    file: LandingFile
    provenance: Provenance
    limits: Limits
    on_read: Callable[[int], None] | None = None  # progress, when the job runs in the driver


@dataclass
class Staged:
    """What staging one file gave: its staged copy, or why it was not read (it stays for next time)."""

    file: LandingFile
    staged: StagedFile | None = None
    unread: str = ""  # the note when it could not be read
    changed: bool = False  # it changed while it was read


def stage_one(job: StageJob) -> Staged:
    """`stage_file` for one job; a file that cannot be read, or changes while it is read, is said so
    (an error of the file, not of the run)."""
    log.debug("reading %s (%s bytes)", job.file.name, f"{job.file.size:,}")
    try:
        staged = stage_file(job.landing, job.warehouse, job.run_id, job.file, job.provenance, job.limits, job.on_read)
    except OSError as err:  # it could not even be hashed: like a file that cannot be opened
        return Staged(job.file, unread=f"{job.file.name}: skipped, cannot be read ({err.strerror or err})")
    except storage.ObjectChanged:  # a writer replaced it meanwhile: nothing of it is kept
        note = f"{job.file.name}: skipped for now, it changed while it was read (taken next time)"
        return Staged(job.file, unread=note, changed=True)
    return Staged(job.file, staged)


def staged_sink(store: Store, key: str) -> ParquetSink:
    """A staged copy (`contracts.staged_event_schema`): a file's valid events as judged, without
    `source_sha256` (its key says it)."""
    columns = staged_event_schema().columns.items()
    empty = pl.DataFrame(schema={name: column.dtype.type for name, column in columns})
    return ParquetSink(store, key, empty, _FEW_VALUES, ["event_date"])


def write_by_date(events: pl.DataFrame, sink: Callable[[pl.DataFrame], None]) -> None:
    """Hand a batch of events (in position order) to a sink one date at a time, still in position
    order: each date becomes its own row group, so reading one date of the staged copy skips the others."""
    for part in events.drop("source_sha256", strict=False).partition_by("event_date", maintain_order=True):
        sink(part)
