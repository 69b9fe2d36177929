"""Find the feed files in the landing zone (read-only) and identify each by its content."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from etl import storage
from etl.feeds import is_feed_file
from etl.ingest import LandingFile


@dataclass
class Discovery:
    files: list[LandingFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # files passed over, and why


#: (relative name, size, mtime in ns) -> SHA-256 of files already hashed, so they are not read again.
KnownHashes = dict[tuple[str, int, int], str]


def discover(landing: Path, min_file_age: float = 0.0, known: KnownHashes | None = None) -> Discovery:
    """Every feed file under `landing`, sorted by relative name; symlinks out of the zone are not followed.

    A file whose name, size and modification time match a known entry is not read again to hash it:
    a nightly run costs the new files, not the whole landing zone.
    """
    known = known or {}
    found = Discovery()
    now = time.time()
    for entry in storage.list_files(landing):
        if not is_feed_file(entry.path.name):
            continue
        relative = entry.relative
        if entry.escapes_root:
            found.notes.append(f"{relative}: skipped, a symbolic link pointing outside the landing zone")
            continue
        try:
            stat = storage.file_stat(entry.path)
            if now - stat.st_mtime < min_file_age:
                found.notes.append(f"{relative}: skipped for now, modified less than {min_file_age:g} s ago")
                continue
            sha256 = known.get((relative, stat.st_size, stat.st_mtime_ns)) or storage.sha256_of(entry.path)
        except OSError as err:
            found.notes.append(f"{relative}: skipped, cannot be read ({err.strerror or err})")
            continue
        found.files.append(
            LandingFile(path=entry.path, name=relative, sha256=sha256, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        )
    return found
