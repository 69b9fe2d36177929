"""What every command shares: options, consoles, logging and the mapping of errors to exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from etl.errors import EXIT_FAILED, EXIT_USAGE, EtlError
from etl.storage import UnsupportedLocation

# Off a terminal (cron, pipes, make) tables are not cut to 80 columns: log files have room.
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
err = Console(stderr=True, highlight=False)

LandingOption = Annotated[
    str,
    typer.Option("--landing", envvar="ETL_LANDING", help="Landing zone with the feed files (read-only): a folder."),
]
WarehouseOption = Annotated[
    str,
    typer.Option("--warehouse", envvar="ETL_WAREHOUSE", help="Warehouse root of the Parquet tables: a folder."),
]
DATE_FORMATS = ["%Y-%m-%d"]
MaxRecordBytes = Annotated[
    int,
    typer.Option("--max-record-bytes", min=1, help="Quarantine records larger than this (record_too_large)."),
]
MaxDepth = Annotated[
    int,
    typer.Option("--max-depth", min=1, help="Quarantine records nested deeper than this (too_deeply_nested)."),
]

F = TypeVar("F", bound=Callable[..., Any])


def as_date(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def friendly_errors(command: F) -> F:
    """Bad input and failures become one sentence on stderr and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise  # usage errors keep click's exit code 2
        except UnsupportedLocation as problem:
            fail(str(problem), EXIT_USAGE)
        except EtlError as problem:
            fail(str(problem))
        except OSError as problem:
            fail(f"{problem.strerror or problem}: {problem.filename or ''}; nothing was committed".replace(": ;", ";"))
        except Exception as problem:
            if os.environ.get("ETL_DEBUG"):
                raise
            fail(
                f"failed with {type(problem).__name__}: {problem}; nothing was committed (set ETL_DEBUG=1 for details)"
            )

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = EXIT_FAILED) -> None:
    err.print(f"etl: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)
