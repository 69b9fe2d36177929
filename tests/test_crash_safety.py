"""Atomic publishing and the writer lock: a process killed at each step, failures, concurrent runs.

A run is killed (SIGKILL, as a crash) at deterministic fault points (`etl.faults`): after a file is
staged, just before the commit, just after it, and in the middle of applying the plan. Whatever the
point, every partition is wholly old or wholly new, and the next run ends with the tables an
uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
import pytest

from etl import storage
from etl.errors import EtlError, WarehouseBusy
from etl.pipeline import run
from etl.settings import Settings
from etl.stops import deferred, held_off
from etl.storage import Store
from etl.storage.store import LocalStore, forget_memory, open_store
from etl.warehouse import Journal
from etl.warehouse.journal import apply_plan
from etl.warehouse.lock import Lease
from tests.helpers import day_file_records, record, run_at, table, write

ROOT = Path(__file__).resolve().parents[1]


def etl_process(landing: Path, warehouse: Path, kill_at: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "ETL_KILL_AT": kill_at}
    command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse), "-q"]
    command += ["--workers", "1"]  # the driver itself is killed at the fault point
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, check=False)


def partition_ids(warehouse: Path) -> dict[str, frozenset[str]]:
    """event_ids per events partition; every Parquet file must read."""
    out = {}
    for path in sorted((warehouse / "events").glob("*/*.parquet")):
        out[path.parent.name] = frozenset(pl.read_parquet(path)["event_id"].to_list())
    return out


def data_rows(warehouse: Path) -> dict[str, pl.DataFrame]:
    frames = {}
    for name in ("events", "messages", "campaign_daily_funnel", "campaign_funnel", "quarantine"):
        frame = table(warehouse, name).drop("run_id", "ingested_at", "ingest_date", strict=False)
        frames[name] = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return frames


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A warehouse holding one file; two more files (one of them late for the first file's date);
    and the uninterrupted result of ingesting them."""
    root = tmp_path_factory.mktemp("crash")
    landing = root / "landing"
    write(landing, "a-small.json", day_file_records(2, range(50)))
    before = root / "before"
    run(Settings(landing, before))
    write(landing, "b-late.json", [*day_file_records(2, range(40, 60)), record("x", "Message Oops")])
    write(landing, "c-next.ndjson", "".join(json.dumps(r) + "\n" for r in day_file_records(3, range(30))))
    after = root / "after"
    shutil.copytree(before, after)
    run(Settings(landing, after))
    return {"landing": landing, "before": before, "after": after}


