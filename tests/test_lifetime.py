"""After each run the messages, daily and lifetime funnels equal a count over every event, while a
run reads only the send dates of the campaigns it touched."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl import lifetime
from etl.funnel import daily_funnel, lifetime_funnel
from etl.messages import MESSAGE_INPUT, messages_of
from etl.pipeline import reprocess
from etl.settings import Settings, Tuning
from tests.helpers import (
    INGESTED_AT,
    assert_same_tables,
    day_file_records,
    events,
    fixed_clock,
    record,
    run_at,
    table,
    write,
)


def assert_lifetime_counts_every_event(warehouse: Path, daily: bool = True) -> None:
    """The published messages and funnels (`daily`: the daily funnel too) are those of a count over
    every published event."""
    every = events(warehouse).select(*MESSAGE_INPUT)
    messages = messages_of(every.lazy()).collect()
    key = ["send_date", "campaign_id", "user_id", "message_id"]
    published = table(warehouse, "messages")
    assert published.sort(key, nulls_last=True).equals(messages.select(published.columns).sort(key, nulls_last=True))
    if daily:
        by_date = table(warehouse, "campaign_daily_funnel").sort("send_date", "campaign_id", nulls_last=True)
        assert by_date.equals(daily_funnel(messages.lazy()).collect().select(by_date.columns))
    assert table(warehouse, "campaign_funnel").equals(lifetime_funnel(messages.lazy()).collect())


def spy_on_counted_dates(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The send dates each run's lifetime count read (one list per count)."""
    calls: list[list[str]] = []
    count = lifetime.count_lifetime

    def spy(keys: list[str], *args: Any) -> pl.DataFrame:
        published = [key.split("/")[1] for key in keys if not key.startswith("_state/journal/")]
        calls.append(sorted(folder.removeprefix("send_date=") for folder in published))
        calls[-1] += ["<staged>"] * (len(keys) - len(published))  # dates this run rebuilt
        return count(keys, *args)

    monkeypatch.setattr("etl.lifetime.count_lifetime", spy)
    return calls


@pytest.mark.parametrize("share_rows", [1_000_000, 12, 3])  # one share, a few passes, a split
def test_lifetime_after_every_kind_of_run_equals_a_count_over_every_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share_rows: int
) -> None:
    tuning = Tuning(share_rows=share_rows)
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    at = INGESTED_AT
    padded = [{**r, "note": "x" * 300} for r in day_file_records(3, range(0, 2), "C2")]  # C2's only users of day 3
    steps: list[tuple[str, list[dict[str, Any]]]] = [
        ("a.json", day_file_records(1, range(0, 5), "C1") + day_file_records(2, range(3, 8), "C2")),
        ("b.json", day_file_records(1, range(4, 9), "C1") + padded + day_file_records(3, range(0, 2), "C1")),
        ("c.json", [record("u1", ts="2024-05-04T09:00:00Z"), record("u2", ts="2024-05-04T09:00:00Z")]),  # no campaign
        ("d.json", [*day_file_records(4, range(0, 3), "C3"), record("u1", "Message Viewed", "2024-05-02T11:00:00Z")]),
    ]
    for name, records in steps:
        at += timedelta(hours=1)
        write(landing, name, records)
        assert run_at(landing, wh, at=at, tuning=tuning).exit_code == 0
        assert_lifetime_counts_every_event(wh)
    unique_sent = table(wh, "campaign_funnel").filter(pl.col("campaign_id") == "C2")["unique_sent"].item()
    # Reprocessed with a lower record limit, day 3 loses C2's padded events: C2 must lose those users.
    settings = Settings(landing, wh, max_record_bytes=250, tuning=tuning)
    reprocess(settings, date(2024, 5, 3), date(2024, 5, 3), clock=fixed_clock(at))
    assert_lifetime_counts_every_event(wh)
    assert table(wh, "campaign_funnel").filter(pl.col("campaign_id") == "C2")["unique_sent"].item() == unique_sent - 2
    assert table(wh, "campaign_funnel")["campaign_id"].to_list() == ["C1", "C2", "C3", None]


