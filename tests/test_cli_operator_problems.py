"""What an operator must not miss, run as an operator runs the command: non-zero exits say why even
with --quiet, a file that cannot be read is said every run, a location that is not a warehouse is an
error, notes say what is true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import deny_reading
from tests.support.cli import invoke, process_state
from tests.support.feeds import busy_landing_zone, day_file_records, record, write

ROOT = Path(__file__).resolve().parents[1]


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
    deny_reading(monkeypatch, "locked.json")
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
    files_before = {p: p.read_bytes() for p in wh.rglob("*") if p.is_file()}
    done = invoke(
        "reprocess", "--from", "2020-01-01", "--to", "2020-01-31", "--landing", str(landing), "--warehouse", str(wh)
    )
    assert done.exit_code == 0
    nothing = "No events between 2020-01-01 and 2020-01-31: nothing was rebuilt; the warehouse is unchanged."
    assert done.stdout.startswith(nothing) and "reprocessed" not in done.stdout
    assert {p: p.read_bytes() for p in wh.rglob("*") if p.is_file()} == files_before


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


def test_a_copy_within_one_run_is_named_as_one(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "again/a.json", day_file_records(1, range(2)))
    done = run(landing, tmp_path / "wh")
    assert "files: 1 new, 0 reprocessed, 0 already ingested, 1 copies of another file, 0 rejected" in done.stdout
    assert "copy of a.json" in done.stdout


def test_what_was_found_is_said(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    landing.mkdir()
    empty = run(landing, wh)
    assert empty.exit_code == 0
    assert empty.stdout.startswith(f"No feed files in the landing zone {landing} (it holds no *.json")
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "feed.csv", "id,event\n")
    first = run(landing, wh)
    assert (
        "note: feed.csv: skipped, not a feed file (*.json, *.ndjson or *.jsonl (each optionally .gz), or *.avro)"
        in first.stdout
    )
    again = run(landing, wh)
    assert again.stdout.startswith("Nothing new in the landing zone (1 feed files, all ingested before)")
    assert "feed.csv" not in again.stdout  # said once
    missing = invoke("validate", str(tmp_path / "no-such-folder"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_validate_on_a_folder_without_feed_files_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = invoke("validate", str(tmp_path / "empty"))
    assert done.exit_code == 0
    assert f"No feed files found in {tmp_path / 'empty'}" in done.stdout
    assert "All records meet the contract" not in done.stdout


def test_json_logs_carry_the_summary_and_per_file_counts(tmp_path: Path) -> None:
    import json

    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", day_file_records(1, range(1)))  # a duplicate of a.json's first user
    done = run(landing, wh, "--log-format", "json")
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    per_file = {line["file"]: line for line in lines if "loaded" in line and "file" in line}
    assert (per_file["b.json"]["loaded"], per_file["b.json"]["duplicates"]) == (0, 2)
    assert all(line["run_id"] for line in per_file.values())
    again = run(landing, wh, "--log-format", "json")
    [nothing] = [json.loads(line) for line in again.stderr.splitlines()]
    assert nothing["message"].startswith("Nothing new in the landing zone") and again.stdout == ""


def test_help_and_messages_say_what_is_meant(tmp_path: Path) -> None:
    help_text = invoke("run", "--help", env={"COLUMNS": "140"}).stdout
    quiet_line = next(line for line in help_text.splitlines() if "--quiet" in line)
    assert "<bool>" not in quiet_line  # a flag takes no value
    assert "{PATH|URI}..." in invoke("validate", "--help", env={"COLUMNS": "140"}).stdout
    impossible = invoke("reprocess", "--from", "2024-02-30", "--to", "2024-03-01", env={"COLUMNS": "200"})
    assert impossible.exit_code == 2 and "2024-02-30 is not a date (day is out of range for month)" in impossible.stderr
    assert invoke("validate", "--show", "-1", str(tmp_path)).exit_code == 2
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    run(landing, tmp_path / "wh", "-q")
    folder = invoke("report", "--out", str(tmp_path), "--warehouse", str(tmp_path / "wh"))
    assert folder.exit_code == 2 and "is a folder: give the report's file name" in folder.stderr
    assert ".." not in invoke("contract").stdout.replace("...", "")


def test_the_quarantine_line_says_how_many_reasons_it_leaves_out(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    bad = [
        record(event="nope"),
        record(ts="later"),
        record(user=""),
        {"event": "Message Sent", "timestamp": "2024-05-01T10:00:00Z"},
        record(channel=[1]),
        {"id": "a", "userId": "b", "event": "Message Sent"},
        {"id": "u", "timestamp": "2024-05-01T10:00:00Z"},
    ]
    write(landing, "a.ndjson", "".join(__import__("json").dumps(r) + "\n" for r in [*bad, record("ok")]) + "{oops\n")
    done = run(landing, tmp_path / "wh")
    line = next(line for line in done.stdout.splitlines() if line.startswith("quarantine reasons:"))
    assert line.count(",") == 4 and " and " in line and "more (see the manifest)" in line


def test_parquet_files_declare_the_columns_the_contract_says_are_never_null(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from contracts import DailyFunnel, Event, LifetimeFunnel, QuarantineRecord, required_columns

    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", [*day_file_records(1, range(2)), record("u3", event="nope")])
    assert run(landing, wh, "-q").exit_code == 0
    for folder, model in (
        ("events", Event),
        ("quarantine", QuarantineRecord),
        ("campaign_daily_funnel", DailyFunnel),
        ("campaign_funnel", LifetimeFunnel),
    ):
        [path] = list((wh / folder).rglob("*.parquet"))
        schema = pq.read_schema(path)
        required = set(required_columns(model))
        assert {field.name for field in schema if not field.nullable} == required, folder
        assert (required and len(required) < len(schema.names)) or folder == "quarantine", folder


def test_make_help_aligns_every_target_and_make_validate_explains_exit_3(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from tests.support.cli import ROOT

    if shutil.which("make") is None or not (ROOT / ".venv" / ".installed").exists():
        pytest.skip("needs make and the project's .venv (make test creates both)")
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    starts = {line.index(line.split()[1]) for line in listed.splitlines() if line.strip()}
    assert len(starts) == 1 and "format" in listed  # every description in one column
    write(tmp_path, "bad.json", [record("u1", event="nope")])
    done = subprocess.run(
        ["make", "-s", "validate", f"LANDING={tmp_path}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2  # make's own code for a failed recipe
    assert "exit 3 means records that break the contract were found" in done.stdout


def test_every_json_log_line_of_a_run_has_its_run_id(tmp_path: Path) -> None:
    import json

    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    write(landing, "b.json", "this is not json at all")
    done = run(landing, tmp_path / "wh", "--log-format", "json")
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all(line.get("run_id") for line in lines)
    assert any(line["level"] == "warning" for line in lines)


def test_a_location_this_version_cannot_use_is_a_usage_error(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    done = invoke("run", "--landing", str(landing), "--warehouse", "ftp://host/warehouse")
    assert done.exit_code == 2 and "ftp:// locations are not supported by this version" in done.stderr


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def workers_of(pid: int) -> list[int]:
    """The worker processes `pid` started (multiprocessing's, not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers in /proc (Linux)")
@pytest.mark.parametrize(("stop", "to_its_group"), [("SIGINT", True), ("SIGTERM", False)])
def test_an_interrupted_run_stops_its_workers_at_once_and_leaves_the_warehouse_as_it_was(
    tmp_path: Path, stop: str, to_its_group: bool
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group, workers included) and a scheduler stopping the
    job (SIGTERM to the driver alone), while two workers read."""
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    write(landing, "a.json", day_file_records(1, range(20)))
    assert run(landing, warehouse, "-q").exit_code == 0
    before = files_of(warehouse)
    busy_landing_zone(landing)
    command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse)]
    driver = subprocess.Popen(
        [*command, "--workers", "2", "-q"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # (pytest's children may ignore it)
    )
    try:
        deadline = time.monotonic() + 120
        while not list(warehouse.glob("_state/journal/*/_state/staged/*.parquet")):  # a file read: workers at work
            assert driver.poll() is None and time.monotonic() < deadline, "the run ended, or never read a file"
            time.sleep(0.02)
        workers = workers_of(driver.pid)
        signalled = getattr(signal, stop)
        os.killpg(driver.pid, signalled) if to_its_group else driver.send_signal(signalled)
        _, stderr = driver.communicate(timeout=120)
    finally:  # (a failed test must not leave the run working on)
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()

    assert driver.returncode == 1, stderr
    assert stderr.decode().rstrip().endswith("etl: interrupted; nothing was committed"), stderr
    assert b"Traceback" not in stderr
    assert files_of(warehouse) == before  # no staging, no lease left; nothing published
    assert len(workers) == 2
    while any(alive(pid) for pid in workers):  # (they end with the driver or before it)
        assert time.monotonic() < deadline, [pid for pid in workers if alive(pid)]
        time.sleep(0.02)
