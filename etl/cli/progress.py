"""Progress bars for long runs on a terminal: files and bytes read, dates rebuilt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from etl.landing import LandingFile
from etl.pipeline import Progress as Hooks


@contextmanager
def progress_bars(console: Console, enabled: bool) -> Iterator[Hooks]:
    """Pipeline hooks that draw bars on `console`; plain no-op hooks when disabled (cron, pipes, -q)."""
    if not enabled:
        yield Hooks()
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bars:
        tasks: dict[str, TaskID] = {}

        def on_files(count: int, total_bytes: int) -> None:
            tasks["files"] = bars.add_task("files", total=count, detail=f"0/{count}")
            tasks["bytes"] = bars.add_task("bytes read", total=max(total_bytes, 1), detail=_mb(0, total_bytes))

        def on_bytes(count: int) -> None:
            bars.advance(tasks["bytes"], count)
            task = bars.tasks[tasks["bytes"]]
            bars.update(tasks["bytes"], detail=_mb(task.completed, task.total or 0))

        def on_file_done(file: LandingFile) -> None:
            bars.advance(tasks["files"])
            task = bars.tasks[tasks["files"]]
            bars.update(tasks["files"], detail=f"{task.completed:.0f}/{task.total:.0f} {file.name}")

        def on_dates(count: int) -> None:
            tasks["dates"] = bars.add_task("dates", total=max(count, 1), detail=f"0/{count}")

        def on_date_done(day: date) -> None:
            bars.advance(tasks["dates"])
            task = bars.tasks[tasks["dates"]]
            bars.update(tasks["dates"], detail=f"{task.completed:.0f}/{task.total:.0f} {day}")

        yield Hooks(on_files, on_bytes, on_file_done, on_dates, on_date_done)


def _mb(done: float, total: float) -> str:
    return f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB"
