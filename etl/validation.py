"""Check files against the contract without touching any warehouse (`etl validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from etl.feeds import Limits, is_feed_file
from etl.ingest import LandingFile, Provenance, ingest_file
from etl.pipeline import EtlError


@dataclass
class FileCheck:
    name: str
    read: int
    valid: int
    rejected: int


@dataclass
class ValidationReport:
    files: list[FileCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_are_errors: bool = False


def validate_paths(paths: list[Path], limits: Limits | None = None) -> ValidationReport:
    report = ValidationReport()
    provenance = Provenance(datetime.now(UTC), "validate")
    for path in _feed_files(paths):
        try:  # hashed while it is read (an OSError here: it could not be read at all)
            outcome = ingest_file(LandingFile(path, str(path), "", path.stat().st_size), provenance, limits)
        except OSError as err:
            report.notes.append(f"{path}: cannot be read ({err.strerror or err})")
            report.notes_are_errors = True
            continue
        rejected = outcome.quarantine.height
        report.files.append(FileCheck(str(path), outcome.read, outcome.read - rejected, rejected))
        for row in outcome.quarantine.select("position", "reason", "detail").iter_rows():
            report.problems.append(f"{path} {row[0]}: {row[1]}: {row[2]}")
    return report


def _feed_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and is_feed_file(p.name))
        elif path.is_file():
            files.append(path)
        else:
            raise EtlError(f"{path} does not exist")
    return files
