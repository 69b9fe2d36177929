"""Check feed files against the contract without touching any warehouse (`etl validate`).

Files are found as a run finds them (`etl.landing.discover`, with its rule on symbolic links) and
read by the same unit (`etl.ingest.ingest_file`); valid events go to a sink that discards them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from etl.errors import UsageError
from etl.ingest import Provenance, ingest_file
from etl.landing import LandingFile, discover
from etl.reading import Limits
from etl.storage import Store, open_object, open_store


@dataclass
class FileCheck:
    name: str
    read: int
    valid: int
    rejected: int
    ignored: int = 0  # provider events its mapping leaves out on purpose


@dataclass
class ValidationReport:
    files: list[FileCheck] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # folders given that hold no feed file
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_are_errors: bool = False


def validate_locations(locations: list[str], limits: Limits | None = None) -> ValidationReport:
    """Check every feed file at the given locations (files, or folders searched recursively)."""
    report = ValidationReport()
    provenance = Provenance(datetime.now(UTC), "validate")
    for store, files in [_files_at(location, report) for location in locations]:
        for file in files:
            shown = store.describe(file.name)
            try:
                outcome = ingest_file(store, file, provenance, limits, sink=_discard)
            except OSError as err:
                report.notes.append(f"{shown}: cannot be read ({err.strerror or err})")
                report.notes_are_errors = True
                continue
            rejected = outcome.quarantine.height
            valid = outcome.read - rejected - outcome.ignored_total
            report.files.append(FileCheck(shown, outcome.read, valid, rejected, outcome.ignored_total))
            for row in outcome.quarantine.select("position", "reason", "detail").iter_rows():
                report.problems.append(f"{shown} {row[0]}: {row[1]}: {row[2]}")
    return report


def _files_at(location: str, report: ValidationReport) -> tuple[Store, list[LandingFile]]:
    """The feed files at a location: one file (named explicitly: checked whatever its name), or those
    of a folder, or of an object-store prefix (which has no folders: a prefix holding objects)."""
    store = open_store(location)
    on_disk = store.local_path("") is not None
    if on_disk and store.exists():  # a folder
        return store, _folder_files(store, report)
    parent, key = open_object(location)
    info = parent.head(key) if key else None
    if info is not None:
        return parent, [LandingFile(key, "", info.size, info.etag)]
    if not on_disk and store.list():  # a prefix
        return store, _folder_files(store, report)
    raise UsageError(f"{location} does not exist" + ("" if on_disk else " (no object has that name or prefix)"))


def _folder_files(store: Store, report: ValidationReport) -> list[LandingFile]:
    found = discover(store, hashing=False)
    report.notes += [f"{store.describe().rstrip('/')}/{note}" for note in found.notes]
    if not found.files:
        report.empty.append(store.describe())
    return found.files


def _discard(events: pl.DataFrame) -> None:
    """Valid events are only counted (by the outcome), never kept."""
