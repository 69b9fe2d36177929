"""The vectorised reading path: a block of records parsed at once by Arrow's JSON reader.

NDJSON blocks are read as they are; a window of a JSON array is first rewritten as NDJSON with numpy
(string-aware: quotes are paired, so brackets and commas inside strings are ignored).

Arrow's reader is strict with an explicit schema: a value of another JSON type, an unknown key (at
any level), a key given twice, a lone surrogate or bad JSON makes it refuse the whole block. A block is
taken here only when every record is a feed record or an API payload with known keys and string (or
null) values, and nothing else needs the general rules; anything else returns None and the block goes
through the record-by-record path, which judges it in detail. Both paths give identical rows,
rejections and counts (property tests check it); this one just does not loop in Python.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from etl.records import PROPERTY_COLUMNS, ROW_COLUMNS, TRIM, USER_KEYS

_KEYS = (*USER_KEYS, "event", "timestamp", *PROPERTY_COLUMNS)
WINDOW_CHARS = 8 * 1024 * 1024
VECTORISED_DEPTH = 4  # an API payload nests this deep; a lower --max-depth is judged record by record
# Arrow reads `{...} {...}` on one line as two records; with a blank line elsewhere the count would
# still match, so such lines go record by record. (A string holding "}{" only costs that block speed.)
_TWO_ON_A_LINE = re.compile(rb"\}[ \t\r]*\{")
_PROPERTIES = pa.struct([(key, pa.string()) for key in PROPERTY_COLUMNS])
_EVENT = pa.struct([("event", pa.string()), ("timestamp", pa.string()), ("properties", _PROPERTIES)])
_PARSE = pj.ParseOptions(
    explicit_schema=pa.schema([*((key, pa.string()) for key in _KEYS), ("events", pa.list_(_EVENT))]),
    unexpected_field_behavior="error",
)
_FLAT_ONLY = ("event", "timestamp", *PROPERTY_COLUMNS)  # fields a payload must not carry at its top


def read_block(
    block: bytes, first_line: int, max_record_bytes: int, position: str = "line {}", one_per_line: bool = False
) -> tuple[pl.DataFrame, np.ndarray] | None:
    """The rows (ROW_COLUMNS, `raw` left empty) of a block of complete lines, and for each row the
    line (from 0) it came from; None to go slowly. An API payload line gives one row per event.

    Line k of the block gets the source position `position` filled with `first_line + k`;
    `one_per_line` says the block was built with exactly one record a line.
    """
    if not block or block.startswith(codecs.BOM_UTF8):
        return None  # a BOM is the slow path's to strip
    if (not one_per_line and _TWO_ON_A_LINE.search(block)) or not _is_utf8(block):
        return None  # Arrow passes invalid UTF-8 through into the strings
    if len(block) > max_record_bytes and _longest_line(block) > max_record_bytes:
        return None
    try:
        table = pj.read_json(io.BytesIO(block), parse_options=_PARSE)
    except (pa.ArrowException, ValueError):  # refused: some record needs a closer look
        return None
    lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    if table.num_rows != lines:
        return None  # Arrow skipped a blank line: line numbers would shift
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    user_id, user_alt = (pl.col(key).str.strip_chars(TRIM) for key in USER_KEYS)
    conflict = (user_id != "") & (user_alt != "") & (user_id != user_alt)
    payload = pl.col("events").is_not_null()
    flat_fields = pl.any_horizontal(pl.col(key).is_not_null() for key in _FLAT_ONLY)
    awkward = (
        conflict.fill_null(False)  # the slow path words the conflict
        | (payload & flat_fields)  # payload-level fields follow the general rules
        | (pl.col("events").list.len() == 0)  # an empty payload is quarantined
        | pl.col("events").list.eval(pl.element().is_null()).list.any()  # an event that is not an object
    )
    if frame.select(awkward.fill_null(False).any()).item():
        return None
    frame = frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_record"),
        pl.coalesce(pl.when(user_id != "").then(user_id), pl.when(user_alt != "").then(user_alt)).alias("user_id"),
    )
    flat = frame.filter(~payload).select(
        "_record",
        pl.lit(-1, dtype=pl.Int64).alias("_event"),
        "user_id",
        "event",
        pl.col("timestamp").alias("timestamp_text"),
        *(pl.col(key).alias(column) for key, column in PROPERTY_COLUMNS.items()),
    )
    events = (
        frame.filter(payload)
        .select("_record", "user_id", "events", pl.int_ranges(pl.col("events").list.len()).alias("_event"))
        .explode("events", "_event")
        .unnest("events")
        .unnest("properties")
        .select(
            "_record",
            pl.col("_event").cast(pl.Int64),
            "user_id",
            "event",
            pl.col("timestamp").alias("timestamp_text"),
            *(pl.col(key).alias(column) for key, column in PROPERTY_COLUMNS.items()),
        )
    )
    where = pl.format(position, pl.col("_record") + first_line)
    none = pl.lit(None, dtype=pl.String)
    rows = (
        pl.concat([flat, events])
        .sort("_record", "_event")
        .with_columns(
            pl.lit(None, dtype=pl.Float64).alias("timestamp_number"),
            none.alias("extra"),
            none.alias("wrong_type"),
            none.alias("user_id_conflict"),
            pl.when(pl.col("_event") < 0)
            .then(where)
            .otherwise(pl.format("{} event {}", where, pl.col("_event")))
            .alias("source_position"),
            pl.lit("").alias("raw"),
        )
    )
    return rows.select(ROW_COLUMNS), rows["_record"].to_numpy()


@dataclass
class Block:
    """Records read at once: their rows, which record each row came from, and the records' text."""

    rows: pl.DataFrame
    sources: np.ndarray  # row -> record (line or element) index within the block
    records: int
    record_text: Callable[[int], str]

    def raw(self, row: int) -> str:
        return self.record_text(int(self.sources[row]))


