"""The lifetime funnel after a run, counted again only for the campaigns the run can have changed.

A campaign's lifetime row depends on its own messages only, and a run changes messages only on the
send dates it rebuilds. So a campaign with no message on a rebuilt send date, neither before nor after
the run, keeps its published row; the others are counted again from the send dates whose daily funnel
lists them. A nightly run on a warehouse of many months therefore reads the messages of the campaigns
it touched, not every message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import polars as pl

from etl import storage
from etl.executors import UNIT_OF_WORK, Executor, InProcess
from etl.funnel import (
    FUNNEL_INPUT,
    funnel_counts,
    funnel_from_counts,
    lifetime_funnel,
    user_share,
)
from etl.settings import Tuning
from etl.shares import rows_of, share_count
from etl.split_shares import SplitShare, count_in_split_shares
from etl.storage import Store, open_store
from etl.warehouse import Layout

log = logging.getLogger("etl")


@dataclass(frozen=True)
class DateFiles:
    """One send date's objects as they will be after the run (published, or staged in the journal)."""

    messages: str
    funnel: str


@dataclass(frozen=True)
class LifetimeCount:
    """Where a lifetime count reads and writes: the warehouse, a prefix for scratch files, the sizes."""

    warehouse: str
    scratch_prefix: str
    tuning: Tuning
    executor: Executor = field(default_factory=InProcess)  # where the share units run


#: Only these campaigns (None: every one).
Campaigns = tuple[str | None, ...] | None


@dataclass(frozen=True)
class ShareJob:
    """One user share of the messages in some partitions: the unit of work of the lifetime count."""

    keys: tuple[str, ...]  # messages partitions (published, or staged in the journal)
    campaigns: Campaigns
    share: int
    shares: int


def count_share(warehouse: str, job: ShareJob) -> pl.DataFrame:
    """The funnel counts of one user share, one row per campaign (a small frame: no rates yet)."""
    messages = _columns(open_store(warehouse), list(job.keys), job.campaigns)
    if job.shares > 1:
        messages = messages.filter(user_share(job.shares) == job.share)
    return funnel_counts(messages, ["campaign_id"]).collect(engine="streaming")


def _columns(store: Store, keys: list[str], campaigns: Campaigns) -> pl.LazyFrame:
    """What the count reads of the messages; of a first time only whether there is one (the funnel
    asks no more), as a boolean that is null when there is none: an eighth of the memory a timestamp
    takes in the shares the split holds in its buffers."""
    frame = storage.scan_parquet(store, keys).select(
        *(
            _presence(name) if dtype == pl.Datetime("us", "UTC") else pl.col(name)
            for name, dtype in FUNNEL_INPUT.items()
        )
    )
    return frame if campaigns is None else frame.filter(_of(campaigns))


def _presence(name: str) -> pl.Expr:
    return pl.when(pl.col(name).is_not_null()).then(pl.lit(True)).alias(name)


def _of(campaigns: tuple[str | None, ...]) -> pl.Expr:
    return pl.col("campaign_id").is_in(pl.Series(campaigns, dtype=pl.String).implode(), nulls_equal=True)


def lifetime_after_run(layout: Layout, rebuilt: dict[date, DateFiles | None], count: LifetimeCount) -> pl.DataFrame:
    """The lifetime funnel over every event as it will be after the run that rebuilt `rebuilt`
    (None: the date is now empty).

    Everything is counted when there is no published lifetime table to start from (or it cannot be
    read, or has other columns), or when a date's daily funnel is missing or cannot be read.
    """
    after = {
        day: DateFiles(layout.message_partition(day), layout.daily_funnel_partition(day))
        for day in layout.send_dates()
        if day not in rebuilt
    }
    after |= {day: files for day, files in rebuilt.items() if files is not None}
    everything = [files.messages for files in after.values()]
    previous = _published(layout)
    if previous is None or not all(layout.store.head(files.funnel) for files in after.values()):
        return count_lifetime(everything, None, count)
    try:
        return _recount_touched(layout, rebuilt, after, previous, count)
    except (pl.exceptions.PolarsError, OSError) as error:  # a damaged funnel file: slower, same result
        log.warning("could not use the published funnels (%s); counting the lifetime funnel from every message", error)
        return count_lifetime(everything, None, count)


