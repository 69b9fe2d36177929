"""The peer: the job a user would write by hand in DuckDB SQL, for comparison in `make bench`.

    python bench/peer_duckdb.py FEED_FILE OUT_DIR SHAPE      # SHAPE: feed | api | ndjson

read_json the feed, keep the valid rows, DISTINCT, COPY ... PARTITION_BY (event_date) the events, and
a per-campaign GROUP BY funnel per day. Prints the event count and funnel totals as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from contracts import FUNNEL_NAMES

EVENTS = FUNNEL_NAMES  # event name -> funnel column, as the contract defines them


def source(feed: Path, shape: str) -> str:
    fmt = "newline_delimited" if shape == "ndjson" else "array"
    read = f"read_json('{feed}', format='{fmt}', maximum_object_size=1073741824)"
    if shape == "api":
        return f"""
            SELECT CAST(id AS VARCHAR) AS user_id, e.event AS event, e.timestamp AS ts,
                   e.properties.channel AS channel, e.properties.type AS message_type,
                   e.properties.url AS url, CAST(e.properties.campaignId AS VARCHAR) AS campaign_id,
                   CAST(e.properties.messageId AS VARCHAR) AS message_id
            FROM (SELECT id, unnest(events) AS e FROM {read})"""
    return f"""
        SELECT CAST(id AS VARCHAR) AS user_id, event, timestamp AS ts, channel, type AS message_type,
               url, CAST(campaignId AS VARCHAR) AS campaign_id, CAST(messageId AS VARCHAR) AS message_id
        FROM {read}"""


def main() -> None:
    feed, out, shape = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    names = ", ".join(f"'{name}'" for name in EVENTS)
    con.execute(f"""
        CREATE TEMP TABLE events AS
        SELECT DISTINCT user_id, event, CAST(ts AS TIMESTAMPTZ) AS event_ts, channel, message_type, url,
               campaign_id, message_id, CAST(CAST(ts AS TIMESTAMPTZ) AS DATE) AS event_date
        FROM ({source(feed, shape)})
        WHERE user_id IS NOT NULL AND user_id <> '' AND event IN ({names}) AND ts IS NOT NULL
    """)
    con.execute(f"COPY events TO '{out / 'events'}' (FORMAT parquet, PARTITION_BY (event_date), OVERWRITE)")
    counts = ", ".join(f"count(*) FILTER (event = '{e}') AS {n}" for e, n in EVENTS.items())
    uniques = ", ".join(f"count(DISTINCT user_id) FILTER (event = '{e}') AS unique_{n}" for e, n in EVENTS.items())
    con.execute(f"""
        CREATE TEMP TABLE daily AS
        SELECT event_date, campaign_id, {counts}, {uniques} FROM events GROUP BY event_date, campaign_id
    """)
    con.execute(
        f"COPY daily TO '{out / 'campaign_daily_funnel'}' (FORMAT parquet, PARTITION_BY (event_date), OVERWRITE)"
    )
    totals = con.execute(f"SELECT {', '.join(f'sum({n})' for n in EVENTS.values())} FROM daily").fetchall()[0]
    events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    print(json.dumps({"events": events, "funnel": dict(zip(EVENTS.values(), map(int, totals), strict=True))}))


if __name__ == "__main__":
    main()
