"""Find the feed files in the landing zone (read-only) and identify each by its content."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from etl import storage
from etl.reading import is_feed_file
from etl.storage import ObjectInfo, Store


@dataclass(frozen=True)
class LandingFile:
    """A feed file in the landing zone: `name` is its key (its path relative to the zone), `sha256`
    its identity (empty when it is to be hashed while it is read), `etag` the store's version tag."""

    name: str
    sha256: str
    size: int
    etag: str = ""


@dataclass
class Discovery:
    files: list[LandingFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # files passed over, and why
    unreadable: list[str] = field(default_factory=list)  # the notes on files that could not be read
    present: set[str] = field(default_factory=set)  # every feed file's name, read now or not
    other: list[str] = field(default_factory=list)  # files that are not feed files, by their name


#: (name, size, etag) -> SHA-256 of files already hashed, so they are not read again.
KnownHashes = dict[tuple[str, int, str], str]


def discover(
    landing: Store,
    min_file_age: float = 0.0,
    known: KnownHashes | None = None,
    registered_sizes: set[int] | None = None,
    hashing: bool = True,
) -> Discovery:
    """Every feed file in `landing`, sorted by name; symlinks out of the zone are not followed.

    A file whose name, size and etag (or, as earlier versions registered it, modification time)
    match a known entry is not read again to hash it: a nightly
    run costs the new files, not the whole landing zone. With `registered_sizes` (the sizes of the
    content ingested before), a file whose size matches none of them and no other file found cannot
    be known content, nor a copy of another file: it is left unhashed (empty `sha256`), to be hashed
    while it is read, so it is read once. Without `hashing` no file is hashed here.
    """
    known = known or {}
    found = Discovery()
    now = time.time()
    listed: list[ObjectInfo] = []
    for info in landing.list():
        if not is_feed_file(info.name):
            if not info.name.startswith("."):  # hidden files (.DS_Store, .keep) go unmentioned
                found.other.append(info.key)
            continue
        found.present.add(info.key)
        if info.escapes_root:
            found.notes.append(f"{info.key}: skipped, a symbolic link pointing outside the landing zone")
            continue
        if now - info.modified.timestamp() < min_file_age:
            found.notes.append(f"{info.key}: skipped for now, modified less than {min_file_age:g} s ago")
            continue
        listed.append(info)
    sizes = Counter(info.size for info in listed)
    for info in listed:
        sha256 = known.get((info.key, info.size, info.etag), "") if info.etag else ""
        if not sha256 and info.mtime_ns:  # registered by an earlier version, by modification time
            sha256 = known.get((info.key, info.size, f"mtime:{info.mtime_ns}"), "")
        new_content = registered_sizes is not None and info.size not in registered_sizes
        if hashing and not sha256 and not (new_content and sizes[info.size] == 1):
            try:
                sha256 = storage.sha256_of(landing, info.key, expect_etag=info.etag)
            except storage.ObjectChanged:
                found.notes.append(f"{info.key}: skipped for now, it changed while it was read (taken next time)")
                continue
            except OSError as err:
                found.unreadable.append(f"{info.key}: skipped, cannot be read ({err.strerror or err})")
                found.notes.append(found.unreadable[-1])
                continue
        found.files.append(LandingFile(info.key, sha256, info.size, info.etag))
    return found
