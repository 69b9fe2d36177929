"""The vectorised reading path: a block of records parsed at once by Arrow's JSON reader.

NDJSON blocks are read as they are. A window of a JSON array is cut after its last complete element
(`scan.object_bounds`) and read by Arrow as one document, `{"elements": [...]}`, which checks the
array's syntax in the same pass.

Arrow's reader is strict with an explicit schema: a value of another JSON type, an unknown key (at
any level), a key given twice, a lone surrogate or bad JSON makes it refuse the whole block. A block is
taken here only when every record is a feed record or an API payload with known keys and string (or
null) values, and nothing else needs the general rules; anything else returns None and the block goes
through the record-by-record path (`split` then `mapping`), which judges it in detail. Both paths give
identical rows, rejections and counts (property tests check it); this one just does not loop in Python.
"""

from __future__ import annotations

import codecs
import io
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from etl.reading.mapping import PROPERTY_COLUMNS, TRIM, USER_KEYS
from etl.reading.providers.vectorised import PINNED_TEXT, READERS, sniff
from etl.reading.scan import object_bounds
from etl.reading.split import LINE_BREAK, line_breaks
from etl.reading.types import ACTIVATEPRO, ROW_COLUMNS, Block, Ignored, ReadContext, Tuning

_KEYS = (*USER_KEYS, "event", "timestamp", *PROPERTY_COLUMNS)
# Arrow reads `{...} {...}` on one line as two records, and a record may run over several lines:
# together, rows and lines may match in number but not one to one. Lines that each begin with `{`
# and end with `}` hold whole records (a `}` is followed by a `{` only between two values), so only
# a block with other lines is searched for two on a line. (A string holding "}{" only costs that
# block speed. Python's regex steps through every brace: 1.5 CPU-s for 2.2 GB of SES records, where
# numpy looks at the lines' first and last bytes in 0.9.)
_TWO_ON_A_LINE = re.compile(rb"\}[ \t\r]*\{")
_BRACES = (ord("{"), ord("}"), ord("\r"))
_OBJECT_FIRST = re.compile(rb"[ \t\r\n]*\{")
_PROPERTIES = pa.struct([(key, pa.string()) for key in PROPERTY_COLUMNS])
_EVENT = pa.struct([("event", pa.string()), ("timestamp", pa.string()), ("properties", _PROPERTIES)])
_RECORD = [*((key, pa.string()) for key in _KEYS), ("events", pa.list_(_EVENT))]
_PARSE = pj.ParseOptions(explicit_schema=pa.schema(_RECORD), unexpected_field_behavior="error")
_ELEMENTS = pj.ParseOptions(
    explicit_schema=pa.schema([("elements", pa.list_(pa.struct(_RECORD)))]), unexpected_field_behavior="error"
)
_FLAT_ONLY = ("event", "timestamp", *PROPERTY_COLUMNS)  # fields a payload must not carry at its top
_NO_CONTEXT = ReadContext()
# Blocks are read on threads of their own (`batches._read_ahead`): one parse thread each costs less CPU.
_ONE_THREAD = pj.ReadOptions(use_threads=False)


def read_block(
    block: bytes, first_line: int, max_record_bytes: int, lines: int | None = None, context: ReadContext = _NO_CONTEXT
) -> tuple[pl.DataFrame, np.ndarray, Counter[Ignored]] | None:
    """The rows (ROW_COLUMNS, `raw` left empty) of a block of complete NDJSON lines, for each row the
    line (from 0) it came from, and the events a provider's mapping ignores; None to go slowly. An API
    payload line gives one row per event, an SES record one per recipient. Line k of the block gets the
    source position `line {first_line + k}`. `lines`: the block's `line_count`, when the caller has it
    (counting is a pass over the block). The first line says whose records these are (`sniff`).
    """
    if not block or block.startswith(codecs.BOM_UTF8):
        return None  # a BOM is the slow path's to strip
    if not _OBJECT_FIRST.match(block):
        return None  # Arrow refuses other values, but a leading `null` crashes it (pyarrow 26)
    if _maybe_two_on_a_line(block) or not _is_utf8(block):
        return None  # Arrow passes invalid UTF-8 through into the strings
    if len(block) > max_record_bytes and _longest_line(block) > max_record_bytes:
        return None
    provider = sniff(block[: block.find(b"\n")], context)
    if provider is None:
        return None
    try:
        table = pj.read_json(
            pa.BufferReader(block), parse_options=_parse_options(provider, elements=False), read_options=_ONE_THREAD
        )
    except (pa.ArrowException, ValueError):  # refused: some record needs a closer look
        return None
    if table.num_rows != (line_count(block) if lines is None else lines):
        return None  # Arrow skipped a blank line: line numbers would shift
    frame = _from_arrow(table)
    if frame is None:
        return None
    if frame.width and frame.select(pl.all_horizontal(pl.all().is_null()).any()).item():
        return None  # a `null` line reads as an empty record (so does `{}`, which the slow path takes alike)
    return _read(provider, frame, first_line, "line {}", context)


