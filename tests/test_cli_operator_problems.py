"""What an operator must not miss, run as an operator runs the command: non-zero exits say why even
with --quiet, a file that cannot be read is said every run, a location that is not a warehouse is an
error, notes say what is true."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etl import storage
from tests.support.cli import invoke, process_state
from tests.support.feeds import day_file_records, record, write


@pytest.fixture(autouse=True)
def _nothing_leaks() -> Iterator[None]:
    with process_state():
        yield


def run(landing: Path, warehouse: Path, *options: str) -> Any:
    return invoke("run", "--landing", str(landing), "--warehouse", str(warehouse), *options)


def test_quiet_run_that_exits_3_says_why_on_stderr(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", "this is not json at all")
    done = run(landing, tmp_path / "wh", "-q")
    assert done.exit_code == 3 and done.stdout == ""
    assert "WARNING rejected b.json: " in done.stderr
    assert "done, with rejected files (exit 3)" in done.stderr


def test_quiet_run_over_the_reject_rate_says_so(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", [record("u1"), record("u2", event="nope")])
    done = run(landing, tmp_path / "wh", "-q", "--max-reject-rate", "0.05")
    assert done.exit_code == 3 and done.stdout == ""
    assert "50.0% of records were quarantined (limit 5.0%) (exit 3)" in done.stderr


def test_a_file_that_cannot_be_read_is_a_warning_on_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "ok.json", [record("u1")])
    write(landing, "locked.json", [record("u2")])
    real_hash, real_bytes = storage.sha256_of, storage.iter_bytes

    def denied(store: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if key == "locked.json":
            raise PermissionError(13, "Permission denied", key)
        return (real_hash if not args and not kwargs else real_bytes)(store, key, *args, **kwargs)

    monkeypatch.setattr(storage, "sha256_of", denied)
    monkeypatch.setattr(storage, "iter_bytes", denied)
    for _ in range(2):  # the first run, and a later one with nothing else new
        done = run(landing, wh, "-q")
        assert done.exit_code == 0 and done.stdout == ""
        assert "WARNING locked.json: skipped, cannot be read (Permission denied)" in done.stderr


def test_quiet_with_nothing_new_prints_nothing(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    assert run(landing, tmp_path / "wh", "-q").exit_code == 0
    again = run(landing, tmp_path / "wh", "-q")
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")


@pytest.mark.parametrize(
    "command",
    [
        ["metrics"],
        ["metrics", "--format", "csv"],
        ["metrics", "--from", "2024-05-01", "--to", "2024-05-02"],
        ["report"],
    ],
)
def test_reading_a_location_that_is_not_a_warehouse_is_an_error(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "wharehouse"
    done = invoke(*command, "--warehouse", str(typo))
    assert done.exit_code == 1 and done.stdout == ""
    assert done.stderr.startswith(f"etl: {typo} is not a warehouse")
    assert not typo.exists()  # nothing created


def test_metrics_with_a_reversed_range_is_a_usage_error(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    run(landing, tmp_path / "wh", "-q")
    done = invoke("metrics", "--from", "2024-05-07", "--to", "2024-05-01", "--warehouse", str(tmp_path / "wh"))
    assert done.exit_code == 2 and "--from 2024-05-07 is after --to 2024-05-01" in done.stderr


def test_content_changed_under_the_same_name_is_not_later_called_gone(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    run(landing, wh)
    write(landing, "a.json", day_file_records(1, range(3)))
    changed = run(landing, wh)
    assert "a.json: content changed since it was ingested; ingesting the new content" in changed.stdout
    assert "no longer in the landing zone" not in changed.stdout
    later = run(landing, wh)
    assert "Nothing new" in later.stdout and "no longer in the landing zone" not in later.stdout + later.stderr


def test_a_file_waiting_for_its_age_is_not_called_gone(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    path = write(landing, "a.json", day_file_records(1, range(2)))
    old = time.time() - 7200
    os.utime(path, (old, old))
    run(landing, wh, "--min-file-age", "3600")
    write(landing, "a.json", day_file_records(1, range(3)))  # rewritten just now: it waits
    waiting = run(landing, wh, "--min-file-age", "3600")
    assert "a.json: skipped for now, modified less than 3600 s ago" in waiting.stdout
    assert "no longer in the landing zone" not in waiting.stdout


def test_reprocess_of_a_range_without_events_says_so_and_changes_nothing(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", "this is not json at all")
    assert run(landing, wh, "-q").exit_code == 3
    runs = sorted((wh / "_runs").iterdir())
    done = invoke(
        "reprocess", "--from", "2020-01-01", "--to", "2020-01-31", "--landing", str(landing), "--warehouse", str(wh)
    )
    assert done.exit_code == 0
    assert done.stdout.startswith(
        "No events between 2020-01-01 and 2020-01-31: nothing was rebuilt; the warehouse is unchanged."
    )
    assert "reprocessed" not in done.stdout and sorted((wh / "_runs").iterdir()) == runs


def test_a_reprocess_summary_says_what_its_counts_are(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [*day_file_records(1, range(2)), *day_file_records(2, range(2))])
    run(landing, wh, "-q")
    done = invoke(
        "reprocess", "--from", "2024-05-01", "--to", "2024-05-01", "--landing", str(landing), "--warehouse", str(wh)
    )
    assert done.exit_code == 0 and "counts are of the whole files read again" in done.stdout


def test_text_that_is_not_json_is_called_so(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "notes.json", "this is not json at all\nnor this line\n")
    done = run(landing, tmp_path / "wh")
    assert done.exit_code == 3
    reason = "not JSON: `this is not json at all` at line 1, column 1 does not begin a JSON value"
    assert f"rejected notes.json: {reason}" in done.stdout
    assert "truncated" not in done.stdout
