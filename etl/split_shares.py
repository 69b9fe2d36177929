"""Counts in more user shares than passes are worth: split once, then count each share on its own.

A count in user shares makes one filtered pass over its partitions per share; past
`Tuning.max_passes` shares, reading everything once per share costs more than writing it once more.
Then the work goes in two steps of units, both on the run's executor (none in the driver, so that
32 cores or 10 machines share them):
- `split_run`: one run of partitions (about `Tuning.split_rows` rows) -> one object per user share,
  with only the columns the count reads, in the run's scratch in the warehouse's store (any node can
  read them, as no local disk is shared);
- then one unit per share counts it from its objects (`SplitShare`; the count is each caller's own:
  messages, lifetime funnel), and the split's objects are removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import polars as pl

from etl import storage
from etl.executors import UNIT_OF_WORK, Executor
from etl.funnel import user_share
from etl.settings import Tuning
from etl.shares import runs_of_rows
from etl.storage import Store, open_store

#: The rows a count reads of some partitions (a picklable function: units get it as an argument).
Select = Callable[[Store, list[str]], pl.LazyFrame]
R = TypeVar("R")


@dataclass(frozen=True)
class SplitShare:
    """One user share of a split: the objects it was split into."""

    share: int
    objects: tuple[str, ...]


@dataclass(frozen=True)
class SplitJob:
    """One run of partitions to split into `shares` user shares."""

    keys: tuple[str, ...]
    run: int
    shares: int
    out_prefix: str  # objects go to <out_prefix>/share-<n>/run-<run>-<i>.parquet


def split_run(warehouse: str, select: Select, job: SplitJob) -> dict[int, list[str]]:
    """Split one run of partitions by user share: for each share with rows, the objects written."""
    store = open_store(warehouse)
    return storage.split_into_objects(
        store,
        select(store, list(job.keys)),
        user_share(job.shares),
        lambda share, number: f"{job.out_prefix}/share-{share}/run-{job.run}-{number}.parquet",
        f"{job.out_prefix}/local",
    )


def split_in_shares(
    warehouse: str, keys: list[str], select: Select, shares: int, prefix: str, tuning: Tuning, executor: Executor
) -> dict[int, list[str]]:
    """Split the rows `select` reads of the partitions `keys` into `shares` user shares, in units of
    `tuning.split_rows` rows: for each share with rows, its objects (under `prefix`)."""
    runs = list(runs_of_rows(open_store(warehouse), keys, tuning.split_rows))
    jobs = [SplitJob(tuple(run), index, shares, prefix) for index, run in enumerate(runs)]
    by_share: dict[int, list[str]] = {}
    for written in executor.map(
        partial(split_run, warehouse, select),
        jobs,
        describe=lambda job: f"split of {len(job.keys)} partitions ({job.keys[0]} …)",
        resources=UNIT_OF_WORK,
    ):
        for share, objects in written.items():
            by_share.setdefault(share, []).extend(objects)
    return dict(sorted(by_share.items()))


def count_in_split_shares(
    warehouse: str,
    keys: list[str],
    select: Select,
    shares: int,
    prefix: str,
    tuning: Tuning,
    executor: Executor,
    count: Callable[[SplitShare], R],
    name: str,
) -> list[R]:
    """Split (`split_in_shares`), then count each share with rows as a unit of work named
    "<name> share <n>" (`count`: picklable), then remove the split: the counts in share order."""
    by_share = split_in_shares(warehouse, keys, select, shares, prefix, tuning, executor)
    counted = executor.map(
        count,
        [SplitShare(share, tuple(objects)) for share, objects in by_share.items()],
        describe=lambda job: f"{name} share {job.share}",
        resources=UNIT_OF_WORK,
    )
    open_store(warehouse).delete_prefix(prefix)
    return counted
