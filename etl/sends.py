"""Messages and daily funnels by send date, rebuilt for the messages a run touches (SPEC §5-§7).

A message's events may fall on many event dates, and its send date (its first Sent) may lie before
or after them. When a run rebuilds some event dates, the messages with events on them — before or
after the run — are *touched*: each is counted again from all its events, and every send date that
held one of them, or now holds one, is rebuilt: its untouched messages are kept as published, the
touched ones replaced.

Where a touched message was, and where its other events are, is found without reading the history:
- its old send date: among the send dates whose daily funnel lists its campaign (the campaign is
  part of a message's key), the messages partitions that hold its key;
- its events: the warehouse keeps the pairs (event date, send date) for which some message has
  events on that event date and that send date (`_state/message_dates.parquet`); a message's events
  lie on the event dates paired with its send date.
So a nightly run reads the messages of the campaigns it touches and the events of their send dates,
however long the history.

The pairs are exact for every message as last counted, and may name a few pairs more (a message
that moved to another send date leaves its old pair behind until that event date is rebuilt): more
pairs only mean more reading, never other rows.

The units of work, each with plain arguments and a small result:
- `count_message_share`: one user share of the touched messages, counted from their events and
  written as one scratch object per send date (past `max_passes` shares: `etl.split_shares` splits
  the events into objects per share, and `count_split_share` counts one);
- `process_send_date`: one send date's messages partition and daily funnel, staged in the journal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import polars as pl

from contracts import DailyFunnel, Message, required_columns
from etl import storage
from etl.executors import UNIT_OF_WORK, Executor
from etl.funnel import funnel_in_shares, user_share
from etl.messages import EVENT_DATES, MESSAGE_COLUMNS, MESSAGE_INPUT, MESSAGE_KEY, in_table_order, messages_of
from etl.normalise import with_source_defaults
from etl.settings import Tuning
from etl.shares import rows_of, share_count
from etl.split_shares import SplitShare, count_in_split_shares
from etl.storage import Store, open_store
from etl.warehouse import Layout, staging_key

log = logging.getLogger("etl")

PAIRS_SCHEMA = {"event_date": pl.Date, "send_date": pl.Date}


@dataclass(frozen=True)
class MessageShareJob:
    """One user share of the touched messages: read from these events partitions."""

    events: tuple[str, ...]  # events partitions as they will be after the run (published, or staged)
    touched: str | None  # the touched message keys (None: every message of `events` is touched)
    share: int
    shares: int
    out_prefix: str  # scratch objects go to <out_prefix>/send_date=<d>/share-<n>.parquet


@dataclass
class ShareResult:
    parts: dict[date, str] = field(default_factory=dict)  # send date -> scratch object
    pairs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PAIRS_SCHEMA))


def count_message_share(warehouse: str, job: MessageShareJob) -> ShareResult:
    """Count one user share of the touched messages from their events; one scratch object per send date."""
    store = open_store(warehouse)
    events = _message_input(storage.scan_parquet(store, list(job.events)))
    if job.shares > 1:
        events = events.filter(user_share(job.shares) == job.share)
    return _write_share(store, _touched_only(store, events, job.touched), job.share, job.out_prefix)


def _message_input(events: pl.LazyFrame) -> pl.LazyFrame:
    """What counting messages reads of events partitions (their date is that of event_ts)."""
    columns = [name for name in MESSAGE_INPUT if name != "event_date"]
    return with_source_defaults(events).select(*columns, event_date=pl.col("event_ts").dt.date())


def _touched_only(store: Store, events: pl.LazyFrame, touched: str | None) -> pl.LazyFrame:
    if touched is None:
        return events
    keys = storage.scan_parquet(store, [touched])
    return events.join(keys, on=list(MESSAGE_KEY), how="semi", nulls_equal=True)


def _write_share(store: Store, events: pl.LazyFrame, share: int, out_prefix: str) -> ShareResult:
    messages = messages_of(events, with_event_dates=True).collect(engine="streaming")
    result = ShareResult()
    pairs = messages.select(pl.col(EVENT_DATES).alias("event_date"), "send_date").explode("event_date")
    result.pairs = pairs.unique().sort(list(PAIRS_SCHEMA))
    for (day,), part in messages.drop(EVENT_DATES).partition_by("send_date", as_dict=True).items():
        key = f"{out_prefix}/send_date={day.isoformat()}/share-{share}.parquet"
        storage.write_parquet(store, in_table_order(part.drop("send_date").lazy()).collect(), key)
        result.parts[day] = key
    return result


@dataclass(frozen=True)
class SendDateJob:
    day: date
    published: str | None  # the published messages partition of the date, if any
    touched: str | None  # touched message keys; None: every published message is replaced
    parts: tuple[str, ...]  # the date's touched messages, counted again (scratch objects)


@dataclass
class SendDateResult:
    day: date
    messages: int = 0  # rows of the staged partition (0: the date is now empty)
    changed: bool = True  # False: no touched message was or is on this date; nothing staged


def process_send_date(warehouse: str, run_id: str, job: SendDateJob, tuning: Tuning) -> SendDateResult:
    """Stage one send date's messages partition and daily funnel in the journal of run `run_id`."""
    store = open_store(warehouse)
    layout = Layout(store)
    kept = None
    if job.published is not None:
        published = storage.scan_parquet(store, [job.published])
        kept = published
        if job.touched is not None:
            keys = storage.scan_parquet(store, [job.touched])
            kept = published.join(keys, on=list(MESSAGE_KEY), how="anti", nulls_equal=True)
            if not job.parts and rows_of(kept) == rows_of(published):
                return SendDateResult(job.day, rows_of(published), changed=False)
        else:
            kept = None  # every message is counted again
    frames = ([kept] if kept is not None else []) + [storage.scan_parquet(store, [key]) for key in job.parts]
    if not frames:
        return SendDateResult(job.day, 0)
    messages_key = staging_key(run_id, layout.message_partition(job.day))
    # Kept rows (sorted when written), then each share's (sorted): a send date is never sorted whole,
    # which would hold all its messages at once (550k at 10M events: 210 MB more at the peak).
    storage.sink_parquet(store, pl.concat(frames).select(MESSAGE_COLUMNS), messages_key, required_columns(Message))
    written = storage.scan_parquet(store, [messages_key])
    count = rows_of(written)
    if count == 0:
        store.delete(messages_key)
        return SendDateResult(job.day, 0)
    funnel_key = staging_key(run_id, layout.daily_funnel_partition(job.day))
    with_date = written.with_columns(send_date=pl.lit(job.day))
    funnel = funnel_in_shares(with_date, ["send_date", "campaign_id"], share_count(count, tuning.share_rows))
    storage.write_parquet(store, funnel.drop("send_date"), funnel_key, required_columns(DailyFunnel))
    return SendDateResult(job.day, count)


