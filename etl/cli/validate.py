"""`etl validate`: check feed files against the contract and say what is wrong; writes nothing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from etl.cli.common import MaxDepth, MaxRecordBytes, friendly_errors, out
from etl.contract_check import validate_locations
from etl.errors import EXIT_OK, EXIT_REJECTED
from etl.reading import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES, Limits


@friendly_errors
def validate(
    paths: Annotated[list[str], typer.Argument(help="Feed files or folders (searched recursively).")],
    show: Annotated[int, typer.Option("--show", help="How many rejected records to list.")] = 20,
    max_record_bytes: MaxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
    max_depth: MaxDepth = DEFAULT_MAX_DEPTH,
) -> None:
    """Check feed files against the contract; exit 3 when any record or file breaks it.

    Example: etl validate data/landing/2024-03-01.json
    """
    report = validate_locations(paths, Limits(max_record_bytes, max_depth))
    table = Table(title="Contract check", title_justify="left")
    for column in ("file", "read", "valid", "rejected"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for file in report.files:
        table.add_row(file.name, f"{file.read:,}", f"{file.valid:,}", f"{file.rejected:,}")
    out.print(table)
    for problem in report.problems[:show]:
        out.print(f"  {problem}", markup=False)
    if len(report.problems) > show:
        out.print(f"  … and {len(report.problems) - show:,} more")
    for note in report.notes:
        out.print(f"  note: {note}", markup=False)
    ok = not report.problems and not report.notes_are_errors
    out.print("All records meet the contract." if ok else "Some records break the contract.")
    raise typer.Exit(EXIT_OK if ok else EXIT_REJECTED)
