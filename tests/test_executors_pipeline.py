"""The same rows on every executor (SPEC §7, §8): one worker, two worker processes and Ray tasks give
the same tables; a worker killed in the middle of a unit is retried and changes nothing."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.executors import InProcess
from etl.pipeline import reprocess, run
from etl.settings import Settings, Tuning
from etl.storage.store import LocalStore
from tests.helpers import assert_accounted, assert_same_tables, day_file_records, fixed_clock, record, run_at, write
from tests.support.cli import invoke

WORKERS = {"workers": 2}
ROOT = Path(__file__).resolve().parents[1]


def landing_zone(folder: Path) -> Path:
    """Files over four event dates, with late data, duplicates, bad records and messages that move."""
    landing = folder / "landing"
    write(landing, "a.json", [*day_file_records(1, range(0, 30)), record("x", "Message Oops")])
    write(landing, "b.json", [*day_file_records(2, range(10, 40), "C2"), *day_file_records(1, range(25, 35))])
    write(landing, "c.json", day_file_records(3, range(0, 20)))
    write(
        landing,
        "d.json",
        [record(f"u{n}", "Message Viewed", "2024-05-04T09:00:00Z", campaignId="C1") for n in range(8)],
    )
    write(
        landing,
        "e.json",
        [record(f"u{n}", "Message Sent", "2024-04-30T09:00:00Z", campaignId="C2") for n in range(12, 16)],
    )
    return landing


def test_two_worker_processes_give_the_tables_of_one(tmp_path: Path) -> None:
    landing = landing_zone(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    run_at(landing, one)
    result = run_at(landing, two, **WORKERS)
    assert_accounted(result.document)
    assert_same_tables(one, two)
    for warehouse, options in ((one, {}), (two, WORKERS)):
        reprocess(Settings(landing, warehouse, **options), date(2024, 5, 1), date(2024, 5, 2), clock=fixed_clock())
    assert_same_tables(one, two)


def units_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The units of work every in-process map runs, by name (filled as they run)."""
    names: list[str] = []
    real_map = InProcess.map

    def recording_map(self: InProcess, function: Any, jobs: Any, *, describe: Any, **options: Any) -> Any:
        names.extend(describe(job).split(" (")[0] for job in jobs)
        return real_map(self, function, jobs, describe=describe, **options)

    monkeypatch.setattr(InProcess, "map", recording_map)
    return names


@pytest.mark.parametrize("split", [False, True], ids=["a pass per share", "split into objects per share"])
def test_counts_in_shares_run_in_units_and_two_workers_give_the_tables_of_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    # Messages and lifetime funnel counted in shares of 40 rows, a pass each; or in shares of 10 with
    # at most 2 passes: split first, by units of work (none of it in the driver), then counted.
    landing = landing_zone(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    tuning = Tuning(share_rows=10, max_passes=2, split_rows=60) if split else Tuning(share_rows=40)
    units = units_run(monkeypatch)
    removed: list[str] = []
    delete_prefix = LocalStore.delete_prefix

    def delete_prefix_noted(store: LocalStore, prefix: str) -> None:
        removed.append(prefix.rsplit("/", 1)[1])
        delete_prefix(store, prefix)

    monkeypatch.setattr(LocalStore, "delete_prefix", delete_prefix_noted)
    run_at(landing, one, tuning=tuning)
    for count in ("messages share", "lifetime share"):  # (a share without users has no unit)
        assert len({unit for unit in units if unit.startswith(count)}) >= 2
    splits = [unit for unit in units if unit.startswith("split of")]
    split_objects_removed = [prefix for prefix in removed if prefix.startswith("split-")]
    if split:  # (several runs each; their objects removed once counted, before the run's journal goes)
        assert len(splits) >= 4 and split_objects_removed == ["split-messages", "split-lifetime"]
    else:
        assert splits == split_objects_removed == []
    assert_accounted(run_at(landing, two, tuning=tuning, **WORKERS).document)
    assert_same_tables(one, two)


def test_a_worker_killed_in_the_middle_of_a_unit_is_retried_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = landing_zone(tmp_path)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run_at(landing, clean)
    monkeypatch.setenv("ETL_KILL_AT", "staged")  # a worker dies right after staging a file ...
    monkeypatch.setenv("ETL_KILL_ONCE", str(tmp_path / "killed-once"))  # ... once: its retry lives
    result = run_at(landing, killed, **WORKERS)
    assert (tmp_path / "killed-once").exists()  # a worker was killed
    assert result.exit_code == 0
    assert_same_tables(clean, killed)


def test_an_executor_that_cannot_be_used_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = landing_zone(tmp_path)
    unknown = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "--executor", "spark")
    assert unknown.exit_code == 2 and "--executor spark is not known" in unknown.stderr
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    no_ray = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "--executor", "ray")
    assert no_ray.exit_code == 2 and "pip install 'outbound-events-etl[ray]'" in no_ray.stderr
    assert not (tmp_path / "wh").exists()  # said before anything was written
    in_memory = invoke("run", "--landing", str(landing), "--warehouse", "memory://wh", "--executor", "ray")
    assert in_memory.exit_code == 2 and "memory store" in in_memory.stderr


@pytest.mark.heavy
@pytest.mark.parametrize("scenario", ["pipeline", "pipeline_cluster_s3"])
def test_ray_gives_the_tables_of_one_process(tmp_path: Path, scenario: str) -> None:
    """`etl run --executor ray` from the command line (a Ray started for the run), and Ray's two-node
    test cluster with landing and warehouse in the S3 test server (no shared local disk), each in a
    network namespace with only loopback."""
    from tests.support.ray_cluster import run_scenario

    landing = landing_zone(tmp_path)
    local = tmp_path / "local"
    run_at(landing, local)
    found: dict[str, Any] = run_scenario(scenario, tmp_path)
    assert found["interfaces"] == ["lo"]
    assert found["exit_code"] == 0, found.get("stderr")
    if scenario == "pipeline":  # the command line's summary of the run
        assert "done in" in found["stdout"] and "quarantined" in found["stdout"]
    if scenario == "pipeline_cluster_s3":
        assert len(found["nodes"]) == 2 and len(found["task_nodes"]) == 2  # units ran on both nodes
    assert_same_tables(local, tmp_path / "wh-ray")


def test_a_ray_run_stopped_by_sigterm_says_so_and_leaves_the_warehouse_and_no_ray_behind(tmp_path: Path) -> None:
    """A scheduler stopping `etl run --executor ray` (SIGTERM to the driver) while its tasks read: Ray's
    own answer to SIGTERM (exit at once, with a stack trace) must not replace the command's."""
    from tests.support.ray_cluster import run_scenario

    found: dict[str, Any] = run_scenario("interrupted", tmp_path)
    assert found["interfaces"] == ["lo"] and found["read_before_the_signal"]
    assert found["exit_code"] == 1, found["stderr"]
    assert found["stderr"].rstrip().endswith("etl: interrupted; nothing was committed"), found["stderr"]
    assert "Traceback" not in found["stderr"] and "SIGTERM" not in found["stderr"], found["stderr"]
    assert found["files_left"] == [] and found["ray_processes_left"] == []


def test_a_driver_killed_while_its_workers_run_leaves_no_worker_behind_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    landing = landing_zone(tmp_path)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run_at(landing, clean)
    command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(killed), "-q"]
    env = {**os.environ, "ETL_KILL_AT": "commit", "ETL_WORKERS": "2"}
    # Its workers would hold the output pipes open if they outlived it: then this would time out.
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    result = run(Settings(landing, killed, workers=2))
    assert result.exit_code == 0
    assert_same_tables(clean, killed)
