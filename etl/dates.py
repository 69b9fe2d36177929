"""One event date: the unit of work of rebuilding.

One pass over the date's event identities (a share of them at a time) finds both what the rebuild
drops and what the manifest counts:
- the partition keeps each event's first sighting by (source file name, file hash, position), so
  the rows do not depend on the order in which files arrived;
- the manifest counts an event as loaded by the first file, in processing order, that carries it,
  and as a duplicate everywhere after, including against the files the warehouse held before.
Then the kept rows stream from the staged copies into the date's events partition, staged in the
run's journal (its messages are counted by send date afterwards: `etl.sends`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from contracts import Event, event_columns, required_columns
from etl import storage
from etl.normalise import with_source_defaults
from etl.settings import Tuning
from etl.shares import id_shares, rows_of
from etl.storage import Store, open_store
from etl.warehouse import Layout, staging_key

_ORDER = 1 << 40  # positions stay below this, so (rank, position) is one sortable integer


@dataclass(frozen=True)
class DateSource:
    """A staged copy holding events of the date."""

    sha256: str
    key: str  # published, or in the journal
    account_rank: int = 0  # its place in the run's processing order (1, 2, …); 0: held before the run


@dataclass(frozen=True)
class DateJob:
    day: date
    sources: tuple[DateSource, ...]
    rebuild: bool = True  # stage the date's partitions (False: only count)


@dataclass
class DateResult:
    day: date
    events: int = 0  # rows of the staged events partition (0: the date is now empty)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha -> (loaded, duplicates)


def process_date(warehouse: str, run_id: str, job: DateJob, tuning: Tuning) -> DateResult:
    """Count one date's loaded and duplicate events and, for a rebuild, stage its events partition
    in the journal of run `run_id` (at the key `staging_key` gives)."""
    store = open_store(warehouse)
    parts = _parts(store, job)
    result = DateResult(job.day)
    if not parts:
        return result
    repeats, result.counts = _identity_pass(parts, tuning.share_rows)
    if job.rebuild:
        events_key = staging_key(run_id, Layout(store).event_partition(job.day))
        result.events = _stage_events(store, parts, repeats, events_key)
    return result


@dataclass(frozen=True)
class _Part:
    """A source's rows of the date, with its place in both orders."""

    source: DateSource
    rows: pl.LazyFrame
    count: int


def _parts(store: Store, job: DateJob) -> list[_Part]:
    """The sources with rows on the date, in rebuild order: by (source file name, file hash)."""
    found = []
    for source in job.sources:
        rows = storage.scan_parquet(store, [source.key]).filter(pl.col("event_date") == job.day)
        count, name = rows.select(pl.len(), pl.first("source_file")).collect().row(0)
        if count:  # (copies staged by earlier versions hold the same hash in a column of their own)
            rows = with_source_defaults(rows.with_columns(source_sha256=pl.lit(source.sha256, pl.String)))
            found.append(((name, source.sha256), _Part(source, rows, count)))
    return [part for _, part in sorted(found, key=lambda item: item[0])]


def _identity_pass(parts: list[_Part], share_rows: int) -> tuple[dict[int, list[int]], dict[str, tuple[int, int]]]:
    """(positions to drop, by part) for the rebuild, and (loaded, duplicates) by counted file."""
    ids = pl.concat(
        [
            part.rows.select("event_id", "_ordinal").with_columns(
                _part=pl.lit(n, pl.Int64), _rank=pl.lit(part.source.account_rank, pl.Int64)
            )
            for n, part in enumerate(parts)
        ]
    )
    account_key = pl.col("_rank") * _ORDER + pl.when(pl.col("_rank") > 0).then(pl.col("_ordinal")).otherwise(0)
    repeats: dict[int, list[int]] = {}
    loaded: Counter[int] = Counter()
    rows: Counter[int] = Counter()
    for share in id_shares(sum(part.count for part in parts), share_rows):
        judged = _in_rebuild_order(ids.filter(share).collect()).with_columns(
            kept=pl.col("event_id").is_first_distinct(),
            first=account_key == account_key.min().over("event_id"),
        )
        dropped = judged.filter(~pl.col("kept")).group_by("_part").agg("_ordinal")
        for n, ordinals in dropped.iter_rows():
            repeats.setdefault(n, []).extend(ordinals)
        counted = judged.filter(pl.col("_rank") > 0).group_by("_rank").agg(loaded=pl.col("first").sum(), rows=pl.len())
        for rank, first, total in counted.iter_rows():
            loaded[rank] += first
            rows[rank] += total
    by_rank = {part.source.account_rank: part.source.sha256 for part in parts}
    counts = {by_rank[rank]: (loaded[rank], rows[rank] - loaded[rank]) for rank in rows}
    return repeats, counts


def _in_rebuild_order(ids: pl.DataFrame) -> pl.DataFrame:
    """Identities sorted by (part, position): read in that order already (parts concatenated in
    order, each in position order), so the sort is only a safeguard that costs one check."""
    key = pl.col("_part") * _ORDER + pl.col("_ordinal")
    if ids.select(key.diff().min().fill_null(0) >= 0).item():
        return ids
    return ids.sort("_part", "_ordinal")


def _stage_events(store: Store, parts: list[_Part], repeats: dict[int, list[int]], events_key: str) -> int:
    """Stream the kept rows into the events partition; its rows."""
    streams = []
    for n, part in enumerate(parts):
        kept = part.rows if n not in repeats else part.rows.filter(~pl.col("_ordinal").is_in(repeats[n]))
        streams.append(kept.select(event_columns()))
    storage.sink_parquet(store, pl.concat(streams), events_key, required_columns(Event))
    return rows_of(storage.scan_parquet(store, [events_key]))