@pytest.mark.parametrize("kill_at", ["staged:1", "staged:2", "commit", "committed", "apply:1", "apply:4", "applied"])
def test_a_run_killed_at_any_step_leaves_each_partition_old_or_new_and_the_next_run_finishes(
    scenario: dict[str, Path], tmp_path: Path, kill_at: str
) -> None:
    warehouse = tmp_path / "wh"
    shutil.copytree(scenario["before"], warehouse)
    killed = etl_process(scenario["landing"], warehouse, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    assert_each_file_old_or_new(warehouse, scenario["before"], scenario["after"])

    result = run(Settings(scenario["landing"], warehouse))
    assert result.exit_code == 0
    assert not list((warehouse / "_state" / "journal").glob("*")), "staging files of the killed run remain"
    expected, actual = data_rows(scenario["after"]), data_rows(warehouse)
    for name in expected:
        assert actual[name].equals(expected[name]), name
    assert any("took over the lock" in note for note in result.notes)
    finished = "completed the publish" if kill_at.startswith(("committed", "apply:")) else "discarded the unfinished"
    assert any(finished in note for note in result.notes), result.notes
    assert not any("lost after the commit" in note for note in result.notes), result.notes  # (moved, not lost)


def assert_each_file_old_or_new(warehouse: Path, before: Path, after: Path) -> None:
    """Every published Parquet file reads, and holds exactly its old rows or exactly its new ones (the
    new ones made by another run: run ids and ingestion times aside)."""

    def rows(path: Path) -> pl.DataFrame:
        return pl.read_parquet(path).drop("run_id", "ingested_at", strict=False)

    published = sorted(warehouse.glob("[!_]*/**/*.parquet"))
    assert published
    for path in published:
        relative = path.relative_to(warehouse)
        versions = [rows(root / relative) for root in (before, after) if (root / relative).exists()]
        assert any(rows(path).equals(version) for version in versions), relative


def killed_after_its_commit(scenario: dict[str, Path], tmp_path: Path) -> Path:
    """The warehouse before, after a run of the two new files killed just after its commit."""
    warehouse = tmp_path / "wh"
    shutil.copytree(scenario["before"], warehouse)
    assert etl_process(scenario["landing"], warehouse, "committed").returncode == -signal.SIGKILL
    return warehouse


def test_a_run_killed_while_it_finishes_an_interrupted_publish_is_finished_by_the_next(
    scenario: dict[str, Path], tmp_path: Path
) -> None:
    warehouse = killed_after_its_commit(scenario, tmp_path)
    assert etl_process(scenario["landing"], warehouse, "apply:2").returncode == -signal.SIGKILL  # in recover
    assert_each_file_old_or_new(warehouse, scenario["before"], scenario["after"])
    result = run(Settings(scenario["landing"], warehouse))
    assert result.exit_code == 0 and result.nothing_to_do
    assert any("completed the publish" in note for note in result.notes)
    expected, actual = data_rows(scenario["after"]), data_rows(warehouse)
    for name in expected:
        assert actual[name].equals(expected[name]), name


def test_an_object_lost_after_the_commit_is_named_and_the_rest_published(
    scenario: dict[str, Path], tmp_path: Path
) -> None:
    warehouse = killed_after_its_commit(scenario, tmp_path)
    (journal,) = (warehouse / "_state" / "journal").iterdir()
    lost = "events/event_date=2024-05-03/part-0.parquet"  # a new date: nothing published there yet
    staged = sorted(journal.glob("events/event_date=2024-05-03/*.parquet"))
    assert [path.relative_to(journal).as_posix() for path in staged] == [lost] and not (warehouse / lost).exists()
    staged[0].unlink()  # removed by hand after the commit

    result = run(Settings(scenario["landing"], warehouse))
    assert result.exit_code == 0 and result.nothing_to_do
    (note,) = [note for note in result.notes if "lost after the commit" in note]
    assert f"run {journal.name}, not published: {lost} (" in note and "etl reprocess" in note
    assert not (warehouse / lost).exists() and not journal.exists()
    expected, actual = partition_ids(scenario["after"]), partition_ids(warehouse)
    assert actual == {name: ids for name, ids in expected.items() if name != "event_date=2024-05-03"}


def test_a_lost_object_that_was_to_replace_a_published_one_is_named_and_the_old_one_kept(
    scenario: dict[str, Path], tmp_path: Path
) -> None:
    warehouse = killed_after_its_commit(scenario, tmp_path)
    (journal,) = (warehouse / "_state" / "journal").iterdir()
    lost = "events/event_date=2024-05-02/part-0.parquet"  # published by the first run, replaced by this one
    assert (warehouse / lost).read_bytes() == (scenario["before"] / lost).read_bytes()
    (journal / lost).unlink()  # removed by hand after the commit

    result = run(Settings(scenario["landing"], warehouse))
    assert result.exit_code == 0 and result.nothing_to_do
    (note,) = [note for note in result.notes if "lost after the commit" in note]
    assert f"not published: {lost} (where one was published before, it stays" in note
    assert (warehouse / lost).read_bytes() == (scenario["before"] / lost).read_bytes()
    expected, actual = partition_ids(scenario["after"]), partition_ids(warehouse)
    assert {name: ids for name, ids in actual.items() if name != "event_date=2024-05-02"} == {
        name: ids for name, ids in expected.items() if name != "event_date=2024-05-02"
    }


def store_at(where: str, tmp_path: Path) -> Store:
    """A local store, or a memory store (whose moves are a copy and a delete) forgotten after the test."""
    return open_store(tmp_path / "wh" if where == "local" else f"memory://journal-{tmp_path.name}")


@pytest.fixture(autouse=True)
def _forget_memory_stores(tmp_path: Path) -> Iterator[None]:
    yield
    forget_memory(f"memory://journal-{tmp_path.name}")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_plan_applied_again_after_a_stop_midway_finds_nothing_lost(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(where, tmp_path)
    storage.write_json(store, {"old": 1}, "a.json")
    storage.write_json(store, {"old": "a longer old value"}, "b.json")
    journal = Journal(store, "20240101T000000Z-aaaaaa")
    for target in ("a.json", "b.json", "c.json"):
        journal.put_json({"new": target * 3}, target)

    def stop_at_the_second(name: str) -> None:
        if name == "apply" and store.head("a.json") is not None and store.head(journal.key("b.json")) is None:
            raise RuntimeError("stopped midway")  # (after b.json moved, before c.json)

    monkeypatch.setattr("etl.warehouse.journal.fault_point", stop_at_the_second)
    with pytest.raises(RuntimeError, match="midway"):
        journal.commit()
    monkeypatch.undo()
    assert apply_plan(store, journal.prefix) == []
    assert [storage.read_json(store, t) for t in ("a.json", "b.json", "c.json")] == [
        {"new": t * 3} for t in ("a.json", "b.json", "c.json")
    ]


@pytest.mark.parametrize("where", ["local", "memory"])  # (local disk finds it when it syncs, others by listing)
def test_a_staged_object_missing_before_the_commit_fails_it_before_its_plan(tmp_path: Path, where: str) -> None:
    store = store_at(where, tmp_path)
    journal = Journal(store, "20240101T000000Z-aaaaaa")
    journal.put_json({"kept": True}, "kept.json")
    journal.put_json({"gone": True}, "gone.json")
    store.delete(journal.key("gone.json"))
    with pytest.raises(EtlError, match=r"gone\.json is missing before the commit"):
        journal.commit()
    assert not journal.committing and store.head(f"{journal.prefix}/plan.json") is None
    assert store.head("kept.json") is None and store.head("gone.json") is None


class SignalTaken(Exception):
    """A signal reached the test's own handler: `held_off` did not hold it."""


@pytest.fixture
def stops_raise() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM `SignalTaken` here (never the test process's end),
    whatever the process was started with; restored after."""

    def taken(number: int, frame: object) -> None:
        raise SignalTaken(signal.Signals(number).name)

    before = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(signal.SIGTERM, taken)
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


def test_a_stop_during_the_commit_is_taken_once_it_is_done(stops_raise: None, caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C or SIGTERM while a run commits: the commit and its apply run to their end (a stop then
    would leave the tables half published until the next run); the stop is said, and stops again after."""
    steps = []
    with held_off("committing"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # (Python runs the handlers here)
        steps.append("applied")
    assert steps == ["applied"]
    assert "a stop (SIGTERM) came while the run was committing: the run finished that first" in caplog.text
    with pytest.raises(SignalTaken):  # the handlers are back
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def test_a_second_stop_during_the_commit_is_not_held(stops_raise: None) -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), held_off("committing"):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        steps.append("held")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        steps.append("not held")
    assert steps == ["held"]


def test_a_stop_while_a_worker_starts_is_raised_once_it_is_recorded(stops_raise: None) -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # (the handler runs here, and notes it)
        steps.append("started and recorded")
    assert steps == ["started and recorded"]


def test_every_object_a_run_publishes_is_durable_before_its_plan_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [*day_file_records(1, range(3)), record("x", "Message Oops")])  # (a quarantine too)
    steps: list[tuple[str, list[str]]] = []
    sync, put_if_absent = LocalStore.sync, LocalStore.put_if_absent

    def spy_sync(store: LocalStore, keys: Iterable[str]) -> None:
        keys = list(keys)
        steps.append(("sync", keys))
        sync(store, keys)

    def spy_put_if_absent(store: LocalStore, key: str, data: bytes) -> str | None:
        if key.endswith("/plan.json"):
            steps.append(("plan", [op["src"] for op in json.loads(data)["ops"] if op["op"] == "replace"]))
        return put_if_absent(store, key, data)

    check = Lease.check

    def spy_check(lease: Lease) -> None:
        steps.append(("lease checked", []))
        check(lease)

    monkeypatch.setattr(LocalStore, "sync", spy_sync)
    monkeypatch.setattr(LocalStore, "put_if_absent", spy_put_if_absent)
    monkeypatch.setattr(Lease, "check", spy_check)
    run_at(landing, warehouse)
    checked = max(n for n, (what, _) in enumerate(steps) if what == "lease checked")
    (plan_step, published), *_ = [(n, keys) for n, (what, keys) in enumerate(steps) if what == "plan"]
    synced = {key for what, keys in steps[:checked] if what == "sync" for key in keys}
    assert len(published) > 6 and set(published) <= synced  # events, messages, funnels, staged copy, …
    assert checked == plan_step - 1  # the plan follows the last check of the lease at once


def test_a_run_that_fails_before_commit_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(3)))
    run_at(landing, warehouse)
    files_before = {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()}
    write(landing, "b.json", day_file_records(2, range(3)))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Journal, "commit", broken)
    with pytest.raises(RuntimeError):
        run_at(landing, warehouse)
    files_after = {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()}
    assert files_after == files_before


