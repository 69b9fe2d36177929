"""One landing file -> its valid events and its quarantine rows: the unit of work of ingestion."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from contracts import Event, event_columns
from etl import storage
from etl.fastpath import Block, ndjson_block
from etl.feeds import Limits, Unit, is_line_delimited, iter_line_units, iter_units
from etl.normalise import normalise_events
from etl.overlap import prefetched
from etl.records import ROW_COLUMNS, Expanded, Rejection, Row, expand_unit
from etl.storage import FeedReadError
from etl.validate import REJECTION_SCHEMA, split_valid

BATCH_ROWS = 50_000
# What judged rows carry as `source_sha256` while their file is still being hashed (the contract's
# form of a hash; the real one replaces it once the whole file was read).
UNKNOWN_SHA256 = "0" * 64
# Blocks read at once are judged together up to this many rows: validation has a fixed cost per call.
JUDGE_ROWS = 100_000
_ROW_SCHEMA = {name: (pl.Float64 if name == "timestamp_number" else pl.String) for name in ROW_COLUMNS}
_UNREADABLE = ("unreadable_file", "invalid_json", "invalid_utf8", "record_too_large", "too_deeply_nested")


@dataclass(frozen=True)
class LandingFile:
    """A feed file in the landing zone; `name` is its path relative to the zone, `sha256` its identity
    (empty when it is to be hashed while it is read)."""

    path: Path
    name: str
    sha256: str
    size: int
    mtime_ns: int = 0


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
    read: int
    dates: list[date] = field(default_factory=list)  # the event dates of its valid events, sorted
    rejected: str = ""  # why the whole file was rejected, when nothing in it could be read
    notes: list[str] = field(default_factory=list)


def ingest_file(
    file: LandingFile,
    provenance: Provenance,
    limits: Limits | None = None,
    on_read: Callable[[int], None] | None = None,
    sink: Callable[[pl.DataFrame], None] | None = None,
) -> FileOutcome:
    """Read, expand, normalise and judge every record of one file. Writes nothing itself.

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
    parsed_any = False
    try:
        for batch in prefetched(_file_batches(file, limits or Limits(), on_read, content)):
            read += batch.count
            parsed_any = parsed_any or batch.parsed
            valid, bad = _judge(batch, lineage)
            dates.update(valid["event_date"].unique().to_list())
            if sink is None:
                events.append(valid)
            else:
                sink(valid.drop("source_sha256"))
            rejected.append(bad)
    except OSError as err:
        detail = f"could not read the file: {err.strerror or err}"
        unreadable = _Batch(read, rejections=[Rejection("file", "", "unreadable_file", detail, read)], count=1)
        rejected.append(_rejections_frame(unreadable))
        read += 1
    if content is not None:
        file = replace(file, sha256=content.hexdigest() or storage.sha256_of(file.path))
        lineage["source_sha256"] = file.sha256
    hash_column = pl.lit(file.sha256, dtype=pl.String).alias("source_sha256")
    outcome = FileOutcome(
        file=file,
        events=pl.concat(events).with_columns(hash_column) if events else empty_events(),
        quarantine=_quarantine_frame(pl.concat(rejected) if rejected else None, lineage),
        read=read,
        dates=sorted(dates),
    )
    if read and not parsed_any and not dates:
        reasons = set(outcome.quarantine["reason"].to_list())
        if reasons <= set(_UNREADABLE):
            outcome.rejected = outcome.quarantine["detail"][0]
    if read == 0:
        outcome.notes.append("the file holds no records")
    return outcome


@dataclass
class _Batch:
    """Records of one batch; every row and rejection numbered in file order (its ordinal).

    Rows come as tuples from the record-by-record path, or as a ready `frame` from the vectorised
    path, which keeps the `block` of lines to find the original text of rejected rows.
    """

    first_ordinal: int
    rows: list[Row] = field(default_factory=list)
    ordinals: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    count: int = 0
    parsed: bool = False
    frame: pl.DataFrame | None = None
    raw_of: Callable[[int], str] | None = None  # original text of the frame's row k

    def add(self, expanded: Expanded) -> None:
        # A record's rows come before its rejections in the numbering; both stay within the record.
        start = self.first_ordinal + self.count
        self.rows.extend(expanded.rows)
        self.ordinals.extend(range(start, start + len(expanded.rows)))
        for offset, rejection in enumerate(expanded.rejections, start=start + len(expanded.rows)):
            rejection.ordinal = offset
            self.rejections.append(rejection)
        self.count += len(expanded.rows) + len(expanded.rejections)