def ndjson_block(block: bytes, first_line: int, max_record_bytes: int) -> Block | None:
    read = read_block(block, first_line, max_record_bytes)
    if read is None:
        return None
    rows, sources = read
    lines: list[bytes] = []

    def record_text(index: int) -> str:  # as the record-by-record path keeps it: the stripped line
        if not lines:
            lines.extend(block.split(b"\n"))
        return lines[index].strip(b" \t\r\n").decode("utf-8")

    return Block(rows, sources, block.count(b"\n") + (0 if block.endswith(b"\n") else 1), record_text)


def array_block(
    text: str, start: int, first_index: int, prefix: str, max_record_bytes: int
) -> tuple[Block, int] | None:
    """The objects of an array window as a Block, and how many characters they took; or None."""
    window = split_array_window(text, start, WINDOW_CHARS, max_record_bytes)
    if window is None:
        return None
    read = read_block(window.ndjson, first_index, max_record_bytes, prefix + "element {}", one_per_line=True)
    if read is None:
        return None
    rows, sources = read
    return Block(rows, sources, window.count, window.raw), window.consumed


def _is_utf8(block: bytes) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _longest_line(block: bytes) -> int:
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(block)]))
    return int(np.diff(bounds).max()) - 1


@dataclass(frozen=True)
class ArrayWindow:
    """Complete objects at the start of a window of a JSON array, as NDJSON."""

    ndjson: bytes  # one object per line
    original: bytes  # the window's bytes as found, for raw text
    starts: np.ndarray  # each object's [start, end) in `original`
    ends: np.ndarray
    consumed: int  # characters of the text used up (through the last object)

    @property
    def count(self) -> int:
        return int(self.starts.size)

    def raw(self, index: int) -> str:
        return self.original[int(self.starts[index]) : int(self.ends[index])].decode("utf-8")


def split_array_window(text: str, start: int, max_chars: int, max_record_bytes: int) -> ArrayWindow | None:
    """The objects beginning at text[start] (a `{` inside an array), up to about max_chars of text.

    None when the window holds anything else: escapes (quote pairing would need more care), newlines
    inside strings, values other than objects, objects over the size limit: the record-by-record path
    takes those.
    """
    if text.find("\\", start, start + max_chars) >= 0:
        return None  # checked before encoding: feeds written with escapes decline every window
    original = text[start : start + max_chars].encode("utf-8", errors="surrogateescape")
    data = np.frombuffer(original, dtype=np.uint8)
    if data.size == 0 or data[0] != ord("{"):
        return None
    # Without escapes, every quote opens or closes a string: their running parity says what is inside.
    outside = np.bitwise_xor.accumulate((data == ord('"')).view(np.uint8)) == 0
    # Depth after each bracket outside strings (a short array: brackets only, not every byte).
    brackets = (data == ord("{")) | (data == ord("}")) | (data == ord("[")) | (data == ord("]"))
    where = np.flatnonzero(outside & brackets)
    kind = data[where]
    opening = (kind == ord("{")) | (kind == ord("["))
    depth = np.cumsum(np.where(opening, 1, -1), dtype=np.int32)
    below = np.flatnonzero(depth < 0)
    if below.size:  # the first bracket closing more than it opened ends the array (or is garbage)
        if kind[below[0]] != ord("]"):
            return None
        limit = int(where[below[0]])
        where, kind, opening, depth = where[: below[0]], kind[: below[0]], opening[: below[0]], depth[: below[0]]
        data, outside = data[:limit], outside[:limit]
    if depth.size == 0 or ((kind == ord("[")) & (depth == 1)).any() or ((data == 10) & ~outside).any():
        return None  # an array where an object should be, or a line break inside a string
    starts = where[opening & (depth == 1)]
    ends = where[~opening & (depth == 0)]
    count = ends.size
    if count == 0 or starts.size not in (count, count + 1):
        return None
    starts = starts[:count]
    if not ((starts < ends).all() and (ends[:-1] + 1 < starts[1:]).all()):
        return None  # two objects touching
    if (ends - starts).max() >= max_record_bytes:
        return None
    last = int(ends[-1])
    marks = np.zeros(last + 2, dtype=np.int8)  # +1 where a gap between objects opens, -1 where it closes
    np.add.at(marks, ends[:-1] + 1, 1)
    np.add.at(marks, starts[1:], -1)
    gaps = np.cumsum(marks[: last + 1], dtype=np.int8) > 0
    gap = data[: last + 1][gaps]
    if not ((gap == 32) | (gap == 9) | (gap == 13) | (gap == 10) | (gap == ord(","))).all():
        return None  # something other than separators between objects
    ndjson = data[: last + 1].copy()
    ndjson[gaps | (ndjson == 10)] = 32  # separators and line breaks (outside strings) become spaces
    ndjson[ends[:-1] + 1] = 10  # then one line per object
    consumed = len(original[: last + 1].decode("utf-8", errors="surrogateescape"))
    return ArrayWindow(ndjson.tobytes() + b"\n", original, starts, ends + 1, consumed)
