"""Bring a warehouse written by an earlier version up to date; run only when its registry says so.

- Version 1 computed event ids with BLAKE2b (now SHA-256). Every published event id changes, so the
  run becomes a reprocess of every date, and the staged copies of files no longer read (not in the
  landing zone any more) get today's ids, batch by batch; files read again get new copies anyway.
- Version 2 counted funnels by event date, from events, and had no messages table. The run rebuilds
  every event date from the staged copies (no landing file is read again), counts every message,
  and replaces the daily funnels by event date with those by send date, all in one commit.
"""

from __future__ import annotations

from etl import storage
from etl.normalise import event_id
from etl.staging import staged_sink, write_by_date
from etl.storage import Store
from etl.warehouse import Layout, RegisteredFile, staging_key

#: Registry versions below this have event ids of another hash.
IDS_CHANGED = 2


def upgrade_note(version: int) -> str:
    """What the run says when it upgrades a warehouse of registry `version`."""
    if version < IDS_CHANGED:
        return (
            "the warehouse was written by an earlier version (event ids were BLAKE2b, now SHA-256): "
            "every date is rebuilt once, from the landing files and the staged copies"
        )
    return (
        "the warehouse was written by an earlier version (funnels by event date, no messages table): "
        "every date is rebuilt once from the staged copies, with messages and funnels by send date"
    )


def upgrade_staged(store: Store, run_id: str, kept: list[RegisteredFile], batch_rows: int) -> dict[str, str]:
    """The staged copies of `kept`, converted and staged in the journal of run `run_id` (by SHA-256)."""
    converted = {}
    for entry in kept:
        old = Layout.staged(entry.sha256)
        if store.head(old) is None:
            continue
        new = staging_key(run_id, old)
        sink = staged_sink(store, new)
        for batch in storage.iter_parquet(store, old, batch_rows):
            write_by_date(batch.with_columns(event_id()), sink.write)
        sink.close()
        converted[entry.sha256] = new
    return converted
