"""Generate realistic outbound-event feeds: user journeys over campaigns, in every feed shape.

    python bench/feedgen.py --sample data/landing          # the sample feeds shipped in data/
    python bench/feedgen.py --events 2000000 --shape feed --out bench/out/feed.json
    python bench/feedgen.py --events 2000000 --one-day --one-per-line --out bench/out/one-day.json

Journeys: sent -> delivered or bounced -> viewed -> clicked, with some unsubscribes and spam reports.
Distributions: ~N/4 users, ~N/2500 campaigns over a week; `--one-day`: every event on one day, ~N/4 users,
~N/5000 campaigns. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SHAPES = ("feed", "api", "ndjson")
START = datetime(2024, 3, 1, tzinfo=UTC)


def journeys(
    n_events: int,
    seed: int = 7,
    days: int = 7,
    with_delivered: bool = True,
    campaign_offset: int = 1001,
    channel: str = "Email",
    start: datetime = START,
    campaigns: int | None = None,
    step_seconds: int = 3600,
    spread_seconds: int | None = None,
) -> Iterator[dict[str, Any]]:
    """About n_events flat feed records, grouped into per-user journeys.

    A journey starts at a random second of the first `spread_seconds` (default: all `days`) and each
    step comes 1 to `step_seconds` - 1 seconds after the one before; `campaigns` defaults to N/2500.
    """
    rng = random.Random(seed)
    users = max(1, n_events // 4)
    campaigns = campaigns or max(1, n_events // 2500)
    spread = spread_seconds or days * 86400
    produced = 0
    while produced < n_events:
        user = f"U{rng.randrange(users):07d}"
        campaign = str(campaign_offset + rng.randrange(campaigns))
        message = str(rng.randrange(10**6, 10**7))
        at = start + timedelta(seconds=rng.randrange(spread))
        steps = ["Message Sent"]
        roll = rng.random()
        if roll < 0.03:
            steps.append("Message hard_bounced")
        elif roll < 0.08:
            steps.append("Message soft_bounced")
        else:
            if with_delivered:
                steps.append("Message Delivered")
            if rng.random() < 0.45:
                steps.append("Message Viewed")
                if rng.random() < 0.3:
                    steps.append("Message Clicked")
                if rng.random() < 0.02:
                    steps.append("Message Unsubscribed")
                elif rng.random() < 0.005:
                    steps.append("Message marked_as_spam")
        for step in steps:
            at += timedelta(seconds=rng.randrange(1, step_seconds))
            record: dict[str, Any] = {
                "id": user,
                "event": step,
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "channel": channel,
                "type": "Newsletter",
                "campaignId": campaign,
                "messageId": message,
            }
            if step == "Message Clicked":
                record["url"] = f"https://example.com/offer/{campaign}"
            yield record
            produced += 1


#: Steps of the longest journey: Sent, Delivered, Viewed, Clicked, Unsubscribed.
_MAX_STEPS = 5


def one_day_journeys(n_events: int, seed: int = 7, start: datetime = START) -> Iterator[dict[str, Any]]:
    """About n_events records that all fall on the day of `start`: ~N/4 users, ~N/5000 campaigns."""
    step = 600
    return journeys(
        n_events,
        seed=seed,
        days=1,
        start=start,
        campaigns=max(1, n_events // 5000),
        step_seconds=step,
        spread_seconds=86400 - _MAX_STEPS * step,
    )


def as_payloads(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Group consecutive records of one user into API payloads."""
    batch: list[dict[str, Any]] = []
    for record in records:
        if batch and batch[0]["id"] != record["id"]:
            yield _payload(batch)
            batch = []
        batch.append(record)
    if batch:
        yield _payload(batch)


def _payload(batch: list[dict[str, Any]]) -> dict[str, Any]:
    events = []
    for record in batch:
        properties = {k: v for k, v in record.items() if k not in ("id", "event", "timestamp")}
        events.append({"event": record["event"], "timestamp": record["timestamp"], "properties": properties})
    return {"id": batch[0]["id"], "events": events}


