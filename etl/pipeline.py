"""The run: plan, read every file, rebuild every date it touches, count the funnels, publish at once.

This module only decides which units of work to run and hands their small results to the journal:
- `etl.staging.stage_file`: one landing file -> its staged copy and quarantine rows;
- `etl.dates.process_date`: one event date -> its events partition, and the loaded/duplicate
  counts of the files that carry it;
- `etl.sends`: the messages touched by those event dates, counted again, and every send date they
  were or are on -> its messages partition and daily funnel;
- `etl.lifetime.lifetime_after_run`: the lifetime funnel, counted again for the campaigns touched;
and around them `etl.plan` (what to do), `etl.quarantine` (the quarantine partitions), `etl.upgrade`
(older warehouses), `etl.manifest` (what was done, and the exit code).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from contracts import LifetimeFunnel, required_columns
from etl.dates import DateJob, DateResult, DateSource, process_date
from etl.errors import EXIT_OK, EtlError, Interrupted, UsageError
from etl.executors import UNIT_OF_WORK, Executor, InProcess, check_executor, make_executor
from etl.ingest import Provenance
from etl.landing import KnownHashes, LandingFile, discover
from etl.lifetime import DateFiles, LifetimeCount, lifetime_after_run
from etl.manifest import FileEntry, Manifest, Totals, ignored_counts, reason_counts, verdict
from etl.plan import Plan, Window, dates_to_rebuild, make_plan, note_other_files
from etl.quarantine import stage_quarantine
from etl.sends import rebuild_send_dates
from etl.settings import Settings
from etl.staging import Staged, StagedFile, StageJob, stage_one
from etl.stops import held_off
from etl.storage import Store, open_store
from etl.upgrade import IDS_CHANGED, upgrade_note, upgrade_staged
from etl.warehouse import (
    REGISTRY_VERSION,
    Journal,
    Layout,
    RegisteredFile,
    hold_warehouse,
    load_passed_over,
    load_registry,
    recover,
    registry_document,
    registry_version,
)

log = logging.getLogger("etl")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Progress:
    """Hooks a front end uses to show long work; the defaults do nothing."""

    on_files: Callable[[int, int], None] = lambda count, total_bytes: None
    on_bytes: Callable[[int], None] = lambda count: None
    on_file_done: Callable[[LandingFile], None] = lambda file: None
    on_dates: Callable[[int], None] = lambda count: None
    on_date_done: Callable[[date], None] = lambda day: None


@dataclass
class RunResult:
    run_id: str
    manifest: Manifest | None  # None when there was nothing to do
    manifest_location: str | None
    exit_code: int
    notes: list[str] = field(default_factory=list)
    files_found: int = 0  # feed files in the landing zone

    @property
    def nothing_to_do(self) -> bool:
        return self.manifest is None

    @property
    def document(self) -> dict[str, Any]:
        """The manifest as written (empty when there was nothing to do)."""
        return self.manifest.document() if self.manifest else {}


def new_run_id(started: datetime) -> str:
    return f"{started.strftime('%Y%m%dT%H%M%S')}Z-{secrets.token_hex(3)}"


def run(settings: Settings, *, clock: Clock = utc_now, progress: Progress | None = None) -> RunResult:
    """Ingest every landing file not ingested before and rebuild every event date it touches."""
    return _execute(settings, None, clock, progress or Progress())


def reprocess(
    settings: Settings, start: date, end: date, *, clock: Clock = utc_now, progress: Progress | None = None
) -> RunResult:
    """Rebuild event dates start..end (inclusive) from the raw landing files with today's code."""
    if start > end:
        raise EtlError(f"--from {start} is after --to {end}")
    return _execute(settings, (start, end), clock, progress or Progress())


def _execute(settings: Settings, window: Window, clock: Clock, progress: Progress) -> RunResult:
    started = clock()
    run_id = new_run_id(started)
    stamp = _RunIdFilter(run_id)
    log.addFilter(stamp)
    try:
        return _execute_run(settings, window, clock, progress, started, run_id)
    finally:
        log.removeFilter(stamp)


