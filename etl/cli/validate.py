"""`etl validate`: check feed files against the contract and say what is wrong; writes nothing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from etl.cli.common import MaxDepth, MaxRecordBytes, SourcesOption, friendly_errors, out
from etl.contract_check import validate_locations
from etl.errors import EXIT_OK, EXIT_REJECTED
from etl.plan import FEED_FILES
from etl.reading import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES, Limits
from etl.sources import load_sources


@friendly_errors
def validate(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH|URI", help="Feed files or folders (searched recursively), or s3:// objects or prefixes."
        ),
    ],
    show: Annotated[int, typer.Option("--show", min=0, help="How many rejected records to list.")] = 20,
    max_record_bytes: MaxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
    max_depth: MaxDepth = DEFAULT_MAX_DEPTH,
    sources: SourcesOption = None,
) -> None:
    """Check feed files against the contract; exit 3 when any record or file breaks it.

    Example: etl validate data/landing
    """
    report = validate_locations(paths, Limits(max_record_bytes, max_depth, sources=load_sources(sources)))
    ignored = any(file.ignored for file in report.files)
    table = Table(title="Contract check", title_justify="left")
    for column in ("file", "read", "valid", "rejected", *(["ignored"] if ignored else [])):
        table.add_column(column, justify="left" if column == "file" else "right")
    for file in report.files:
        cells = [f"{file.read:,}", f"{file.valid:,}", f"{file.rejected:,}", *([f"{file.ignored:,}"] if ignored else [])]
        table.add_row(file.name, *cells)
    out.print(table)
    for problem in report.problems[:show]:
        out.print(f"  {problem}", markup=False)
    if len(report.problems) > show:
        out.print(f"  … and {len(report.problems) - show:,} more")
    for note in report.notes:
        out.print(f"  note: {note}", markup=False)
    for folder in report.empty:
        out.print(f"No feed files found in {folder} ({FEED_FILES}).", markup=False)
    if not report.files and not report.notes_are_errors:
        out.print("Nothing was checked.")
        raise typer.Exit(EXIT_OK)
    ok = not report.problems and not report.notes_are_errors
    out.print("All records meet the contract." if ok else "Some records break the contract.")
    raise typer.Exit(EXIT_OK if ok else EXIT_REJECTED)