def _file_batches(
    file: LandingFile, limits: Limits, on_read: Callable[[int], None] | None, content: storage.ContentHash | None
) -> Iterator[_Batch]:
    chunks = storage.iter_bytes(file.path, on_read=on_read, content=content)
    if is_line_delimited(file.name):
        return _joined(_line_batches(chunks, limits))
    return _joined(_batches(iter_units(file.name, chunks, limits), 0))


def _joined(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """Consecutive batches read at once, joined into one of up to JUDGE_ROWS rows."""
    run: list[_Batch] = []
    for batch in batches:
        if run and (batch.frame is None or sum(b.count for b in run) >= JUDGE_ROWS):
            yield _join(run)
            run = []
        if batch.frame is None:
            yield batch
        else:
            run.append(batch)
    if run:
        yield _join(run)


def _join(run: list[_Batch]) -> _Batch:
    if len(run) == 1:
        return run[0]
    starts = np.cumsum([0] + [b.count for b in run[:-1]])

    def raw_of(row: int) -> str:
        part = int(np.searchsorted(starts, row, side="right")) - 1
        raw = run[part].raw_of
        assert raw is not None
        return raw(row - int(starts[part]))

    frame = pl.concat([b.frame for b in run if b.frame is not None])
    return _Batch(run[0].first_ordinal, count=frame.height, parsed=True, frame=frame, raw_of=raw_of)


def _line_batches(chunks: Iterator[bytes], limits: Limits) -> Iterator[_Batch]:
    """NDJSON in blocks of whole lines: each block read at once when it is clean, else record by record."""
    line, ordinal, carry = 1, 0, b""
    while True:
        try:
            chunk = next(chunks, None)
        except FeedReadError as err:
            yield from _batches(iter_line_units(_then_fail(carry, err), limits, line), ordinal)
            return
        if chunk is None:
            break
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > limits.max_record_bytes:  # one enormous line: stream the rest slowly
            rest = itertools.chain([data], chunks)
            yield from _batches(iter_line_units(rest, limits, line), ordinal)
            return
        block, carry = data[:cut], data[cut:]
        lines = block.count(b"\n")  # the block ends with a line break
        for batch in _block_batches(block, line, ordinal, limits, lines):
            ordinal += batch.count
            yield batch
        line += lines
    for batch in _block_batches(carry, line, ordinal, limits):
        yield batch


def _block_batches(
    block: bytes, first_line: int, first_ordinal: int, limits: Limits, lines: int | None = None
) -> Iterator[_Batch]:
    if not block:
        return
    fast = ndjson_block(block, first_line, limits.max_record_bytes, lines) if limits.use_vectorised else None
    if fast is not None:
        yield _vectorised_batch(fast, first_ordinal)
    else:
        yield from _batches(iter_line_units(iter([block]), limits, first_line), first_ordinal)


def _vectorised_batch(block: Block, first_ordinal: int) -> _Batch:
    return _Batch(first_ordinal, count=block.rows.height, parsed=True, frame=block.rows, raw_of=block.raw)


def _then_fail(data: bytes, error: FeedReadError) -> Iterator[bytes]:
    yield data
    raise error


def _batches(units: Iterator[Unit | Block], first_ordinal: int) -> Iterator[_Batch]:
    batch = _Batch(first_ordinal)
    for unit in units:
        if isinstance(unit, Block):  # records read at once: a batch of their own
            if batch.count:
                yield batch
            batch = _Batch(batch.first_ordinal + batch.count)
            yield _vectorised_batch(unit, batch.first_ordinal)
            batch = _Batch(batch.first_ordinal + unit.rows.height)
            continue
        batch.add(expand_unit(unit))
        batch.parsed = batch.parsed or unit.error is None
        if batch.count >= BATCH_ROWS:
            yield batch
            batch = _Batch(batch.first_ordinal + batch.count)
    if batch.count:
        yield batch


def _judge(batch: _Batch, lineage: dict[str, object]) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    frame = rows.with_columns(
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


def _rejections_frame(batch: _Batch) -> pl.DataFrame:
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
