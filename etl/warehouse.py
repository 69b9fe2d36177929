"""The warehouse on disk: table layout, the file registry, atomic publishing and the writer lock.

Publishing is a journal: every new file of a run is first written under `_state/journal/<run_id>/`,
then a plan of renames is committed (one atomic rename of `plan.json`), then applied. A run killed
before the commit leaves the tables as they were; one killed after it is rolled forward by the next
run, so every table ends either wholly old or wholly new.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from etl import storage

EVENTS = "events"
QUARANTINE = "quarantine"
DAILY_FUNNEL = "campaign_daily_funnel"
LIFETIME_FUNNEL = "campaign_funnel"
RUNS = "_runs"
STATE = "_state"
PART = "part-0.parquet"
# 2: event_id is SHA-256 (was BLAKE2b).
REGISTRY_VERSION = 2


class WarehouseBusy(Exception):
    """Another run holds the warehouse."""


@dataclass(frozen=True)
class Layout:
    """Where each table and each piece of state lives under the warehouse root (SPEC §6)."""

    root: Path

    def partition(self, table: str, key: str, day: date) -> Path:
        # Paths come only from validated dates, never from data values.
        return self.root / table / f"{key}={day.isoformat()}" / PART

    def event_partition(self, day: date) -> Path:
        return self.partition(EVENTS, "event_date", day)

    def daily_funnel_partition(self, day: date) -> Path:
        return self.partition(DAILY_FUNNEL, "event_date", day)

    def quarantine_partition(self, day: date) -> Path:
        return self.partition(QUARANTINE, "ingest_date", day)

    @property
    def lifetime_funnel(self) -> Path:
        return self.root / LIFETIME_FUNNEL / PART

    def manifest(self, run_id: str) -> Path:
        return self.root / RUNS / f"{run_id}.json"

    @property
    def registry(self) -> Path:
        return self.root / STATE / "registry.json"

    def staged(self, sha256: str) -> Path:
        """The Parquet file holding a file's valid events as read (duplicates included), one row
        group per date of each batch."""
        return self.root / STATE / "staged" / f"{sha256}.parquet"

    @property
    def journal_root(self) -> Path:
        return self.root / STATE / "journal"

    @property
    def lock(self) -> Path:
        return self.root / STATE / "lock.json"

    def event_dates(self) -> list[date]:
        return _partition_dates(self.root / EVENTS, "event_date")


def _partition_dates(table: Path, key: str) -> list[date]:
    days = []
    for name in storage.list_dirs(table):
        if name.startswith(f"{key}=") and (table / name / PART).is_file():
            try:
                days.append(date.fromisoformat(name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(days)


# --- registry -------------------------------------------------------------------------------


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
    mtime_ns: int = 0  # of the file when hashed: unchanged name, size and mtime skip re-hashing


def registry_version(layout: Layout) -> int:
    """The version of the warehouse's state; the current one for a new warehouse."""
    if not layout.registry.is_file():
        return REGISTRY_VERSION
    return int(storage.read_json(layout.registry).get("version", 1))


def load_registry(layout: Layout) -> dict[str, RegisteredFile]:
    if not layout.registry.is_file():
        return {}
    data = storage.read_json(layout.registry)
    return {sha: RegisteredFile(sha256=sha, **entry) for sha, entry in data["files"].items()}


def registry_document(files: dict[str, RegisteredFile]) -> dict[str, Any]:
    entries = {}
    for sha in sorted(files):
        entry = dict(files[sha].__dict__)
        entry.pop("sha256")
        entries[sha] = entry
    return {"version": REGISTRY_VERSION, "files": entries}


# --- journal --------------------------------------------------------------------------------


