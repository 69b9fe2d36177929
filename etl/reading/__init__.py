"""Reading a feed file: decompressed bytes in, batches of contract rows out.

    bytes ──split──▶ records ──┬── fast: a clean block of records at once (Arrow) ──┬──▶ rows, in batches
                               └── mapping: one record at a time (Python) ──────────┘       (batches)

- `split`: NDJSON lines and JSON documents/arrays cut into records ("units"), each syntax error
  isolated in its own record; `scan` finds where a (perhaps broken) value ends.
- `fast`: a block of clean NDJSON lines, or a window of an array, parsed at once; anything unusual
  is declined and goes record by record.
- `mapping`: one parsed record to its event rows (shape detection: feed record or API payload).
- `batches`: puts them together; `read_batches` is the entry point.
- `types`: the shared vocabulary (options, units, rows, batches), importing nothing from `etl`.

Both paths give identical rows, rejections and positions; the fast one just does not loop in Python.
"""

from etl.reading.batches import read_batches
from etl.reading.mapping import expand_unit
from etl.reading.split import iter_units
from etl.reading.types import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_RECORD_BYTES,
    FEED_SUFFIXES,
    ROW_COLUMNS,
    Block,
    Expanded,
    FeedReadError,
    Limits,
    RecordBatch,
    Rejection,
    Row,
    Tuning,
    Unit,
    is_feed_file,
    is_line_delimited,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_RECORD_BYTES",
    "FEED_SUFFIXES",
    "ROW_COLUMNS",
    "Block",
    "Expanded",
    "FeedReadError",
    "Limits",
    "RecordBatch",
    "Rejection",
    "Row",
    "Tuning",
    "Unit",
    "expand_unit",
    "is_feed_file",
    "is_line_delimited",
    "iter_units",
    "read_batches",
]
