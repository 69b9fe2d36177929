"""`etl report`: a funnel report people can open in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from etl.cli.common import WarehouseOption, friendly_errors, out
from etl.report import write_report
from etl.settings import DEFAULT_WAREHOUSE


@friendly_errors
def report(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: <warehouse>/report.html).")
    ] = None,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
) -> None:
    """Write a self-contained HTML report of every campaign's funnel and the quarantine.

    Example: etl report --out funnel.html
    """
    path = write_report(warehouse, out_file or warehouse / "report.html")
    out.print(f"report written to {path}")