class Journal:
    """New files of one run, staged beside the tables and published together."""

    def __init__(self, layout: Layout, run_id: str) -> None:
        self.layout = layout
        self.dir = layout.journal_root / run_id
        self._ops: list[dict[str, str]] = []
        self._count = 0

    def put_parquet(self, frame: pl.DataFrame, target: Path) -> Path:
        staged = self._next_path(".parquet")
        storage.write_parquet(frame, staged)
        self._ops.append({"op": "replace", "src": self._rel(staged), "dst": self._rel(target)})
        return staged

    def reserve(self, target: Path) -> Path:
        """A staging path the caller writes itself, published at `target`."""
        staged = self.staging_path()
        self.adopt(staged, target)
        return staged

    def staging_path(self) -> Path:
        """A fresh Parquet path in the journal for the caller to write; nothing is published until `adopt`."""
        staged = self._next_path(".parquet")
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def scratch_dir(self) -> Path:
        """A fresh folder for files used within the run and never published (gone with the journal)."""
        return self._next_path("-scratch")

    def adopt(self, staged: Path, target: Path) -> None:
        """Publish a file written at a `staging_path` at `target`."""
        self._ops.append({"op": "replace", "src": self._rel(staged), "dst": self._rel(target)})

    def put_json(self, data: Any, target: Path) -> None:
        staged = self._next_path(".json")
        storage.write_json(data, staged)
        self._ops.append({"op": "replace", "src": self._rel(staged), "dst": self._rel(target)})

    def delete(self, target: Path) -> None:
        self._ops.append({"op": "delete", "dst": self._rel(target)})

    def commit(self) -> None:
        """The point of no return: after this the run's changes are published, now or by the next run."""
        pending = self.dir / "plan.json.pending"
        storage.write_json({"ops": self._ops}, pending)
        storage.replace(pending, self.dir / "plan.json")
        apply_plan(self.layout, self.dir)

    def abandon(self) -> None:
        """Drop an uncommitted run's files; a committed plan stays for the next run to finish."""
        if not (self.dir / "plan.json").is_file():
            storage.remove_tree(self.dir)

    def _next_path(self, suffix: str) -> Path:
        self._count += 1
        return self.dir / f"{self._count:06d}{suffix}"

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.layout.root).as_posix()


def apply_plan(layout: Layout, journal_dir: Path) -> None:
    """Carry out a committed plan; every step may be repeated, so a killed apply is simply redone."""
    plan = storage.read_json(journal_dir / "plan.json")
    for op in plan["ops"]:
        dst = layout.root / op["dst"]
        if op["op"] == "replace":
            src = layout.root / op["src"]
            if src.exists():
                storage.replace(src, dst)
        else:
            storage.remove(dst)
    storage.remove_tree(journal_dir)


def recover(layout: Layout) -> list[str]:
    """Finish committed runs and discard uncommitted ones; what was done, for the log."""
    done: list[str] = []
    if not layout.journal_root.is_dir():
        return done
    for journal_dir in sorted(layout.journal_root.iterdir()):
        if (journal_dir / "plan.json").is_file():
            apply_plan(layout, journal_dir)
            done.append(f"completed the publish of interrupted run {journal_dir.name}")
        else:
            storage.remove_tree(journal_dir)
            done.append(f"discarded the unfinished work of interrupted run {journal_dir.name}")
    return done


# --- lock -----------------------------------------------------------------------------------


@contextmanager
def writer_lock(layout: Layout, run_id: str) -> Iterator[list[str]]:
    """Hold the warehouse for one run; a lock left by a dead process on this host is taken over."""
    notes: list[str] = []
    layout.lock.parent.mkdir(parents=True, exist_ok=True)
    holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(layout.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read_lock(layout.lock)
            if other is None and _age_seconds(layout.lock) < 10:
                other = {"run_id": "(starting)", "pid": "?", "host": "?"}  # being written right now
            if other and _is_alive(other):
                raise WarehouseBusy(
                    f"the warehouse {layout.root} is in use by run {other.get('run_id')} "
                    f"(pid {other.get('pid')} on {other.get('host')}); try again when it has finished"
                ) from None
            notes.append(
                f"took over the lock left by run {(other or {}).get('run_id', '?')}, which is no longer running"
            )
            layout.lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as stream:
            json.dump(holder, stream)
        break
    try:
        yield notes
    finally:
        current = _read_lock(layout.lock)
        if current and current.get("run_id") == run_id:
            layout.lock.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _is_alive(holder: dict[str, Any]) -> bool:
    if holder.get("pid") == "?":
        return True
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell for another host: assume it is running
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True
