"""Running the `etl` command in tests: in this process through typer's CliRunner, or as a real process.

`invoke` is the default: no interpreter start and no second polars import, so a command costs what its work
costs. `etl_process` starts `python -m etl` for the few smoke tests that need a real process (the entry point,
exit codes and stderr as a shell sees them, the environment a cron job hands down, process-wide settings).

In-process commands share the test process's state. `invoke` puts back what a command changes on purpose (the
`etl` logger, which `setup_logging` points at the runner's captured stderr), and `process_state` lets a test
module check, after each test, that nothing else leaked.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from etl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
_ETL_LOGGER = logging.getLogger("etl")
# rich reads these on every check for a terminal: a developer's or CI's FORCE_COLOR would turn the plain log
# lines into rich ones. (A terminal cannot be faked here: rich settles whether a console may redraw lines
# when the console is made, which for the command's consoles was at import.)
_NOT_A_TERMINAL: dict[str, str | None] = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def invoke(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """`etl ARGS` in this process: `exit_code`, `stdout` and `stderr` as separate strings.

    Neither stream is a terminal. `env` adds (or, with None, removes) variables for the command only.
    Exceptions that the command lets through are raised here, not turned into exit code 1: a real process
    would print a traceback for them.
    """
    saved = (list(_ETL_LOGGER.handlers), _ETL_LOGGER.level, _ETL_LOGGER.propagate, _ETL_LOGGER.disabled)
    try:
        return CliRunner().invoke(app, list(args), env={**_NOT_A_TERMINAL, **(env or {})}, catch_exceptions=False)
    finally:
        for handler in _ETL_LOGGER.handlers:
            if handler not in saved[0]:
                handler.close()  # it writes to the runner's stream, which is gone now
        _ETL_LOGGER.handlers[:] = saved[0]
        _ETL_LOGGER.level, _ETL_LOGGER.propagate, _ETL_LOGGER.disabled = saved[1:]


def etl_process(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m etl ARGS` as a separate process, from the repository root (about a second each)."""
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


def _snapshot() -> dict[str, Any]:
    loggers = {name: logging.getLogger(name) for name in ("", "etl")}
    return {
        "environment": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},  # names the phase
        "working directory": os.getcwd(),
        "standard streams": (sys.stdin, sys.stdout, sys.stderr),
        **{
            f"logger {name or 'root'}": (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
            for name, lg in loggers.items()
        },
    }


@contextmanager
def process_state() -> Iterator[None]:
    """Fail when the block leaves the environment, the working directory, the standard streams or the
    root and `etl` loggers other than it found them."""
    before = _snapshot()
    yield
    after = _snapshot()
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert not changed, f"the test process was left changed (before, after): {changed}"