# -- the driver's side: which messages are touched, where their events are ---------------------------


@dataclass(frozen=True)
class SendPlan:
    """What the messages rebuild of a run reads and rebuilds."""

    read: dict[date, str]  # event dates whose events are read (key after the run)
    touched: str | None  # scratch object with the touched keys; None: everything is counted again
    send_dates: set[date]  # send dates that may hold a touched message now (published before)
    pairs_kept: pl.DataFrame  # pairs of event dates not rebuilt, carried over


def load_pairs(layout: Layout) -> pl.DataFrame | None:
    """The published (event date, send date) pairs; None when there are none to trust."""
    if layout.store.head(layout.message_dates) is None:
        return None
    try:
        pairs = storage.read_parquet(layout.store, layout.message_dates)
    except (pl.exceptions.PolarsError, OSError):
        return None
    return pairs if pairs.schema == pl.Schema(PAIRS_SCHEMA) else None


def plan_sends(
    layout: Layout,
    rebuilt: dict[date, str | None],
    after: dict[date, str],
    touched_key: str,
    everything: bool,
) -> SendPlan:
    """Which event dates to read and which send dates to rebuild, for the event dates `rebuilt`
    (their staged partition, None: now empty); `after`: every events partition after the run."""
    pairs = None if everything else load_pairs(layout)
    if pairs is None:  # count every message again
        return SendPlan(dict(after), None, set(layout.send_dates()), pl.DataFrame(schema=PAIRS_SCHEMA))
    touched = _write_touched(layout.store, rebuilt, touched_key)
    old_sends = _send_dates_holding(layout, touched)
    rebuilt_days = pl.Series(list(rebuilt), dtype=pl.Date).implode()
    sends = pl.Series(sorted(old_sends), dtype=pl.Date).implode()
    days = set(pairs.filter(pl.col("send_date").is_in(sends))["event_date"]) | set(rebuilt)
    read = {day: after[day] for day in sorted(days) if day in after}
    kept = pairs.filter(~pl.col("event_date").is_in(rebuilt_days))
    return SendPlan(read, touched_key, old_sends, kept)


def _write_touched(store: Store, rebuilt: dict[date, str | None], key: str) -> pl.DataFrame:
    """The keys of the messages with events on the rebuilt dates, before or after the run (also
    written at `key`, for the units of work)."""
    layout = Layout(store)
    sources = [layout.event_partition(day) for day in rebuilt if store.head(layout.event_partition(day))]
    sources += [staged for staged in rebuilt.values() if staged is not None]
    if sources:
        keys = storage.scan_parquet(store, sources).select(MESSAGE_KEY).unique().collect(engine="streaming")
    else:
        keys = pl.DataFrame(schema=dict.fromkeys(MESSAGE_KEY, pl.String))
    storage.write_parquet(store, keys, key)
    return keys


