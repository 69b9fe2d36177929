"""The peer: the DuckDB job an expert would write by hand for our outputs, for comparison in `make bench`.

    python bench/peer_duckdb.py FEED_FILE OUT_DIR SHAPE      # SHAPE: array | ndjson | api

It reads the feed with DECLARED columns (no schema sniffing), normalises what the contract asks of
clean records (user id from `id` or `userId`, text trimmed and empty as null, the event name made
canonical, the timestamp parsed to UTC, API payloads expanded to one row per event), removes
duplicates by the identity fields, and writes as Parquet (zstd level 1, as ours) with DuckDB's default
threads:

    events/event_date=…/                 with event_id, the same hash of the identity fields as ours
    messages/send_date=…/                one row per (campaign_id, user_id, message_id), SPEC §5
    campaign_daily_funnel/send_date=…/   counts and rates per (send_date, campaign_id)
    campaign_funnel/                     counts and rates per campaign over its whole life

What it does not do, unlike ours: quarantine (a record that breaks the contract is dropped or stops the
job: an unparseable timestamp is a conversion error), provider shapes, per-record provenance
(`source_position`, `source_sha256`), incremental runs (every run reads everything and writes
everything), atomic publication, sorted output files. Prints the row counts of its tables as JSON.
Imports only duckdb: an import of this repository's packages would load pandera (and pandas).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

#: The contract's event names and their funnel names (as contracts.FUNNEL_NAMES; not imported, see above).
EVENTS = {
    "Message Sent": "sent",
    "Message Delivered": "delivered",
    "Message Viewed": "viewed",
    "Message Clicked": "clicked",
    "Message Unsubscribed": "unsubscribed",
    "Message soft_bounced": "soft_bounced",
    "Message hard_bounced": "hard_bounced",
    "Message marked_as_spam": "marked_as_spam",
}
TEXT = "VARCHAR"
#: The columns of a flat feed record, declared; JSON numbers in a VARCHAR column are read as their text.
RECORD = {name: TEXT for name in ("id", "userId", "event", "channel", "type", "url", "campaignId", "messageId")}
IDENTITY = ("user_id", "event", "event_ts", "channel", "message_type", "url", "campaign_id", "message_id")
PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"


def struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def source(feed: Path, shape: str) -> str:
    """The feed's records as rows of raw fields (user_id, event, ts, channel, …), columns declared."""
    if shape == "api":
        properties = ", ".join(f"{name} {TEXT}" for name in ("channel", "type", "url", "campaignId", "messageId"))
        events = f"STRUCT(event {TEXT}, timestamp TIMESTAMPTZ, properties STRUCT({properties}))[]"
        columns = struct({"id": TEXT, "userId": TEXT, "events": events})
        return f"""
            SELECT coalesce(id, userId) AS user_id, e.event AS event, e.timestamp AS ts,
                   e.properties.channel AS channel, e.properties.type AS message_type, e.properties.url AS url,
                   e.properties.campaignId AS campaign_id, e.properties.messageId AS message_id
            FROM (SELECT id, userId, unnest(events) AS e
                  FROM read_json('{feed}', format = 'array', columns = {columns}))"""
    layout = "newline_delimited" if shape == "ndjson" else "array"
    columns = struct({**RECORD, "timestamp": "TIMESTAMPTZ"})
    return f"""
        SELECT coalesce(id, userId) AS user_id, event, timestamp AS ts, channel, type AS message_type, url,
               campaignId AS campaign_id, messageId AS message_id
        FROM read_json('{feed}', format = '{layout}', columns = {columns})"""


def canonical_event() -> str:
    """The canonical name: as is when it already is one (the common case), else matched after
    trimming, lower-casing, `_` as a space and collapsed white space; null when it matches none."""
    names = ", ".join(f"'{name}'" for name in EVENTS)
    key = r"lower(regexp_replace(trim(replace(event, '_', ' ')), '\s+', ' ', 'g'))"
    matches = " ".join(f"WHEN '{name.lower().replace('_', ' ')}' THEN '{name}'" for name in EVENTS)
    return f"CASE WHEN event IN ({names}) THEN event ELSE CASE {key} {matches} END END"


def event_id() -> str:
    """Our event_id: the first 32 hex digits of SHA-256 over the identity fields joined by \\x1f, null as \\x00."""
    fields = [f"epoch_us({name})::VARCHAR" if name == "event_ts" else name for name in IDENTITY]
    joined = ", ".join(f"coalesce({field}, chr(0))" for field in fields)
    return f"left(sha256(concat_ws(chr(31), {joined})), 32)"


