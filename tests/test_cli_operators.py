"""What an operator sees: progress bars on a terminal, plain or JSON log lines elsewhere, summaries.

Commands run in this process through typer's CliRunner (`invoke`): stdout and stderr are captured separately
and neither is a terminal, as under cron. One smoke test starts a real process:
- test_the_etl_process_allocates_arrow_memory_from_the_c_heap: it changes Arrow's memory pool and glibc's
  arena limit for the whole process, which must not happen to the test process.
The real `etl run` and failure smoke tests are in test_cli.py.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from etl.cli.progress import progress_bars
from etl.pipeline import run
from etl.settings import Settings
from tests.support.cli import ROOT, invoke, process_state
from tests.support.feeds import day_file_records, ndjson, record, write


@pytest.fixture(autouse=True)
def _nothing_leaks() -> Iterator[None]:
    with process_state():
        yield


def landing_with_problems(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    write(landing, "a.json", [*day_file_records(1, range(3)), record(event="Message Opened"), record(ts="later")])
    write(landing, "b.json", '{"id": "x" "event": "Message Sent"}')
    return landing


def test_plain_log_lines_off_a_terminal(tmp_path: Path) -> None:
    done = invoke("run", "--landing", str(landing_with_problems(tmp_path)), "--warehouse", str(tmp_path / "wh"))
    lines = done.stderr.strip().splitlines()
    assert lines and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) ", line) for line in lines)
    assert "\x1b[" not in done.stderr + done.stdout  # no colours or bars in a log file
    assert any("read a.json: 8 records, 2 quarantined" in line for line in lines)


def test_summary_names_files_records_dates_reasons_time_and_manifest(tmp_path: Path) -> None:
    done = invoke("run", "--landing", str(landing_with_problems(tmp_path)), "--warehouse", str(tmp_path / "wh"))
    assert done.exit_code == 3
    out = done.stdout
    assert "files: 2 new, 0 reprocessed, 0 already ingested, 1 rejected" in out
    assert re.search(r"total\s+│\s+│\s+9\s+│\s+6\s+│\s+3\s+│\s+0", out)
    assert "event dates rebuilt: 1 (2024-05-01 … 2024-05-01)" in out
    assert "quarantine reasons: " in out and "unknown_event 1" in out and "invalid_timestamp 1" in out
    assert re.search(r"in \d+\.\d s; manifest: .*_runs/.*\.json", out)


def test_json_log_lines(tmp_path: Path) -> None:
    done = invoke(
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
    done = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "-q")
    assert done.exit_code == 0 and done.stdout == "" and done.stderr == ""


def test_verbose_logs_each_step(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(2)))
    done = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "-v")
    assert "DEBUG reading a.json" in done.stderr


def test_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    # Not through the command: rich decides whether a console may redraw lines when the console is made,
    # which for the command's console was at import, off a terminal.
    landing = tmp_path / "landing"
    write(landing, "a.json", day_file_records(1, range(50)))
    write(landing, "b.ndjson.gz", ndjson(day_file_records(2, range(50))))
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
        assert "Example: etl " + command in invoke(command, "--help").stdout.replace("\n", " ")


def test_shell_completion_is_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "--install-completion" in invoke("--help").stdout
    # Typer otherwise ignores the shell named here and asks shellingham for the parent shell, which fails
    # under a runner that is not started from a shell ("Shell  not supported."). Set while the command is
    # built: CliRunner's own `env` applies only after that.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    shown = invoke("--show-completion", "bash")
    assert shown.exit_code == 0 and "complete" in shown.stdout
    assert "_ETL_COMPLETE=complete_bash" in shown.stdout  # the variable the `etl` program answers to


def test_the_etl_process_allocates_arrow_memory_from_the_c_heap() -> None:
    probe = "import pyarrow as pa; from etl.cli.process import use_lean_memory; use_lean_memory(); "
    probe += "print(pa.default_memory_pool().backend_name)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert shown.stdout.strip() == "system"