class _RunIdFilter(logging.Filter):
    """Every log record of a run carries its run_id (for log collectors)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = self.run_id
        return True


def _execute_run(
    settings: Settings, window: Window, clock: Clock, progress: Progress, started: datetime, run_id: str
) -> RunResult:
    timer = _Timer()
    check_executor(settings.executor, settings.workers, [settings.landing, settings.warehouse])
    landing_store = open_store(settings.landing)
    if not landing_store.exists():
        raise EtlError(f"the landing zone {landing_store.describe()} does not exist or is not a directory")
    layout = Layout(open_store(settings.warehouse))
    with hold_warehouse(layout, run_id) as lease:
        notes = lease.notes + recover(layout)
        registry = load_registry(layout)
        version = registry_version(layout)
        upgrade = version < REGISTRY_VERSION
        if version < IDS_CHANGED:  # every published event id changes: reprocess every date once
            window = (date.min, date.max)
        if upgrade:
            notes.append(upgrade_note(version))
        plan = _discover_and_plan(landing_store, registry, load_passed_over(layout), window, settings.min_file_age)
        notes += plan.notes
        timer.lap("discover")
        if not plan.new and not plan.reparse and not upgrade:
            for note in notes:
                log.info(note)
            return RunResult(run_id, None, None, EXIT_OK, notes=notes, files_found=plan.found)

        log.info("%d files to read (%s bytes)", plan.files_to_read, f"{plan.bytes_to_read:,}")
        progress.on_files(plan.files_to_read, plan.bytes_to_read)
        journal = Journal(layout.store, run_id)
        executor = _executor_for(settings, plan, upgrade)
        try:
            staged, unread = _read_all(settings, plan, started, run_id, progress, executor)
            notes += unread
            staged_keys = {entry.sha256: Layout.staged(entry.sha256) for entry in registry.values()}
            staged_keys |= {file.file.sha256: file.staged_key for file in staged}
            if version < IDS_CHANGED:
                converted = upgrade_staged(layout.store, run_id, plan.kept, settings.tuning.upgrade_batch_rows)
                staged_keys |= converted
                for sha in converted:
                    journal.adopt(Layout.staged(sha))
            for file in staged:
                journal.adopt(Layout.staged(file.file.sha256))
            timer.lap("read")
            manifest = _rebuild_and_stage(
                settings,
                layout,
                journal,
                registry,
                plan,
                staged,
                staged_keys,
                window,
                upgrade,
                started,
                progress,
                timer,
                executor,
            )
            executor.close()  # its workers are done: a Ray stops while the driver commits
            manifest.notes = notes + manifest.notes
            if window and not upgrade and not plan.new and not manifest.dates_written + manifest.dates_deleted:
                journal.abandon()  # a reprocess of a range without events: nothing to change
                log.info("no events between %s and %s: nothing was rebuilt", *window)
                return RunResult(run_id, None, None, EXIT_OK, notes=notes, files_found=plan.found)
            exit_code, manifest.outcome = verdict(manifest.totals, settings.max_reject_rate)
            manifest.timings = timer.laps
            manifest.finished_at = clock().isoformat()
            journal.put_json(manifest.document(), Layout.manifest(run_id))
            journal.make_durable()
            lease.check()  # a run that lost the warehouse to another commits nothing
            with held_off("committing"):
                journal.commit()
            _log_done(manifest, exit_code)
        except EtlError as error:
            if isinstance(error, UsageError):
                raise
            raise EtlError(f"{error}; {_after_failure(journal)}") from error
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as the CLI turns it
            if journal.published:
                raise Interrupted("interrupted after its commit: the run's changes are published") from stop
            left = _after_failure(journal)
            if journal.committing:
                raise Interrupted("interrupted while committing: the next run completes or discards its work") from stop
            raise Interrupted(f"interrupted; {left}") from stop
        except BaseException:
            _abandon(journal)
            raise
        finally:
            executor.close()
    location = layout.store.describe(Layout.manifest(run_id))
    return RunResult(run_id, manifest, location, exit_code, manifest.notes, files_found=plan.found)


#: Below this much to read, a run that was not given a number of workers runs in this process:
#: starting workers (each imports polars and the contract) costs more than they gain.
SMALL_RUN_BYTES = 64 * 1024 * 1024


def _executor_for(settings: Settings, plan: Plan, upgrade: bool) -> Executor:
    """The executor of a run. Without `--workers`, one file or a small night stays in this process:
    there, polars already keeps every core busy within each unit, and workers would add their start
    and split the cores among themselves (one 2M-event file: 14 s in one process, 20 s with two
    workers; eight files of 250k: 41 s in one, 25 s with two; bench/executors.py)."""
    small = (plan.bytes_to_read < SMALL_RUN_BYTES or plan.files_to_read < 2) and not upgrade
    if settings.executor == "local" and settings.workers is None and small:
        return InProcess()
    return make_executor(settings.executor, settings.workers, [settings.landing, settings.warehouse])


def _after_failure(journal: Journal) -> str:
    """What a failed run left: nothing, or (when it failed while committing) work the next run
    finishes or discards."""
    if journal.committing:
        return "it failed while committing: the next run completes or discards its work"
    _abandon(journal)
    return "nothing was committed"


def _abandon(journal: Journal) -> None:
    """Drop the run's staged work; when even that fails (the store is gone), the next run does it."""
    try:
        journal.abandon()
    except Exception as problem:
        log.warning("could not remove the staged work of run %s (%s); the next run does", journal.run_id, problem)


