"""The registry: every landing content ingested (by SHA-256), where it was and what it contributed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etl import storage
from etl.warehouse.layout import Layout

# 2: event_id is SHA-256 (was BLAKE2b). 3: messages and funnels by send date.
REGISTRY_VERSION = 3


@dataclass
class RegisteredFile:
    """A landing file's content that was ingested, and what it contributed."""

    sha256: str
    path: str
    size: int
    first_ingested_at: str
    run_id: str
    event_dates: list[str] = field(default_factory=list)
    ingest_date: str = ""
    mtime_ns: int = 0  # written by earlier versions; `etag` replaces it
    etag: str = ""  # of the landing object when hashed: unchanged name, size and etag skip re-hashing


def registry_version(layout: Layout) -> int:
    """The version of the warehouse's state; the current one for a new warehouse."""
    if layout.store.head(layout.registry) is None:
        return REGISTRY_VERSION
    return int(storage.read_json(layout.store, layout.registry).get("version", 1))


def load_registry(layout: Layout) -> dict[str, RegisteredFile]:
    if layout.store.head(layout.registry) is None:
        return {}
    data = storage.read_json(layout.store, layout.registry)
    return {sha: RegisteredFile(sha256=sha, **entry) for sha, entry in data["files"].items()}


def load_passed_over(layout: Layout) -> set[str]:
    """Names of the landing files already said to be no feed files (each is said once)."""
    if layout.store.head(layout.registry) is None:
        return set()
    return set(storage.read_json(layout.store, layout.registry).get("not_feed_files", []))


def registry_document(files: dict[str, RegisteredFile], not_feed_files: set[str] | None = None) -> dict[str, Any]:
    entries = {}
    for sha in sorted(files):
        entry = dict(files[sha].__dict__)
        entry.pop("sha256")
        entries[sha] = entry
    return {"version": REGISTRY_VERSION, "files": entries, "not_feed_files": sorted(not_feed_files or ())}
