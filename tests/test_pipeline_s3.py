"""The whole job with landing zone and warehouse in a bucket of the S3 test server (moto, on
127.0.0.1): the same tables as on local disk, runs killed at every step, the lease, and the errors a
user meets, each one sentence and the right exit code, with nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl import storage
from etl.errors import WarehouseBusy
from etl.pipeline import reprocess, run
from etl.settings import Settings
from etl.storage import Store, open_store
from tests.helpers import INGESTED_AT, day_file_records, fixed_clock, ndjson, record, run_at, snapshot, write
from tests.support.cli import invoke
from tests.support.feeds import busy_landing_zone
from tests.support.s3 import FaultyProxy

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("events", "messages", "campaign_daily_funnel", "campaign_funnel", "quarantine")
FILES: dict[str, Any] = {
    "2024-05-02/a-small.json": day_file_records(2, range(20)),
    "2024-05-02/b-late.json": [*day_file_records(2, range(15, 30)), record("x", "Message Oops")],
    "2024-05-03/c-next.ndjson": ndjson(day_file_records(3, range(10))),
}


def feed_bytes(content: Any) -> bytes:
    return (content if isinstance(content, str) else json.dumps(content)).encode()


def land(landing: str, name: str) -> None:
    """Drop one of FILES into a landing zone in the bucket."""
    open_store(landing).put(name, feed_bytes(FILES[name]))


def bucket_tables(location: str) -> dict[str, pl.DataFrame]:
    """Every table of a warehouse in the bucket, in the canonical order of `snapshot`."""
    store, frames = open_store(location), {}
    for name in TABLES:
        scan = storage.scan_table(store, name)
        frame = pl.DataFrame() if scan is None else scan.collect()
        if name in ("events", "quarantine"):
            frame = frame.drop("run_id", "ingested_at", "ingest_date", strict=False)
        frames[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return frames


def assert_same_as_on_disk(location: str, disk: Path) -> None:
    """The bucket's tables equal the disk warehouse's (columns in the same order)."""
    expected, actual = snapshot(disk), bucket_tables(location)
    for name in TABLES:
        want = expected[name]
        got = actual[name].select(want.columns) if want.width else actual[name]
        assert got.sort(got.columns, nulls_last=True).equals(want.sort(want.columns, nulls_last=True)), name


def objects(store: Store) -> dict[str, str]:
    return {info.key: info.etag for info in store.list()}


def test_nightly_runs_late_data_and_reprocess_in_a_bucket_give_the_tables_of_local_disk(
    s3_bucket: str, tmp_path: Path
) -> None:
    landing, warehouse = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/warehouse"
    disk_landing, disk = tmp_path / "landing", tmp_path / "wh"
    for night, names in enumerate(
        (["2024-05-02/a-small.json"], ["2024-05-02/b-late.json", "2024-05-03/c-next.ndjson"])
    ):
        at = INGESTED_AT + timedelta(hours=night)
        for name in names:
            land(landing, name)
            write(disk_landing, name, FILES[name])
        result = run(Settings(landing, warehouse), clock=fixed_clock(at))
        assert result.exit_code == 0 and result.manifest is not None
        assert result.document["totals"]["read"] == sum(f["read"] for f in result.document["files"])
        run_at(disk_landing, disk, at=at)
        assert_same_as_on_disk(warehouse, disk)
    assert open_store(warehouse).head("campaign_daily_funnel/send_date=2024-05-02/part-0.parquet") is not None

    before = objects(open_store(warehouse))
    again = run(Settings(landing, warehouse), clock=fixed_clock(INGESTED_AT + timedelta(days=1)))
    assert again.nothing_to_do and objects(open_store(warehouse)) == before  # a rerun writes nothing

    later = fixed_clock(INGESTED_AT + timedelta(days=2))
    reprocess(Settings(landing, warehouse), date(2024, 5, 2), date(2024, 5, 2), clock=later)
    reprocess(Settings(disk_landing, disk), date(2024, 5, 2), date(2024, 5, 2), clock=later)
    assert_same_as_on_disk(warehouse, disk)
    assert not open_store(warehouse).list("_state/journal")  # nothing staged is left behind


def etl_process(landing: str, warehouse: str, kill_at: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "ETL_KILL_AT": kill_at}
    command = [sys.executable, "-m", "etl", "run", "--landing", landing, "--warehouse", warehouse, "-q"]
    command += ["--workers", "1"]  # the driver itself is killed at the fault point
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The warehouse on disk before (one file) and after (all three) an uninterrupted run."""
    root = tmp_path_factory.mktemp("crash-s3")
    landing = root / "landing"
    write(landing, "2024-05-02/a-small.json", FILES["2024-05-02/a-small.json"])
    before = root / "before"
    run(Settings(landing, before))  # (today's clock, as the killed runs: the same quarantine partition)
    for name in FILES:
        write(landing, name, FILES[name])
    after = root / "after"
    shutil.copytree(before, after)
    run(Settings(landing, after))
    return {"before": before, "after": after}