def _send_dates_holding(layout: Layout, touched: pl.DataFrame) -> set[date]:
    """The published send dates holding one of the `touched` messages. Only the send dates of their
    campaigns are searched (listed by the daily funnels): a message's campaign is part of its key."""
    if touched.is_empty():
        return set()
    store, days = layout.store, layout.send_dates()
    funnels = {layout.daily_funnel_partition(day): day for day in days}
    listed = [key for key in funnels if store.head(key)]
    campaigns = touched.select(pl.col("campaign_id").unique()).to_series().implode()
    candidates = {day for key, day in funnels.items() if key not in listed}  # (a funnel missing: search it)
    if listed:
        scan = storage.scan_parquet(store, listed, key_column="_key").filter(
            pl.col("campaign_id").is_in(campaigns, nulls_equal=True)
        )
        try:
            candidates |= {funnels[key] for key in scan.select(pl.col("_key").unique()).collect().to_series()}
        except (pl.exceptions.PolarsError, OSError) as error:  # a damaged funnel: search every date
            log.warning("could not read the published daily funnels (%s); searching every send date", error)
            candidates = set(days)
    if not candidates:
        return set()
    partitions = {layout.message_partition(day): day for day in candidates}
    holding = (
        storage.scan_parquet(store, list(partitions), key_column="_key")
        .select(*MESSAGE_KEY, "_key")
        .join(touched.lazy(), on=list(MESSAGE_KEY), how="semi", nulls_equal=True)
        .select(pl.col("_key").unique())
        .collect()
    )
    return {partitions[key] for key in holding.to_series()}


def count_touched(
    warehouse: str, plan: SendPlan, out_prefix: str, scratch_prefix: str, tuning: Tuning, executor: Executor
) -> list[ShareResult]:
    """Count the touched messages again, one user share at a time: each a filtered pass over the
    events read, or past `max_passes` shares, counted from a split (`etl.split_shares`)."""
    store = open_store(warehouse)
    keys = list(plan.read.values())
    if not keys:
        return []
    shares = share_count(rows_of(storage.scan_parquet(store, keys)), tuning.share_rows)
    if shares <= tuning.max_passes:
        jobs = [MessageShareJob(tuple(keys), plan.touched, share, shares, out_prefix) for share in range(shares)]
        return executor.map(
            partial(count_message_share, warehouse),
            jobs,
            describe=lambda job: f"messages share {job.share}",
            resources=UNIT_OF_WORK,
        )
    split = f"{scratch_prefix}/split-messages"
    select = partial(_message_rows, touched=plan.touched)
    count = partial(count_split_share, warehouse, out_prefix)
    return count_in_split_shares(warehouse, keys, select, shares, split, tuning, executor, count, "messages")


def _message_rows(store: Store, keys: list[str], touched: str | None) -> pl.LazyFrame:
    """What counting the touched messages reads of some events partitions."""
    return _touched_only(store, _message_input(storage.scan_parquet(store, keys)), touched)


def count_split_share(warehouse: str, out_prefix: str, job: SplitShare) -> ShareResult:
    """Count one share of a split of the touched messages' events; one scratch object per send date."""
    store = open_store(warehouse)
    return _write_share(store, storage.scan_parquet(store, list(job.objects)), job.share, out_prefix)


@dataclass
class SendsOutcome:
    """The send dates a run rebuilt, and the pairs to publish."""

    results: list[SendDateResult]
    pairs: pl.DataFrame


def rebuild_send_dates(
    layout: Layout,
    run_id: str,
    scratch_prefix: str,
    rebuilt: dict[date, str | None],
    after: dict[date, str],
    everything: bool,
    tuning: Tuning,
    executor: Executor,
) -> SendsOutcome:
    """Count the messages touched by the rebuilt event dates again and stage every send date they
    were or are on (see the module docstring). `everything`: count every message again."""
    warehouse = layout.store.location
    plan = plan_sends(layout, rebuilt, after, f"{scratch_prefix}/touched.parquet", everything)
    counted = count_touched(warehouse, plan, f"{scratch_prefix}/messages", scratch_prefix, tuning, executor)
    parts: dict[date, list[str]] = {}
    for share in counted:
        for day, key in share.parts.items():
            parts.setdefault(day, []).append(key)
    jobs = []
    for day in sorted(plan.send_dates | set(parts)):
        published = layout.message_partition(day)
        exists = day in plan.send_dates or layout.store.head(published) is not None
        jobs.append(SendDateJob(day, published if exists else None, plan.touched, tuple(parts.get(day, ()))))
    unit = partial(process_send_date, warehouse, run_id, tuning=tuning)
    results = executor.map(unit, jobs, describe=lambda job: f"send date {job.day}", resources=UNIT_OF_WORK)
    pairs = pl.concat([plan.pairs_kept, *(share.pairs for share in counted)]).unique().sort(list(PAIRS_SCHEMA))
    return SendsOutcome(results, pairs)