def clean(name: str) -> str:
    return f"nullif(trim({name}), '')"


def load_events(con: duckdb.DuckDBPyConnection, feed: Path, shape: str, ingested_at: str) -> None:
    """The clean, distinct events: only the columns that vary (constants and event_id, which nothing
    else reads, are added as they are written)."""
    optional = ("channel", "message_type", "url", "campaign_id", "message_id")
    texts = ", ".join(f"{clean(name)} AS {name}" for name in optional)
    con.execute(f"""
        CREATE TEMP TABLE events AS
        WITH normalised AS (
            SELECT {clean("user_id")} AS user_id, {canonical_event()} AS event,
                   coalesce(ts, TIMESTAMPTZ '{ingested_at}') AS event_ts, ts IS NULL AS timestamp_defaulted, {texts}
            FROM ({source(feed, shape)})
        ),
        distinct_events AS (
            SELECT DISTINCT * FROM normalised
            WHERE user_id IS NOT NULL AND event IS NOT NULL
        )
        SELECT *, CAST(event_ts AS DATE) AS event_date FROM distinct_events
    """)


def write_events(con: duckdb.DuckDBPyConnection, out: Path, feed: Path, ingested_at: str, run_id: str) -> None:
    con.execute(f"""
        COPY (
            SELECT {event_id()} AS event_id, user_id, event, event_ts, channel, message_type, url, campaign_id,
                   message_id, NULL::VARCHAR AS extra, timestamp_defaulted, NULL::BOOLEAN AS machine_open,
                   NULL::BOOLEAN AS suspected_bot, 'activatepro' AS source_format, '{feed.name}' AS source_file,
                   TIMESTAMPTZ '{ingested_at}' AS ingested_at, '{run_id}' AS run_id, event_date
            FROM events
        ) TO '{out / "events"}' ({PARQUET}, PARTITION_BY (event_date), OVERWRITE)
    """)


def build_messages(con: duckdb.DuckDBPyConnection) -> None:
    """One row per message with its first times, counts and flags (SPEC §5). The platform's shapes say
    nothing of machine opens or bot clicks: those columns are null, as in ours."""
    first = ", ".join(f"min(event_ts) FILTER (event = '{event}') AS {name}_at" for event, name in EVENTS.items())
    human_click = "(event = 'Message Clicked' AND suspected_bot IS NOT TRUE)"
    human_open = f"((event = 'Message Viewed' AND machine_open IS NOT TRUE) OR {human_click})"
    con.execute(f"""
        CREATE TEMP TABLE messages AS
        WITH per_message AS (
            SELECT campaign_id, user_id, message_id, {first},
                   count(*) FILTER (event = 'Message Viewed') AS views,
                   count(*) FILTER (event = 'Message Clicked') AS clicks,
                   bool_or({human_open}) AS opened_human, bool_or({human_click}) AS clicked_human,
                   min(event_ts) AS first_event_at
            FROM (SELECT *, NULL::BOOLEAN AS machine_open, NULL::BOOLEAN AS suspected_bot FROM events)
            GROUP BY campaign_id, user_id, message_id
        ),
        flagged AS (
            SELECT *, viewed_at IS NOT NULL OR clicked_at IS NOT NULL OR unsubscribed_at IS NOT NULL
                      OR marked_as_spam_at IS NOT NULL AS engaged
            FROM per_message
        )
        SELECT campaign_id, user_id, message_id, {", ".join(f"{name}_at" for name in EVENTS.values())},
               views, clicks, engaged, delivered_at IS NOT NULL OR engaged AS delivered,
               viewed_at IS NOT NULL OR clicked_at IS NOT NULL AS opened, opened_human, clicked_human,
               (soft_bounced_at IS NOT NULL OR hard_bounced_at IS NOT NULL)
                   AND NOT (delivered_at IS NOT NULL OR engaged) AS bounced,
               hard_bounced_at IS NOT NULL AND NOT (delivered_at IS NOT NULL OR engaged) AS hard_bounced_final,
               CAST(coalesce(sent_at, first_event_at) AS DATE) AS send_date
        FROM flagged
    """)


