"""Messages from events: pure transforms (SPEC §5).

A message is one send of a campaign to one user: the events sharing (campaign_id, user_id,
message_id), a null being a value of its own. Every column of a message is an aggregate that does
not depend on the order of its events (first times, counts, any-of flags), so a message is the same
however its events were read, and can be counted again from its events alone.
"""

from __future__ import annotations

import polars as pl

from contracts import FIRST_AT, Message, partition_columns

MESSAGE_KEY = ("campaign_id", "user_id", "message_id")
#: What computing messages reads of an event.
MESSAGE_INPUT = {
    "campaign_id": pl.String,
    "user_id": pl.String,
    "message_id": pl.String,
    "event": pl.String,
    "event_ts": pl.Datetime("us", "UTC"),
    "machine_open": pl.Boolean,
    "suspected_bot": pl.Boolean,
    "event_date": pl.Date,
}
#: The columns of the messages table's files, in order (send_date lives in the path).
MESSAGE_COLUMNS = [name for name in Message.to_schema().columns if name not in partition_columns(Message)]
#: A message's event dates, kept beside it while a run needs them (never published).
EVENT_DATES = "_event_dates"

_VIEWED, _CLICKED = "Message Viewed", "Message Clicked"


def messages_of(events: pl.LazyFrame, with_event_dates: bool = False) -> pl.LazyFrame:
    """One row per message of `events` (MESSAGE_INPUT columns): its table columns and send_date,
    and with `with_event_dates` the list of dates its events fall on."""
    event = pl.col("event")
    human_click = (event == _CLICKED) & pl.col("suspected_bot").ne_missing(True)
    human_open = ((event == _VIEWED) & pl.col("machine_open").ne_missing(True)) | human_click
    aggregates = [pl.col("event_ts").filter(event == name).min().alias(column) for name, column in FIRST_AT.items()]
    aggregates += [
        (event == _VIEWED).sum().cast(pl.Int64).alias("views"),
        (event == _CLICKED).sum().cast(pl.Int64).alias("clicks"),
        human_open.any().alias("opened_human"),
        human_click.any().alias("clicked_human"),
        pl.col("event_ts").min().alias("_first_event_at"),
    ]
    if with_event_dates:
        aggregates.append(pl.col("event_date").unique().alias(EVENT_DATES))
    columns = [*MESSAGE_COLUMNS, "send_date", *([EVENT_DATES] if with_event_dates else [])]
    return events.group_by(*MESSAGE_KEY).agg(aggregates).with_columns(_flags()).select(columns)


def _flags() -> list[pl.Expr]:
    has = {column: pl.col(column).is_not_null() for column in FIRST_AT.values()}
    engaged = has["viewed_at"] | has["clicked_at"] | has["unsubscribed_at"] | has["marked_as_spam_at"]
    delivered = has["delivered_at"] | engaged
    return [
        engaged.alias("engaged"),
        delivered.alias("delivered"),
        (has["viewed_at"] | has["clicked_at"]).alias("opened"),
        ((has["soft_bounced_at"] | has["hard_bounced_at"]) & ~delivered).alias("bounced"),
        (has["hard_bounced_at"] & ~delivered).alias("hard_bounced_final"),
        pl.coalesce("sent_at", "_first_event_at").dt.date().alias("send_date"),
    ]


def in_table_order(messages: pl.LazyFrame) -> pl.LazyFrame:
    """Messages in the table's columns, sorted by the key (nulls last)."""
    return messages.select(MESSAGE_COLUMNS).sort(*MESSAGE_KEY, nulls_last=True)
