"""The run: compose reading, judging, deduplication, date rebuilds and funnels, then publish atomically.

Units of work are independent functions (`ingest_file` for one landing file, `publish_date` for one
event date, `etl.lifetime.count_lifetime` for the campaigns to count again, over the funnels of
`etl.funnel`); this module only decides which to run and hands their results to the journal.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from contracts import event_columns
from etl import storage
from etl.funnel import daily_funnel_in_shares
from etl.ingest import FileOutcome, LandingFile, Provenance, empty_events, ingest_file
from etl.landing import discover
from etl.lifetime import DateFiles, lifetime_after_run
from etl.normalise import event_id
from etl.overlap import Behind
from etl.settings import Settings
from etl.shares import id_shares, rows_of, share_count
from etl.warehouse import (
    REGISTRY_VERSION,
    Journal,
    Layout,
    RegisteredFile,
    load_registry,
    recover,
    registry_document,
    registry_version,
    writer_lock,
)

log = logging.getLogger("etl")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REJECTED = 3
Clock = Callable[[], datetime]
# Columns of a staged copy with few distinct values, worth dictionary-encoding (the rest are mostly unique).
_FEW_VALUES = ["event", "channel", "message_type", "url", "campaign_id", "extra"]
_FEW_VALUES += ["source_file", "run_id"]
UPGRADE_BATCH_ROWS = 100_000
UPGRADE_NOTE = (
    "the warehouse was written by an earlier version (event ids were BLAKE2b, now SHA-256): "
    "every date is rebuilt once, from the landing files and the staged copies"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class EtlError(Exception):
    """A failure the user can act on; its message is one sentence."""


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
    manifest: dict[str, Any]
    manifest_path: Path | None
    exit_code: int
    nothing_to_do: bool = False
    notes: list[str] = field(default_factory=list)


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


@dataclass
class _Plan:
    new: list[LandingFile] = field(default_factory=list)
    reparse: list[tuple[LandingFile, RegisteredFile]] = field(default_factory=list)
    kept: list[RegisteredFile] = field(default_factory=list)  # registered, not re-read this run
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def _execute(settings: Settings, window: tuple[date, date] | None, clock: Clock, progress: Progress) -> RunResult:
    started = clock()
    timer = _Timer()
    run_id = new_run_id(started)
    layout = Layout(settings.warehouse)
    if not settings.landing.is_dir():
        raise EtlError(f"the landing zone {settings.landing} does not exist or is not a directory")
    with writer_lock(layout, run_id) as lock_notes:
        notes = lock_notes + recover(layout)
        registry = load_registry(layout)
        upgrade = registry_version(layout) < REGISTRY_VERSION
        if upgrade:  # every published event id changes: rebuild every date once
            window = (date.min, date.max)
            notes.append(UPGRADE_NOTE)
        known = {} if window else {(e.path, e.size, e.mtime_ns): sha for sha, e in registry.items()}
        # A reprocess matches landing files to registered ones by content: everything is hashed first.
        sizes = None if window else {entry.size for entry in registry.values()}
        discovery = discover(settings.landing, settings.min_file_age, known, sizes)
        plan = _plan(discovery.files, registry, reprocessing=window is not None)
        notes += discovery.notes + plan.notes
        timer.lap("discover")
        if not plan.new and not plan.reparse and not upgrade:
            for note in notes:
                log.info(note)
            return RunResult(run_id, {}, None, EXIT_OK, nothing_to_do=True, notes=notes)

        files_bytes = sum(f.size for f in plan.new) + sum(f.size for f, _ in plan.reparse)
        log.info("%d files to read (%s bytes)", len(plan.new) + len(plan.reparse), f"{files_bytes:,}")
        progress.on_files(len(plan.new) + len(plan.reparse), files_bytes)
        journal = Journal(layout, run_id)
        try:
            outcomes, staged, unread = _ingest_all(layout, journal, plan, started, run_id, settings, progress)
            notes += unread
            if upgrade:
                staged = _upgrade_staged(layout, journal, plan) | staged
            timer.lap("read")
            manifest = _build_and_stage(
                layout, journal, registry, plan, outcomes, staged, window, started, run_id, progress, timer
            )
            manifest.update(
                run_id=run_id,
                mode="reprocess" if window else "run",
                window={"from": str(window[0]), "to": str(window[1])} if window else None,
                landing=str(settings.landing),
                warehouse=str(settings.warehouse),
                started_at=started.isoformat(),
                notes=notes + manifest.pop("notes"),
            )
            exit_code, outcome = _verdict(manifest, settings.max_reject_rate)
            manifest["outcome"] = outcome
            manifest["timings"] = timer.laps
            manifest["finished_at"] = clock().isoformat()
            journal.put_json(manifest, layout.manifest(run_id))
            journal.commit()
            totals = manifest["totals"]
            log.info(
                "run %s %s: read %s, loaded %s, quarantined %s, duplicates %s; %d dates rebuilt",
                run_id,
                manifest["outcome"],
                *(f"{totals[k]:,}" for k in ("read", "loaded", "quarantined", "duplicates")),
                len(manifest["dates_written"]),
                extra={"run_id": run_id, **{k: totals[k] for k in ("read", "loaded", "quarantined", "duplicates")}},
            )
        except BaseException:
            journal.abandon()
            raise
    return RunResult(run_id, manifest, layout.manifest(run_id), exit_code, notes=manifest["notes"])


def _plan(found: list[LandingFile], registry: dict[str, RegisteredFile], reprocessing: bool) -> _Plan:
    plan = _Plan()
    by_sha: dict[str, LandingFile] = {}
    registered_paths = {entry.path: entry for entry in registry.values()}
    for file in found:
        if not file.sha256:  # of a size no other content has: new, hashed while it is read
            if file.name in registered_paths:
                plan.notes.append(f"{file.name}: content changed since it was ingested; ingesting the new content")
            plan.new.append(file)
            continue
        if file.sha256 in by_sha:
            plan.notes.append(f"{file.name}: same content as {by_sha[file.sha256].name}, read once")
            plan.skipped += 1
            continue
        by_sha[file.sha256] = file
        if file.sha256 in registry:
            if not reprocessing:
                plan.skipped += 1
            continue
        previous = registered_paths.get(file.name)
        if previous is not None:
            plan.notes.append(f"{file.name}: content changed since it was ingested; ingesting the new content")
        plan.new.append(file)
    for entry in sorted(registry.values(), key=lambda e: (e.first_ingested_at, e.path)):
        landing_file = by_sha.get(entry.sha256)
        if landing_file is None:
            plan.notes.append(f"{entry.path}: ingested before but no longer in the landing zone; its events are kept")
            plan.kept.append(entry)
        elif reprocessing:
            plan.reparse.append((landing_file, entry))
        else:
            plan.kept.append(entry)
    return plan


def _ingest_all(
    layout: Layout,
    journal: Journal,
    plan: _Plan,
    started: datetime,
    run_id: str,
    settings: Settings,
    progress: Progress,
) -> tuple[list[FileOutcome], dict[str, Path], list[str]]:
    """Read every file of the plan, streaming its valid events to a staged copy in the journal:
    the outcomes, the staged copies by SHA-256, and notes on files that could not be read.

    Reparsed files come first in their original ingestion order, then new files by name. New files
    not hashed yet are hashed as they are read: `plan.new` then holds them with their hash, and a
    file that could not be read to hash it is left out.
    """
    jobs = [
        (file, Provenance(datetime.fromisoformat(entry.first_ingested_at), entry.run_id), False)
        for file, entry in plan.reparse
    ]
    jobs += [(file, Provenance(started, run_id), True) for file in plan.new]
    outcomes, staged, read_new, unread = [], {}, [], []
    for file, provenance, is_new in jobs:
        log.debug("reading %s (%s bytes)", file.name, f"{file.size:,}")
        path = journal.staging_path()
        sink = _staged_sink(path)
        # Splitting by date and encoding one batch overlap the judging of the next.
        write = Behind(partial(_write_by_date, sink=sink.write))
        try:
            outcome = ingest_file(file, provenance, settings.limits, on_read=progress.on_bytes, sink=write)
        except OSError as err:  # it could not even be hashed: like a file that cannot be opened
            unread.append(f"{file.name}: skipped, cannot be read ({err.strerror or err})")
            continue
        finally:
            write.close()
            sink.close()
        journal.adopt(path, layout.staged(outcome.file.sha256))
        staged[outcome.file.sha256] = path
        if is_new:
            read_new.append(outcome.file)
        log.info(
            "read %s: %s records, %s quarantined%s",
            file.name,
            f"{outcome.read:,}",
            f"{outcome.quarantine.height:,}",
            f"; rejected: {outcome.rejected}" if outcome.rejected else "",
            extra={"file": file.name, "read": outcome.read, "quarantined": outcome.quarantine.height},
        )
        outcomes.append(outcome)
        progress.on_file_done(outcome.file)
    plan.new = read_new
    return outcomes, staged, unread


def _upgrade_staged(layout: Layout, journal: Journal, plan: _Plan) -> dict[str, Path]:
    """Version 1 staged copies of the files not read again this run, with today's event ids,
    staged in the journal (files read again get new copies anyway). Converted batch by batch."""
    converted = {}
    for entry in plan.kept:
        old = layout.staged(entry.sha256)
        if old.is_file():
            new = journal.reserve(old)
            sink = _staged_sink(new)
            for batch in storage.iter_parquet(old, UPGRADE_BATCH_ROWS):
                _write_by_date(batch.with_columns(event_id()), sink.write)
            sink.close()
            converted[entry.sha256] = new
    return converted


def _staged_sink(path: Path) -> storage.ParquetSink:
    """A staged copy: a file's valid events as judged, without `source_sha256` (its name says it)."""
    return storage.ParquetSink(path, empty_events().drop("source_sha256"), _FEW_VALUES, ["event_date"])


