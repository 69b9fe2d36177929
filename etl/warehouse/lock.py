"""One writer at a time: a lock object created only if absent, naming the run that holds it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from etl import storage
from etl.errors import WarehouseBusy
from etl.warehouse.layout import Layout

# A lock object that cannot be read yet is taken as held for this long (its writer may be starting).
_UNREADABLE_GRACE_SECONDS = 10
_HELD_HERE: set[str] = set()  # run ids holding a warehouse in this process (runs on other threads)


@contextmanager
def writer_lock(layout: Layout, run_id: str) -> Iterator[list[str]]:
    """Hold the warehouse for one run; a lock left by a dead process on this host is taken over."""
    notes: list[str] = []
    store = layout.store
    holder = json.dumps({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}).encode("utf-8")
    while not store.put_if_absent(layout.lock, holder):
        found = store.head(layout.lock)
        if found is None:
            continue  # released just now: try again
        other = _read_lock(layout)
        if other is None and _age_seconds(layout) < _UNREADABLE_GRACE_SECONDS:
            other = {"run_id": "(starting)", "pid": "?", "host": "?"}
        if other and _is_alive(other):
            raise WarehouseBusy(
                f"the warehouse {store.describe()} is in use by run {other.get('run_id')} "
                f"(pid {other.get('pid')} on {other.get('host')}); try again when it has finished"
            )
        # Taken over only if it is still the lock judged dead: of two runs that found it, one wins.
        if store.replace_if_unchanged(layout.lock, holder, found.etag):
            stale = (other or {}).get("run_id", "?")
            notes.append(f"took over the lock left by run {stale}, which is no longer running")
            break
    _HELD_HERE.add(run_id)
    try:
        yield notes
    finally:
        _HELD_HERE.discard(run_id)
        current = _read_lock(layout)
        if current and current.get("run_id") == run_id:
            store.delete(layout.lock)


def _read_lock(layout: Layout) -> dict[str, Any] | None:
    try:
        data = storage.read_json(layout.store, layout.lock)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age_seconds(layout: Layout) -> float:
    info = layout.store.head(layout.lock)
    return float("inf") if info is None else (datetime.now(UTC) - info.modified).total_seconds()


def _is_alive(holder: dict[str, Any]) -> bool:
    if holder.get("pid") == "?":
        return True
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell for another host: assume it is running
    if holder.get("pid") == os.getpid():  # a run on another thread, or an earlier process with this pid
        return holder.get("run_id") in _HELD_HERE  # (a restarted container's pid 1)
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True