def _read(
    provider: str, frame: pl.DataFrame, first: int, position: str, context: ReadContext
) -> tuple[pl.DataFrame, np.ndarray, Counter[Ignored]] | None:
    if provider:
        return READERS[provider](frame, first, position, context)
    read = _rows(frame, first, position)
    return None if read is None else (*read, Counter())


@cache
def _parse_options(provider: str, elements: bool) -> pj.ParseOptions:
    """The platform's shapes are read with their exact schema; a provider's with its types inferred
    (but the fields its reader needs as text pinned, so that Arrow does not take them for dates)."""
    if not provider:
        return _ELEMENTS if elements else _PARSE
    pinned = PINNED_TEXT.get(provider, [])
    fields = pa.struct(pinned)
    schema = pa.schema([("elements", pa.list_(fields))]) if elements else pa.schema(pinned)
    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")


def _rows(frame: pl.DataFrame, first: int, position: str) -> tuple[pl.DataFrame, np.ndarray] | None:
    """Parsed records (one per row, the keys as columns) -> their rows and each row's record; None
    when a record needs the general rules."""
    user_id, user_alt = (pl.col(key).str.strip_chars(TRIM) for key in USER_KEYS)
    conflict = (user_id != "") & (user_alt != "") & (user_id != user_alt)
    payload = pl.col("events").is_not_null()
    payloads = frame["events"].null_count() < frame.height
    awkward = conflict.fill_null(False)  # the slow path words the conflict
    # A `track` call is Segment's (its adapter reads it), though its keys are all this feed's too.
    awkward = awkward | (pl.col("type") == "track").fill_null(False)
    if payloads:
        flat_fields = pl.any_horizontal(pl.col(key).is_not_null() for key in _FLAT_ONLY)
        awkward = (
            awkward
            | (payload & flat_fields)  # payload-level fields follow the general rules
            | (pl.col("events").list.len() == 0)  # an empty payload is quarantined
            | pl.col("events").list.eval(pl.element().is_null()).list.any()  # an event that is not an object
        )
    # Collected at once with the rows: each collect costs a pass and a thread hand-off, per block.
    # An awkward record sends the block to the slow path (rare: making the rows anyway costs little).
    awkward_any = frame.lazy().select(awkward.fill_null(False).any())
    lazy = frame.lazy().with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_record"),
        pl.coalesce(pl.when(user_id != "").then(user_id), pl.when(user_alt != "").then(user_alt)).alias("user_id"),
    )
    flat = (lazy.filter(~payload) if payloads else lazy).select(
        "_record",
        pl.lit(-1, dtype=pl.Int64).alias("_event"),
        "user_id",
        "event",
        pl.col("timestamp").alias("timestamp_text"),
        *(pl.col(key).alias(column) for key, column in PROPERTY_COLUMNS.items()),
    )
    ordered = flat  # flat records only: already one row each, in order
    if payloads:
        events = (
            lazy.filter(payload)
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
        ordered = pl.concat([flat, events]).sort("_record", "_event")
    where = pl.format(position, pl.col("_record") + first)
    none = pl.lit(None, dtype=pl.String)
    if payloads:
        where = pl.when(pl.col("_event") < 0).then(where).otherwise(pl.format("{} event {}", where, pl.col("_event")))
    rows = ordered.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("timestamp_number"),
        none.alias("extra"),
        none.alias("wrong_type"),
        none.alias("user_id_conflict"),
        where.alias("source_position"),
        pl.lit("").alias("raw"),
        pl.lit(None, dtype=pl.Boolean).alias("machine_open"),
        pl.lit(None, dtype=pl.Boolean).alias("suspected_bot"),
        pl.lit(ACTIVATEPRO).alias("source_format"),
    )
    refused, collected = pl.collect_all([awkward_any, rows.select(*ROW_COLUMNS, "_record")])
    if refused.item():
        return None
    return collected.drop("_record"), collected["_record"].to_numpy()


def line_count(block: bytes) -> int:
    """Lines in a non-empty block; the last needs no line break."""
    return line_breaks(block) + (0 if block.endswith(b"\n") else 1)


def ndjson_block(
    block: bytes, first_line: int, max_record_bytes: int, lines: int | None = None, context: ReadContext = _NO_CONTEXT
) -> Block | None:
    lines = line_count(block) if lines is None else lines
    read = read_block(block, first_line, max_record_bytes, lines, context)
    if read is None:
        return None
    rows, sources, ignored = read
    texts: list[bytes] = []

    def record_text(index: int) -> str:  # as the record-by-record path keeps it: the stripped line
        if not texts:
            texts.extend(block.split(b"\n"))
        return texts[index].strip(b" \t\r\n").decode("utf-8")

    return Block(rows, sources, lines, record_text, ignored)


