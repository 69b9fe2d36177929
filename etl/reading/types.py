"""The shared vocabulary of reading: options, what a file splits into, and what reading hands on.

A leaf: it imports nothing from `etl`, so every other module (storage included) may import it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

JSON_SUFFIXES = (".json", ".ndjson", ".jsonl")  # each optionally .gz
AVRO_SUFFIX = ".avro"  # Avro container files compress their own blocks: never .gz
FEED_SUFFIXES = (*JSON_SUFFIXES, AVRO_SUFFIX)
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
#: An API payload nests this deep; a lower --max-depth leaves every record to the record-by-record path.
VECTORISED_DEPTH = 4


class FeedReadError(Exception):
    """A landing file's bytes could not be read to the end (truncated or corrupt compression)."""


def is_feed_file(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(AVRO_SUFFIX) or lowered.removesuffix(".gz").endswith(JSON_SUFFIXES)


def is_avro(name: str) -> bool:
    return name.lower().endswith(AVRO_SUFFIX)


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
    # A provider's NDJSON records are large (SES: ~1.2 KB), so a 4 MB block holds few of them, and
    # reading a block at once costs much per block: consecutive blocks are joined up to this size
    # (two such blocks are read at a time; 40 MB was ~5 % faster on SES for ~250 MB more memory).
    provider_block_bytes: int = 16 * 1024 * 1024


#: Options of one provider, as a --sources file sets them: option name -> value (a field name).
Options = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SourceRule:
    """Files whose landing-relative name matches `glob` are read as `provider`'s (when set), with
    `options` for that provider. `pattern` is the glob translated to a regular expression."""

    glob: str
    pattern: str
    provider: str | None = None
    options: Options = ()


@dataclass(frozen=True)
class Sources:
    """How to read other providers' files (SPEC §2.3): what a --sources file and ETL_PSEUDONYMISE_KEY
    say, parsed once (`etl.sources.load_sources`). Plain data, so a unit of work in another process
    gets it with its Limits; the key is never shown by repr."""

    rules: tuple[SourceRule, ...] = ()
    provider_options: tuple[tuple[str, Options], ...] = ()  # provider -> options, for every file
    pseudonymise_key: bytes | None = field(default=None, repr=False)

    def context(self, name: str) -> ReadContext:
        """What reading the file `name` needs: its pinned provider (the first rule naming one that
        matches wins) and every provider's options (a matching rule's override the general ones)."""
        options = {provider: dict(values) for provider, values in self.provider_options}
        pinned = None
        for rule in self.rules:
            if re.fullmatch(rule.pattern, name):
                pinned = pinned or rule.provider
                if rule.provider and rule.options:
                    options.setdefault(rule.provider, {}).update(rule.options)
        return ReadContext(name, pinned, {key: tuple(values.items()) for key, values in options.items()})


@dataclass(frozen=True)
class ReadContext:
    """What reading one file needs beyond its bytes: its name (Braze's Avro-JSON names the event type
    only there), the provider pinned for it, and each provider's options."""

    name: str = ""
    pinned: str | None = None
    options: dict[str, Options] = field(default_factory=dict)

    def options_of(self, provider: str) -> dict[str, str]:
        return dict(self.options.get(provider, ()))


@dataclass(frozen=True)
class Limits:
    """Bounds on one record (what exceeds them is quarantined with its own reason code), and how to read."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    vectorised: bool = True  # try the vectorised path first (off only to compare both paths)
    tuning: Tuning = Tuning()
    sources: Sources = Sources()

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
    "machine_open",
    "suspected_bot",
    "source_format",
)
#: Whose format the platform's own shapes are, in `source_format`.
ACTIVATEPRO = "activatepro"

#: One event row: a value for each of ROW_COLUMNS, in that order.
Row = tuple[Any, ...]


@dataclass
class Rejection:
    position: str
    raw: str
    reason: str
    detail: str
    ordinal: int = 0  # the record's sequence number in its file, set when it is counted


#: An event a provider's mapping leaves out on purpose (SPEC §4): (provider, the provider's event name).
Ignored = tuple[str, str]


@dataclass
class Expanded:
    """What one record gave: its event rows, why it (or one of its events) gave none, and the events
    its provider's mapping ignores (one entry per event: an SES record for two recipients gives two)."""

    rows: list[Row] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


@dataclass
class Block:
    """Records read at once: their rows, which record each row came from, and the records' text."""

    rows: pl.DataFrame  # ROW_COLUMNS, `raw` left empty
    sources: np.ndarray  # row -> record (line or element) index within the block
    records: int
    record_text: Callable[[int], str]
    ignored: Counter[Ignored] = field(default_factory=Counter)  # events the mapping left out

    def raw(self, row: int) -> str:
        return self.record_text(int(self.sources[row]))


@dataclass
class RecordBatch:
    """Records of one batch; every row and rejection numbered in file order (its ordinal).

    Rows come as tuples from the record-by-record path, or as a ready `frame` from the vectorised
    path, which keeps `raw_of` to find the original text of the rows that turn out to be rejected.
    Ignored events are only counted: they have no ordinal, and `count` leaves them out (`read` does not).
    """

    first_ordinal: int
    rows: list[Row] = field(default_factory=list)
    ordinals: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    count: int = 0
    parsed: bool = False  # some record in it was valid JSON
    frame: pl.DataFrame | None = None
    raw_of: Callable[[int], str] | None = None  # original text of the frame's row k
    ignored: Counter[Ignored] = field(default_factory=Counter)

    @property
    def read(self) -> int:
        """Events read (SPEC §4): rows, rejections and ignored events."""
        return self.count + sum(self.ignored.values())

    def add(self, expanded: Expanded) -> None:
        # A record's rows come before its rejections in the numbering; both stay within the record.
        start = self.first_ordinal + self.count
        self.rows.extend(expanded.rows)
        self.ordinals.extend(range(start, start + len(expanded.rows)))
        for offset, rejection in enumerate(expanded.rejections, start=start + len(expanded.rows)):
            rejection.ordinal = offset
            self.rejections.append(rejection)
        self.count += len(expanded.rows) + len(expanded.rejections)
        self.ignored.update(expanded.ignored)