def test_second_concurrent_run_stops_with_a_clear_message(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    holding = (
        "import sys, time\n"
        "from etl.storage import open_store\n"
        "from etl.warehouse import Layout, writer_lock\n"
        "with writer_lock(Layout(open_store(sys.argv[1])), 'holding-run'):\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holding, str(warehouse)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(WarehouseBusy, match="holding-run") as busy:
            run(Settings(landing, warehouse))
        assert f"pid {holder.pid}" in str(busy.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = run(Settings(landing, warehouse))  # its holder died: the lock is taken over
    assert result.exit_code == 0 and any("holding-run" in note for note in result.notes)
    assert not (warehouse / "_state" / "lock.json").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = warehouse / "_state" / "lock.json"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"run_id": "old-run", "pid": dead.pid, "host": os.uname().nodename}))
    result = run_at(landing, warehouse)
    assert result.exit_code == 0 and any("old-run" in note for note in result.notes)
    assert not lock.exists()


def test_a_lock_naming_this_process_is_a_dead_process_with_the_same_pid(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    lock = warehouse / "_state" / "lock.json"
    lock.parent.mkdir(parents=True)  # as a container's pid 1 leaves it, and the next pid 1 finds it
    lock.write_text(json.dumps({"run_id": "before-restart", "pid": os.getpid(), "host": os.uname().nodename}))
    result = run_at(landing, warehouse)
    assert result.exit_code == 0 and any("before-restart" in note for note in result.notes)


def test_a_run_of_this_process_holding_the_warehouse_is_not_taken_over(tmp_path: Path) -> None:
    from etl.storage import open_store
    from etl.warehouse import Layout, writer_lock

    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    with writer_lock(Layout(open_store(warehouse)), "run-on-another-thread"), pytest.raises(WarehouseBusy):
        run(Settings(landing, warehouse))
