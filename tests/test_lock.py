"""The warehouse lease, on local disk, in memory and in S3 (the test server): one writer at a time, renewed
while it works, taken over only once it has ended. (A whole run meeting a held warehouse: test_crash_safety.)"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from etl import storage
from etl.errors import UsageError, WarehouseBusy
from etl.storage import Store, open_store
from etl.warehouse import Layout, writer_lock
from etl.warehouse.lock import LeaseLost, hold_warehouse

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["local", "memory", "s3"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    if request.param == "local":
        yield Layout(open_store(tmp_path / "wh"))
        return
    if request.param == "s3":
        yield Layout(open_store(request.getfixturevalue("s3_location")))
        return
    location = f"memory://lease-{secrets.token_hex(4)}"
    yield Layout(open_store(location))
    storage.forget_memory(location)


def lease_of(store: Store, run_id: str, host: str, expires: datetime | None, pid: int = 1) -> bytes:
    when = expires.isoformat() if expires else None
    return json.dumps({"run_id": run_id, "pid": pid, "host": host, "expires": when}).encode()


def try_to_hold(layout: Layout, run_id: str) -> None:
    with hold_warehouse(layout, run_id):
        pass


def eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_second_run_is_told_who_holds_the_warehouse_and_until_when(layout: Layout) -> None:
    with hold_warehouse(layout, "first-run") as lease:
        assert lease.notes == [] and not lease.lost
        with pytest.raises(WarehouseBusy) as busy:
            try_to_hold(layout, "second-run")
        message = str(busy.value)
        assert f"run first-run (pid {os.getpid()} on {socket.gethostname()})" in message
        assert "lease ends at" in message and "UTC (in 60 s)" in message
        lease.check()
    assert layout.store.head(layout.lock) is None  # released: removed
    with writer_lock(layout, "second-run") as notes:
        assert notes == []


def test_the_lease_is_renewed_while_the_run_works(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "0.6")
    with hold_warehouse(layout, "long-run") as lease:
        first = json.loads(layout.store.read_bytes(layout.lock))["expires"]
        time.sleep(1.5)  # more than two lease lengths
        assert not lease.lost
        assert json.loads(layout.store.read_bytes(layout.lock))["expires"] > first
        with pytest.raises(WarehouseBusy, match="long-run"):
            try_to_hold(layout, "other-run")
        lease.check()


def test_a_lease_of_another_machine_is_taken_over_only_once_it_has_expired(layout: Layout) -> None:
    store = layout.store
    store.put(layout.lock, lease_of(store, "remote-run", "other-host", datetime.now(UTC) + timedelta(seconds=30)))
    with pytest.raises(WarehouseBusy, match=r"remote-run \(pid 1 on other-host\), whose lease ends at .* \(in 30 s\)"):
        try_to_hold(layout, "local-run")
    store.put(layout.lock, lease_of(store, "remote-run", "other-host", datetime.now(UTC) - timedelta(seconds=1)))
    with hold_warehouse(layout, "local-run") as lease:
        assert lease.notes == [
            "took over the lock of run remote-run (pid 1 on other-host), whose lease expired without being renewed"
        ]
        assert json.loads(store.read_bytes(layout.lock))["run_id"] == "local-run"


def test_a_lock_of_an_earlier_version_lasts_a_lease_from_when_it_was_written(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "1.5")  # (S3 gives the time an object was written in whole seconds)
    layout.store.put(layout.lock, json.dumps({"run_id": "old-run", "pid": 1, "host": "other-host"}).encode())
    with pytest.raises(WarehouseBusy, match="old-run"):
        try_to_hold(layout, "new-run")
    written = layout.store.head(layout.lock).modified  # type: ignore[union-attr]
    time.sleep(max(0, (written + timedelta(seconds=1.6) - datetime.now(UTC)).total_seconds()))
    with hold_warehouse(layout, "new-run") as lease:
        assert "old-run" in lease.notes[0]


def test_a_holder_that_died_on_this_host_is_taken_over_at_once(layout: Layout) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    later = datetime.now(UTC) + timedelta(seconds=60)
    layout.store.put(layout.lock, lease_of(layout.store, "dead-run", socket.gethostname(), later, dead.pid))
    with hold_warehouse(layout, "next-run") as lease:
        assert lease.notes == [f"took over the lock left by run dead-run (pid {dead.pid} on {socket.gethostname()}), "
                               "which is no longer running"]  # fmt: skip


def test_a_run_that_lost_its_lease_must_not_commit(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "0.3")
    with hold_warehouse(layout, "slow-run") as lease:
        # As if this run had been suspended past its lease, and another run took the warehouse over:
        taker = lease_of(layout.store, "taker-run", "other-host", datetime.now(UTC) + timedelta(seconds=60))
        layout.store.put(layout.lock, taker)
        assert eventually(lambda: lease.lost)
        with pytest.raises(LeaseLost, match=r"slow-run lost the warehouse .* to run taker-run \(pid 1 on other-host\)"):
            lease.check()
    assert json.loads(layout.store.read_bytes(layout.lock))["run_id"] == "taker-run"  # not removed by the loser


def test_a_lease_that_cannot_be_renewed_in_time_is_lost(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "0.3")

    def unreachable(*args: object) -> str | None:
        raise storage.StoreUnavailable("the object store failed")

    with hold_warehouse(layout, "cut-off-run") as lease:
        monkeypatch.setattr(layout.store, "replace_if_unchanged", unreachable)
        assert eventually(lambda: lease.lost)
        with pytest.raises(LeaseLost, match="could not renew its lease"):
            lease.check()
        monkeypatch.undo()


def test_writer_lock_raises_a_lease_lost_while_its_block_ran(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "0.3")
    with pytest.raises(LeaseLost), writer_lock(layout, "slow-run"):
        layout.store.put(layout.lock, lease_of(layout.store, "taker-run", "other-host", None))
        time.sleep(0.5)


def test_of_two_runs_taking_over_an_expired_lease_one_wins(layout: Layout) -> None:
    expired = datetime.now(UTC) - timedelta(seconds=5)
    layout.store.put(layout.lock, lease_of(layout.store, "gone-run", "other-host", expired))
    outcomes: list[str] = []
    both_tried = threading.Barrier(2)

    def take(run_id: str) -> None:
        try:
            with hold_warehouse(layout, run_id):
                outcomes.append("held")
                both_tried.wait(timeout=10)
        except WarehouseBusy:
            outcomes.append("busy")
            both_tried.wait(timeout=10)

    runs = [threading.Thread(target=take, args=(f"run-{n}",)) for n in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert sorted(outcomes) == ["busy", "held"]


def test_the_lease_length_comes_from_the_environment(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_LEASE_SECONDS", "120")
    with hold_warehouse(layout, "run"):
        expires = datetime.fromisoformat(json.loads(layout.store.read_bytes(layout.lock))["expires"])
        assert 115 < (expires - datetime.now(UTC)).total_seconds() <= 120
    monkeypatch.setenv("ETL_LEASE_SECONDS", "soon")
    with pytest.raises(UsageError, match="ETL_LEASE_SECONDS must be a positive number of seconds, not 'soon'"):
        try_to_hold(layout, "run")


def test_a_holder_on_another_process_is_named_and_its_lease_taken_over_when_it_dies(s3_location: str) -> None:
    holding = (
        "import sys, time\n"
        "from etl.storage import open_store\n"
        "from etl.warehouse import Layout, writer_lock\n"
        "with writer_lock(Layout(open_store(sys.argv[1])), 'holding-run'):\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "ETL_LEASE_SECONDS": "2"}
    holder = subprocess.Popen(
        [sys.executable, "-c", holding, s3_location], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
    )
    layout = Layout(open_store(s3_location))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        time.sleep(2.5)  # longer than a lease: renewed meanwhile
        with pytest.raises(WarehouseBusy, match=f"holding-run \\(pid {holder.pid} on "):
            try_to_hold(layout, "second-run")
    finally:
        holder.kill()
        holder.wait()
    with hold_warehouse(layout, "second-run") as lease:  # its holder died on this host: at once
        assert "holding-run" in lease.notes[0] and "no longer running" in lease.notes[0]
