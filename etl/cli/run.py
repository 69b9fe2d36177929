"""`etl run` and `etl reprocess`: ingest new feed files, or rebuild a range of event dates."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated

import typer
from rich.table import Table

from etl import pipeline
from etl.cli.common import (
    ExecutorOption,
    LandingOption,
    MaxDepth,
    MaxRecordBytes,
    SourcesOption,
    WarehouseOption,
    WorkersOption,
    date_option,
    err,
    friendly_errors,
    out,
)
from etl.cli.logs import LogFormat, setup_logging
from etl.cli.progress import progress_bars
from etl.plan import FEED_FILES
from etl.reading import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES
from etl.settings import DEFAULT_LANDING, DEFAULT_WAREHOUSE, Settings
from etl.sources import load_sources

log = logging.getLogger("etl")

MaxRejectRate = Annotated[
    float | None,
    typer.Option(
        "--max-reject-rate",
        min=0.0,
        max=1.0,
        help="Exit 3 when more than this share of the run's records is quarantined (e.g. 0.05).",
    ),
]
MinFileAge = Annotated[
    float,
    typer.Option("--min-file-age", min=0.0, help="Skip files modified less than this many seconds ago."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="Only warnings, errors and the exit code.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log every step.")]
LogFormatOption = Annotated[
    LogFormat, typer.Option("--log-format", help="text (timestamped lines; rich on a terminal) or json.")
]


@friendly_errors
def run(
    landing: LandingOption = DEFAULT_LANDING,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    max_reject_rate: MaxRejectRate = None,
    min_file_age: MinFileAge = 0.0,
    max_record_bytes: MaxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
    max_depth: MaxDepth = DEFAULT_MAX_DEPTH,
    sources: SourcesOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Ingest every landing file not ingested before; rebuild every event date it touches.

    Example: etl run --landing data/landing --warehouse data/warehouse
    """
    setup_logging(err, verbose, quiet, log_format)
    settings = Settings(
        landing,
        warehouse,
        max_record_bytes=max_record_bytes,
        min_file_age=min_file_age,
        max_reject_rate=max_reject_rate,
        max_depth=max_depth,
        executor=executor,
        workers=workers,
        sources=load_sources(sources),
    )
    with progress_bars(err, _bars_wanted(quiet, log_format)) as hooks:
        result = pipeline.run(settings, progress=hooks)
    if result.files_found:
        nothing = f"Nothing new in the landing zone ({result.files_found:,} feed files, all ingested before)"
    else:
        nothing = f"No feed files in the landing zone {landing} (it holds no {FEED_FILES})"
    _finish(result, quiet, log_format, nothing + "; the warehouse is unchanged.")


@friendly_errors
def reprocess(
    start: Annotated[date, date_option("--from", "First event date.")],
    end: Annotated[date, date_option("--to", "Last event date (inclusive).")],
    landing: LandingOption = DEFAULT_LANDING,
    warehouse: WarehouseOption = DEFAULT_WAREHOUSE,
    max_record_bytes: MaxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
    max_depth: MaxDepth = DEFAULT_MAX_DEPTH,
    sources: SourcesOption = None,
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Rebuild the event dates --from..--to (inclusive) from the raw landing files with today's code.

    Example: etl reprocess --from 2024-03-01 --to 2024-03-07
    """
    setup_logging(err, verbose, quiet, log_format)
    first, last = start, end
    if first > last:
        raise typer.BadParameter(f"--from {first} is after --to {last}", param_hint="--from")
    settings = Settings(
        landing,
        warehouse,
        max_record_bytes=max_record_bytes,
        max_depth=max_depth,
        executor=executor,
        workers=workers,
        sources=load_sources(sources),
    )
    with progress_bars(err, _bars_wanted(quiet, log_format)) as hooks:
        result = pipeline.reprocess(settings, first, last, progress=hooks)
    nothing = f"No events between {first} and {last}: nothing was rebuilt; the warehouse is unchanged."
    _finish(result, quiet, log_format, nothing)


def say(text: str) -> None:
    """A summary line: never wrapped, so paths and numbers stay whole in log files."""
    out.print(text, markup=False, soft_wrap=True, highlight=False)


def _bars_wanted(quiet: bool, log_format: LogFormat) -> bool:
    return err.is_terminal and not quiet and log_format is LogFormat.text


def _finish(result: pipeline.RunResult, quiet: bool, log_format: LogFormat, nothing: str) -> None:
    """The summary for people (stdout), or with --log-format json log records only (stderr)."""
    if log_format is LogFormat.json:
        _log_summary(result, nothing)
    elif not quiet:
        render_summary(result, nothing)
    raise typer.Exit(result.exit_code)


def _log_summary(result: pipeline.RunResult, nothing: str) -> None:
    """What the summary says, as log records (the run logged its counts per file and in total)."""
    if result.manifest is None:
        log.info(nothing.rstrip("."), extra={"run_id": result.run_id})
    for note in result.notes:
        log.info("note: %s", note, extra={"run_id": result.run_id, "note": note})


def render_summary(result: pipeline.RunResult, nothing: str) -> None:
    manifest = result.manifest
    if manifest is None:
        say(nothing)
        for note in result.notes:
            say(f"  note: {note}")
        return
    totals = manifest.totals
    counted: tuple[str, ...] = ("read", "loaded", "quarantined", "duplicates")
    if totals.ignored:  # (only provider files have events their mapping leaves out)
        counted += ("ignored",)
    table = Table(title=f"Run {result.run_id} ({manifest.mode})", title_justify="left")
    for column in ("file", "status", *counted):
        table.add_column(column, justify="left" if column in ("file", "status") else "right", overflow="fold")
    for file in manifest.files:
        status = f"copy of {file.copy_of}" if file.copy_of else file.status
        table.add_row(file.name, status, *(f"{getattr(file, k):,}" for k in counted))
    table.add_section()
    table.add_row("total", "", *(f"{getattr(totals, k):,}" for k in counted))
    out.print(table)
    if manifest.mode == "reprocess":
        say("counts are of the whole files read again (every date they hold), not only of the range")
    copies = f", {totals.files_copies} copies of another file" if totals.files_copies else ""
    say(
        f"files: {totals.files_new} new, {totals.files_reprocessed} reprocessed, "
        f"{totals.files_skipped} already ingested{copies}, {totals.files_rejected} rejected"
    )
    dates = manifest.dates_written
    if dates:
        say(f"event dates rebuilt: {len(dates)} ({dates[0]} … {dates[-1]})")
    if manifest.dates_deleted:
        say(f"event dates now empty and removed: {', '.join(manifest.dates_deleted)}")
    if manifest.ignored_by_provider:
        shown = "; ".join(
            f"{provider} " + ", ".join(f"{event} {count:,}" for event, count in events.items())
            for provider, events in manifest.ignored_by_provider.items()
        )
        say(f"ignored provider events (their mapping leaves them out): {shown}")
    if manifest.quarantine_reasons:
        reasons = list(manifest.quarantine_reasons.items())
        top = ", ".join(f"{code} {count:,}" for code, count in reasons[:5])
        more = f" and {len(reasons) - 5} more (see the manifest)" if len(reasons) > 5 else ""
        say(f"quarantine reasons: {top}{more}")
    for file in manifest.files:
        if file.rejected_reason:
            say(f"  rejected {file.name}: {file.rejected_reason}")
    for note in manifest.notes:
        say(f"  note: {note}")
    seconds = sum(manifest.timings.values())
    say(f"{manifest.outcome} in {seconds:.1f} s; manifest: {result.manifest_location}")
