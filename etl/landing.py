"""Find the feed files in the landing zone (read-only) and identify each by its content."""

from __future__ import annotations

import time
from collections import Counter
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


def discover(
    landing: Path,
    min_file_age: float = 0.0,
    known: KnownHashes | None = None,
    registered_sizes: set[int] | None = None,
) -> Discovery:
    """Every feed file under `landing`, sorted by relative name; symlinks out of the zone are not followed.

    A file whose name, size and modification time match a known entry is not read again to hash it:
    a nightly run costs the new files, not the whole landing zone. With `registered_sizes` (the sizes
    of the content ingested before), a file whose size matches none of them and no other file found
    cannot be known content, nor a copy of another file: it is left unhashed (empty `sha256`), to be
    hashed while it is read, so it is read once.
    """
    known = known or {}
    found = Discovery()
    now = time.time()
    stats = []
    for entry in storage.list_files(landing):
        if not is_feed_file(entry.path.name):
            continue
        relative = entry.relative
        if entry.escapes_root:
            found.notes.append(f"{relative}: skipped, a symbolic link pointing outside the landing zone")
            continue
        try:
            stat = storage.file_stat(entry.path)
        except OSError as err:
            found.notes.append(f"{relative}: skipped, cannot be read ({err.strerror or err})")
            continue
        if now - stat.st_mtime < min_file_age:
            found.notes.append(f"{relative}: skipped for now, modified less than {min_file_age:g} s ago")
            continue
        stats.append((entry.path, relative, stat))
    sizes = Counter(stat.st_size for _, _, stat in stats)
    for path, relative, stat in stats:
        sha256 = known.get((relative, stat.st_size, stat.st_mtime_ns), "")
        new_content = registered_sizes is not None and stat.st_size not in registered_sizes
        if not sha256 and not (new_content and sizes[stat.st_size] == 1):
            try:
                sha256 = storage.sha256_of(path)
            except OSError as err:
                found.notes.append(f"{relative}: skipped, cannot be read ({err.strerror or err})")
                continue
        found.files.append(
            LandingFile(path=path, name=relative, sha256=sha256, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        )
    return found
