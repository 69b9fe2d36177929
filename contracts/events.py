"""The event contract: the clean event table, and the candidate rows it is checked on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import Date, DateTime

from contracts.vocabulary import EVENT_NAMES, MAX_FUTURE_HOURS

UTC_MICROS = {"time_unit": "us", "time_zone": "UTC"}


def _optional_text(description: str) -> Any:
    return pa.Field(nullable=True, description=description)


class Event(pa.DataFrameModel):
    """One clean outbound message event; the `events` table."""

    event_id: str = pa.Field(
        str_matches=r"^[0-9a-f]{32}$",
        description="Identity of the event: a stable 128-bit hash (hex) of the contract fields "
        "user_id, event, event_ts, channel, message_type, url, campaign_id, message_id. "
        "Events equal in all of them are one event.",
    )
    user_id: str = pa.Field(
        str_length={"min_value": 1},
        description="The customer, from `id` or `userId`; a JSON integer becomes its decimal string; trimmed.",
        metadata={"reasons": {"*": "missing_user_id"}},
    )
    event: str = pa.Field(
        isin=list(EVENT_NAMES),
        description="One of the eight message events, matched after trimming, lower-casing, "
        "reading `_` as a space and collapsing white space.",
        metadata={"reasons": {"not_nullable": "missing_event", "*": "unknown_event"}},
    )
    event_ts: DateTime = pa.Field(
        dtype_kwargs=UTC_MICROS,
        description="When the event happened, UTC, microseconds. Missing or null: the time the file "
        "was first ingested (see timestamp_defaulted).",
        metadata={"reasons": {"*": "invalid_timestamp"}},
    )
    channel: str = _optional_text("Channel used to send the message, e.g. Email; empty becomes null.")
    message_type: str = _optional_text("The sender's `type` of the message, e.g. Newsletter.")
    url: str = _optional_text("URL of the message or of the click.")
    campaign_id: str = _optional_text("Campaign identifier (`campaignId`); integers become strings.")
    message_id: str = _optional_text("Message identifier (`messageId`); integers become strings.")
    extra: str = _optional_text("Every other key the sender sent, as a JSON object text; null when there were none.")
    timestamp_defaulted: bool = pa.Field(
        description="True when the record had no timestamp and event_ts is the ingestion time."
    )
    machine_open: bool = pa.Field(
        nullable=True,
        description="On Message Viewed: true when the provider says the open was made by a machine "
        "(a mail privacy proxy or a scanner), false when it says it was not; null when it does not say.",
    )
    suspected_bot: bool = pa.Field(
        nullable=True,
        description="On Message Clicked: true when the provider suspects a bot click, false when it says "
        "it was not one; null when it does not say.",
    )
    source_format: str = pa.Field(
        description="Whose format the record came in: `activatepro` (the platform's own shapes) or the "
        "provider's name (`sendgrid`, `mailgun`, `postmark`, `ses`, `segment`, `braze`)."
    )
    source_file: str = pa.Field(description="Landing file the event was read from, relative to the landing zone.")
    source_position: str = pa.Field(description="Where in that file: `line N`, `element N` (0-based), `… event K`.")
    source_sha256: str = pa.Field(description="SHA-256 of the landing file's bytes: its identity.")
    ingested_at: DateTime = pa.Field(
        dtype_kwargs=UTC_MICROS, description="When the source file was first ingested (UTC)."
    )
    run_id: str = pa.Field(description="The run that first ingested the source file.")
    event_date: Date = pa.Field(
        description="UTC date of event_ts; the Hive partition key (in the path, not in the files).",
        metadata={"partition": True, "reasons": {"*": "invalid_timestamp"}},
    )

    @pa.dataframe_check(name="future_timestamp")
    def future_timestamp(cls, data: pa.PolarsData) -> pl.LazyFrame:
        """event_ts may lie at most 24 hours after ingestion: later is a clock bug upstream."""
        limit = pl.col("ingested_at") + timedelta(hours=MAX_FUTURE_HOURS)
        return data.lazyframe.select(pl.col("event_ts").is_null() | (pl.col("event_ts") <= limit))

    class Config:
        strict = False
        coerce = False


class EventCandidate(Event):
    """A normalised row before the contract decides whether it is an Event.

    The extra columns carry facts found while reading the JSON that the contract rules judge.
    """

    wrong_type: str = pa.Field(
        nullable=True,
        description="Fields whose JSON type the contract does not accept, with what was found.",
    )
    user_id_conflict: str = pa.Field(nullable=True, description="Set when `id` and `userId` hold different values.")
    timestamp_input: str = pa.Field(
        nullable=True, description="The timestamp as sent (text, or the epoch number as text)."
    )
    raw: str = pa.Field(description="The original text of the record.")

    @pa.check("wrong_type", name="wrong_type")
    def wrong_type_check(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_null())

    @pa.check("user_id_conflict", name="conflicting_user_id")
    def conflicting_user_id(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_null())


def event_columns() -> list[str]:
    """Columns stored in the event Parquet files (the partition key lives in the path)."""
    return [name for name, column in Event.to_schema().columns.items() if not _is_partition(column)]


def _is_partition(column: object) -> bool:
    metadata = getattr(column, "metadata", None) or {}
    return bool(metadata.get("partition"))


def required_columns(model: type[pa.DataFrameModel]) -> list[str]:
    """The columns of a table's files that the contract says are never null (partition keys live in
    the path, not in the files)."""
    columns = model.to_schema().columns.items()
    return [name for name, column in columns if not column.nullable and not _is_partition(column)]


def partition_columns(model: type[pa.DataFrameModel]) -> list[str]:
    return [name for name, column in model.to_schema().columns.items() if _is_partition(column)]


def staged_event_schema() -> pa.DataFrameSchema:
    """A staged copy (`_state/staged/<sha256>.parquet`): one landing file's valid events as judged,
    duplicates included, in file order. Its file name is the source's hash, so it has no
    `source_sha256`; `event_date` is a column here, and `_ordinal` numbers rows in file order."""
    schema = Event.to_schema().remove_columns(["source_sha256"])
    ordinal = pa.Column(pl.Int64, description="The row's position in its file (rows and rejections, from 0).")
    return schema.add_columns({"_ordinal": ordinal})
