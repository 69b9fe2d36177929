"""One writer at a time: a lease object naming the run that holds the warehouse, and until when.

The lease (`_state/lock.json`: run id, pid, host, expiry) is created only if absent (If-None-Match
on an object store) and renewed by a background thread every third of its length, each time only if
it is still the version this run wrote (If-Match). A run on another machine cannot be checked with a
pid, so a lease is taken over only once it has expired, and only if it is still the version seen
expired (of two runs that find it, one wins). On local disk a holder that died on this host is taken
over at once (its pid is gone), as before leases.

A run whose renewal finds another run's lease (its own had expired: the run was suspended, or cut
off from the store, for longer than a lease) has lost the warehouse and must not commit:
`Lease.check()` raises `LeaseLost` then, and the run calls it just before it commits.

A lease lasts `ETL_LEASE_SECONDS` (default 60). Its expiry is UTC wall-clock time written by its
holder: the machines sharing a warehouse must agree on the time to well within a lease (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from etl import storage
from etl.errors import EtlError, UsageError, WarehouseBusy
from etl.storage import ObjectInfo, Store
from etl.warehouse.layout import Layout

DEFAULT_LEASE_SECONDS = 60.0
# A lease that cannot be read yet is taken as held for this long (its writer may be starting).
_UNREADABLE_GRACE_SECONDS = 10
_HELD_HERE: set[str] = set()  # run ids holding a warehouse in this process (runs on other threads)

log = logging.getLogger("etl")


class LeaseLost(EtlError):
    """Another run took the warehouse over while this run held it: this run must not commit."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, and until when (None: a lock written before leases had an expiry)."""

    run_id: str
    pid: int | str
    host: str
    expires: datetime | None = None

    @classmethod
    def this_run(cls, run_id: str, seconds: float) -> Holder:
        return cls(run_id, os.getpid(), socket.gethostname()).renewed(seconds)

    def renewed(self, seconds: float) -> Holder:
        return replace(self, expires=datetime.now(UTC) + timedelta(seconds=seconds))

    def document(self) -> bytes:
        expires = self.expires.isoformat(timespec="milliseconds") if self.expires else None
        return storage.json_bytes({"run_id": self.run_id, "pid": self.pid, "host": self.host, "expires": expires})

    @classmethod
    def read(cls, data: Any) -> Holder | None:
        if not isinstance(data, dict) or "run_id" not in data:
            return None
        try:
            expires = datetime.fromisoformat(data["expires"]) if data.get("expires") else None
        except (TypeError, ValueError):
            expires = None
        return cls(str(data["run_id"]), data.get("pid", "?"), str(data.get("host", "?")), expires)

    def __str__(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"


class Lease:
    """The warehouse held by one run: renewed in the background from `start` until `release`."""

    def __init__(self, store: Store, key: str, holder: Holder, etag: str, seconds: float, started: float) -> None:
        self.notes: list[str] = []
        self.holder = holder
        self._store, self._key, self._seconds = store, key, seconds
        self._etag = etag
        self._deadline = started + seconds  # (monotonic) when the lease ends unless renewed
        self._lost_to: Holder | None = None
        self._stopping = threading.Event()
        self._renewer = threading.Thread(target=self._keep_renewing, name="etl-lease", daemon=True)

    @property
    def lost(self) -> bool:
        """Whether another run may hold the warehouse now: the lease was taken over, or it ran out."""
        return self._lost_to is not None or time.monotonic() > self._deadline

    def check(self) -> None:
        """Raise `LeaseLost` when the lease was lost (call it before committing)."""
        if not self.lost:
            return
        where = self._store.describe()
        if self._lost_to is not None:
            raise LeaseLost(
                f"run {self.holder.run_id} lost the warehouse {where} to {self._lost_to}: it commits nothing"
            )
        raise LeaseLost(
            f"run {self.holder.run_id} could not renew its lease on the warehouse {where} in time "
            "(another run may have taken it over): it commits nothing"
        )

    def renew(self) -> bool:
        """Extend the lease by its length if it is still this run's; False once it is lost."""
        started = time.monotonic()
        holder = self.holder.renewed(self._seconds)
        try:
            etag = self._store.replace_if_unchanged(self._key, holder.document(), self._etag)
        except Exception as problem:  # the store failed after its own retries: try again at the next beat
            log.warning("could not renew the lease on %s (%s); trying again", self._store.describe(), problem)
            return not self.lost
        if etag is None:
            self._lost_to = _read_holder(self._store, self._key) or Holder("(unknown)", "?", "?")
            log.warning("run %s lost the warehouse %s to %s", self.holder.run_id, self._store.describe(), self._lost_to)
            return False
        self.holder, self._etag, self._deadline = holder, etag, started + self._seconds
        return True

    def start(self) -> None:
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing, and remove the lease if it is still this run's."""
        self._stopping.set()
        if self._renewer.is_alive():
            self._renewer.join()
        if self._lost_to is not None:
            return
        try:
            current = self._store.head(self._key)
            if current is not None and current.etag == self._etag:
                self._store.delete(self._key)
        except Exception as problem:  # (not to hide why the run stopped): the lease then just expires
            log.warning("could not remove the lease on %s (%s): it expires by itself", self._store.describe(), problem)

    def _keep_renewing(self) -> None:
        while not self._stopping.wait(self._seconds / 3):
            if not self.renew():
                return


@contextmanager
def hold_warehouse(layout: Layout, run_id: str) -> Iterator[Lease]:
    """Hold the warehouse for one run (`WarehouseBusy` when another run holds it); the lease's `notes`
    say when a lease left by another run was taken over. Call `lease.check()` before committing."""
    _HELD_HERE.add(run_id)  # before the lease is written: a run on another thread must not find it stale
    try:
        lease = _take(layout, run_id, lease_seconds())
    except BaseException:
        _HELD_HERE.discard(run_id)
        raise
    lease.start()
    try:
        yield lease
    finally:
        _HELD_HERE.discard(run_id)
        lease.release()


@contextmanager
def writer_lock(layout: Layout, run_id: str) -> Iterator[list[str]]:
    """`hold_warehouse`, yielding only the notes (for callers that do not check the lease themselves:
    a lease lost while the block ran is raised as `LeaseLost` when it ends)."""
    with hold_warehouse(layout, run_id) as lease:
        yield lease.notes
        lease.check()


def lease_seconds() -> float:
    """How long a lease lasts unless renewed: `ETL_LEASE_SECONDS`, default 60."""
    text = os.environ.get("ETL_LEASE_SECONDS", "")
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise UsageError(f"ETL_LEASE_SECONDS must be a positive number of seconds, not {text!r}")
    return seconds


def _take(layout: Layout, run_id: str, seconds: float) -> Lease:
    store, key = layout.store, layout.lock
    while True:
        me, started = Holder.this_run(run_id, seconds), time.monotonic()
        etag = store.put_if_absent(key, me.document())
        if etag:
            return Lease(store, key, me, etag, seconds, started)
        found = store.head(key)
        if found is None:
            continue  # released just now: try again
        other = _read_holder(store, key)
        ended = _ended(other, found, seconds)
        if ended is None:
            raise WarehouseBusy(_busy(store, other, found, seconds))
        # Taken over only if it is still the lease judged ended: of two runs that found it, one wins.
        etag = store.replace_if_unchanged(key, me.document(), found.etag)
        if etag:
            lease = Lease(store, key, me, etag, seconds, started)
            lease.notes.append(f"took over the lock {ended}")
            return lease


def _read_holder(store: Store, key: str) -> Holder | None:
    try:
        return Holder.read(storage.read_json(store, key))
    except (OSError, ValueError):
        return None


def _ended(other: Holder | None, found: ObjectInfo, seconds: float) -> str | None:
    """Why a lease found on the warehouse no longer holds it (for the note), or None while it does."""
    if other is None:  # unreadable: being written, or garbage
        return "that could not be read" if _age_seconds(found) >= _UNREADABLE_GRACE_SECONDS else None
    if other.host == socket.gethostname():
        if other.pid == os.getpid():  # a run on another thread, or an earlier process with this pid
            held = other.run_id in _HELD_HERE  # (a restarted container's pid 1)
            return None if held else f"left by {other}, which is no longer running"
        if not _is_alive(other.pid):
            return f"left by {other}, which is no longer running"  # died on this host: taken over at once
    if datetime.now(UTC) < _expiry(other, found, seconds):
        return None
    return f"of {other}, whose lease expired without being renewed"


def _expiry(holder: Holder, found: ObjectInfo, seconds: float) -> datetime:
    """When a lease ends: as written, or (a lock written before leases) a lease after it was written."""
    return holder.expires or found.modified + timedelta(seconds=seconds)


def _age_seconds(found: ObjectInfo) -> float:
    return (datetime.now(UTC) - found.modified).total_seconds()


def _is_alive(pid: int | str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _busy(store: Store, other: Holder | None, found: ObjectInfo, seconds: float) -> str:
    where = store.describe()
    if other is None:
        return f"the warehouse {where} is in use by a run that is starting (pid ? on ?); try again in a moment"
    ends = _expiry(other, found, seconds)
    left = max(0, round((ends - datetime.now(UTC)).total_seconds()))
    return (
        f"the warehouse {where} is in use by {other}, whose lease ends at {ends:%Y-%m-%d %H:%M:%S} UTC "
        f"(in {left} s) unless that run renews it; try again when it has finished"
    )