def published_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("run_id", "ingested_at", strict=False)


@pytest.mark.heavy
@pytest.mark.parametrize("kill_at", ["staged:2", "commit", "committed", "apply:3", "applied"])
def test_a_run_killed_at_any_step_leaves_each_object_old_or_new_and_the_next_run_finishes(
    s3_bucket: str, on_disk: dict[str, Path], kill_at: str
) -> None:
    landing, warehouse = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/warehouse"
    land(landing, "2024-05-02/a-small.json")
    assert etl_process(landing, warehouse).returncode == 0
    for name in FILES:
        land(landing, name)
    killed = etl_process(landing, warehouse, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    store = open_store(warehouse)
    published = [info.key for info in store.list() if info.key.endswith(".parquet") and not info.key.startswith("_")]
    assert published
    for key in published:  # each object reads, and holds exactly its old rows or exactly its new ones
        rows = published_rows(storage.read_parquet(store, key))
        versions = [pl.read_parquet(root / key) for root in on_disk.values() if (root / key).exists()]
        assert any(rows.equals(published_rows(version)) for version in versions), key

    finished = etl_process(landing, warehouse)
    assert finished.returncode == 0, finished.stderr
    assert not store.list("_state/journal"), "the killed run's staging remains"
    assert_same_as_on_disk(warehouse, on_disk["after"])


def test_a_second_run_stops_naming_the_holder_and_a_lapsed_lease_is_taken_over(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, warehouse = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/warehouse"
    land(landing, "2024-05-02/a-small.json")
    lease = {"run_id": "run-elsewhere", "pid": 4242, "host": "worker-7", "expires": None}
    store = open_store(warehouse)
    lease["expires"] = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    store.put("_state/lock.json", json.dumps(lease).encode())
    with pytest.raises(WarehouseBusy, match="run-elsewhere") as busy:
        run(Settings(landing, warehouse))
    assert "worker-7" in str(busy.value) and "lease" in str(busy.value)
    assert not store.list("events")  # nothing was written

    lease["expires"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # its holder stopped renewing
    store.put("_state/lock.json", json.dumps(lease).encode())
    result = run(Settings(landing, warehouse))
    assert result.exit_code == 0 and any("run-elsewhere" in note for note in result.notes)
    assert store.head("_state/lock.json") is None  # released at the end


def test_a_bucket_that_does_not_exist_is_a_usage_error(s3_bucket: str, tmp_path: Path) -> None:
    write(tmp_path / "landing", "a.json", day_file_records(1, range(2)))
    done = invoke("run", "--landing", str(tmp_path / "landing"), "--warehouse", "s3://no-such-bucket-here/wh")
    assert done.exit_code == 2
    assert "no-such-bucket-here" in done.stderr and "Traceback" not in done.stderr


def test_an_endpoint_where_nothing_answers_fails_in_one_sentence(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.s3 import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    write(tmp_path / "landing", "a.json", day_file_records(1, range(2)))
    done = invoke("run", "--landing", str(tmp_path / "landing"), "--warehouse", f"s3://{s3_bucket}/wh")
    assert done.exit_code == 1 and "Traceback" not in done.stderr
    assert "127.0.0.1" in done.stderr


def test_no_credentials_fails_in_one_sentence(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    write(tmp_path / "landing", "a.json", day_file_records(1, range(2)))
    done = invoke("run", "--landing", str(tmp_path / "landing"), "--warehouse", f"s3://{s3_bucket}/wh")
    assert done.exit_code == 1 and "credentials" in done.stderr and "Traceback" not in done.stderr


def test_the_network_dropping_mid_run_fails_the_run_with_nothing_committed(
    s3_bucket: str, faulty_s3: FaultyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, warehouse = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/warehouse"
    land(landing, "2024-05-02/a-small.json")
    assert run(Settings(landing, warehouse)).exit_code == 0
    for name in FILES:
        land(landing, name)
    before = objects(open_store(warehouse))
    server = os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", faulty_s3.endpoint)
    start = faulty_s3.requests

    real_stage = storage.write_parquet
    calls = {"n": 0}

    def dropping(*args: Any, **kwargs: Any) -> None:  # the network goes away after some writes
        calls["n"] += 1
        if calls["n"] == 3:
            faulty_s3.fail_next = 1_000_000
        real_stage(*args, **kwargs)

    monkeypatch.setattr(storage, "write_parquet", dropping)
    done = invoke("run", "--landing", landing, "--warehouse", warehouse)
    faulty_s3.fail_next = 0
    assert faulty_s3.requests > start
    assert done.exit_code == 1 and "Traceback" not in done.stderr, done.stderr
    assert "nothing was committed" in done.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", server)
    after = {key: etag for key, etag in objects(open_store(warehouse)).items() if not key.startswith("_state/")}
    assert after == {key: etag for key, etag in before.items() if not key.startswith("_state/")}


def test_validate_checks_an_object_or_a_prefix_in_a_bucket(s3_bucket: str) -> None:
    landing = f"s3://{s3_bucket}/landing"
    for name in FILES:
        land(landing, name)
    whole = invoke("validate", landing)
    assert whole.exit_code == 3 and "unknown_event" in whole.stdout  # b-late.json holds a 'Message Oops'
    assert all(name in whole.stdout for name in FILES)
    one = invoke("validate", f"{landing}/2024-05-02/a-small.json")
    assert one.exit_code == 0 and "b-late" not in one.stdout
    missing = invoke("validate", f"{landing}/nothing-here")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_an_object_that_changes_while_it_is_read_is_not_ingested_half_and_is_taken_next_time(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, warehouse = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/warehouse"
    land(landing, "2024-05-02/a-small.json")
    assert run(Settings(landing, warehouse)).exit_code == 0
    land(landing, "2024-05-02/b-late.json")
    land(landing, "2024-05-03/c-next.ndjson")
    changing = "2024-05-02/b-late.json"
    real = storage.iter_bytes
    writing = {"now": True}  # (the test's AWS environment is monkeypatched too: no monkeypatch.undo here)

    def replaced_meanwhile(store: Store, key: str, *args: Any, **kwargs: Any) -> Any:
        if key == changing and writing["now"]:
            raise storage.ObjectChanged(store.describe(key), "an-etag")
        return real(store, key, *args, **kwargs)

    monkeypatch.setattr(storage, "iter_bytes", replaced_meanwhile)
    result = run(Settings(landing, warehouse))
    assert any(changing in note and "changed while it was read" in note for note in result.notes)
    assert [f["name"] for f in result.document["files"]] == ["2024-05-03/c-next.ndjson"]
    writing["now"] = False  # the writer is done
    taken = run(Settings(landing, warehouse))
    assert [f["name"] for f in taken.document["files"]] == [changing]


def test_a_file_that_changes_while_it_is_hashed_waits_for_the_next_run(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl.landing import discover

    landing = f"s3://{s3_bucket}/landing"
    for name in FILES:
        land(landing, name)

    def replaced_meanwhile(store: Store, key: str, expect_etag: str = "") -> str:
        assert expect_etag  # the etag of the listing is what the read must still find
        raise storage.ObjectChanged(store.describe(key), expect_etag)

    monkeypatch.setattr(storage, "sha256_of", replaced_meanwhile)
    found = discover(open_store(landing))
    assert found.files == [] and len(found.notes) == len(FILES)
    assert all("changed while it was read (taken next time)" in note for note in found.notes)


def test_a_run_stopped_while_its_workers_write_to_the_bucket_leaves_no_temporary_file(
    s3_bucket: str, tmp_path: Path
) -> None:
    """SIGTERM to the driver (a scheduler's stop) while two workers stage files in the bucket: each
    worker's job is stopped and removes what it was writing (objects go to the bucket through local
    temporary files), before the driver removes the run's staging and ends."""
    landing, warehouse, temporary = tmp_path / "landing", f"s3://{s3_bucket}/warehouse", tmp_path / "tmp"
    busy_landing_zone(landing)
    temporary.mkdir()
    command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", warehouse]
    driver = subprocess.Popen(
        [*command, "--workers", "2", "-q"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temporary)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    bucket = open_store(warehouse)
    try:
        deadline = time.monotonic() + 120
        # A file staged (both workers are at work), and a worker writing through a temporary file now.
        while not any("/_state/staged/" in info.key for info in bucket.list("_state/journal")) or not any(
            temporary.glob("etl-workers-*/etl-*")  # (the workers' TMPDIR is a folder of their pool's own)
        ):
            assert driver.poll() is None and time.monotonic() < deadline, "the run ended, or never staged a file"
            time.sleep(0.02)
        driver.terminate()
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 1, stderr
    assert stderr.decode().rstrip().endswith("etl: interrupted; nothing was committed"), stderr
    assert sorted(str(p.relative_to(temporary)) + f" {p.stat().st_size}" for p in temporary.rglob("*")) == []
    assert [info.key for info in bucket.list()] == []  # no staging, no lease
