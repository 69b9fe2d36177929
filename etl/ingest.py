"""One landing file -> its valid events and its quarantine rows: the unit of work of ingestion.

`etl.reading` turns the file's bytes into batches of rows; here each batch is normalised and split
by the contract into valid events and quarantine rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import polars as pl

from contracts import Event, event_columns
from etl import storage
from etl.judge import REJECTION_SCHEMA, split_valid
from etl.landing import LandingFile
from etl.normalise import normalise_events
from etl.overlap import prefetched
from etl.reading import ROW_COLUMNS, Ignored, Limits, RecordBatch, Rejection, read_batches
from etl.reading.pseudonymise import pseudonymise_users
from etl.storage import Store

# What judged rows carry as `source_sha256` while their file is still being hashed (the contract's
# form of a hash; the real one replaces it once the whole file was read).
UNKNOWN_SHA256 = "0" * 64
_ROW_TYPES = {"timestamp_number": pl.Float64, "machine_open": pl.Boolean, "suspected_bot": pl.Boolean}
_ROW_SCHEMA = {name: _ROW_TYPES.get(name, pl.String) for name in ROW_COLUMNS}
_UNREADABLE = ("unreadable_file", "invalid_json", "invalid_utf8", "record_too_large", "too_deeply_nested")


@dataclass(frozen=True)
class Provenance:
    """Who ingested a file and when: fixed at first ingestion, reused when it is reprocessed."""

    ingested_at: datetime
    run_id: str


@dataclass
class FileOutcome:
    file: LandingFile
    # Valid events (event columns + event_date + _ordinal, duplicates within the file included);
    # no rows when they were streamed to a sink.
    events: pl.DataFrame
    quarantine: pl.DataFrame  # QuarantineRecord columns
    read: int  # events read (SPEC §4): loaded + quarantined + duplicates + ignored
    dates: list[date] = field(default_factory=list)  # the event dates of its valid events, sorted
    rejected: str = ""  # why the whole file was rejected, when nothing in it could be read
    notes: list[str] = field(default_factory=list)
    # Events a provider's mapping leaves out on purpose: provider -> provider event name -> count.
    ignored: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ignored_total(self) -> int:
        return sum(sum(events.values()) for events in self.ignored.values())


def ingest_file(
    landing: Store,
    file: LandingFile,
    provenance: Provenance,
    limits: Limits | None = None,
    on_read: Callable[[int], None] | None = None,
    sink: Callable[[pl.DataFrame], None] | None = None,
) -> FileOutcome:
    """Read, expand, normalise and judge every record of one file of `landing`. Writes nothing itself.

    With a `sink`, each batch of valid events is handed to it as soon as it is judged and not kept,
    so memory does not grow with the size of the file; the batches handed to it carry no
    `source_sha256` (the outcome's file has it). A file without its hash is hashed as it is read
    (or, if reading stopped early, afterwards: an OSError then means it cannot be read at all).
    """
    content = None if file.sha256 else storage.ContentHash()
    lineage = {
        "source_file": file.name,
        "source_sha256": file.sha256 or UNKNOWN_SHA256,
        "ingested_at": provenance.ingested_at,
        "run_id": provenance.run_id,
    }
    events: list[pl.DataFrame] = []
    dates: set[date] = set()
    rejected: list[pl.DataFrame] = []
    read = 0
    ignored: Counter[Ignored] = Counter()
    parsed_any = False
    limits = limits or Limits()
    try:
        # Read as listed: an object replaced meanwhile fails the read (ObjectChanged), never mixes versions.
        chunks = storage.iter_bytes(landing, file.name, on_read=on_read, content=content, expect_etag=file.etag)
        # Closed on the way out, whatever ends the loop: its reading thread stops then, not whenever
        # the generator is collected (after an interrupt, at the interpreter's exit).
        with closing(prefetched(read_batches(file.name, chunks, limits))) as batches:
            for batch in batches:
                read += batch.read
                ignored.update(batch.ignored)
                parsed_any = parsed_any or batch.parsed
                valid, bad = _judge(batch, lineage, limits.sources.pseudonymise_key)
                dates.update(valid["event_date"].unique().to_list())
                if sink is None:
                    events.append(valid)
                else:
                    sink(valid.drop("source_sha256"))
                rejected.append(bad)
    except OSError as err:
        detail = f"could not read the file: {err.strerror or err}"
        unreadable = RecordBatch(read, rejections=[Rejection("file", "", "unreadable_file", detail, read)], count=1)
        rejected.append(_rejections_frame(unreadable))
        read += 1
    if content is not None:
        file = replace(file, sha256=content.hexdigest() or storage.sha256_of(landing, file.name))
        lineage["source_sha256"] = file.sha256
    hash_column = pl.lit(file.sha256, dtype=pl.String).alias("source_sha256")
    outcome = FileOutcome(
        file=file,
        events=pl.concat(events).with_columns(hash_column) if events else empty_events(),
        quarantine=_quarantine_frame(pl.concat(rejected) if rejected else None, lineage),
        read=read,
        dates=sorted(dates),
        ignored=_by_provider(ignored),
    )
    if read and not parsed_any and not dates:
        reasons = set(outcome.quarantine["reason"].to_list())
        if reasons <= set(_UNREADABLE):
            outcome.rejected = outcome.quarantine["detail"][0]
    if read == 0:
        outcome.notes.append("the file holds no records")
    return outcome


def _by_provider(ignored: Counter[Ignored]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (provider, event), count in sorted(ignored.items()):
        out.setdefault(provider, {})[event] = count
    return out


def _judge(
    batch: RecordBatch, lineage: dict[str, object], pseudonymise_key: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if batch.frame is not None:
        rows = batch.frame.with_columns(
            (pl.int_range(pl.len(), dtype=pl.Int64) + batch.first_ordinal).alias("_ordinal")
        )
    elif batch.rows:
        columns = dict(zip(ROW_COLUMNS, (list(column) for column in zip(*batch.rows, strict=True)), strict=True))
        rows = pl.DataFrame(columns, schema=_ROW_SCHEMA).with_columns(
            pl.Series("_ordinal", batch.ordinals, dtype=pl.Int64)
        )
    else:
        return empty_events(), _rejections_frame(batch)
    frame = pseudonymise_users(rows, pseudonymise_key).with_columns(
        pl.lit(lineage["source_file"], dtype=pl.String).alias("source_file"),
        pl.lit(lineage["source_sha256"], dtype=pl.String).alias("source_sha256"),
        pl.lit(lineage["ingested_at"], dtype=pl.Datetime("us", "UTC")).alias("ingested_at"),
        pl.lit(lineage["run_id"], dtype=pl.String).alias("run_id"),
    )
    candidates = normalise_events(frame.lazy()).collect()
    valid, bad = split_valid(candidates)
    if batch.raw_of is not None and bad.height:  # the vectorised path finds raw text only where needed
        raw = [batch.raw_of(ordinal - batch.first_ordinal) for ordinal in bad["_ordinal"].to_list()]
        bad = bad.with_columns(pl.Series("raw", raw, dtype=pl.String))
    return valid, pl.concat([_rejections_frame(batch), bad])


def _rejections_frame(batch: RecordBatch) -> pl.DataFrame:
    rejections = batch.rejections
    return pl.DataFrame(
        {
            "source_position": [r.position for r in rejections],
            "raw": [r.raw for r in rejections],
            "reason": [r.reason for r in rejections],
            "detail": [r.detail for r in rejections],
            "_ordinal": [r.ordinal for r in rejections],
        },
        schema=REJECTION_SCHEMA,
    )


def _quarantine_frame(rejected: pl.DataFrame | None, lineage: dict[str, object]) -> pl.DataFrame:
    if rejected is None:
        rejected = pl.DataFrame(schema=REJECTION_SCHEMA)
    ingested_at = pl.lit(lineage["ingested_at"], dtype=pl.Datetime("us", "UTC"))
    return rejected.sort("_ordinal").select(
        "raw",
        pl.lit(lineage["source_file"], dtype=pl.String).alias("source_file"),
        pl.col("source_position").alias("position"),
        "reason",
        "detail",
        pl.lit(lineage["source_sha256"], dtype=pl.String).alias("source_sha256"),
        pl.lit(lineage["run_id"], dtype=pl.String).alias("run_id"),
        ingested_at.alias("ingested_at"),
        ingested_at.dt.date().alias("ingest_date"),
    )


def empty_events(columns: list[str] | None = None) -> pl.DataFrame:
    """A frame with no rows and the columns (and types) of a batch of valid events."""
    schema = Event.to_schema()
    dtypes = {name: schema.columns[name].dtype.type for name in event_columns()}
    frame = pl.DataFrame(schema={**dtypes, "event_date": pl.Date, "_ordinal": pl.Int64})
    return frame.select(columns) if columns else frame