def _write_by_date(events: pl.DataFrame, sink: Callable[[pl.DataFrame], None]) -> None:
    """Hand a batch of events (in position order) to a sink one date at a time, still in position
    order: each date becomes its own row group, so reading one date of the staged copy skips the others."""
    for part in events.drop("source_sha256", strict=False).partition_by("event_date", maintain_order=True):
        sink(part)


def _build_and_stage(
    layout: Layout,
    journal: Journal,
    registry: dict[str, RegisteredFile],
    plan: _Plan,
    outcomes: list[FileOutcome],
    staged: dict[str, Path],
    window: tuple[date, date] | None,
    started: datetime,
    run_id: str,
    progress: Progress,
    timer: _Timer,
) -> dict[str, Any]:
    new_shas = {file.sha256 for file in plan.new}
    updated = dict(registry)
    staged_paths = {sha: layout.staged(sha) for sha in registry} | staged
    for outcome in outcomes:
        file = outcome.file
        dates = [d.isoformat() for d in outcome.dates]
        if file.sha256 in new_shas:
            updated[file.sha256] = RegisteredFile(
                sha256=file.sha256,
                path=file.name,
                size=file.size,
                first_ingested_at=started.isoformat(),
                run_id=run_id,
                event_dates=dates,
                ingest_date=started.date().isoformat(),
                mtime_ns=file.mtime_ns,
            )
        else:
            entry = updated[file.sha256]
            moved = {"path": file.name, "size": file.size, "mtime_ns": file.mtime_ns}
            updated[file.sha256] = RegisteredFile(**{**entry.__dict__, **moved, "event_dates": dates})
    timer.lap("stage")

    # Counting runs alongside the rebuild: both only read (the published tables change at commit),
    # and counting is one thread's work while the rebuild leaves part of a core idle.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-account") as counter:
        counting = counter.submit(_account, layout, plan, outcomes, staged_paths, window)
        days = _dates_to_rebuild(layout, registry, updated, new_shas, window)
        written, deleted, rebuilt = _rebuild(layout, journal, days, updated, staged_paths, progress)
        counts = counting.result()
    timer.lap("account and rebuild dates")

    if rebuilt:
        journal.put_parquet(lifetime_after_run(layout, rebuilt, journal.scratch_dir), layout.lifetime_funnel)
    timer.lap("lifetime funnel")
    _stage_quarantine(layout, journal, outcomes)
    journal.put_json(registry_document(updated), layout.registry)
    timer.lap("quarantine")
    return _manifest_body(plan, outcomes, counts, written, deleted)