def write_feed(
    path: Path, records: Iterator[dict[str, Any]], shape: str, pretty: bool = False, one_per_line: bool = False
) -> Path:
    """Write records as `feed` (JSON array), `api` (JSON array of payloads) or `ndjson` (record lines).

    An array is minified on one line, or `pretty` (indented, objects over many lines), or
    `one_per_line` (each element minified on a line of its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    items: Iterator[dict[str, Any]] = as_payloads(records) if shape == "api" else records
    with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
        if shape == "ndjson":
            for item in items:
                out.write(json.dumps(item, separators=(",", ":")) + "\n")
            return path
        lines = pretty or one_per_line
        out.write("[\n" if lines else "[")
        for index, item in enumerate(items):
            if index:
                out.write(",\n" if lines else ",")
            out.write(json.dumps(item, indent=4) if pretty else json.dumps(item, separators=(",", ":")))
        out.write("\n]\n" if lines else "]")
    return path


SEED_FEED = """[
   {
       "id": "ABC12345",
       "event": "Message Sent",
       "timestamp": "2022-01-11T00:00:00Z",
       "channel": "Email",
       "type": "Newsletter"
   },
   {
       "id": "ABC12345",
       "event": "Message Delivered",
       "timestamp": "2022-01-11T00:00:00Z",
       "channel": "Email",
       "type": "Newsletter"
   }
]
"""

# The platform's API example, with the two commas it is missing put back.
SEED_API = """{
   "id": "ABC12345",
   "events": [{
           "event": "Message Sent",
           "timestamp": "2022-01-11T00:00:00Z",
          "properties": {
               "channel": "Email",
               "type": "Newsletter"
           }},
       {
           "event": "Message Delivered",
           "timestamp": "2022-01-11T00:00:00Z",
          "properties": {
               "channel": "Email",
               "type": "Newsletter"
           }}]}
"""

BAD_LINES = [
    '{"userId": "U0000001", "event": "Message Opened", "timestamp": "2024-03-02T10:00:00Z", "campaignId": "1001"}',
    '{"userId": "U0000002", "event": "Message Sent", "timestamp": "yesterday", "campaignId": "1001"}',
    '{"event": "Message Sent", "timestamp": "2024-03-02T10:00:00Z", "campaignId": "1001"}',
    '{"userId": "U0000003", "event": "Message Sent", "timestamp": "2024-03-02T10:00:00Z", "campaignId": 10.5}',
    '{"userId": "U0000004", "event": "Message Sent", "timestamp": "2024-03-02T10:00:00Z", "campaignId": "1001"',
    '{"id": "U0000005", "userId": "U0000006", "event": "Message Viewed", "timestamp": "2024-03-02T11:00:00Z"}',
]


def write_sample(landing: Path) -> None:
    """The sample landing zone shipped in data/: the seed's examples and a week of three providers."""

    def write(name: str, text: str) -> None:
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        (landing / name).write_text(text, encoding="utf-8")

    write("seed/seed-feed-example.json", SEED_FEED)
    write("seed/seed-api-example.json", SEED_API)
    mailer = list(journeys(2400, seed=11, campaign_offset=1001))
    write_feed(landing / "2024-03-01/mailer-feed.json", iter(mailer[:1600]), "feed", pretty=True)
    # A late file re-delivers 100 events of the first one (at-least-once delivery) with the rest.
    write_feed(landing / "2024-03-05/mailer-feed-late.json", iter(mailer[1500:]), "feed")
    push = journeys(1200, seed=12, campaign_offset=2001, channel="Push")
    write_feed(landing / "2024-03-03/push-api.ndjson", push, "ndjson")
    # A provider that never reports Delivered: its funnels use the estimated delivered base.
    optimo = journeys(900, seed=13, with_delivered=False, campaign_offset=3001)
    write_feed(landing / "2024-03-04/optimo-api.json.gz", optimo, "api")
    write("2024-03-06/hand-made.ndjson", "\n".join(BAD_LINES) + "\n")
    from bench.providers_feedgen import write_provider_sample  # (it builds on this module's journeys)

    write_provider_sample(landing / "providers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, help="write the sample landing zone into this folder")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--shape", choices=SHAPES, default="feed")
    parser.add_argument("--pretty", action="store_true")
    parser.add_argument("--one-per-line", action="store_true", help="an array with one minified element per line")
    parser.add_argument("--one-day", action="store_true", help="every event on 2024-03-01, ~N/5000 campaigns")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.sample:
        write_sample(args.sample)
    elif args.out:
        generate = one_day_journeys if args.one_day else journeys
        write_feed(args.out, generate(args.events, seed=args.seed), args.shape, args.pretty, args.one_per_line)
    else:
        parser.error("give --sample DIR or --out FILE")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a package, run as a script
    main()
