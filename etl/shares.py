"""Work that holds identities or user sets in memory is split into shares of bounded size.

Each share is chosen by a hash, so the shares' results add up exactly to the whole, and memory stays
flat however large a date or the warehouse grows.
"""

from __future__ import annotations

import math

import polars as pl

# Finding a date's repeats held about 85 MB at the peak with shares of 250k rows and 165 MB with 500k
# (which, with counting running alongside, made the rebuild the peak of a 10M-event run); more
# shares mean more passes over the same files.
SHARE_ROWS = 300_000


def share_count(rows: int) -> int:
    """How many shares of at most SHARE_ROWS `rows` rows make."""
    return max(1, math.ceil(rows / SHARE_ROWS))


def rows_of(files: pl.LazyFrame) -> int:
    """The rows of a scan of Parquet files (counted from their metadata)."""
    return int(files.select(pl.len()).collect().item())


def id_shares(rows: int) -> list[pl.Expr]:
    """Filters splitting `rows` event identities into shares of at most about SHARE_ROWS."""
    count = share_count(rows)
    if count == 1:
        return [pl.lit(True)]
    digits = pl.col("event_id").str.slice(0, 6).str.to_integer(base=16)  # the id is a uniform hex hash
    return [digits % count == n for n in range(count)]
