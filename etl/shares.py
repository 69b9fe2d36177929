"""Work that holds identities or user sets in memory is split into shares of bounded size.

Each share is chosen by a hash, so the shares' results add up exactly to the whole, and memory stays
flat however large a date or the warehouse grows. The share size is `Tuning.share_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import polars as pl

from etl import storage
from etl.storage import Store


def share_count(rows: int, share_rows: int) -> int:
    """How many shares of at most `share_rows` `rows` rows make."""
    return max(1, math.ceil(rows / share_rows))


def rows_of(frame: pl.LazyFrame) -> int:
    """The rows of a lazy frame (for a scan of Parquet files: counted from their metadata)."""
    return int(frame.select(pl.len()).collect().item())


def id_shares(rows: int, share_rows: int) -> list[pl.Expr]:
    """Filters splitting `rows` event identities into shares of at most about `share_rows`."""
    count = share_count(rows, share_rows)
    if count == 1:
        return [pl.lit(True)]
    digits = pl.col("event_id").str.slice(0, 6).str.to_integer(base=16)  # the id is a uniform hex hash
    return [digits % count == n for n in range(count)]


def runs_of_rows(store: Store, keys: list[str], rows: int) -> Iterator[list[str]]:
    """Consecutive Parquet objects in runs of about `rows` rows (one larger than that is a run of its own)."""
    run: list[str] = []
    held = 0
    for key in keys:
        count = storage.rows_in(store, key)
        if run and held + count > rows:
            yield run
            run, held = [], 0
        run.append(key)
        held += count
    if run:
        yield run
