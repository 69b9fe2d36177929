"""The command line end to end, as a user runs it.

Commands run in this process through typer's CliRunner (`invoke`). The smoke tests below start real
`python -m etl` processes instead, because what they check only exists in a real process:
- test_version_and_help: the `python -m etl` entry point starts and prints the version (`etl --version`).
- test_environment_variables_choose_the_folders: a whole `etl run -q` as cron runs it: the folders come from
  ETL_* variables handed down to a new process, and a quiet run writes nothing at all to stdout or stderr
  (in this process pytest would swallow a stray warning).
- test_failures_exit_1_without_traceback: the exit code and the one stderr sentence a shell sees when a run
  fails (the rest of that test runs in this process).
- test_the_polars_allocator_is_set_before_polars_loads: what jemalloc reads when polars is first imported, which
  happens once per process (the interpreter leaves as soon as polars is found). How the setting combines with a
  value already there is checked in this process.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import etl.cli
from etl import __version__
from etl.contract_docs import full_contract_markdown
from tests.support.cli import ROOT, etl_process, invoke, process_state
from tests.support.feeds import day_file_records, ndjson, record, write

COMMANDS = ("run", "reprocess", "validate", "metrics", "report", "contract")


@pytest.fixture(autouse=True)
def _nothing_leaks() -> Iterator[None]:
    with process_state():
        yield


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    write(path, "2024-05-01/a.json", [*day_file_records(1, range(3)), record(event="Message Opened")])
    write(path, "2024-05-02/b.ndjson", ndjson(day_file_records(2, range(2))))
    return path


def test_run_then_read_the_outputs(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    done = invoke("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert done.exit_code == 0, done.stderr
    assert "loaded" in done.stdout and "manifest" in done.stdout
    events = pl.scan_parquet(str(warehouse / "events" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert events.height == 10
    [manifest] = list((warehouse / "_runs").glob("*.json"))
    totals = json.loads(manifest.read_text())["totals"]
    assert (totals["read"], totals["loaded"], totals["quarantined"], totals["duplicates"]) == (11, 10, 1, 0)
    again = invoke("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert again.exit_code == 0 and "Nothing new" in again.stdout


def test_environment_variables_choose_the_folders(landing: Path, tmp_path: Path) -> None:
    """Smoke test: a real process, as cron runs it."""
    warehouse = tmp_path / "from-env"
    env = {**os.environ, "ETL_LANDING": str(landing), "ETL_WAREHOUSE": str(warehouse)}
    done = etl_process("run", "-q", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (warehouse / "campaign_funnel" / "part-0.parquet").is_file()
    assert len(list((warehouse / "_runs").glob("*.json"))) == 1


def test_rejected_file_exits_3(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "broken.json", '{"id": "A" "event": "Message Sent"}')
    write(landing, "fine.json", [record()])
    done = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"))
    assert done.exit_code == 3
    assert "rejected broken.json" in done.stdout


def test_validate_writes_nothing_and_exits_3_on_violations(landing: Path, tmp_path: Path) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    done = invoke("validate", str(landing))
    assert done.exit_code == 3
    assert "unknown_event" in done.stdout and "Message Opened" in done.stdout
    assert sorted(p for p in tmp_path.rglob("*")) == before
    clean = invoke("validate", str(landing / "2024-05-02" / "b.ndjson"))
    assert clean.exit_code == 0 and "All records meet the contract" in clean.stdout


def test_usage_errors_exit_2_with_one_sentence(tmp_path: Path) -> None:
    backwards = invoke("reprocess", "--from", "2024-05-02", "--to", "2024-05-01", "--landing", str(tmp_path))
    assert backwards.exit_code == 2 and "after" in backwards.stderr
    bad_date = invoke("reprocess", "--from", "yesterday", "--to", "2024-05-01")
    assert bad_date.exit_code == 2 and "Traceback" not in bad_date.stderr
    assert invoke("run", "--no-such-option").exit_code == 2
    assert invoke("metrics", "--format", "xml").exit_code == 2


def test_failures_exit_1_without_traceback(tmp_path: Path) -> None:
    missing = etl_process("run", "--landing", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh"))
    assert missing.returncode == 1  # smoke: the real process, as a shell sees it
    assert missing.stderr.startswith("etl: the landing zone") and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    in_process = invoke("run", "--landing", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh"))
    assert (in_process.exit_code, in_process.stderr) == (1, missing.stderr)
    not_there = invoke("validate", str(tmp_path / "missing.json"))
    assert not_there.exit_code == 2 and "does not exist" in not_there.stderr  # a usage error
    assert len(not_there.stderr.strip().splitlines()) == 1


def test_reprocess_command(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    assert invoke("run", "--landing", str(landing), "--warehouse", str(warehouse), "-q").exit_code == 0
    folders = ("--landing", str(landing), "--warehouse", str(warehouse))
    done = invoke("reprocess", "--from", "2024-05-01", "--to", "2024-05-01", *folders)
    assert done.exit_code == 0, done.stderr
    assert "reprocess" in done.stdout and "2024-05-01" in done.stdout
    empty = invoke("reprocess", "--from", "2020-01-01", "--to", "2020-01-02", *folders)
    assert empty.exit_code == 0 and "No events between 2020-01-01 and 2020-01-02" in empty.stdout


def test_metrics_formats_and_filters(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    assert invoke("run", "--landing", str(landing), "--warehouse", str(warehouse), "-q").exit_code == 0
    as_json = invoke("metrics", "--warehouse", str(warehouse), "--format", "json")
    rows = json.loads(as_json.stdout)
    # Day 2's events carry no message id: they belong to the users' messages sent on day 1.
    assert [(r["campaign_id"], r["messages"], r["sent"], r["delivered"]) for r in rows] == [("C1", 3, 3, 3)]
    as_csv = invoke("metrics", "--warehouse", str(warehouse), "--format", "csv", "--from", "2024-05-01")
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0].startswith("send_date,campaign_id,messages,")
    assert len(lines) == 2 and lines[1].startswith("2024-05-01,C1,3,")
    later = invoke("metrics", "--warehouse", str(warehouse), "--format", "csv", "--from", "2024-05-02")
    assert len(later.stdout.strip().splitlines()) == 1  # no message was sent on day 2
    table = invoke("metrics", "--warehouse", str(warehouse), "--campaign", "C1", env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "C1" in table.stdout and "100.0%" in table.stdout
    none = invoke("metrics", "--warehouse", str(warehouse), "--campaign", "nope", "--format", "json")
    assert json.loads(none.stdout) == []


def test_report_is_written(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    assert invoke("run", "--landing", str(landing), "--warehouse", str(warehouse), "-q").exit_code == 0
    out = tmp_path / "r.html"
    done = invoke("report", "--warehouse", str(warehouse), "--out", str(out))
    assert done.exit_code == 0
    page = out.read_text()
    assert "<svg" in page and "Campaign C1" in page and "unknown_event" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_contract_command_and_readme_agree() -> None:
    markdown = invoke("contract").stdout
    assert markdown == full_contract_markdown()
    assert "| SendGrid Event Webhook" in markdown and "processed→Sent" in markdown  # the providers' mapping
    document = json.loads(invoke("contract", "--format", "json").stdout)
    assert set(document) == {"tables", "event_names", "timestamp_forms", "reason_codes", "providers"}
    assert {p["provider"] for p in document["providers"]} == {
        "sendgrid",
        "mailgun",
        "postmark",
        "ses",
        "segment",
        "braze",
    }
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- contract:start -->\n", "<!-- contract:end -->"
    assert start in readme, "README.md must hold the generated contract between the contract markers"
    assert readme.split(start)[1].split(end)[0] == markdown, "README contract is stale: run `make contract-docs`"


def test_version_and_help() -> None:
    assert etl_process("--version").stdout.strip() == f"etl {__version__}"  # smoke: the entry point starts
    assert invoke("--version").stdout.strip() == f"etl {__version__}"
    help_text = invoke("--help").stdout
    for command in COMMANDS:
        assert command in help_text
    assert "Example" in invoke("run", "--help").stdout


def test_a_second_run_on_a_busy_warehouse_exits_1_naming_the_holder(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    (warehouse / "_state").mkdir(parents=True)
    # A live process on this host holds the lock: the one that started the tests.
    holder = {"run_id": "20240601T020000Z-abc123", "pid": os.getppid(), "host": socket.gethostname()}
    (warehouse / "_state" / "lock.json").write_text(json.dumps(holder))
    done = invoke("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert done.exit_code == 1
    assert "in use by run 20240601T020000Z-abc123" in done.stderr and "Traceback" not in done.stderr
    assert not (warehouse / "events").exists()


# Prints the allocator setting polars' jemalloc will read, at the moment polars is first imported, then
# leaves at once: loading polars itself would tell nothing more.
_WATCH_POLARS = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "polars":
            print(os.environ.get("_RJEM_MALLOC_CONF"), flush=True)
            os._exit(0)
        return None
sys.meta_path.insert(0, Watch())
import etl.cli.app
print("polars was never imported", flush=True)
"""


