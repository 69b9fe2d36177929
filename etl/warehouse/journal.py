"""Publishing a run's objects together: stage, commit a plan, apply it.

Every new object of a run is first written under `_state/journal/<run_id>/`, at the key it will have
when published (so a unit of work in any process knows where to write without asking anyone). Then
the plan of moves and deletions is committed, written once and only if absent: the point of no
return. Then it is applied. A run killed before the commit leaves the tables as they were (the next
run discards its staging); one killed after it is rolled forward by the next run (every step of a
plan may be repeated). So every table ends either wholly old or wholly new.

The plan holds each staged object's size, taken when the staging is made durable (one listing of
it, before the run checks its lease): a staged object missing then fails the run before its point of
no return, and one lost after it (removed by hand, a disk that broke its promise) is told from one an
earlier apply moved by its target: missing, or of another size than the staged object (the object
it was to replace; one of the same size passes for moved).
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from etl import storage
from etl.errors import EtlError
from etl.faults import fault_point
from etl.storage import Store
from etl.warehouse.layout import JOURNAL, Layout

PLAN = "plan.json"

log = logging.getLogger("etl")


def journal_prefix(run_id: str) -> str:
    return f"{JOURNAL}/{run_id}"


def staging_key(run_id: str, target: str) -> str:
    """Where a run stages the object it will publish at `target`."""
    return f"{journal_prefix(run_id)}/{target}"


class Journal:
    """The objects one run stages, published together at `commit`."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.prefix = journal_prefix(run_id)
        self._ops: dict[str, dict[str, str]] = {}  # by target: the last word on a target wins
        self.committing = False  # from the moment the plan is written: the run may be committed
        self.published = False  # its plan applied: the run's changes are in the tables
        self._sizes: dict[str, int] = {}  # staged objects made durable: their sizes, for the plan

    def key(self, target: str) -> str:
        """The staging key of `target`, for a writer that stages it itself (then `adopt`)."""
        return staging_key(self.run_id, target)

    def adopt(self, target: str) -> None:
        """Publish at `target` the object written at `key(target)`."""
        self._ops[target] = {"op": "replace", "src": self.key(target), "dst": target}

    def put_parquet(self, frame: pl.DataFrame, target: str, required: list[str] | None = None) -> None:
        """Stage a frame for `target`; `required`: its columns declared non-null."""
        storage.write_parquet(self.store, frame, self.key(target), required or ())
        self.adopt(target)

    def put_json(self, data: Any, target: str) -> None:
        storage.write_json(self.store, data, self.key(target))
        self.adopt(target)

    def delete(self, target: str) -> None:
        self._ops[target] = {"op": "delete", "dst": target}

    def scratch_prefix(self) -> str:
        return f"{self.prefix}/scratch"

    def make_durable(self) -> None:
        """Make every object staged so far durable (on local disk: fsynced) and note its size: a run
        does it before it checks that it still holds the warehouse, so that the commit follows the
        check at once. A staged object that is missing fails the run here."""
        staged = [op["src"] for op in self._ops.values() if op["op"] == "replace" and op["src"] not in self._sizes]
        if not staged:
            return
        try:
            self.store.sync(staged)
        except FileNotFoundError as error:
            raise EtlError(f"the staged object {error.filename} is missing before the commit") from error
        # One listing of the staging (not a request per object); a key it lacks is asked for alone.
        listed = {info.key: info.size for info in self.store.list(self.prefix)} if len(staged) > 1 else {}
        for key in staged:
            info = None if key in listed else self.store.head(key)
            if key not in listed and info is None:
                raise EtlError(f"the staged object {key} is missing before the commit")
            self._sizes[key] = listed[key] if info is None else info.size

    def commit(self) -> None:
        """The point of no return: after this the run's changes are published, now or by the next run."""
        fault_point("commit")
        self.make_durable()  # (what is staged is durable before the plan that publishes it)
        ops = [{**op, "size": self._sizes[op["src"]]} if op["op"] == "replace" else op for op in self._ops.values()]
        plan = storage.json_bytes({"ops": ops})
        self.committing = True
        if not self.store.put_if_absent(f"{self.prefix}/{PLAN}", plan):
            raise RuntimeError(f"run {self.run_id} has a committed plan already")
        fault_point("committed")
        apply_plan(self.store, self.prefix)
        self.published = True

    def abandon(self) -> None:
        """Drop an uncommitted run's objects; a committed plan stays for the next run to finish."""
        if self.store.head(f"{self.prefix}/{PLAN}") is None:
            self.store.delete_prefix(self.prefix)


def apply_plan(store: Store, prefix: str) -> list[str]:
    """Carry out a committed plan; every step may be repeated, so a killed apply is simply redone.

    A staged object that is gone was moved by an earlier apply, and its target is there with its
    size; were the target missing, or of another size (the object it was to replace), the staged one
    was lost after the commit: the rest is published, and the lost targets are returned (and logged)
    to be rebuilt. (Plans of versions before sizes were kept: a target that is there counts as moved.)"""
    plan = storage.read_json(store, f"{prefix}/{PLAN}")
    lost = []
    for op in plan["ops"]:
        if op["op"] == "replace":
            if store.head(op["src"]) is not None:
                store.move(op["src"], op["dst"])
            elif not _moved(store.head(op["dst"]), op.get("size")):
                lost.append(op["dst"])
                log.error("%s was not published: its staged object %s is missing", op["dst"], op["src"])
        else:
            store.delete(op["dst"])
        fault_point("apply")
    # The plan goes first, on its own and loudly: a plan left behind would be applied again later,
    # and its deletions would remove what later runs published.
    store.delete(f"{prefix}/{PLAN}")
    fault_point("applied")
    store.delete_prefix(prefix)
    return lost


def _moved(target: storage.ObjectInfo | None, size: int | None) -> bool:
    """Whether the target is the staged object an earlier apply moved there."""
    return target is not None and (size is None or target.size == size)


def recover(layout: Layout) -> list[str]:
    """Finish committed runs and discard uncommitted ones; what was done, for the log."""
    done: list[str] = []
    runs = sorted({info.key.split("/")[2] for info in layout.store.list(layout.journal_root)})
    for run_id in runs:
        prefix = journal_prefix(run_id)
        if layout.store.head(f"{prefix}/{PLAN}") is not None:
            lost = apply_plan(layout.store, prefix)
            done.append(f"completed the publish of interrupted run {run_id}")
            if lost:
                done.append(
                    f"lost after the commit of run {run_id}, not published: {', '.join(lost)} (where one was "
                    "published before, it stays; partitions of events, messages and funnels come back with "
                    "`etl reprocess` over their dates)"
                )
        else:
            layout.store.delete_prefix(prefix)
            done.append(f"discarded the unfinished work of interrupted run {run_id}")
    return done