def _discover_and_plan(
    landing: Store, registry: dict[str, RegisteredFile], said_before: set[str], window: Window, min_file_age: float
) -> Plan:
    known: KnownHashes = {}
    if not window:
        known = {(e.path, e.size, e.etag): sha for sha, e in registry.items() if e.etag}
        # Entries of earlier versions have a modification time instead of an etag.
        known |= {(e.path, e.size, f"mtime:{e.mtime_ns}"): sha for sha, e in registry.items() if e.mtime_ns}
    # A reprocess matches landing files to registered ones by content: everything is hashed first.
    sizes = None if window else {entry.size for entry in registry.values()}
    discovery = discover(landing, min_file_age, known, sizes)
    for note in discovery.unreadable:  # said every run, also with --quiet: the file waits for a fix
        log.warning(note)
    plan = make_plan(discovery.files, registry, reprocessing=window is not None, present=discovery.present)
    plan.notes = discovery.notes + plan.notes
    plan.found = len(discovery.present)
    note_other_files(plan, discovery.other, said_before)
    return plan


def _read_all(
    settings: Settings, plan: Plan, started: datetime, run_id: str, progress: Progress, executor: Executor
) -> tuple[list[StagedFile], list[str]]:
    """Read every file of the plan into a staged copy in the journal: what each gave, and notes on
    files that could not be read.

    Reparsed files come first in their original ingestion order, then new files by name. New files
    not hashed yet are hashed as they are read: `plan.new` then holds them with their hash, and a
    file that could not be read to hash it is left out.
    """
    provenances = [
        (file, Provenance(datetime.fromisoformat(e.first_ingested_at), e.run_id)) for file, e in plan.reparse
    ]
    provenances += [(file, Provenance(started, run_id)) for file in plan.new]
    on_read = progress.on_bytes if isinstance(executor, InProcess) else None  # (a worker cannot call back)
    jobs = [
        StageJob(settings.landing, settings.warehouse, run_id, file, provenance, settings.limits, on_read)
        for file, provenance in provenances
    ]

    def done(job: StageJob, outcome: Staged) -> None:
        if on_read is None:
            progress.on_bytes(job.file.size)
        if outcome.staged is not None:
            _log_read(outcome.staged, run_id)
            progress.on_file_done(outcome.staged.file)

    reparsed = {file.name for file, _ in plan.reparse}
    staged, read_new, unread = [], [], []
    for outcome in executor.map(
        stage_one, jobs, describe=_landing_file, resources=UNIT_OF_WORK, on_done=done, size=_file_size
    ):
        if outcome.staged is None:
            unread.append(outcome.unread)
            log.warning(outcome.unread)
            if outcome.changed and outcome.file.name in reparsed:
                raise EtlError(f"{outcome.file.name} changed while it was read again; run the reprocess again")
            continue
        if outcome.file.name not in reparsed:
            read_new.append(outcome.staged.file)
        staged.append(outcome.staged)
    plan.new = read_new
    return staged, unread


def _landing_file(job: StageJob) -> str:
    return f"landing file {job.file.name}"


def _file_size(job: StageJob) -> float:
    return job.file.size


def _log_read(result: StagedFile, run_id: str) -> None:
    log.info(
        "read %s: %s records, %s quarantined%s",
        result.file.name,
        f"{result.read:,}",
        f"{result.quarantined:,}",
        f"; rejected: {result.rejected}" if result.rejected else "",
        extra={"run_id": run_id, "file": result.file.name, "read": result.read, "quarantined": result.quarantined},
    )