def _rebuild(
    layout: Layout,
    journal: Journal,
    days: list[date],
    updated: dict[str, RegisteredFile],
    staged_paths: dict[str, Path],
    progress: Progress,
) -> tuple[list[str], list[str], dict[date, DateFiles | None]]:
    """Stage each date's events and funnel: (dates written, dates now empty, each date's new file)."""
    progress.on_dates(len(days))
    written, deleted = [], []
    rebuilt: dict[date, DateFiles | None] = {}  # the new files of each rebuilt date (None: now empty)
    for day in days:  # one date at a time (polars already spreads each over the cores)
        sources = {sha: staged_paths[sha] for sha, entry in updated.items() if day.isoformat() in entry.event_dates}
        events_path, funnel_path = journal.staging_path(), journal.staging_path()
        if publish_date(sources, day, events_path, funnel_path):
            journal.adopt(events_path, layout.event_partition(day))
            journal.adopt(funnel_path, layout.daily_funnel_partition(day))
            written.append(day.isoformat())
            rebuilt[day] = DateFiles(events_path, funnel_path)
        else:
            journal.delete(layout.event_partition(day))
            journal.delete(layout.daily_funnel_partition(day))
            deleted.append(day.isoformat())
            rebuilt[day] = None
        progress.on_date_done(day)
    return written, deleted, rebuilt


