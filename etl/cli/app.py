"""The `etl` command: builds the typer app from one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from etl import __version__
from etl.cli.contract import contract
from etl.cli.metrics import metrics
from etl.cli.process import use_lean_memory
from etl.cli.report import report
from etl.cli.run import reprocess, run
from etl.cli.validate import validate

app = typer.Typer(
    name="etl",
    help="Outbound message events: JSON feeds -> validated events, quarantine and campaign funnels (Parquet).\n\n"
    "Example: etl run --landing data/landing --warehouse data/warehouse",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"etl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Show the version and exit.")
    ] = False,
) -> None:
    """Outbound message events ETL."""


app.command()(run)
app.command()(reprocess)
app.command()(validate)
app.command()(metrics)
app.command()(report)
app.command()(contract)


def main() -> None:
    use_lean_memory()
    app()
