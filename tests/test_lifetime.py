"""The lifetime funnel after each run equals a count over every event, while a run reads only the
dates of the campaigns it touched."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl import lifetime
from etl.funnel import lifetime_funnel
from etl.pipeline import reprocess
from etl.settings import Settings, Tuning
from tests.helpers import INGESTED_AT, day_file_records, events, fixed_clock, record, run_at, table, write


def assert_lifetime_counts_every_event(warehouse: Path) -> None:
    published = table(warehouse, "campaign_funnel")
    columns = events(warehouse).select("campaign_id", "event", "user_id")
    assert published.equals(lifetime_funnel(columns.lazy()).collect())


def spy_on_counted_dates(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The event dates each run's lifetime count read (one list per count)."""
    calls: list[list[str]] = []
    count = lifetime.count_lifetime

    def spy(keys: list[str], *args: Any) -> pl.DataFrame:
        published = [key.split("/")[1] for key in keys if not key.startswith("_state/journal/")]
        calls.append(sorted(folder.removeprefix("event_date=") for folder in published))
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

    write(landing, "late.json", day_file_records(6, range(0, 6), "BOTH"))
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=2))
    assert counted[1] == ["2024-05-02", "<staged>"]  # BOTH also has events on day 2, but not on days 1 and 5
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
    "damaged", ["campaign_funnel/part-0.parquet", "campaign_daily_funnel/event_date=2024-05-02/part-0.parquet"]
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
    assert "counting" in caplog.text and "from every event" in caplog.text
    assert_lifetime_counts_every_event(wh)


def test_a_date_without_its_daily_funnel_means_a_whole_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old.json", day_file_records(1, range(0, 4), "OLD") + day_file_records(2, range(0, 4), "BOTH"))
    run_at(landing, wh)
    (wh / "campaign_daily_funnel" / "event_date=2024-05-01" / "part-0.parquet").unlink()
    counted = spy_on_counted_dates(monkeypatch)
    write(landing, "new.json", day_file_records(5, range(2, 6), "NEW"))
    run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert counted == [["2024-05-01", "2024-05-02", "<staged>"]]
    assert_lifetime_counts_every_event(wh)
