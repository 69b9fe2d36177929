"""What a run does: which landing files to read, which registered ones to keep, which dates to rebuild."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from etl.landing import LandingFile
from etl.warehouse import RegisteredFile

#: A reprocess window: first and last event date, inclusive; None for a nightly run.
Window = tuple[date, date] | None


@dataclass
class Plan:
    new: list[LandingFile] = field(default_factory=list)
    reparse: list[tuple[LandingFile, RegisteredFile]] = field(default_factory=list)
    kept: list[RegisteredFile] = field(default_factory=list)  # registered, not re-read this run
    copies: list[tuple[LandingFile, str]] = field(default_factory=list)  # same bytes as the file named
    skipped: int = 0  # already ingested
    notes: list[str] = field(default_factory=list)
    found: int = 0  # feed files in the landing zone
    not_feed_files: set[str] = field(default_factory=set)  # other files there, to remember as said

    @property
    def files_to_read(self) -> int:
        return len(self.new) + len(self.reparse)

    @property
    def bytes_to_read(self) -> int:
        return sum(file.size for file in self.new) + sum(file.size for file, _ in self.reparse)


def make_plan(
    found: list[LandingFile],
    registry: dict[str, RegisteredFile],
    reprocessing: bool,
    present: set[str] | None = None,
) -> Plan:
    """Match the landing files to the registry by content: new content is read; registered content
    is skipped by a run and read again by a reprocess; registered content no longer in the landing
    zone keeps its events. `present`: the name of every feed file in the zone, also those passed
    over this time (they are not said to be gone)."""
    present = {file.name for file in found} if present is None else present
    plan = Plan()
    by_sha: dict[str, LandingFile] = {}
    registered_paths = {entry.path: entry for entry in registry.values()}
    for file in found:
        if not file.sha256:  # of a size no other content has: new, hashed while it is read
            if file.name in registered_paths:
                plan.notes.append(f"{file.name}: content changed since it was ingested; ingesting the new content")
            plan.new.append(file)
            continue
        if file.sha256 in by_sha:
            original = by_sha[file.sha256].name
            plan.notes.append(f"{file.name}: same content as {original}, read once")
            if file.sha256 in registry and not reprocessing:
                plan.skipped += 1  # both names hold content ingested before
            else:
                plan.copies.append((file, original))
            continue
        by_sha[file.sha256] = file
        if file.sha256 in registry:
            if not reprocessing:
                plan.skipped += 1
            continue
        if file.name in registered_paths:
            plan.notes.append(f"{file.name}: content changed since it was ingested; ingesting the new content")
        plan.new.append(file)
    for entry in sorted(registry.values(), key=lambda e: (e.first_ingested_at, e.path)):
        landing_file = by_sha.get(entry.sha256)
        if landing_file is None:
            if entry.path not in present:  # (a file there now holds other content, or waits its turn)
                gone = "ingested before but no longer in the landing zone; its events are kept"
                plan.notes.append(f"{entry.path}: {gone}")
            plan.kept.append(entry)
        elif reprocessing:
            plan.reparse.append((landing_file, entry))
        else:
            plan.kept.append(entry)
    return plan


def dates_to_rebuild(
    published: list[date],
    before: dict[str, RegisteredFile],
    after: dict[str, RegisteredFile],
    new_shas: set[str],
    window: Window,
) -> list[date]:
    """Every date of the new files, and in a reprocess every known date inside the window."""
    days = {d for sha in new_shas for d in after[sha].event_dates}
    if window is not None:
        start, end = window
        candidates = {d for entry in [*before.values(), *after.values()] for d in entry.event_dates}
        candidates |= {d.isoformat() for d in published}
        days |= {d for d in candidates if start.isoformat() <= d <= end.isoformat()}
    return sorted(date.fromisoformat(d) for d in days)


FEED_FILES = "*.json, *.ndjson or *.jsonl (each optionally .gz), or *.avro"


def note_other_files(plan: Plan, other: list[str], said_before: set[str]) -> None:
    """Say once which files of the landing zone are passed over for their name (not feed files)."""
    plan.not_feed_files = set(other)
    plan.notes += [f"{name}: skipped, not a feed file ({FEED_FILES})" for name in other if name not in said_before]
