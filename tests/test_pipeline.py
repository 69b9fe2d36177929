"""The run as a whole on files in tmp_path: accounting, dedup, increments, late data, reprocessing."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from etl.errors import EtlError
from etl.pipeline import reprocess
from etl.settings import Settings, Tuning
from etl.upgrade import upgrade_note
from etl.warehouse import REGISTRY_VERSION
from tests.helpers import (
    INGESTED_AT,
    assert_accounted,
    assert_same_tables,
    day_file_records,
    events,
    fixed_clock,
    ndjson,
    record,
    run_at,
    table,
    write,
)

LINEAGE = ["source_file", "source_position", "source_sha256", "ingested_at", "run_id"]


def test_run_writes_every_table_and_accounts_for_every_record(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", [*day_file_records(1, range(3)), record(event="nope")])
    write(landing, "sub/dir/b.ndjson.gz", ndjson(day_file_records(2, range(2))) + "{bad json\n")
    result = run_at(landing, tmp_path / "wh")
    assert result.exit_code == 0
    assert_accounted(result.document)
    assert result.document["totals"] == {
        "read": 12, "loaded": 10, "quarantined": 2, "duplicates": 0, "ignored": 0,
        "files_new": 2, "files_reprocessed": 0, "files_skipped": 0, "files_rejected": 0, "files_copies": 0,
    }  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "wh" / "events").iterdir()) == [
        "event_date=2024-05-01",
        "event_date=2024-05-02",
    ]
    assert (tmp_path / "wh" / "quarantine" / "ingest_date=2024-06-01" / "part-0.parquet").is_file()
    assert (tmp_path / "wh" / "campaign_funnel" / "part-0.parquet").is_file()
    manifest = json.loads(Path(result.manifest_location).read_text())  # type: ignore[arg-type]
    assert manifest["outcome"] == "done" and manifest["dates_written"] == ["2024-05-01", "2024-05-02"]
    assert {"read", "loaded", "quarantined", "duplicates"} <= set(manifest["files"][0])
    assert events(tmp_path / "wh")["event_ts"].dtype == pl.Datetime("us", "UTC")


def test_output_reads_in_duckdb_pandas_and_pyarrow(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pandas = pytest.importorskip("pandas")
    import pyarrow.parquet as pq

    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(3)) + day_file_records(2, range(2)))
    run_at(landing, tmp_path / "wh")
    glob = str(tmp_path / "wh" / "events" / "**" / "*.parquet")
    count, days = duckdb.sql(
        f"select count(*), count(distinct event_date) from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()[0]
    assert (count, days) == (10, 2)
    assert len(pandas.read_parquet(tmp_path / "wh" / "events")) == 10
    schema = pq.read_schema(next((tmp_path / "wh" / "events").glob("*/*.parquet")))
    assert str(schema.field("event_ts").type) == "timestamp[us, tz=UTC]"
    funnel = pq.read_table(tmp_path / "wh" / "campaign_funnel" / "part-0.parquet")
    assert str(funnel.schema.field("sent").type) == "int64" and str(funnel.schema.field("open_rate").type) == "double"


def test_duplicates_within_across_files_and_across_runs(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    rec = record("u1", campaignId="C")
    write(landing, "a.json", [rec, rec])
    first = run_at(landing, wh)
    assert first.document["totals"]["duplicates"] == 1
    write(landing, "b.json", [rec, record("u2")])
    second = run_at(landing, wh)
    assert_accounted(second.document)
    assert [second.document["files"][0][k] for k in ("read", "loaded", "duplicates")] == [2, 1, 1]
    assert events(wh).height == 2


def test_rerun_with_nothing_new_changes_nothing(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(3)))
    run_at(landing, wh)
    before = {p: p.stat().st_mtime_ns for p in wh.rglob("*") if p.is_file()}
    again = run_at(landing, wh)
    assert again.nothing_to_do and again.exit_code == 0 and again.manifest_location is None
    assert {p: p.stat().st_mtime_ns for p in wh.rglob("*") if p.is_file()} == before


def test_nightly_run_reads_only_the_new_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl import storage

    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "old-1.json", day_file_records(1, range(3)))
    write(landing, "old-2.json", day_file_records(2, range(3)))
    run_at(landing, wh)
    opened: list[str] = []
    real_hash, real_bytes = storage.sha256_of, storage.iter_bytes

    def hashing(store: object, key: str) -> str:
        opened.append(key.rsplit("/", 1)[-1])
        return real_hash(store, key)  # type: ignore[arg-type]

    def reading(store: object, key: str, *args: object, **kwargs: object) -> object:
        opened.append(key.rsplit("/", 1)[-1])
        return real_bytes(store, key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "sha256_of", hashing)
    monkeypatch.setattr(storage, "iter_bytes", reading)
    write(landing, "new.json", day_file_records(2, range(3, 4)))
    result = run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert set(opened) == {"new.json"}
    assert result.document["totals"]["files_skipped"] == 2 and result.document["totals"]["loaded"] == 2


def test_same_content_under_two_names_is_read_once(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "copy/a.json", day_file_records(1, range(2)))
    result = run_at(landing, wh)
    totals = result.document["totals"]
    assert (totals["files_new"], totals["files_copies"], totals["files_skipped"]) == (1, 1, 0)
    assert any("same content" in note for note in result.document["notes"])
    copy = result.document["files"][-1]
    assert (copy["name"], copy["status"], copy["copy_of"], copy["read"]) == ("copy/a.json", "copy", "a.json", 0)
    assert_accounted(result.document)
    later = run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))  # both names: content ingested before
    assert later.nothing_to_do


def test_changed_content_under_the_same_name_is_ingested_and_said(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    run_at(landing, wh)
    write(landing, "a.json", day_file_records(1, range(4)))
    result = run_at(landing, wh)
    assert any("content changed" in note for note in result.document["notes"])
    assert [result.document["files"][0][k] for k in ("read", "loaded", "duplicates")] == [8, 4, 4]
    assert events(wh).height == 8


def test_missing_landing_file_is_reported_and_its_events_kept(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    run_at(landing, wh)
    (landing / "a.json").unlink()
    write(landing, "b.json", day_file_records(1, range(2, 3)))
    result = run_at(landing, wh)
    assert any("no longer in the landing zone" in note for note in result.document["notes"])
    assert events(wh).height == 6


def test_late_data_for_an_old_date(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "day-a.json", day_file_records(10, range(3)))
    run_at(landing, wh)
    day_a_before = table(wh, "events").filter(pl.col("event_date") == date(2024, 5, 10))
    # A late file: events for an earlier day B, and duplicates of day A.
    write(landing, "late.json", day_file_records(2, range(2)) + day_file_records(10, range(3)))
    result = run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert result.document["dates_written"] == ["2024-05-02", "2024-05-10"]
    assert [result.document["files"][0][k] for k in ("read", "loaded", "duplicates")] == [10, 4, 6]
    all_events = events(wh)
    assert all_events.filter(pl.col("event_date") == date(2024, 5, 2)).height == 4
    day_a_after = all_events.filter(pl.col("event_date") == date(2024, 5, 10))
    assert day_a_after.sort("event_id").equals(day_a_before.sort("event_id"))
    # Without message ids, a campaign's events for one user are one message: u0 and u1's messages
    # move to their earlier Sent on day B; u2's stays on day A.
    funnel = pl.read_parquet(wh / "campaign_funnel" / "part-0.parquet")
    assert funnel.select("messages", "sent", "delivered", "unique_sent").row(0) == (3, 3, 3, 3)
    daily = table(wh, "campaign_daily_funnel").sort("send_date")
    assert daily["send_date"].to_list() == [date(2024, 5, 2), date(2024, 5, 10)]
    assert daily["sent"].to_list() == [2, 1]
    assert result.document["send_dates_written"] == ["2024-05-02", "2024-05-10"]


def test_one_run_equals_nightly_runs_in_any_order_equals_reprocess(tmp_path: Path) -> None:
    files = {
        "f1.json": [*day_file_records(1, range(0, 4)), record("u9", ts="2024-05-03T00:00:00Z")],
        "f2.ndjson": ndjson(day_file_records(2, range(2, 6)) + day_file_records(1, range(3, 5))),
        "f3.json": [*day_file_records(3, range(0, 3), campaign="C2"), record(event="bogus")],
        "f4.json": day_file_records(1, range(0, 2)) + day_file_records(3, range(1, 2), campaign="C2"),
    }
    at = INGESTED_AT
    once = tmp_path / "once"
    for name, content in files.items():
        write(once / "landing", name, content)
    run_at(once / "landing", once / "wh", at=at)

    for attempt, seed in enumerate((1, 2, 3)):
        order = list(files)
        random.Random(seed).shuffle(order)
        root = tmp_path / f"nightly{attempt}"
        for night, name in enumerate(order):
            write(root / "landing", name, files[name])
            result = run_at(root / "landing", root / "wh", at=at + timedelta(hours=night))
            assert_accounted(result.document)
        assert_same_tables(once / "wh", root / "wh")
        reprocess(
            Settings(root / "landing", root / "wh"),
            date(2024, 5, 1),
            date(2024, 5, 3),
            clock=fixed_clock(at + timedelta(days=9)),
        )
        assert_same_tables(once / "wh", root / "wh")


def test_work_split_in_shares_gives_the_same_tables_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = record("u1", campaignId="C")
    files = {
        "a.json": [rec, rec, *day_file_records(1, range(0, 6)), *day_file_records(2, range(0, 4))],
        "b.ndjson": ndjson([rec, *day_file_records(1, range(3, 9)), record("u7", campaignId="C")]),
    }
    results = {}
    for label, share_rows in (("whole", 1_000_000), ("shares", 2)):
        tuning = Tuning(share_rows=share_rows)
        root = tmp_path / label
        write(root / "landing", "a.json", files["a.json"])
        first = run_at(root / "landing", root / "wh", tuning=tuning)
        write(root / "landing", "b.ndjson", files["b.ndjson"])
        second = run_at(root / "landing", root / "wh", at=INGESTED_AT + timedelta(hours=1), tuning=tuning)
        settings = Settings(root / "landing", root / "wh", tuning=tuning)
        again = reprocess(settings, date(2024, 5, 1), date(2024, 5, 2), clock=fixed_clock(INGESTED_AT))
        results[label] = [
            [(f["read"], f["loaded"], f["duplicates"]) for f in r.document["files"]] for r in (first, second, again)
        ]
        assert_accounted(second.document)
    assert results["whole"] == results["shares"]
    assert results["whole"][1] == [(14, 7, 7)]  # rec again, 12 events of which 6 seen before, u7 new
    assert_same_tables(tmp_path / "whole" / "wh", tmp_path / "shares" / "wh")


def test_defaulted_timestamps_are_reproduced_by_reprocess(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [{"id": "u1", "event": "Message Sent", "campaignId": "C"}])
    run_at(landing, wh)
    before = events(wh)
    assert before["timestamp_defaulted"].to_list() == [True] and before["event_ts"][0] == INGESTED_AT
    later = INGESTED_AT + timedelta(days=30)
    result = reprocess(Settings(landing, wh), date(2024, 6, 1), date(2024, 6, 1), clock=fixed_clock(later))
    assert result.document["dates_written"] == ["2024-06-01"]
    assert events(wh).equals(before)


def test_reprocess_applies_todays_contract_to_the_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)) + day_file_records(2, range(2)))
    run_at(landing, wh)
    # A code change: trimmed user ids now get an "X-" prefix.
    import etl.normalise as normalise

    original = normalise._clean_text

    def changed(name: str) -> pl.Expr:
        expr = original(name)
        return (pl.lit("X-") + expr).alias(name) if name == "user_id" else expr

    monkeypatch.setattr(normalise, "_clean_text", changed)
    result = reprocess(Settings(landing, wh), date(2024, 5, 2), date(2024, 5, 2), clock=fixed_clock(INGESTED_AT))
    assert result.document["dates_written"] == ["2024-05-02"]
    users = events(wh).group_by("event_date").agg(pl.col("user_id").unique().sort()).sort("event_date")
    assert users["user_id"].to_list() == [["u0", "u1"], ["X-u0", "X-u1"]]


def test_reprocess_of_an_empty_range_changes_nothing(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", "this is not json at all")  # a rejected file, outside the range too
    run_at(landing, wh)
    files_before = {p: p.read_bytes() for p in wh.rglob("*") if p.is_file()}
    result = reprocess(Settings(landing, wh), date(2020, 1, 1), date(2020, 1, 31), clock=fixed_clock(INGESTED_AT))
    assert result.nothing_to_do and result.exit_code == 0 and result.manifest_location is None
    assert {p: p.read_bytes() for p in wh.rglob("*") if p.is_file()} == files_before  # not even a manifest


def test_reprocess_rejects_a_backwards_range(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    with pytest.raises(EtlError, match="after"):
        reprocess(Settings(tmp_path / "landing", tmp_path / "wh"), date(2024, 5, 2), date(2024, 5, 1))


def test_rejected_file_exit_code_and_run_goes_on(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    seed_api = (
        '{\n   "id": "ABC12345",\n   "events": [{\n           "event": "Message Sent",\n'
        '           "timestamp": "2022-01-11T00:00:00Z"\n          "properties": {}}]}'
    )
    write(landing, "api.json", seed_api)
    write(landing, "good.json", day_file_records(1, range(2)))
    result = run_at(landing, wh)
    assert result.exit_code == 3
    rejected = [f for f in result.document["files"] if f["status"] == "rejected"]
    assert [f["name"] for f in rejected] == ["api.json"]
    assert "line 6" in rejected[0]["rejected_reason"]
    assert events(wh).height == 4
    quarantine = table(wh, "quarantine")
    assert quarantine["raw"].to_list() == [seed_api]


def test_max_reject_rate(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [*day_file_records(1, range(4)), record(event="bad"), record(event="worse")])
    result = run_at(landing, wh, max_reject_rate=0.1)
    assert result.exit_code == 3 and "20.0% of records were quarantined" in result.document["outcome"]
    write(landing, "b.json", [*day_file_records(2, range(9)), record(event="bad")])
    assert run_at(landing, tmp_path / "wh2", max_reject_rate=0.5).exit_code == 0


def test_partitions_are_written_from_dates_not_data(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [record(campaignId="../../escape", url="/etc/passwd")])
    run_at(landing, wh)
    written = {p.relative_to(wh).parts[0] for p in wh.rglob("*.parquet")}
    assert written <= {"events", "quarantine", "messages", "campaign_daily_funnel", "campaign_funnel", "_state"}
    assert not (tmp_path / "escape").exists()


def test_landing_zone_is_never_modified(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.ndjson.gz", ndjson(day_file_records(2, range(2))))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in landing.rglob("*")}
    run_at(landing, wh)
    reprocess(Settings(landing, wh), date(2024, 5, 1), date(2024, 5, 2), clock=fixed_clock(INGESTED_AT))
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in landing.rglob("*")} == before


def test_ingestion_time_in_the_future_check_uses_first_ingestion(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    soon = (INGESTED_AT + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write(landing, "a.json", [record(ts=soon)])
    assert run_at(landing, wh).document["totals"]["loaded"] == 1
    # Reprocessing much later keeps the first ingestion time, so the verdict does not change.
    later = fixed_clock(datetime(2025, 1, 1, tzinfo=UTC))
    day = (INGESTED_AT + timedelta(hours=20)).date()
    assert reprocess(Settings(landing, wh), day, day, clock=later).document["totals"]["loaded"] == 1


def test_identities_read_out_of_order_are_sorted_before_choosing() -> None:
    from etl.dates import _in_rebuild_order

    ids = pl.DataFrame({"_part": [0, 1, 0], "_ordinal": [1, 0, 2], "event_id": ["a", "b", "c"]})
    assert _in_rebuild_order(ids)["event_id"].to_list() == ["a", "c", "b"]
    ordered = ids.sort("_part", "_ordinal")
    assert _in_rebuild_order(ordered) is ordered


def blake2b_ids(frame: pl.DataFrame) -> pl.Series:
    """Event ids as version 1 computed them (BLAKE2b-128 over the same joined fields)."""
    import hashlib

    from etl.normalise import IDENTITY_COLUMNS

    ids = []
    for row in frame.iter_rows(named=True):
        fields = []
        for name in IDENTITY_COLUMNS:
            value = row[name]
            if name == "event_ts" and value is not None:
                value = str(int(value.timestamp()) * 1_000_000 + value.microsecond)
            fields.append("\x00" if value is None else value)
        ids.append(hashlib.blake2b("\x1f".join(fields).encode(), digest_size=16).hexdigest())
    return pl.Series("event_id", ids)


def make_version_1(warehouse: Path) -> None:
    """Turn a warehouse into what version 1 wrote: BLAKE2b event ids everywhere."""
    registry = json.loads((warehouse / "_state" / "registry.json").read_text())
    registry["version"] = 1
    (warehouse / "_state" / "registry.json").write_text(json.dumps(registry))
    for path in [*(warehouse / "_state" / "staged").glob("*.parquet"), *(warehouse / "events").glob("*/*.parquet")]:
        frame = pl.read_parquet(path)
        frame.with_columns(blake2b_ids(frame)).write_parquet(path)


def test_a_version_1_warehouse_is_upgraded_without_losing_or_doubling_events(tmp_path: Path) -> None:
    shared = record("u1", campaignId="C")
    files = {
        "a.json": [shared, *day_file_records(1, range(0, 3))],
        "b.json": [record("u8", campaignId="C"), *day_file_records(2, range(0, 2))],
        "c.json": [shared, record("u8", campaignId="C"), *day_file_records(2, range(1, 4))],
    }
    for label in ("current", "upgraded"):
        root = tmp_path / label
        write(root / "landing", "a.json", files["a.json"])
        write(root / "landing", "b.json", files["b.json"])
        run_at(root / "landing", root / "wh")
        if label == "upgraded":
            make_version_1(root / "wh")
        (root / "landing" / "b.json").unlink()  # its events now live only in the warehouse
        write(root / "landing", "c.json", files["c.json"])
        result = run_at(root / "landing", root / "wh", at=INGESTED_AT + timedelta(hours=1))
        assert_accounted(result.document)
        assert (upgrade_note(1) in result.document["notes"]) == (label == "upgraded")
    upgraded = tmp_path / "upgraded" / "wh"
    assert_same_tables(tmp_path / "current" / "wh", upgraded)
    assert events(upgraded)["event_id"].is_unique().all() and events(upgraded).height == 16
    staged = pl.read_parquet(upgraded / "_state" / "staged" / "*.parquet")
    assert set(staged["event_id"]) == set(events(upgraded)["event_id"])  # no old id left behind
    assert json.loads((upgraded / "_state" / "registry.json").read_text())["version"] == REGISTRY_VERSION
    assert run_at(tmp_path / "upgraded" / "landing", upgraded).nothing_to_do


def make_version_2(warehouse: Path) -> None:
    """Turn a warehouse into what version 2 wrote: funnels by event date counted from events, no
    messages table, events without the source columns."""
    registry = json.loads((warehouse / "_state" / "registry.json").read_text())
    registry["version"] = 2
    (warehouse / "_state" / "registry.json").write_text(json.dumps(registry))
    new_columns = ["machine_open", "suspected_bot", "source_format"]
    for path in [*(warehouse / "_state" / "staged").glob("*.parquet"), *(warehouse / "events").glob("*/*.parquet")]:
        pl.read_parquet(path).drop(new_columns).write_parquet(path)
    shutil.rmtree(warehouse / "messages")
    shutil.rmtree(warehouse / "campaign_daily_funnel")
    (warehouse / "_state" / "message_dates.parquet").unlink()
    for folder in (warehouse / "events").iterdir():
        old = warehouse / "campaign_daily_funnel" / folder.name / "part-0.parquet"
        old.parent.mkdir(parents=True)
        pl.DataFrame({"campaign_id": ["C"], "sent": [1]}).write_parquet(old)
    lifetime = warehouse / "campaign_funnel" / "part-0.parquet"
    pl.read_parquet(lifetime).select("campaign_id", "sent").write_parquet(lifetime)


def test_a_version_2_warehouse_gets_messages_and_send_date_funnels_without_reading_json_again(tmp_path: Path) -> None:
    late = record("u1", "Message Viewed", "2024-05-03T10:00:00Z", campaignId="C1")
    for label in ("current", "upgraded"):
        root = tmp_path / label
        write(root / "landing", "a.json", day_file_records(1, range(0, 4)))
        write(root / "landing", "b.json", day_file_records(2, range(2, 6), campaign="C2"))
        run_at(root / "landing", root / "wh")
        if label == "upgraded":
            make_version_2(root / "wh")
        (root / "landing" / "b.json").unlink()  # its events now live only in the warehouse
        write(root / "landing", "c.json", [late])
        result = run_at(root / "landing", root / "wh", at=INGESTED_AT + timedelta(hours=1))
        assert result.document["totals"]["files_reprocessed"] == 0  # no landing file was read again
        assert [f["name"] for f in result.document["files"]] == ["c.json"]
        assert (upgrade_note(2) in result.document["notes"]) == (label == "upgraded")
    upgraded = tmp_path / "upgraded" / "wh"
    assert_same_tables(tmp_path / "current" / "wh", upgraded)
    assert sorted(p.name for p in (upgraded / "campaign_daily_funnel").iterdir()) == [
        "send_date=2024-05-01",
        "send_date=2024-05-02",
    ]
    assert table(upgraded, "messages").height == 8
    assert events(upgraded)["source_format"].unique().to_list() == ["activatepro"]
    assert json.loads((upgraded / "_state" / "registry.json").read_text())["version"] == REGISTRY_VERSION
    assert run_at(tmp_path / "upgraded" / "landing", upgraded).nothing_to_do


def test_a_reprocessed_file_that_now_quarantines_nothing_leaves_the_quarantine(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [record("u1"), record("u2", note="x" * 400)])
    first = run_at(landing, wh, max_record_bytes=300)
    assert first.document["totals"]["quarantined"] == 1 and table(wh, "quarantine").height == 1
    again = reprocess(Settings(landing, wh), date(2024, 5, 1), date(2024, 5, 1), clock=fixed_clock(INGESTED_AT))
    assert again.document["totals"]["quarantined"] == 0
    assert table(wh, "quarantine").is_empty()  # the partition held only this file's rows: it is gone
    assert events(wh)["user_id"].sort().to_list() == ["u1", "u2"]


def test_a_warehouse_in_memory_gets_the_same_tables_as_on_disk(tmp_path: Path) -> None:
    from etl import tables
    from etl.storage import forget_memory, open_store

    landing = tmp_path / "landing"
    write(landing, "a.json", [*day_file_records(1, range(4)), record("u9", "Message Oops")])
    write(landing, "b.ndjson", ndjson([*day_file_records(1, range(2, 6)), *day_file_records(2, range(3))]))
    location = "memory://test-pipeline-warehouse"
    try:
        in_memory = run_at(landing, location)  # type: ignore[arg-type]
        on_disk = run_at(landing, tmp_path / "wh")
        assert in_memory.document["totals"] == on_disk.document["totals"]
        memory, disk = open_store(location), open_store(tmp_path / "wh")
        assert tables.lifetime(memory).equals(tables.lifetime(disk))
        assert tables.daily(memory).equals(tables.daily(disk))
        assert tables.row_count(memory) == tables.row_count(disk) == 18  # 12 on day 1, 6 on day 2
        assert [i.key for i in memory.list("_state/journal")] == []
        assert run_at(landing, location).nothing_to_do  # type: ignore[arg-type]
    finally:
        forget_memory(location)


def test_a_reprocess_counts_dates_outside_its_window_without_staged_copies_that_are_gone(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [*day_file_records(1, range(1)), *day_file_records(2, range(1))])
    write(landing, "b.json", [*day_file_records(2, range(1, 2)), *day_file_records(3, range(1))])
    run_at(landing, wh)
    sha_b = json.loads((wh / "_state" / "registry.json").read_text())
    [b_sha] = [sha for sha, entry in sha_b["files"].items() if entry["path"] == "b.json"]
    (landing / "b.json").unlink()
    (wh / "_state" / "staged" / f"{b_sha}.parquet").unlink()
    again = reprocess(Settings(landing, wh), date(2024, 5, 1), date(2024, 5, 1), clock=fixed_clock(INGESTED_AT))
    assert again.exit_code == 0
    assert [(f["name"], f["loaded"], f["duplicates"]) for f in again.document["files"]] == [("a.json", 4, 0)]


def test_files_registered_by_an_earlier_version_are_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl import storage

    landing, wh = tmp_path / "landing", tmp_path / "wh"
    path = write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", day_file_records(1, range(2), "C2"))  # the same size: both are hashed first
    run_at(landing, wh)
    registry_path = wh / "_state" / "registry.json"
    registry = json.loads(registry_path.read_text())
    for entry in registry["files"].values():  # as an earlier version wrote it: no etag, an mtime
        entry.pop("etag")
        entry["mtime_ns"] = (landing / entry["path"]).stat().st_mtime_ns
    registry_path.write_text(json.dumps(registry))
    hashed: list[str] = []
    real = storage.sha256_of
    monkeypatch.setattr(storage, "sha256_of", lambda store, key: hashed.append(key) or real(store, key))
    assert run_at(landing, wh, at=INGESTED_AT + timedelta(days=1)).nothing_to_do
    assert hashed == [] and path.exists()