def test_the_polars_allocator_is_set_before_polars_loads() -> None:
    """Smoke test: a fresh interpreter, as jemalloc reads the setting once, when polars loads."""
    env = {name: value for name, value in os.environ.items() if name != "_RJEM_MALLOC_CONF"}
    done = subprocess.run(
        [sys.executable, "-c", _WATCH_POLARS], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert done.stdout.splitlines()[0] == "narenas:1"


def test_the_contract_runs_without_importing_pandas(tmp_path: Path) -> None:
    """Smoke test: pandera looks for pandas once per process, at its first check (0.46 s, in the driver and
    again in every worker); `etl validate` on a file with a good and a bad record runs every check."""
    pytest.importorskip("pandas")  # (where it is not installed, nothing could import it)
    feed = write(tmp_path, "feed.ndjson", ndjson([record(), record(event="Message Teleported")]))
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['etl', 'validate', {str(feed)!r}]\n"
        "try:\n    runpy.run_module('etl', run_name='__main__')\n"
        "except SystemExit as end:\n    print('exit', end.code)\n"
        "print('pandas imported:', 'pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.stdout.splitlines()[-2:] == ["exit 3", "pandas imported: False"], done.stdout + done.stderr


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (None, "narenas:1"),
        ("narenas:2", "narenas:2"),  # the user's choice
        ("dirty_decay_ms:500", "dirty_decay_ms:500,narenas:1"),  # what a parent that imported polars exports
    ],
)
def test_the_polars_allocator_setting_keeps_what_it_is_given(
    given: str | None, seen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The setting is made when `etl.cli` is imported, whatever the value: run that again on each value here.
    if given is None:
        monkeypatch.delenv("_RJEM_MALLOC_CONF", raising=False)
    else:
        monkeypatch.setenv("_RJEM_MALLOC_CONF", given)
    importlib.reload(etl.cli)
    assert os.environ["_RJEM_MALLOC_CONF"] == seen
