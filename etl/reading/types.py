"""The shared vocabulary of reading: options, what a file splits into, and what reading hands on.

A leaf: it imports nothing from `etl`, so every other module (storage included) may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

FEED_SUFFIXES = (".json", ".ndjson", ".jsonl")
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
#: An API payload nests this deep; a lower --max-depth leaves every record to the record-by-record path.
VECTORISED_DEPTH = 4


class FeedReadError(Exception):
    """A landing file's bytes could not be read to the end (truncated or corrupt compression)."""


def is_feed_file(name: str) -> bool:
    lowered = name.lower().removesuffix(".gz")
    return lowered.endswith(FEED_SUFFIXES)


def is_line_delimited(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith((".ndjson", ".jsonl"))


@dataclass(frozen=True)
class Tuning:
    """How much reading takes at once. Only speed and memory depend on these, never the result."""

    batch_rows: int = 50_000  # rows of a batch read record by record
    # Blocks read at once are judged together up to this many rows: validation has a fixed cost per call.
    judge_rows: int = 100_000
    window_chars: int = 8 * 1024 * 1024  # the part of a JSON array offered to the vectorised path at once
    split_bytes: int = 1024 * 1024  # windows larger than this are parsed as two halves on two threads
    slow_run: int = 5000  # elements taken one by one after the vectorised path declined a window


@dataclass(frozen=True)
class Limits:
    """Bounds on one record (what exceeds them is quarantined with its own reason code), and how to read."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    vectorised: bool = True  # try the vectorised path first (off only to compare both paths)
    tuning: Tuning = Tuning()

    @property
    def use_vectorised(self) -> bool:
        """Whether to try the vectorised path: it reads records up to API-payload depth, so a lower
        --max-depth leaves every record to the record-by-record judgement."""
        return self.vectorised and self.max_depth >= VECTORISED_DEPTH


@dataclass(frozen=True)
class Unit:
    """One record's text as found in the file: parsed, or with the reason it could not be."""

    position: str
    raw: str
    value: Any = None
    error: tuple[str, str] | None = None


#: The columns of an event row, in order: what every shape of record is mapped to.
ROW_COLUMNS: tuple[str, ...] = (
    "user_id",
    "event",
    "timestamp_text",
    "timestamp_number",
    "channel",
    "message_type",
    "url",
    "campaign_id",
    "message_id",
    "extra",
    "wrong_type",
    "user_id_conflict",
    "source_position",
    "raw",
)

#: One event row: a value for each of ROW_COLUMNS, in that order.
Row = tuple[Any, ...]


@dataclass
class Rejection:
    position: str
    raw: str
    reason: str
    detail: str
    ordinal: int = 0  # the record's sequence number in its file, set when it is counted


@dataclass
class Expanded:
    """What one record gave: its event rows, or why it (or one of its events) gave none."""

    rows: list[Row] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class Block:
    """Records read at once: their rows, which record each row came from, and the records' text."""

    rows: pl.DataFrame  # ROW_COLUMNS, `raw` left empty
    sources: np.ndarray  # row -> record (line or element) index within the block
    records: int
    record_text: Callable[[int], str]

    def raw(self, row: int) -> str:
        return self.record_text(int(self.sources[row]))


@dataclass
class RecordBatch:
    """Records of one batch; every row and rejection numbered in file order (its ordinal).

    Rows come as tuples from the record-by-record path, or as a ready `frame` from the vectorised
    path, which keeps `raw_of` to find the original text of the rows that turn out to be rejected.
    """

    first_ordinal: int
    rows: list[Row] = field(default_factory=list)
    ordinals: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    count: int = 0
    parsed: bool = False  # some record in it was valid JSON
    frame: pl.DataFrame | None = None
    raw_of: Callable[[int], str] | None = None  # original text of the frame's row k

    def add(self, expanded: Expanded) -> None:
        # A record's rows come before its rejections in the numbering; both stay within the record.
        start = self.first_ordinal + self.count
        self.rows.extend(expanded.rows)
        self.ordinals.extend(range(start, start + len(expanded.rows)))
        for offset, rejection in enumerate(expanded.rejections, start=start + len(expanded.rows)):
            rejection.ordinal = offset
            self.rejections.append(rejection)
        self.count += len(expanded.rows) + len(expanded.rejections)