def _recount_touched(
    layout: Layout,
    rebuilt: dict[date, DateFiles | None],
    after: dict[date, DateFiles],
    previous: pl.DataFrame,
    count: LifetimeCount,
) -> pl.DataFrame:
    """The published lifetime rows of untouched campaigns, and the touched ones counted again."""
    funnels_before = [layout.daily_funnel_partition(day) for day in rebuilt]
    funnels_now = [files.funnel for files in rebuilt.values() if files is not None]
    funnels = [key for key in funnels_before if layout.store.head(key)] + funnels_now
    if not funnels:
        return previous
    listed = storage.scan_parquet(layout.store, funnels).select(pl.col("campaign_id").unique()).collect()
    touched = tuple(listed.to_series().to_list())
    dates = _dates_listing(layout.store, _of(touched), {day: files.funnel for day, files in after.items()})
    recounted = count_lifetime([after[day].messages for day in dates], touched, count)
    kept = previous.filter(~_of(touched))
    return pl.concat([kept, recounted]).sort("campaign_id", nulls_last=True)


def count_lifetime(events: list[str], campaigns: Campaigns, count: LifetimeCount) -> pl.DataFrame:
    """The lifetime funnel of the messages (of `campaigns` only, unless None) in the given partitions.

    Distinct users need every message of a user in one place: when the messages are too many to hold
    their user sets at once, they are counted one user share at a time (`count_share`), each a
    filtered pass over the partitions; past `max_passes` shares, units first split them into objects
    per share (`etl.split_shares`), then each share is counted on its own. The shares add up exactly.
    """
    if not events:
        return lifetime_funnel(pl.LazyFrame(schema=FUNNEL_INPUT)).collect()
    store, tuning = open_store(count.warehouse), count.tuning
    # Without a filter the rows are known from the files' metadata; with one, counting reads one column.
    rows = rows_of(storage.scan_parquet(store, events) if campaigns is None else _columns(store, events, campaigns))
    shares = share_count(rows, tuning.share_rows)
    if shares <= tuning.max_passes:
        jobs = [ShareJob(tuple(events), campaigns, share, shares) for share in range(shares)]
        counted = count.executor.map(
            partial(count_share, count.warehouse),
            jobs,
            describe=lambda job: f"lifetime share {job.share}",
            resources=UNIT_OF_WORK,
        )
        return funnel_from_counts(counted, ["campaign_id"])
    counted = count_in_split_shares(
        count.warehouse,
        events,
        partial(_columns, campaigns=campaigns),
        shares,
        f"{count.scratch_prefix}/split-lifetime",
        tuning,
        count.executor,
        partial(count_split_share, count.warehouse),
        "lifetime",
    )
    if not counted:
        return lifetime_funnel(pl.LazyFrame(schema=FUNNEL_INPUT)).collect()
    return funnel_from_counts(counted, ["campaign_id"])


def count_split_share(warehouse: str, job: SplitShare) -> pl.DataFrame:
    """The funnel counts of one share of a split, one row per campaign."""
    messages = storage.scan_parquet(open_store(warehouse), list(job.objects))
    return funnel_counts(messages, ["campaign_id"]).collect(engine="streaming")


def _published(layout: Layout) -> pl.DataFrame | None:
    """The published lifetime funnel, when there is one, readable and with today's columns and types."""
    if layout.store.head(layout.lifetime_funnel) is None:
        return None
    try:
        table = storage.read_parquet(layout.store, layout.lifetime_funnel)
    except (pl.exceptions.PolarsError, OSError) as error:
        log.warning("could not read the published lifetime funnel (%s); counting it from every message", error)
        return None
    expected = lifetime_funnel(pl.LazyFrame(schema=FUNNEL_INPUT)).collect_schema()
    return table if table.schema == expected else None


def _dates_listing(store: Store, campaigns: pl.Expr, funnels: dict[date, str]) -> list[date]:
    """The dates whose daily funnel has a row for one of `campaigns`."""
    if not funnels:
        return []
    listed = storage.scan_parquet(store, list(funnels.values()), key_column="_key").filter(campaigns)
    keys = set(listed.select(pl.col("_key").unique()).collect().to_series().to_list())
    return sorted(day for day, key in funnels.items() if key in keys)
