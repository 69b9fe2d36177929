"""The command line end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from contracts.docs import contract_markdown
from etl import __version__
from etl.cli.app import app
from tests.helpers import day_file_records, record, write

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def etl(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    write(path, "2024-05-01/a.json", [*day_file_records(1, range(3)), record(event="Message Opened")])
    write(path, "2024-05-02/b.ndjson", "".join(json.dumps(r) + "\n" for r in day_file_records(2, range(2))))
    return path


def test_run_then_read_the_outputs(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    done = etl("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout and "manifest" in done.stdout
    events = pl.scan_parquet(str(warehouse / "events" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert events.height == 10
    [manifest] = list((warehouse / "_runs").glob("*.json"))
    totals = json.loads(manifest.read_text())["totals"]
    assert (totals["read"], totals["loaded"], totals["quarantined"], totals["duplicates"]) == (11, 10, 1, 0)
    again = etl("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert again.returncode == 0 and "Nothing new" in again.stdout


def test_environment_variables_choose_the_folders(landing: Path, tmp_path: Path) -> None:
    import os

    warehouse = tmp_path / "from-env"
    env = {**os.environ, "ETL_LANDING": str(landing), "ETL_WAREHOUSE": str(warehouse)}
    assert etl("run", "-q", env=env).returncode == 0
    assert (warehouse / "campaign_funnel" / "part-0.parquet").is_file()


def test_rejected_file_exits_3(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "broken.json", '{"id": "A" "event": "Message Sent"}')
    write(landing, "fine.json", [record()])
    done = etl("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"))
    assert done.returncode == 3
    assert "rejected broken.json" in done.stdout


def test_validate_writes_nothing_and_exits_3_on_violations(landing: Path, tmp_path: Path) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    done = etl("validate", str(landing))
    assert done.returncode == 3
    assert "unknown_event" in done.stdout and "Message Opened" in done.stdout
    assert sorted(p for p in tmp_path.rglob("*")) == before
    clean = etl("validate", str(landing / "2024-05-02" / "b.ndjson"))
    assert clean.returncode == 0 and "All records meet the contract" in clean.stdout


def test_usage_errors_exit_2_with_one_sentence(tmp_path: Path) -> None:
    backwards = etl("reprocess", "--from", "2024-05-02", "--to", "2024-05-01", "--landing", str(tmp_path))
    assert backwards.returncode == 2 and "after" in backwards.stderr
    bad_date = etl("reprocess", "--from", "yesterday", "--to", "2024-05-01")
    assert bad_date.returncode == 2 and "Traceback" not in bad_date.stderr
    assert etl("run", "--no-such-option").returncode == 2
    assert etl("metrics", "--format", "xml").returncode == 2


def test_failures_exit_1_without_traceback(tmp_path: Path) -> None:
    missing = etl("run", "--landing", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("etl: the landing zone") and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    not_there = etl("validate", str(tmp_path / "missing.json"))
    assert not_there.returncode == 1 and "does not exist" in not_there.stderr


def test_reprocess_command(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    assert etl("run", "--landing", str(landing), "--warehouse", str(warehouse), "-q").returncode == 0
    done = etl(
        "reprocess",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-01",
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
    )
    assert done.returncode == 0, done.stderr
    assert "reprocess" in done.stdout and "2024-05-01" in done.stdout
    empty = etl(
        "reprocess",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
    )
    assert empty.returncode == 0 and "No events between 2020-01-01 and 2020-01-02" in empty.stdout


def test_metrics_formats_and_filters(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    runner.invoke(app, ["run", "--landing", str(landing), "--warehouse", str(warehouse), "-q"])
    as_json = runner.invoke(app, ["metrics", "--warehouse", str(warehouse), "--format", "json"])
    rows = json.loads(as_json.stdout)
    assert [(r["campaign_id"], r["sent"], r["delivered"]) for r in rows] == [("C1", 5, 5)]
    as_csv = runner.invoke(app, ["metrics", "--warehouse", str(warehouse), "--format", "csv", "--from", "2024-05-02"])
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0].startswith("event_date,campaign_id,") or lines[0].startswith("campaign_id,")
    assert len(lines) == 2 and "2024-05-02" in lines[1]
    table = runner.invoke(app, ["metrics", "--warehouse", str(warehouse), "--campaign", "C1"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "C1" in table.stdout and "100.0%" in table.stdout
    none = runner.invoke(app, ["metrics", "--warehouse", str(warehouse), "--campaign", "nope", "--format", "json"])
    assert json.loads(none.stdout) == []


def test_report_is_written(landing: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    runner.invoke(app, ["run", "--landing", str(landing), "--warehouse", str(warehouse), "-q"])
    out = tmp_path / "r.html"
    done = runner.invoke(app, ["report", "--warehouse", str(warehouse), "--out", str(out)])
    assert done.exit_code == 0
    page = out.read_text()
    assert "<svg" in page and "Campaign C1" in page and "unknown_event" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_contract_command_and_readme_agree() -> None:
    markdown = runner.invoke(app, ["contract"]).stdout
    assert markdown == contract_markdown()
    document = json.loads(runner.invoke(app, ["contract", "--format", "json"]).stdout)
    assert set(document) == {"tables", "event_names", "timestamp_forms", "reason_codes"}
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- contract:start -->\n", "<!-- contract:end -->"
    assert start in readme, "README.md must hold the generated contract between the contract markers"
    assert readme.split(start)[1].split(end)[0] == markdown, "README contract is stale: run `make contract-docs`"


def test_version_and_help() -> None:
    assert etl("--version").stdout.strip() == f"etl {__version__}"
    help_text = etl("--help").stdout
    for command in ("run", "reprocess", "validate", "metrics", "report", "contract"):
        assert command in help_text
    assert "Example" in etl("run", "--help").stdout


def test_a_second_run_on_a_busy_warehouse_exits_1_naming_the_holder(landing: Path, tmp_path: Path) -> None:
    import os
    import socket

    warehouse = tmp_path / "wh"
    (warehouse / "_state").mkdir(parents=True)
    holder = {"run_id": "20240601T020000Z-abc123", "pid": os.getpid(), "host": socket.gethostname()}
    (warehouse / "_state" / "lock.json").write_text(json.dumps(holder))
    done = etl("run", "--landing", str(landing), "--warehouse", str(warehouse))
    assert done.returncode == 1
    assert "in use by run 20240601T020000Z-abc123" in done.stderr and "Traceback" not in done.stderr
    assert not (warehouse / "events").exists()


# Prints the allocator setting polars' jemalloc will read, at the moment polars is first imported.
_WATCH_POLARS = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "polars":
            print(os.environ.get("_RJEM_MALLOC_CONF"))
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, Watch())
import etl.cli.app
"""


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (None, "narenas:1"),
        ("narenas:2", "narenas:2"),  # the user's choice
        ("dirty_decay_ms:500", "dirty_decay_ms:500,narenas:1"),  # what a parent that imported polars exports
    ],
)
def test_the_polars_allocator_is_set_before_polars_loads(given: str | None, seen: str) -> None:
    env = {name: value for name, value in os.environ.items() if name != "_RJEM_MALLOC_CONF"}
    if given is not None:
        env["_RJEM_MALLOC_CONF"] = given
    done = subprocess.run(
        [sys.executable, "-c", _WATCH_POLARS], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert done.stdout.splitlines()[0] == seen