#: Each message count of a funnel row: the messages it counts.
COUNTS = {
    "messages": "true",
    "sent": "sent_at IS NOT NULL",
    "delivered": "delivered_at IS NOT NULL",
    "viewed": "opened",
    "viewed_human": "opened_human",
    "clicked": "clicked_at IS NOT NULL",
    "clicked_human": "clicked_human",
    "unsubscribed": "unsubscribed_at IS NOT NULL",
    "soft_bounced": "soft_bounced_at IS NOT NULL",
    "hard_bounced": "hard_bounced_at IS NOT NULL",
    "marked_as_spam": "marked_as_spam_at IS NOT NULL",
    "bounced": "bounced",
    "hard_bounced_final": "hard_bounced_final",
    "delivered_messages": "delivered",
}
RATES = {  # name: (numerator, denominator)
    "bounce_rate": ("bounced", "messages"),
    "hard_bounce_rate": ("hard_bounced_final", "messages"),
    "open_rate": ("viewed", "delivered_base"),
    "human_open_rate": ("viewed_human", "delivered_base"),
    "click_rate": ("clicked", "delivered_base"),
    "click_to_open_rate": ("clicked", "viewed"),
    "unsubscribe_rate": ("unsubscribed", "delivered_base"),
    "spam_rate": ("marked_as_spam", "delivered_base"),
}


def build_funnels(con: duckdb.DuckDBPyConnection) -> None:
    """The daily funnel per (send_date, campaign_id) and the lifetime funnel per campaign.

    Distinct users without COUNT(DISTINCT): messages are first summed per (send_date, campaign, user),
    then per (campaign, user); a row's unique_x is its users with x > 0, its counts the sums.
    """
    sums = ", ".join(f"count_if({condition})::BIGINT AS {name}" for name, condition in COUNTS.items())
    con.execute(f"""
        CREATE TEMP TABLE user_day AS
        SELECT send_date, campaign_id, user_id, {sums},
               sum(views)::BIGINT AS views, sum(clicks)::BIGINT AS clicks
        FROM messages GROUP BY send_date, campaign_id, user_id
    """)
    summed = [*COUNTS, "views", "clicks"]
    totals = ", ".join(f"sum({name})::BIGINT AS {name}" for name in summed)
    con.execute(f"""
        CREATE TEMP TABLE user_life AS
        SELECT campaign_id, user_id, {totals} FROM user_day GROUP BY campaign_id, user_id
    """)
    uniques = ", ".join(f"count_if({name} > 0)::BIGINT AS unique_{name}" for name in EVENTS.values())
    for table, keys in (("daily", "send_date, campaign_id"), ("lifetime", "campaign_id")):
        source_table = "user_day" if table == "daily" else "user_life"
        con.execute(f"""
            CREATE TEMP TABLE {table}_counts AS
            SELECT {keys}, {totals}, count(*)::BIGINT AS unique_users, {uniques}
            FROM {source_table} GROUP BY {keys}
        """)
        rates = ", ".join(
            f"CASE WHEN {d} > 0 THEN {n}::DOUBLE / {d}::DOUBLE END AS {name}" for name, (n, d) in RATES.items()
        )
        columns = [name for name in summed if name != "delivered_messages"]
        unique_columns = ["unique_users", *(f"unique_{name}" for name in EVENTS.values())]
        con.execute(f"""
            CREATE TEMP TABLE {table} AS
            WITH based AS (
                SELECT *, delivered = 0 AS delivered_estimated,
                       CASE WHEN delivered = 0 THEN messages - bounced ELSE delivered_messages END AS delivered_base
                FROM {table}_counts
            )
            SELECT {keys}, {", ".join(columns)}, {", ".join(unique_columns)}, delivered_estimated, delivered_base,
                   CASE WHEN NOT delivered_estimated AND messages > 0
                        THEN delivered_base::DOUBLE / messages::DOUBLE END AS delivery_rate,
                   {rates}
            FROM based ORDER BY {keys} NULLS LAST
        """)


def main() -> None:
    feed, out, shape = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ingested_at, run_id = now.isoformat(), f"peer-{now:%Y%m%dT%H%M%SZ}"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # dates of timestamps are UTC dates, whatever the machine's zone
    load_events(con, feed, shape, ingested_at)
    write_events(con, out, feed, ingested_at, run_id)
    build_messages(con)
    con.execute(f"COPY messages TO '{out / 'messages'}' ({PARQUET}, PARTITION_BY (send_date), OVERWRITE)")
    build_funnels(con)
    con.execute(f"COPY daily TO '{out / 'campaign_daily_funnel'}' ({PARQUET}, PARTITION_BY (send_date), OVERWRITE)")
    (out / "campaign_funnel").mkdir(exist_ok=True)
    con.execute(f"COPY lifetime TO '{out / 'campaign_funnel' / 'part-0.parquet'}' ({PARQUET})")
    counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("events", "messages")}  # type: ignore[index]
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
