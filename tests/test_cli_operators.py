"""What an operator sees: progress bars on a terminal, plain or JSON log lines elsewhere, summaries."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from etl.cli.progress import progress_bars
from etl.pipeline import run
from etl.settings import Settings
from tests.helpers import day_file_records, record, write

ROOT = Path(__file__).resolve().parents[1]


def etl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etl", *args], capture_output=True, text=True, cwd=ROOT, check=False)


def landing_with_problems(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    write(landing, "a.json", [*day_file_records(1, range(3)), record(event="Message Opened"), record(ts="later")])
    write(landing, "b.json", '{"id": "x" "event": "Message Sent"}')
    return landing


def test_plain_log_lines_off_a_terminal(tmp_path: Path) -> None:
    done = etl("run", "--landing", str(landing_with_problems(tmp_path)), "--warehouse", str(tmp_path / "wh"))
    lines = done.stderr.strip().splitlines()
    assert lines and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) ", line) for line in lines)
    assert "\x1b[" not in done.stderr + done.stdout  # no colours or bars in a log file
    assert any("read a.json: 8 records, 2 quarantined" in line for line in lines)


def test_summary_names_files_records_dates_reasons_time_and_manifest(tmp_path: Path) -> None:
    done = etl("run", "--landing", str(landing_with_problems(tmp_path)), "--warehouse", str(tmp_path / "wh"))
    assert done.returncode == 3
    out = done.stdout
    assert "files: 2 new, 0 reprocessed, 0 already ingested, 1 rejected" in out
    assert re.search(r"total\s+│\s+│\s+9\s+│\s+6\s+│\s+3\s+│\s+0", out)
    assert "event dates rebuilt: 1 (2024-05-01 … 2024-05-01)" in out
    assert "quarantine reasons: " in out and "unknown_event 1" in out and "invalid_timestamp 1" in out
    assert re.search(r"in \d+\.\d s; manifest: .*_runs/.*\.json", out)


def test_json_log_lines(tmp_path: Path) -> None:
    done = etl(
        "run",
        "--landing",
        str(landing_with_problems(tmp_path)),
        "--warehouse",
        str(tmp_path / "wh"),
        "--log-format",
        "json",
    )
    records = [json.loads(line) for line in done.stderr.strip().splitlines()]
    assert {"time", "level", "message"} <= set(records[0])
    finished = [r for r in records if r.get("run_id")]
    assert finished and finished[-1]["read"] == 9 and finished[-1]["quarantined"] == 3


def test_quiet_prints_nothing_but_problems(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    done = etl("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "-q")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_verbose_logs_each_step(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    done = etl("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "-v")
    assert "DEBUG reading a.json" in done.stderr


def test_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(50)))
    write(landing, "b.ndjson.gz", "".join(json.dumps(r) + "\n" for r in day_file_records(2, range(50))))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with progress_bars(console, enabled=True) as hooks:
        run(Settings(landing, tmp_path / "wh"), progress=hooks)
    drawn = screen.getvalue()
    for label in ("files", "bytes read", "dates"):
        assert label in drawn
    assert "2/2" in drawn and "━" in drawn


def test_no_bars_when_disabled() -> None:
    with progress_bars(Console(file=io.StringIO()), enabled=False) as hooks:
        hooks.on_files(3, 100)
        hooks.on_bytes(10)


def test_every_command_help_has_an_example() -> None:
    for command in ("run", "reprocess", "validate", "metrics", "report", "contract"):
        assert "Example: etl " + command in etl(command, "--help").stdout.replace("\n", " ")


def test_shell_completion_is_offered() -> None:
    assert "--install-completion" in etl("--help").stdout
    shown = subprocess.run(
        [sys.executable, "-m", "etl", "--show-completion", "bash"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert shown.returncode == 0 and "complete" in shown.stdout


def test_the_etl_process_allocates_arrow_memory_from_the_c_heap() -> None:
    probe = "import pyarrow as pa; from etl.cli.process import use_lean_memory; use_lean_memory(); "
    probe += "print(pa.default_memory_pool().backend_name)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert shown.stdout.strip() == "system"