def publish_date(staged_files: dict[str, Path], day: date, events_path: Path, funnel_path: Path) -> bool:
    """Write one date's events and daily funnel from the staged copies (by their file's SHA-256);
    False when it has no events."""
    events = rebuild_date(staged_files, day)
    if events is None:
        return False
    storage.sink_parquet(events, events_path)
    # The rows were streamed, never held: the funnel reads the three columns it needs back.
    written = storage.scan_parquet([events_path])
    columns = written.select("campaign_id", "event", "user_id").with_columns(event_date=pl.lit(day))
    funnel = daily_funnel_in_shares(columns, share_count(rows_of(written)))
    storage.write_parquet(funnel.drop("event_date"), funnel_path)
    return True


def rebuild_date(staged_files: dict[str, Path], day: date) -> pl.LazyFrame | None:
    """Every distinct event of one date from the staged copies, by their file's SHA-256 (event
    columns, streamable); None when there is none. A duplicate keeps its first sighting by (source
    file, position), so the result does not depend on the order files arrived in.

    Each staged copy holds one file's rows of a date in position order, so the copies, ordered by
    their source, already are in that order: only identities are read to find the repeats (a share
    at a time), and the rows stream from the copies straight to the output.
    """
    parts = []
    for sha256, path in staged_files.items():
        rows = storage.scan_parquet([path]).filter(pl.col("event_date") == day)
        count, name = rows.select(pl.len(), pl.first("source_file")).collect().row(0)
        if count:  # (copies staged by earlier versions hold the same hash in a column of their own)
            parts.append(((name, sha256), rows.with_columns(source_sha256=pl.lit(sha256, pl.String)), count))
    if not parts:
        return None
    parts.sort(key=lambda part: part[0])
    ids = pl.concat(
        [
            rows.select("event_id", "_ordinal").with_columns(_part=pl.lit(n, pl.Int64))
            for n, (_, rows, _) in enumerate(parts)
        ]
    )
    repeats: dict[int, list[int]] = {}
    for share in id_shares(sum(count for _, _, count in parts)):
        chosen = _in_order(ids.filter(share).collect(), "_part").filter(~pl.col("event_id").is_first_distinct())
        for n, ordinals in chosen.group_by("_part").agg("_ordinal").iter_rows():
            repeats.setdefault(n, []).extend(ordinals)
    streams = []
    for n, (_, rows, _) in enumerate(parts):
        kept = rows if n not in repeats else rows.filter(~pl.col("_ordinal").is_in(repeats[n]))
        streams.append(kept.select(event_columns()))
    return pl.concat(streams)


def _in_order(ids: pl.DataFrame, source: str) -> pl.DataFrame:
    """Identities sorted by (source, _ordinal): read in that order already (sources concatenated in
    order, each in position order), so the sort is only a safeguard that costs one check."""
    key = pl.col(source).cast(pl.Int64) * (1 << 40) + pl.col("_ordinal")
    if ids.select(key.diff().min().fill_null(0) >= 0).item():
        return ids
    return ids.sort(source, "_ordinal")


def _dates_to_rebuild(
    layout: Layout,
    before: dict[str, RegisteredFile],
    after: dict[str, RegisteredFile],
    new_shas: set[str],
    window: tuple[date, date] | None,
) -> list[date]:
    days = {d for sha in new_shas for d in after[sha].event_dates}
    if window is not None:
        start, end = window
        candidates = {d for entry in [*before.values(), *after.values()] for d in entry.event_dates}
        candidates |= {d.isoformat() for d in layout.event_dates()}
        days |= {d for d in candidates if start.isoformat() <= d <= end.isoformat()}
    return sorted(date.fromisoformat(d) for d in days)


def _stage_quarantine(layout: Layout, journal: Journal, outcomes: list[FileOutcome]) -> None:
    """Each ingest date's quarantine partition: its earlier rows, with this run's files' rows replaced."""
    fresh = [o.quarantine for o in outcomes if o.quarantine.height]
    reread = {o.file.sha256 for o in outcomes}
    new_rows = pl.concat(fresh) if fresh else None
    days = set(new_rows["ingest_date"].unique().to_list()) if new_rows is not None else set()
    for day in sorted(days):
        path = layout.quarantine_partition(day)
        rows = [new_rows.filter(pl.col("ingest_date") == day).drop("ingest_date")] if new_rows is not None else []
        if path.is_file():
            old = storage.read_parquet(path).filter(~pl.col("source_sha256").is_in(list(reread)))
            rows.insert(0, old)
        journal.put_parquet(pl.concat(rows, how="vertical"), path)


