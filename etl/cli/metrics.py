"""`etl metrics`: campaign funnels as a table, CSV or JSON."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from contracts import column_labels
from etl import tables
from etl.cli.common import WarehouseOption, date_option, friendly_errors, out
from etl.settings import DEFAULT_WAREHOUSE


class MetricsFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@friendly_errors
def metrics(
    campaign: Annotated[str | None, typer.Option("--campaign", help="Only this campaign id.")] = None,
    start: Annotated[date | None, date_option("--from", "First send date (the messages' send date).")] = None,
    end: Annotated[date | None, date_option("--to", "Last send date.")] = None,
    format: Annotated[MetricsFormat, typer.Option("--format", help="table, csv or json.")] = MetricsFormat.table,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
) -> None:
    """Campaign funnels, counted per message: lifetime per campaign, or per send date when --from/--to
    is given (a message counts on the date it was sent, with everything that happened to it later).

    Example: etl metrics --campaign 1001 --from 2024-03-01 --to 2024-03-07 --format csv
    """
    first, last = start, end
    if first and last and first > last:
        raise typer.BadParameter(f"--from {first} is after --to {last}", param_hint="--from")
    frame = tables.metrics(tables.open_warehouse(warehouse), campaign, first, last)
    if format is MetricsFormat.csv:
        typer.echo(frame.write_csv(), nl=False)
    elif format is MetricsFormat.json:
        typer.echo(frame.write_json())
    else:
        out.print(_rich_table(frame))


def _rich_table(frame: pl.DataFrame) -> Table:
    by_day = "send_date" in frame.columns
    table = Table(title_justify="left", title="Campaign funnel" + (" by send date" if by_day else ""))
    keys = [c for c in ("send_date", "campaign_id") if c in frame.columns]
    shown = column_labels()  # the columns the contract labels for display
    for key in keys:
        table.add_column(key.replace("_", " "), no_wrap=True)
    for label in shown.values():
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("flags")
    for row in frame.iter_rows(named=True):
        cells = [str(row[k]) if row[k] is not None else tables.NO_CAMPAIGN for k in keys]
        for column in shown:
            value = row[column]
            cells.append("—" if value is None else f"{value:.1%}" if column.endswith("_rate") else f"{value:,}")
        cells.append("delivery estimated" if row["delivered_estimated"] else "")
        table.add_row(*cells)
    if not frame.height:
        table.caption = "no funnel rows: run `etl run` first, or widen the filters"
    return table
