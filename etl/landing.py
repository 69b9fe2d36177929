"""Find the feed files in the landing zone (read-only) and identify each by its content."""

from __future__ import annotations

import os
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
    root = landing.resolve()
    now = time.time()
    for directory, subdirs, names in os.walk(landing, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            if not is_feed_file(name):
                continue
            path = Path(directory) / name
            relative = path.relative_to(landing).as_posix()
            if path.is_symlink() and not _inside(path.resolve(), root):
                found.notes.append(f"{relative}: skipped, a symbolic link pointing outside the landing zone")
                continue
            try:
                stat = path.stat()
                if now - stat.st_mtime < min_file_age:
                    found.notes.append(f"{relative}: skipped for now, modified less than {min_file_age:g} s ago")
                    continue
                sha256 = known.get((relative, stat.st_size, stat.st_mtime_ns)) or storage.sha256_of(path)
            except OSError as err:
                found.notes.append(f"{relative}: skipped, cannot be read ({err.strerror or err})")
                continue
            found.files.append(
                LandingFile(path=path, name=relative, sha256=sha256, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            )
    return found


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
