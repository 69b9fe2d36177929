"""Pure transforms from extracted rows to contract candidates: names, timestamps, text, identity."""

from __future__ import annotations

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` expression namespace)

from contracts import EVENT_BY_KEY

_TIMESTAMP = (
    r"^(?<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?<hm>\d{2}:\d{2})(?::(?<s>\d{2}))?(?:[.,](?<frac>\d+))?)?"
    r"\s*(?<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
_CANONICAL_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%z"
# Up to six fraction digits: more would be cut to microseconds, which the general way does by itself.
_SIMPLE_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$"
_SIMPLE_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_MS_EPOCH_ABOVE = 1e11
# Epoch range the output type can hold as calendar dates: 0001-01-01 to 9999-12-31.
_MIN_EPOCH_US = -62_135_596_800_000_000
_MAX_EPOCH_US = 253_402_300_799_999_999

_CANONICAL = {name: name for name in EVENT_BY_KEY.values()}
IDENTITY_COLUMNS = (
    "user_id",
    "event",
    "event_ts",
    "channel",
    "message_type",
    "url",
    "campaign_id",
    "message_id",
)
TEXT_COLUMNS = ("user_id", "channel", "message_type", "url", "campaign_id", "message_id")


#: Columns a reader may leave out, with what they are then: the platform's own shapes say nothing
#: of machine opens or bot clicks.
SOURCE_DEFAULTS = {
    "machine_open": pl.lit(None, pl.Boolean),
    "suspected_bot": pl.lit(None, pl.Boolean),
    "source_format": pl.lit("activatepro", pl.String),
}


def with_source_defaults(rows: pl.LazyFrame) -> pl.LazyFrame:
    """`rows` with every column of SOURCE_DEFAULTS (those it lacks get their default)."""
    present = rows.collect_schema().names()
    missing = {name: value for name, value in SOURCE_DEFAULTS.items() if name not in present}
    return rows.with_columns(**missing) if missing else rows


def normalise_events(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Extracted rows -> candidate events: every column in its contract form, or null if it has none."""
    return (
        with_source_defaults(rows)
        .with_columns(*(_clean_text(name) for name in TEXT_COLUMNS), canonical_event(pl.col("event")))
        .with_columns(_blank_to_null(pl.col("timestamp_text")).alias("timestamp_text"))
        .with_columns(
            timestamp_defaulted=pl.col("timestamp_text").is_null() & pl.col("timestamp_number").is_null(),
            timestamp_input=pl.coalesce(pl.col("timestamp_text"), pl.col("timestamp_number").cast(pl.String)),
            event_ts=pl.coalesce(
                parse_timestamp_text(pl.col("timestamp_text")),
                parse_epoch(pl.col("timestamp_number")),
            ),
        )
        .with_columns(
            event_ts=pl.when(pl.col("timestamp_defaulted")).then(pl.col("ingested_at")).otherwise(pl.col("event_ts"))
        )
        .with_columns(event_date=pl.col("event_ts").dt.date(), event_id=event_id())
    )


def canonical_event(name: pl.Expr) -> pl.Expr:
    """The canonical event name when the input matches one; else the trimmed input (or null)."""
    exact = name.replace_strict(_CANONICAL, default=None, return_dtype=pl.String)
    other = pl.when(exact.is_null()).then(name)  # only names not already canonical are rewritten
    key = other.str.strip_chars().str.to_lowercase().str.replace_all("_", " ").str.replace_all(r"\s+", " ")
    canonical = key.replace_strict(EVENT_BY_KEY, default=None, return_dtype=pl.String)
    return pl.coalesce(exact, canonical, _blank_to_null(name)).alias("event")


def parse_timestamp_text(text: pl.Expr) -> pl.Expr:
    """ISO 8601 / RFC 3339 text -> UTC microseconds; null when it is not an accepted form.

    The most common forms (`2024-03-01T10:00:00Z`, and `2024-03-01T10:00:00.123Z` as SES writes it)
    are parsed directly; the others through the general pattern, which is many times slower. Both
    give the same value for the common forms (a property test checks it), and both keep only years
    1-9999 (year 0000, or a leap second that rolls 9999-12-31 into year 10000, is not a time).
    """
    simple = text.str.contains(_SIMPLE_TIMESTAMP)
    direct = pl.when(simple).then(text).str.strptime(pl.Datetime("us"), _SIMPLE_FORMAT, strict=False)
    direct = pl.when(direct.dt.year().is_between(1, 9999)).then(direct)
    return pl.coalesce(direct.dt.replace_time_zone("UTC"), parse_timestamp_general(pl.when(~simple).then(text)))


def parse_timestamp_general(text: pl.Expr) -> pl.Expr:
    """Every accepted text form, through one pattern and a canonical rewrite."""
    parts = text.str.strip_chars().str.extract_groups(_TIMESTAMP)
    offset = parts.struct.field("offset")
    digits = offset.str.replace(":", "").str.pad_end(5, "0")
    canonical_offset = (
        pl.when(offset.is_null() | (offset.str.to_uppercase() == "Z"))
        .then(pl.lit("+00:00"))
        .otherwise(digits.str.slice(0, 3) + ":" + digits.str.slice(3, 2))
    )
    canonical = pl.concat_str(
        parts.struct.field("date"),
        pl.lit("T"),
        parts.struct.field("hm").fill_null("00:00"),
        pl.lit(":"),
        parts.struct.field("s").fill_null("00"),
        pl.lit("."),
        parts.struct.field("frac").fill_null("").str.pad_end(6, "0").str.slice(0, 6),
        canonical_offset,
    )
    parsed = canonical.str.to_datetime(_CANONICAL_FORMAT, time_unit="us", strict=False)
    utc = parsed.dt.convert_time_zone("UTC")
    return pl.when(utc.dt.year().is_between(1, 9999)).then(utc)


def parse_epoch(number: pl.Expr) -> pl.Expr:
    """Unix epoch seconds (milliseconds above 1e11) -> UTC microseconds; null outside years 1-9999."""
    micros = pl.when(number > _MS_EPOCH_ABOVE).then(number * 1_000).otherwise(number * 1_000_000).round()
    in_range = micros.is_between(_MIN_EPOCH_US, _MAX_EPOCH_US)
    as_int = pl.when(in_range).then(micros).cast(pl.Int64)
    return pl.from_epoch(as_int, time_unit="us").dt.replace_time_zone("UTC")


def event_id() -> pl.Expr:
    """A stable 128-bit identity of the contract fields, the same across versions and machines:
    the first 32 hex digits of SHA-256 over the fields joined as text."""
    fields = [
        pl.col(name).dt.epoch("us").cast(pl.String) if name == "event_ts" else pl.col(name) for name in IDENTITY_COLUMNS
    ]
    # \x1f separates fields, \x00 marks null, so ("a", null) and (null, "a") differ.
    joined = pl.concat_str([field.fill_null("\x00") for field in fields], separator="\x1f")
    return joined.chash.sha2_256().str.slice(0, 32).alias("event_id")  # type: ignore[attr-defined]


def _clean_text(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().replace("", None).alias(name)


def _blank_to_null(text: pl.Expr) -> pl.Expr:
    return pl.when(text.str.strip_chars() != "").then(text)
