"""The lifetime funnel after a run, counted again only for the campaigns the run can have changed.

A campaign's lifetime row depends on its own events only, and a run changes events only on the
dates it rebuilds. So a campaign with no event on a rebuilt date, neither before nor after the run,
keeps its published row; the others are counted again from the dates whose daily funnel lists them.
A nightly run on a warehouse of many months therefore reads the events of the campaigns it touched,
not every event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from etl import storage
from etl.funnel import funnel_of_user_shares, lifetime_funnel, lifetime_funnel_in_shares, user_share
from etl.shares import rows_of, share_count
from etl.warehouse import Layout

log = logging.getLogger("etl")

FUNNEL_INPUT = {"campaign_id": pl.String, "event": pl.String, "user_id": pl.String}
# Rows one pass of the split reads at a time: a sink that reads many partitions at once buffers
# more (10M events in 8 partitions: about 120 MB above the process with one partition per sink,
# 230 MB with all eight).
SPLIT_ROWS = 1_500_000
# Up to this many shares, a filtered pass over the columns per share costs less than one split
# (writing the columns and reading them back): 2M events in 7 shares, 0.43 s in passes vs 0.53 s
# split; 3M in 10 shares, 1.3 s vs 0.9 s.
MAX_PASSES = 8


@dataclass(frozen=True)
class DateFiles:
    """One date's files as they will be after the run (published, or staged in the journal)."""

    events: Path
    funnel: Path


def lifetime_after_run(
    layout: Layout, rebuilt: dict[date, DateFiles | None], scratch: Callable[[], Path]
) -> pl.DataFrame:
    """The lifetime funnel over every event as it will be after the run that rebuilt `rebuilt`
    (None: the date is now empty). `scratch` gives a fresh folder for temporary files.

    Everything is counted when there is no published lifetime table to start from (or it cannot be
    read, or has other columns), or when a date's daily funnel is missing or cannot be read.
    """
    after = {
        day: DateFiles(layout.event_partition(day), layout.daily_funnel_partition(day))
        for day in layout.event_dates()
        if day not in rebuilt
    }
    after |= {day: files for day, files in rebuilt.items() if files is not None}
    everything = [files.events for files in after.values()]
    previous = _published(layout)
    if previous is None or not all(files.funnel.is_file() for files in after.values()):
        return count_lifetime(everything, None, scratch)
    try:
        return _recount_touched(layout, rebuilt, after, previous, scratch)
    except (pl.exceptions.PolarsError, OSError) as error:  # a damaged funnel file: slower, same result
        log.warning("could not use the published funnels (%s); counting the lifetime funnel from every event", error)
        return count_lifetime(everything, None, scratch)


def _recount_touched(
    layout: Layout,
    rebuilt: dict[date, DateFiles | None],
    after: dict[date, DateFiles],
    previous: pl.DataFrame,
    scratch: Callable[[], Path],
) -> pl.DataFrame:
    """The published lifetime rows of untouched campaigns, and the touched ones counted again."""
    funnels_before = [layout.daily_funnel_partition(day) for day in rebuilt]
    funnels_now = [files.funnel for files in rebuilt.values() if files is not None]
    funnels = [path for path in funnels_before if path.is_file()] + funnels_now
    if not funnels:
        return previous
    touched = storage.scan_parquet(funnels).select(pl.col("campaign_id").unique()).collect().to_series()
    of_touched = pl.col("campaign_id").is_in(touched.implode(), nulls_equal=True)
    dates = _dates_listing(of_touched, {day: files.funnel for day, files in after.items()})
    recounted = count_lifetime([after[day].events for day in dates], of_touched, scratch)
    kept = previous.filter(~of_touched)
    return pl.concat([kept, recounted]).sort("campaign_id", nulls_last=True)


def count_lifetime(events: list[Path], keep: pl.Expr | None, scratch: Callable[[], Path]) -> pl.DataFrame:
    """The lifetime funnel of the events (those matching `keep`) in the given partition files.

    Distinct users need every event of a user in one place: when the events are too many to hold
    their user sets at once, one pass splits them into user shares (scratch files), then each share
    is counted on its own; the shares add up exactly.
    """
    if not events:
        return lifetime_funnel(pl.LazyFrame(schema=FUNNEL_INPUT)).collect()

    def columns(files: list[Path]) -> pl.LazyFrame:
        frame = storage.scan_parquet(files).select(*FUNNEL_INPUT)
        return frame if keep is None else frame.filter(keep)

    # Without a filter the rows are known from the files' metadata; with one, counting reads one column.
    shares = share_count(rows_of(storage.scan_parquet(events) if keep is None else columns(events)))
    if shares <= MAX_PASSES:
        return lifetime_funnel_in_shares(columns(events), shares)
    folder = scratch()
    try:
        pieces = (columns(files) for files in _runs_of_rows(events, SPLIT_ROWS))
        groups = storage.sink_parquet_split(pieces, user_share(shares), folder)
        parts = [storage.scan_parquet(files) for files in groups] or [pl.LazyFrame(schema=FUNNEL_INPUT)]
        return funnel_of_user_shares(parts, ["campaign_id"])
    finally:
        storage.remove_tree(folder)


def _runs_of_rows(files: list[Path], rows: int) -> Iterator[list[Path]]:
    """Consecutive files in runs of about `rows` rows (a file larger than that is a run of its own)."""
    run: list[Path] = []
    held = 0
    for path in files:
        count = rows_of(storage.scan_parquet([path]))
        if run and held + count > rows:
            yield run
            run, held = [], 0
        run.append(path)
        held += count
    if run:
        yield run


def _published(layout: Layout) -> pl.DataFrame | None:
    """The published lifetime funnel, when there is one, readable and with today's columns and types."""
    if not layout.lifetime_funnel.is_file():
        return None
    try:
        table = storage.read_parquet(layout.lifetime_funnel)
    except (pl.exceptions.PolarsError, OSError) as error:
        log.warning("could not read the published lifetime funnel (%s); counting it from every event", error)
        return None
    expected = lifetime_funnel(pl.LazyFrame(schema=FUNNEL_INPUT)).collect_schema()
    return table if table.schema == expected else None


def _dates_listing(campaigns: pl.Expr, funnels: dict[date, Path]) -> list[date]:
    """The dates whose daily funnel has a row for one of `campaigns`."""
    if not funnels:
        return []
    listed = storage.scan_parquet(list(funnels.values()), path_column="_path").filter(campaigns)
    paths = set(listed.select(pl.col("_path").unique()).collect().to_series().to_list())
    return sorted(day for day, path in funnels.items() if storage.path_key(path) in paths)
