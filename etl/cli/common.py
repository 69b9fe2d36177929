"""What every command shares: options, consoles, logging and the mapping of errors to exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from etl.errors import EXIT_FAILED, EXIT_USAGE, EtlError, UsageError
from etl.stops import sigterm_interrupts
from etl.storage import UnsupportedLocation

# Off a terminal (cron, pipes, make) tables are not cut to 80 columns: log files have room.
out = Console(highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
err = Console(stderr=True, highlight=False)

LandingOption = Annotated[
    str,
    typer.Option(
        "--landing",
        envvar="ETL_LANDING",
        metavar="DIR|URI",
        help="Landing zone with the feed files (read-only): a folder, or s3://bucket/prefix.",
    ),
]
WarehouseOption = Annotated[
    str,
    typer.Option(
        "--warehouse",
        envvar="ETL_WAREHOUSE",
        metavar="DIR|URI",
        help="Warehouse root of the Parquet tables: a folder, or s3://bucket/prefix.",
    ),
]


def parse_date(text: str) -> date:
    """A YYYY-MM-DD date; an impossible one (2024-02-30) is named as such, not as a format error."""
    try:
        return date.fromisoformat(text)
    except ValueError as problem:
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            raise typer.BadParameter(f"{text} is not a date ({problem})") from None
        raise typer.BadParameter(f"{text} is not a date in the form YYYY-MM-DD") from None


def date_option(name: str, help: str) -> Any:
    return typer.Option(name, parser=parse_date, metavar="YYYY-MM-DD", help=help)


MaxRecordBytes = Annotated[
    int,
    typer.Option("--max-record-bytes", min=1, help="Quarantine records larger than this (record_too_large)."),
]
MaxDepth = Annotated[
    int,
    typer.Option("--max-depth", min=1, help="Quarantine records nested deeper than this (too_deeply_nested)."),
]

SourcesOption = Annotated[
    str | None,
    typer.Option(
        "--sources",
        envvar="ETL_SOURCES",
        metavar="FILE",
        help="TOML file: which provider's exports are where, their options, pseudonymisation (see the README).",
    ),
]
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        metavar="local|ray",
        help="Where the units of work run: local worker processes, or Ray tasks (RAY_ADDRESS, or a local Ray).",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        envvar="ETL_WORKERS",
        min=1,
        metavar="N",
        help="Worker processes of the local executor (default: the machine's cores; a run reading one file, "
        "or less than 64 MB, runs in this process); with Ray, the CPUs of a Ray started for the run.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Bad input and failures become one sentence on stderr and exit 1, never a traceback; so does an
    interruption (Ctrl-C, or SIGTERM: a scheduler stopping the job), which a run answers by leaving
    the warehouse as it was and saying so."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_interrupts():
                return command(*args, **kwargs)
        except KeyboardInterrupt as stop:  # (a run says what it left: `etl.errors.Interrupted`)
            fail(str(stop) or "interrupted")
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise  # usage errors keep click's exit code 2
        except (UnsupportedLocation, UsageError) as problem:
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