def _rebuild_and_stage(
    settings: Settings,
    layout: Layout,
    journal: Journal,
    registry: dict[str, RegisteredFile],
    plan: Plan,
    staged: list[StagedFile],
    staged_keys: dict[str, str],
    window: Window,
    upgrade: bool,
    started: datetime,
    progress: Progress,
    timer: _Timer,
    executor: Executor,
) -> Manifest:
    new_shas = {file.sha256 for file in plan.new}
    updated = _registry_after(registry, staged, new_shas, started, journal.run_id)
    timer.lap("stage")

    # An upgrade rebuilds every date once, from the staged copies.
    rebuild_window = (date.min, date.max) if upgrade else window
    rebuilt_days = dates_to_rebuild(layout.event_dates(), registry, updated, new_shas, rebuild_window)
    counted_days = {day for file in staged for day in file.dates}
    days = sorted(set(rebuilt_days) | counted_days)
    ranks = {file.file.sha256: rank for rank, file in enumerate(staged, start=1)}
    progress.on_dates(len(rebuilt_days))
    jobs = []
    for day in days:
        rebuild = day in rebuilt_days
        sources = tuple(
            DateSource(sha, staged_keys[sha], ranks.get(sha, 0))
            for sha, entry in updated.items()
            if day.isoformat() in entry.event_dates
            # A date only counted (a reprocess, outside its window) does without a staged copy that
            # is gone; a rebuild cannot, and fails saying which.
            and (rebuild or sha in ranks or layout.store.head(staged_keys[sha]) is not None)
        )
        jobs.append(DateJob(day, sources, rebuild))

    def done(job: DateJob, result: DateResult) -> None:
        if job.rebuild:
            progress.on_date_done(job.day)

    unit = partial(process_date, settings.warehouse, journal.run_id, tuning=settings.tuning)
    results = executor.map(
        unit, jobs, describe=lambda job: f"event date {job.day}", resources=UNIT_OF_WORK, on_done=done
    )
    timer.lap("rebuild dates")

    rebuilt_events: dict[date, str | None] = {}  # the staged partition of each rebuilt date (None: now empty)
    written, deleted = [], []
    for result in results:
        if result.day not in rebuilt_days:
            continue
        events = layout.event_partition(result.day)
        if result.events:
            journal.adopt(events)
            written.append(result.day.isoformat())
            rebuilt_events[result.day] = journal.key(events)
        else:
            journal.delete(events)
            deleted.append(result.day.isoformat())
            rebuilt_events[result.day] = None
    sends_written, sends_deleted = _rebuild_sends(settings, layout, journal, rebuilt_events, upgrade, executor)
    timer.lap("messages and lifetime funnel")
    stage_quarantine(layout, journal, staged)
    journal.put_json(registry_document(updated, plan.not_feed_files), layout.registry)
    timer.lap("quarantine")
    counts: dict[str, tuple[int, int]] = {}
    for result in results:
        for sha, (loaded, duplicates) in result.counts.items():
            before = counts.get(sha, (0, 0))
            counts[sha] = (before[0] + loaded, before[1] + duplicates)
    manifest = _manifest(settings, journal.run_id, window, started, plan, staged, counts, written, deleted)
    manifest.send_dates_written, manifest.send_dates_deleted = sends_written, sends_deleted
    return manifest


def _rebuild_sends(
    settings: Settings,
    layout: Layout,
    journal: Journal,
    rebuilt_events: dict[date, str | None],
    everything: bool,
    executor: Executor,
) -> tuple[list[str], list[str]]:
    """Stage the messages and daily funnels of every send date the rebuilt event dates touch, and the
    lifetime funnel; the send dates written and deleted. `everything`: count every message again."""
    if not rebuilt_events:
        return [], []
    after = {day: layout.event_partition(day) for day in layout.event_dates() if day not in rebuilt_events}
    after |= {day: key for day, key in rebuilt_events.items() if key is not None}
    scratch = journal.scratch_prefix()
    outcome = rebuild_send_dates(
        layout, journal.run_id, scratch, rebuilt_events, after, everything, settings.tuning, executor
    )
    rebuilt: dict[date, DateFiles | None] = {}  # the new objects of each rebuilt send date (None: now empty)
    written, deleted = [], []
    for result in outcome.results:
        if not result.changed:
            continue
        messages, funnel = layout.message_partition(result.day), layout.daily_funnel_partition(result.day)
        if result.messages:
            journal.adopt(messages)
            journal.adopt(funnel)
            written.append(result.day.isoformat())
            rebuilt[result.day] = DateFiles(journal.key(messages), journal.key(funnel))
        else:
            journal.delete(messages)
            journal.delete(funnel)
            deleted.append(result.day.isoformat())
            rebuilt[result.day] = None
    if everything:  # daily funnels of earlier versions were by event date
        for key in layout.funnels_by_event_date():
            journal.delete(key)
    journal.put_parquet(outcome.pairs, layout.message_dates)
    if rebuilt or everything:
        count = LifetimeCount(settings.warehouse, scratch, settings.tuning, executor)
        lifetime = lifetime_after_run(layout, rebuilt, count)
        journal.put_parquet(lifetime, layout.lifetime_funnel, required_columns(LifetimeFunnel))
    return written, deleted


