"""The vectorised reading path: a block of NDJSON lines parsed at once by Arrow's JSON reader.

Arrow's reader is strict with an explicit schema: a value of another JSON type, an unknown key, a key
given twice, invalid UTF-8, a lone surrogate or bad JSON makes it refuse the whole block. A block is
taken here only when every line is a flat feed record whose values are all strings or null; anything
else returns None and the block goes through the record-by-record path, which judges it in detail.
Both paths give identical rows (a property test checks it); this one just does not loop in Python.
"""

from __future__ import annotations

import codecs
import io
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from etl.records import PROPERTY_COLUMNS, ROW_COLUMNS, TRIM, USER_KEYS

_KEYS = (*USER_KEYS, "event", "timestamp", *PROPERTY_COLUMNS)
# Arrow reads `{...} {...}` on one line as two records; with a blank line elsewhere the count would
# still match, so such lines go record by record. (A string holding "}{" only costs that block speed.)
_TWO_ON_A_LINE = re.compile(rb"\}[ \t\r]*\{")
_PARSE = pj.ParseOptions(
    explicit_schema=pa.schema([(key, pa.string()) for key in _KEYS]), unexpected_field_behavior="error"
)


def read_block(block: bytes, first_line: int, max_record_bytes: int) -> pl.DataFrame | None:
    """The rows (ROW_COLUMNS, `raw` left empty) of a block of complete lines, or None to go slowly."""
    if not block or block.startswith(codecs.BOM_UTF8):
        return None  # a BOM is the slow path's to strip
    if _TWO_ON_A_LINE.search(block) or not _is_utf8(block):
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
    if frame.select(conflict.fill_null(False).any()).item():
        return None  # the slow path words the conflict
    none = pl.lit(None, dtype=pl.String)
    rows = frame.select(
        pl.coalesce(pl.when(user_id != "").then(user_id), pl.when(user_alt != "").then(user_alt)).alias("user_id"),
        pl.col("event"),
        pl.col("timestamp").alias("timestamp_text"),
        pl.lit(None, dtype=pl.Float64).alias("timestamp_number"),
        *(pl.col(key).alias(column) for key, column in PROPERTY_COLUMNS.items()),
        none.alias("extra"),
        none.alias("wrong_type"),
        none.alias("user_id_conflict"),
        pl.format("line {}", pl.int_range(first_line, first_line + pl.len())).alias("source_position"),
        pl.lit("").alias("raw"),
    )
    return rows.select(ROW_COLUMNS)


def raw_lines(block: bytes, indexes: list[int]) -> list[str]:
    """The original text of some lines of a block (as the record-by-record path keeps it)."""
    lines = block.split(b"\n")
    return [lines[index].strip(b" \t\r\n").decode("utf-8") for index in indexes]


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