def _account(
    layout: Layout,
    plan: _Plan,
    outcomes: list[FileOutcome],
    staged_paths: dict[str, Path],
    window: tuple[date, date] | None,
) -> dict[str, tuple[int, int]]:
    """(loaded, duplicates) per file: an event is loaded by the first file, in processing order, that
    carries it and is a duplicate everywhere after, including against what the warehouse already held.

    An event's date is part of its identity, so each date is counted on its own, from the staged
    copies: one date's identities in memory at a time.
    """
    published = set(layout.event_dates()) if window is None else set()
    kept = [entry for entry in plan.kept if staged_paths[entry.sha256].exists()] if window else []
    loaded: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    for day in sorted({d for o in outcomes for d in o.dates}):
        frames = [
            _identities([staged_paths[o.file.sha256]], day).with_columns(_file=pl.lit(index, dtype=pl.Int64))
            for index, o in enumerate(outcomes)
            if day in o.dates
        ]
        if day in published:  # a run: the warehouse holds what this date published before
            prior = storage.scan_parquet([layout.event_partition(day)]).select("event_id")
            frames.insert(0, _prior(prior))
        prior_files = [staged_paths[e.sha256] for e in kept if day.isoformat() in e.event_dates]
        if prior_files:  # a reprocess: files not re-read keep their events
            frames.insert(0, _prior(_identities(prior_files, day).select("event_id")))
        identities = pl.concat(frames)
        for share in id_shares(identities.select(pl.len()).collect().item()):
            seen = (
                _in_order(identities.filter(share).collect(), "_file")
                .with_columns(first=pl.col("event_id").is_first_distinct())
                .group_by("_file")
                .agg(loaded=pl.col("first").sum(), rows=pl.len())
            )
            for row in seen.iter_rows(named=True):
                if row["_file"] >= 0:
                    sha = outcomes[row["_file"]].file.sha256
                    loaded[sha] += row["loaded"]
                    rows[sha] += row["rows"]
    return {sha: (loaded[sha], rows[sha] - loaded[sha]) for sha in rows}


def _identities(staged: list[Path], day: date) -> pl.LazyFrame:
    return storage.scan_parquet(staged).filter(pl.col("event_date") == day).select("event_id", "_ordinal")


def _prior(ids: pl.LazyFrame) -> pl.LazyFrame:
    return ids.with_columns(_ordinal=pl.lit(0, pl.Int64), _file=pl.lit(-1, pl.Int64))


def _manifest_body(
    plan: _Plan,
    outcomes: list[FileOutcome],
    counts: dict[str, tuple[int, int]],
    written: list[str],
    deleted: list[str],
) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    new_shas = {f.sha256 for f in plan.new}
    for outcome in outcomes:
        loaded, duplicates = counts.get(outcome.file.sha256, (0, 0))
        quarantined = outcome.quarantine.height
        reasons.update(outcome.quarantine["reason"].to_list())
        files.append(
            {
                "name": outcome.file.name,
                "sha256": outcome.file.sha256,
                "size": outcome.file.size,
                "status": "rejected"
                if outcome.rejected
                else ("new" if outcome.file.sha256 in new_shas else "reprocessed"),
                "read": outcome.read,
                "loaded": loaded,
                "quarantined": quarantined,
                "duplicates": duplicates,
                "rejected_reason": outcome.rejected or None,
                "notes": outcome.notes,
            }
        )
    totals = {key: sum(f[key] for f in files) for key in ("read", "loaded", "quarantined", "duplicates")}
    totals.update(
        files_new=len(plan.new),
        files_reprocessed=len(plan.reparse),
        files_skipped=plan.skipped,
        files_rejected=sum(1 for f in files if f["status"] == "rejected"),
    )
    return {
        "totals": totals,
        "files": files,
        "dates_written": written,
        "dates_deleted": deleted,
        "quarantine_reasons": dict(reasons.most_common()),
        "notes": [f"{o.file.name}: {note}" for o in outcomes for note in o.notes],
    }


def _verdict(manifest: dict[str, Any], max_reject_rate: float | None) -> tuple[int, str]:
    totals = manifest["totals"]
    if totals["files_rejected"]:
        return EXIT_REJECTED, "done, with rejected files"
    if max_reject_rate is not None and totals["read"]:
        rate = totals["quarantined"] / totals["read"]
        if rate > max_reject_rate:
            return EXIT_REJECTED, f"done, but {rate:.1%} of records were quarantined (limit {max_reject_rate:.1%})"
    return EXIT_OK, "done"


class _Timer:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self._last, 3)
        self._last = now
