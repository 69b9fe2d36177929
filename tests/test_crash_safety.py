"""Atomic publishing and the writer lock: SIGKILL at any moment, interrupted publishes, concurrent runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from bench.feedgen import journeys, write_feed
from etl import warehouse as wh_module
from etl.pipeline import run
from etl.settings import Settings
from etl.warehouse import Layout, WarehouseBusy
from tests.helpers import day_file_records, run_at, table, write

ROOT = Path(__file__).resolve().parents[1]


def etl_process(landing: Path, warehouse: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse), "-q"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def partition_ids(warehouse: Path) -> dict[str, frozenset[str]]:
    """event_ids per events partition; every Parquet file must read."""
    out = {}
    for path in sorted((warehouse / "events").glob("*/*.parquet")):
        out[path.parent.name] = frozenset(pl.read_parquet(path)["event_id"].to_list())
    return out


def data_rows(warehouse: Path) -> dict[str, pl.DataFrame]:
    frames = {}
    for name in ("events", "campaign_daily_funnel", "campaign_funnel", "quarantine"):
        frame = table(warehouse, name).drop("run_id", "ingested_at", "ingest_date", strict=False)
        frames[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return frames


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A warehouse holding one small file, a large second file, and the uninterrupted result."""
    root = tmp_path_factory.mktemp("crash")
    landing = root / "landing"
    write(landing, "a-small.json", day_file_records(2, range(50)))
    before = root / "before"
    run(Settings(landing, before))
    write_feed(landing / "b-large.json", journeys(80_000, seed=3), "feed")
    after = root / "after"
    shutil.copytree(before, after)
    started = time.perf_counter()
    process = etl_process(landing, after)
    assert process.wait() == 0, process.stderr.read()  # type: ignore[union-attr]
    return {
        "landing": landing,
        "before": before,
        "after": after,
        "seconds": time.perf_counter() - started,
        "old": partition_ids(before),
        "new": partition_ids(after),
    }


@pytest.mark.parametrize("fraction", [0.15, 0.5, 0.8, 0.9, 0.95, 0.99])
def test_sigkill_leaves_each_partition_old_or_new_and_the_next_run_finishes(
    scenario: dict[str, object], tmp_path: Path, fraction: float
) -> None:
    warehouse = tmp_path / "wh"
    shutil.copytree(scenario["before"], warehouse)  # type: ignore[arg-type]
    process = etl_process(scenario["landing"], warehouse)  # type: ignore[arg-type]
    time.sleep(float(scenario["seconds"]) * fraction)  # type: ignore[arg-type]
    process.send_signal(signal.SIGKILL)
    process.wait()

    old, new = scenario["old"], scenario["new"]
    for name, ids in partition_ids(warehouse).items():  # every file reads, and is wholly old or wholly new
        assert ids in (old.get(name), new.get(name)), name  # type: ignore[union-attr]
    funnel = warehouse / "campaign_funnel" / "part-0.parquet"
    assert pl.read_parquet(funnel).height > 0

    result = run(Settings(scenario["landing"], warehouse))  # type: ignore[arg-type]
    assert result.exit_code == 0
    assert not list((warehouse / "_state" / "journal").glob("*")), "staging files of the killed run remain"
    expected, actual = data_rows(scenario["after"]), data_rows(warehouse)  # type: ignore[arg-type]
    for name in expected:
        assert actual[name].equals(expected[name]), name


def test_a_publish_interrupted_after_commit_is_rolled_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, warehouse, reference = tmp_path / "landing", tmp_path / "wh", tmp_path / "ref"
    write(landing, "a.json", day_file_records(1, range(3)) + day_file_records(2, range(3)))
    run_at(landing, reference)
    real_replace = wh_module.storage.replace
    calls = {"n": 0}

    def dying_replace(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 4 and "journal" in str(src) and "plan.json" not in str(dst):
            raise KeyboardInterrupt  # the process dies in the middle of the renames
        real_replace(src, dst)

    monkeypatch.setattr(wh_module.storage, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        run_at(landing, warehouse)
    monkeypatch.setattr(wh_module.storage, "replace", real_replace)
    assert list((warehouse / "_state" / "journal").glob("*/plan.json")), "the committed plan must survive"
    again = run_at(landing, warehouse)
    assert again.nothing_to_do and any("completed the publish" in n for n in again.notes)
    expected, actual = data_rows(reference), data_rows(warehouse)
    for name in expected:
        assert actual[name].equals(expected[name]), name


def test_a_run_that_fails_before_commit_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(3)))
    run_at(landing, warehouse)
    files_before = {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()}
    write(landing, "b.json", day_file_records(2, range(3)))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(wh_module.Journal, "commit", broken)
    with pytest.raises(RuntimeError):
        run_at(landing, warehouse)
    files_after = {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()}
    assert files_after == files_before


def test_second_concurrent_run_stops_with_a_clear_message(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write_feed(landing / "big.json", journeys(60_000, seed=5), "feed")
    process = etl_process(landing, warehouse)
    try:
        deadline = time.time() + 30
        lock = Layout(warehouse).lock
        while not lock.exists() and time.time() < deadline:
            time.sleep(0.02)
        holder = json.loads(lock.read_text())
        with pytest.raises(WarehouseBusy, match=holder["run_id"]):
            run(Settings(landing, warehouse))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # The killed run's lock is stale now: the next run takes it over and completes.
    result = run(Settings(landing, warehouse))
    assert result.exit_code == 0
    assert any("took over the lock" in note for note in result.notes)
    assert not lock.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = Layout(warehouse).lock
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"run_id": "old-run", "pid": dead.pid, "host": os.uname().nodename}))
    result = run_at(landing, warehouse)
    assert result.exit_code == 0 and any("old-run" in note for note in result.notes)