def _registry_after(
    registry: dict[str, RegisteredFile],
    staged: list[StagedFile],
    new_shas: set[str],
    started: datetime,
    run_id: str,
) -> dict[str, RegisteredFile]:
    """The registry with this run's files: new ones added, re-read ones with their dates and place."""
    updated = dict(registry)
    for result in staged:
        file = result.file
        dates = [d.isoformat() for d in result.dates]
        if file.sha256 in new_shas:
            updated[file.sha256] = RegisteredFile(
                sha256=file.sha256,
                path=file.name,
                size=file.size,
                first_ingested_at=started.isoformat(),
                run_id=run_id,
                event_dates=dates,
                ingest_date=started.date().isoformat(),
                etag=file.etag,
            )
        else:
            updated[file.sha256] = replace(
                updated[file.sha256], path=file.name, size=file.size, etag=file.etag, event_dates=dates
            )
    return updated


def _manifest(
    settings: Settings,
    run_id: str,
    window: Window,
    started: datetime,
    plan: Plan,
    staged: list[StagedFile],
    counts: dict[str, tuple[int, int]],
    written: list[str],
    deleted: list[str],
) -> Manifest:
    new_shas = {f.sha256 for f in plan.new}
    files = []
    for result in staged:
        loaded, duplicates = counts.get(result.file.sha256, (0, 0))
        files.append(
            FileEntry(
                name=result.file.name,
                sha256=result.file.sha256,
                size=result.file.size,
                status="rejected" if result.rejected else ("new" if result.file.sha256 in new_shas else "reprocessed"),
                read=result.read,
                loaded=loaded,
                quarantined=result.quarantined,
                duplicates=duplicates,
                rejected_reason=result.rejected or None,
                notes=result.notes,
                ignored=sum(sum(events.values()) for events in result.ignored.values()),
                ignored_events=result.ignored,
            )
        )
    for copy, original in plan.copies:
        files.append(FileEntry(copy.name, copy.sha256, copy.size, "copy", 0, 0, 0, 0, copy_of=original))
    return Manifest(
        run_id=run_id,
        mode="reprocess" if window else "run",
        window={"from": str(window[0]), "to": str(window[1])} if window else None,
        landing=settings.landing,
        warehouse=settings.warehouse,
        started_at=started.isoformat(),
        totals=Totals.of(files, len(plan.new), len(plan.reparse), plan.skipped),
        files=files,
        dates_written=written,
        dates_deleted=deleted,
        quarantine_reasons=reason_counts([result.reasons for result in staged]),
        ignored_by_provider=ignored_counts([result.ignored for result in staged]),
        notes=[f"{result.file.name}: {note}" for result in staged for note in result.notes],
    )


def _log_done(manifest: Manifest, exit_code: int) -> None:
    """The run's last log lines: a summary, and (kept by --quiet) why it exits with a non-zero code."""
    if exit_code != EXIT_OK:
        for file in manifest.files:
            if file.rejected_reason:
                log.warning("rejected %s: %s", file.name, file.rejected_reason, extra={"file": file.name})
        log.warning("run %s %s (exit %d)", manifest.run_id, manifest.outcome, exit_code)
    for file in manifest.files:
        numbers = {"read": file.read, "loaded": file.loaded, "quarantined": file.quarantined}
        numbers |= {"duplicates": file.duplicates, "ignored": file.ignored}
        log.info(
            "%s: read %s, loaded %s, quarantined %s, duplicates %s, ignored %s",
            file.name,
            *(f"{value:,}" for value in numbers.values()),
            extra={"run_id": manifest.run_id, "file": file.name, **numbers},
        )
    totals = manifest.totals
    counts = {"read": totals.read, "loaded": totals.loaded, "quarantined": totals.quarantined}
    counts |= {"duplicates": totals.duplicates, "ignored": totals.ignored}
    log.info(
        "run %s %s: read %s, loaded %s, quarantined %s, duplicates %s, ignored %s; %d dates rebuilt",
        manifest.run_id,
        manifest.outcome,
        *(f"{value:,}" for value in counts.values()),
        len(manifest.dates_written),
        extra={"run_id": manifest.run_id, **counts},
    )


class _Timer:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._last, 3)
        self._last = now