def test_a_nightly_run_counts_again_only_the_campaigns_it_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old.json", day_file_records(1, range(0, 4), "OLD") + day_file_records(2, range(0, 4), "BOTH"))
    run_at(landing, wh)
    before = table(wh, "campaign_funnel")
    counted = spy_on_counted_dates(monkeypatch)

    write(landing, "new.json", day_file_records(5, range(2, 6), "NEW"))
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert counted == [["<staged>"]]  # only the new date: no other date lists NEW
    after = table(wh, "campaign_funnel")
    assert after.filter(pl.col("campaign_id") != "NEW").equals(before)
    assert_lifetime_counts_every_event(wh)

    late = [{**r, "messageId": "second"} for r in day_file_records(6, range(0, 6), "BOTH")]  # new messages
    write(landing, "late.json", late)
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=2))
    assert counted[1] == ["2024-05-02", "<staged>"]  # BOTH also has messages sent on day 2, but not on 1 and 5
    assert_lifetime_counts_every_event(wh)

    write(landing, "later.json", day_file_records(7, range(0, 2), "BOTH"))  # the day-2 messages of u0 and u1
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=3))
    assert counted[2] == ["2024-05-06", "<staged>"]  # day 2 is rebuilt, day 6 is read as published
    assert_lifetime_counts_every_event(wh)


def test_lifetime_is_counted_whole_without_a_published_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old.json", day_file_records(1, range(0, 4), "OLD"))
    run_at(landing, wh)
    (wh / "campaign_funnel" / "part-0.parquet").unlink()
    counted = spy_on_counted_dates(monkeypatch)
    write(landing, "new.json", day_file_records(5, range(2, 6), "NEW"))
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert counted == [["2024-05-01", "<staged>"]]
    assert_lifetime_counts_every_event(wh)


@pytest.mark.parametrize(
    "damaged", ["campaign_funnel/part-0.parquet", "campaign_daily_funnel/send_date=2024-05-02/part-0.parquet"]
)
def test_a_damaged_funnel_file_is_counted_again_from_the_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damaged: str
) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old.json", day_file_records(1, range(0, 4), "OLD") + day_file_records(2, range(0, 4), "BOTH"))
    run_at(landing, wh)
    (wh / damaged).write_bytes(b"not parquet")
    counted = spy_on_counted_dates(monkeypatch)
    write(landing, "new.json", day_file_records(5, range(2, 6), "NEW"))
    result = run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert result.exit_code == 0
    assert counted[-1] == ["2024-05-01", "2024-05-02", "<staged>"]
    assert "counting" in caplog.text and "from every message" in caplog.text
    assert_lifetime_counts_every_event(wh, daily="daily" not in damaged)  # (a damaged one stays as it is)


def test_a_date_without_its_daily_funnel_means_a_whole_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old.json", day_file_records(1, range(0, 4), "OLD") + day_file_records(2, range(0, 4), "BOTH"))
    run_at(landing, wh)
    (wh / "campaign_daily_funnel" / "send_date=2024-05-01" / "part-0.parquet").unlink()
    counted = spy_on_counted_dates(monkeypatch)
    write(landing, "new.json", day_file_records(5, range(2, 6), "NEW"))
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert counted == [["2024-05-01", "2024-05-02", "<staged>"]]
    assert_lifetime_counts_every_event(wh, daily=False)  # (the deleted daily funnel stays deleted)


def message_journeys(seed: int, count: int) -> list[dict[str, Any]]:
    """Events of random messages spread over a week, some without message id or campaign, some
    engaging before their Sent arrives (so a later file moves them to an earlier send date)."""
    rng = random.Random(seed)
    names = ["Message Sent", "Message Delivered", "Message Viewed", "Message Clicked", "Message soft_bounced"]
    out = []
    for _ in range(count):
        fields = {"campaignId": rng.choice(["A", "B", "C", None])}
        if rng.random() < 0.7:
            fields["messageId"] = f"m{rng.randrange(40)}"
        day, hour = rng.randrange(1, 8), rng.randrange(24)
        out.append(record(f"u{rng.randrange(12)}", rng.choice(names), f"2024-05-{day:02d}T{hour:02d}:00:00Z", **fields))
    return [{k: v for k, v in r.items() if v is not None} for r in out]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_messages_after_nightly_runs_in_any_order_equal_one_run_and_a_full_count(tmp_path: Path, seed: int) -> None:
    files = {f"f{n}.json": message_journeys(seed * 10 + n, 60) for n in range(5)}
    once = tmp_path / "once"
    for name, content in files.items():
        write(once / "landing", name, content)
    run_at(once / "landing", once / "wh")
    assert_lifetime_counts_every_event(once / "wh")
    order = list(files)
    random.Random(seed).shuffle(order)
    nightly = tmp_path / "nightly"
    for night, name in enumerate(order):
        write(nightly / "landing", name, files[name])
        run_at(nightly / "landing", nightly / "wh", at=INGESTED_AT + timedelta(hours=night))
        assert_lifetime_counts_every_event(nightly / "wh")
    assert_same_tables(once / "wh", nightly / "wh")
    start = date(2024, 5, random.Random(seed).randrange(1, 8))
    reprocess(Settings(nightly / "landing", nightly / "wh"), start, start, clock=fixed_clock(INGESTED_AT))
    assert_same_tables(once / "wh", nightly / "wh")
