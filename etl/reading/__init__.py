"""Reading a feed file: decompressed bytes in, batches of contract rows out.

    bytes ──split──▶ records ──┬── fast: a clean block of records at once (Arrow) ──┬──▶ rows, in batches
                               └── mapping: one record at a time (Python) ──────────┘       (batches)

- `split`: NDJSON lines and JSON documents/arrays cut into records ("units"), each syntax error
  isolated in its own record; `scan` finds where a (perhaps broken) value ends.
- `fast`: a block of clean NDJSON lines, or a window of an array, parsed at once; anything unusual
  is declined and goes record by record.
- `mapping`: one parsed record to its event rows (shape detection: another provider's record, else a
  feed record or an API payload).
- `providers`: one adapter per other provider (SendGrid, Mailgun, Postmark, SES, Segment, Braze), each
  a mapping table and a pure function from a record to rows or ignored events; `providers.vectorised`
  reads SendGrid arrays and SES NDJSON a block at a time.
- `avro`: Avro container files (Braze Currents), streamed block by block with fastavro, read at once by polars.
- `pseudonymise`: email addresses as user ids replaced by their HMAC when a key is set.
- `batches`: puts them together; `read_batches` is the entry point.
- `types`: the shared vocabulary (options, sources, units, rows, batches), importing nothing from `etl`.

Both paths give identical rows, rejections, ignored events and positions; the fast one just does not
loop in Python.
"""

from etl.reading.batches import read_batches
from etl.reading.mapping import expand_unit
from etl.reading.providers import PROVIDERS, provider_mapping_data, provider_mapping_markdown
from etl.reading.split import iter_units
from etl.reading.types import (
    ACTIVATEPRO,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_RECORD_BYTES,
    FEED_SUFFIXES,
    ROW_COLUMNS,
    Block,
    Expanded,
    FeedReadError,
    Ignored,
    Limits,
    ReadContext,
    RecordBatch,
    Rejection,
    Row,
    SourceRule,
    Sources,
    Tuning,
    Unit,
    is_avro,
    is_feed_file,
    is_line_delimited,
)

__all__ = [
    "ACTIVATEPRO",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_RECORD_BYTES",
    "FEED_SUFFIXES",
    "PROVIDERS",
    "ROW_COLUMNS",
    "Block",
    "Expanded",
    "FeedReadError",
    "Ignored",
    "Limits",
    "ReadContext",
    "RecordBatch",
    "Rejection",
    "Row",
    "SourceRule",
    "Sources",
    "Tuning",
    "Unit",
    "expand_unit",
    "is_avro",
    "is_feed_file",
    "is_line_delimited",
    "iter_units",
    "provider_mapping_data",
    "provider_mapping_markdown",
    "read_batches",
]