def array_block(
    text: str,
    start: int,
    first_index: int,
    prefix: str,
    max_record_bytes: int,
    tuning: Tuning = Tuning(),
    context: ReadContext = _NO_CONTEXT,
) -> tuple[Block, int] | None:
    """The objects at the start of an array window (text[start] is the `{` of an element) as a
    Block, and how many characters they took; or None to go record by record. The first object says
    whose records these are (`sniff`)."""
    window = text[start : start + tuning.window_chars]
    try:
        original = window.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8: the slow path words the error
        return None
    bounds = object_bounds(original)
    if bounds is None:
        return None
    starts, ends = bounds
    if int((ends - starts).max()) >= max_record_bytes:
        return None
    last = int(ends[-1])
    provider = sniff(original[int(starts[0]) : int(ends[0])], context)
    if provider is None:
        return None
    options = _parse_options(provider, elements=True)
    # Two halves parsed at once (Arrow releases the GIL); the separator between them checked here.
    half = int(starts.size) // 2 if last > tuning.split_bytes else 0
    if half and original[int(ends[half - 1]) : int(starts[half])].strip(b" \t\r\n") != b",":
        return None
    if half:
        first, second = original[int(starts[0]) : int(ends[half - 1])], original[int(starts[half]) : last]
        halves = [(first, half), (second, int(starts.size) - half)]
        parsed = list(_parsers().map(lambda piece: _elements(piece[0], piece[1], options), halves))
    else:
        parsed = [_elements(original[int(starts[0]) : last], int(starts.size), options)]
    if any(frame is None for frame in parsed):
        return None
    frames = [frame for frame in parsed if frame is not None]
    try:
        elements = pl.concat(frames, how="diagonal") if len(frames) > 1 else frames[0]
    except pl.exceptions.PolarsError:  # a provider's halves, their types inferred apart: read as one
        whole = _elements(original[int(starts[0]) : last], int(starts.size), options)
        if whole is None:
            return None
        elements = whole
    read = _read(provider, elements, first_index, prefix + "element {}", context)
    if read is None:
        return None
    rows, sources, ignored = read

    def record_text(index: int) -> str:
        return original[int(starts[index]) : int(ends[index])].decode("utf-8")

    consumed = last if window.isascii() else len(original[:last].decode("utf-8"))
    return Block(rows, sources, int(starts.size), record_text, ignored), consumed


@cache
def _parsers() -> ThreadPoolExecutor:
    """Two threads that parse the halves of a window at once, started by the first window that needs
    them (a pool per window measured about 20 MB more at the peak on 2M events)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="etl-parse")


def _elements(objects: bytes, expected: int, options: pj.ParseOptions = _ELEMENTS) -> pl.DataFrame | None:
    """Comma-separated objects read as `{"elements": [...]}`: one row per object, or None when Arrow
    refuses them or finds other than the `expected` number of objects."""
    document = b'{"elements":[' + objects + b"]}"
    read_options = pj.ReadOptions(block_size=len(document) + 1, use_threads=False)
    try:
        table = pj.read_json(io.BytesIO(document), parse_options=options, read_options=read_options)
    except (pa.ArrowException, ValueError):  # not an array of clean objects (or bad JSON): slow path
        return None
    frame = _from_arrow(table)
    if frame is None:
        return None
    listed = frame["elements"]
    holes = listed.list.eval(pl.element().is_null()).list.any()
    if frame.height != 1 or listed.list.len()[0] != expected or holes[0]:
        return None  # something other than objects between them (a `null` reads as a missing object)
    if not isinstance(listed.dtype, pl.List) or not isinstance(listed.dtype.inner, pl.Struct):
        return None
    return frame.explode("elements").unnest("elements")


def _from_arrow(table: pa.Table) -> pl.DataFrame | None:
    """The table as a polars frame; None where polars cannot take what Arrow inferred (polars 2.1
    refuses some lists of nulls that Arrow builds), so that the block goes record by record."""
    try:
        frame = pl.from_arrow(table)
    except pl.exceptions.PolarsError:
        return None
    assert isinstance(frame, pl.DataFrame)
    return frame


def _maybe_two_on_a_line(block: bytes) -> bool:
    """Whether some line may hold two records: it does not begin with `{` and end with `}` (before a
    `\r`), and `}` then `{` appear in the block."""
    opening, closing, carriage_return = _BRACES
    data = np.frombuffer(block, dtype=np.uint8)
    breaks = np.flatnonzero(data == LINE_BREAK)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks - 1, [len(data) - 1]))
    if starts[-1] == len(data):  # the last line's break ends the block
        starts, ends = starts[:-1], ends[:-1]
    if (data[starts] == opening).all():  # (so no line is empty, and each end is within its line)
        ends = ends - (data[ends] == carriage_return)
        if (data[ends] == closing).all():
            return False
    return _TWO_ON_A_LINE.search(block) is not None


def _is_utf8(block: bytes) -> bool:
    if block.isascii():  # (a fifth of the time of decoding, which builds the whole text)
        return True
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _longest_line(block: bytes) -> int:
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(block)]))
    return int(np.diff(bounds).max()) - 1
