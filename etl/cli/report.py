"""`etl report`: a funnel report people can open in a browser."""

from __future__ import annotations

from typing import Annotated

import typer

from etl.cli.common import WarehouseOption, friendly_errors, out
from etl.errors import UsageError
from etl.report import write_report
from etl.settings import DEFAULT_WAREHOUSE
from etl.storage import open_object, open_store
from etl.tables import open_warehouse


@friendly_errors
def report(
    out_file: Annotated[
        str | None, typer.Option("--out", metavar="FILE", help="HTML file to write (default: <warehouse>/report.html).")
    ] = None,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
) -> None:
    """Write a self-contained HTML report of every campaign's funnel and the quarantine.

    Example: etl report --out funnel.html
    """
    store = open_warehouse(warehouse)
    out_store = open_store(out_file) if out_file else None
    if out_store is not None and out_store.local_path("") is not None and out_store.exists():
        raise UsageError(f"--out {out_file} is a folder: give the report's file name, e.g. {out_file}/report.html")
    target, key = open_object(out_file) if out_file else (store, "report.html")
    out.print(f"report written to {write_report(store, target, key)}")
