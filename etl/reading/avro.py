"""Avro container files (Braze Currents' export format), read block by block with fastavro.

A container holds records of one schema, whose name is the Braze event type
(`dataexport.S3.inner.users.messages.email.Open`); each record is mapped by the Braze adapter. The file
streams through fastavro's reader, one block at a time, so a large file is never held whole. Damage
(a file cut short, a corrupt block) ends the reading: the records before it load, and the rest of
the file is quarantined as one record.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import fastavro

from etl.reading.providers import braze
from etl.reading.providers.base import rejected
from etl.reading.types import Expanded, ReadContext, RecordBatch


class ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what fastavro reads from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def avro_batches(chunks: Iterator[bytes], context: ReadContext, batch_rows: int) -> Iterator[RecordBatch]:
    """Every record of an Avro container file, mapped, in batches numbered in file order."""
    batch = RecordBatch(0)
    for expanded, parsed in _records(chunks, context):
        batch.add(expanded)
        batch.parsed = batch.parsed or parsed
        if batch.count >= batch_rows:
            yield batch
            batch = RecordBatch(batch.first_ordinal + batch.count)
    if batch.count or batch.ignored:
        yield batch


def _records(chunks: Iterator[bytes], context: ReadContext) -> Iterator[tuple[Expanded, bool]]:
    stream = io.BufferedReader(ChunkStream(chunks), buffer_size=1024 * 1024)
    index = 0
    try:
        reader = fastavro.reader(stream)
        event_type = _event_type(reader.writer_schema, context.name)
        for record in reader:
            if not isinstance(record, dict):  # a container of other than records: not Currents'
                raise ValueError(f"a {type(record).__name__}, not a record")
            raw = json.dumps(record, ensure_ascii=False, default=str)
            yield braze.expand_currents(record, event_type, f"record {index}", raw), True
            index += 1
    except Exception as err:
        where = "the file is not an Avro container" if index == 0 else f"after record {index - 1}"
        detail = f"unreadable Avro data ({where}): {type(err).__name__}: {err}; the rest of the file is not read"
        yield rejected(f"record {index}", "", "unreadable_file", detail), False


def _event_type(schema: Any, name: str) -> str:
    """The Braze event type: the records' schema name from `users.` on, else what the path says."""
    full = schema.get("name", "") if isinstance(schema, dict) else ""
    at = full.find("users.")
    return full[at:] if at >= 0 else braze.event_type_in(name)
