"""Avro container files (Braze Currents' export format), streamed block by block with fastavro.

A container holds records of one schema, whose name is the Braze event type
(`dataexport.S3.inner.users.messages.email.Open`). Consecutive blocks are gathered, up to `judge_rows`
records, into a container of their own (the same schema, the same blocks, uncompressed),
which polars reads at once and `vectorised.braze_rows` maps; a run it declines is read record by record
and mapped by the Braze adapter. A large file is never held whole. Damage (a file cut short, a corrupt
block) ends the reading: the records before it load, and the rest of the file is quarantined as one
record.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import polars as pl

from etl.reading.providers import braze
from etl.reading.providers.base import rejected
from etl.reading.providers.vectorised import braze_rows
from etl.reading.types import Expanded, Limits, ReadContext, RecordBatch
from etl.storage.errors import StorageError


class ChunkStream(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what fastavro reads from). It tells where
    it is (fastavro's block reader asks) but cannot seek, and keeps the bytes it gave from a position
    on (`keep_from`): those of the block being read, to read again record by record if it is damaged."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self._position = 0
        self._kept = bytearray()
        self._kept_from = 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) != (0, io.SEEK_CUR):
            raise io.UnsupportedOperation("seek")
        return self._position

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._kept += self._pending[:size]
        self._pending = self._pending[size:]
        self._position += size
        return size

    def keep_from(self, position: int) -> None:
        del self._kept[: position - self._kept_from]
        self._kept_from = position

    def kept(self, end: int | None = None) -> bytes:
        """The bytes kept, up to `end` (a position) or all that were given."""
        return bytes(self._kept if end is None else self._kept[: end - self._kept_from])


def avro_batches(chunks: Iterator[bytes], limits: Limits, context: ReadContext) -> Iterator[RecordBatch]:
    """Every record of an Avro container file, mapped, in batches numbered in file order."""
    raw = ChunkStream(chunks)
    stream = io.BufferedReader(raw, buffer_size=1024 * 1024)
    index = ordinal = 0  # the next record's index in the file, and the next row's or rejection's ordinal
    try:
        reader = fastavro.block_reader(stream)
        event_type = _event_type(reader.writer_schema, context.name)
        at_once = limits.use_vectorised and _plain_schema(reader.writer_schema)
        header = raw.kept(stream.tell())
        raw.keep_from(stream.tell())
    except _PASSED_ON:
        raise
    except Exception as err:
        yield _damaged(index, ordinal, err)
        return
    for run in _runs(reader, stream, raw, limits.tuning.judge_rows):
        if isinstance(run, Damage):  # read again record by record: what comes before the damage loads
            batches, damaged = _one_by_one(header + run.tail, event_type, index, ordinal, limits)
            if not damaged:  # (the record reader found none: the block reader's word stands)
                after = sum(batch.read for batch in batches)  # one event per record
                batches.append(_damaged(index + after, ordinal + sum(batch.count for batch in batches), run.error))
            yield from batches
            return
        container, count = run
        fast = _at_once(container, count, event_type, index, ordinal, context) if at_once else None
        batches, damaged = (
            ([fast], False) if fast is not None else _one_by_one(container, event_type, index, ordinal, limits)
        )
        for batch in batches:
            yield batch
            ordinal += batch.count
        if damaged:
            return
        index += count


Run = tuple[bytes, int]  # a container of consecutive blocks' records, and how many records it holds
#: Errors of the store, not of the file's bytes: they end the file's reading as for any other feed.
_PASSED_ON = (OSError, StorageError)


@dataclass
class Damage:
    """What ended the reading of blocks, and the file's bytes from the end of the last whole block."""

    error: Exception
    tail: bytes


def _runs(reader: Any, stream: io.BufferedReader[ChunkStream], raw: ChunkStream, rows: int) -> Iterator[Run | Damage]:
    """The file's blocks gathered into containers of about `rows` records (each block kept as a block
    of its own: damage inside one stays inside it, as for the record reader); the damage that ended
    the reading last, after the records before it. The store's own errors are raised, after them."""
    header, sync = _header(reader.metadata["avro.schema"])
    blocks: list[tuple[int, bytes]] = []
    count = 0
    damage: Damage | None = None
    failure: Exception | None = None
    try:
        for block in reader:
            raw.keep_from(stream.tell())  # the block is whole, its sync marker checked
            blocks.append((block.num_records, block.bytes_.getvalue()))  # its records, decompressed
            count += block.num_records
            if count >= rows:
                yield _container(header, sync, blocks), count
                blocks, count = [], 0
    except _PASSED_ON as err:
        failure = err
    except Exception as err:
        damage = Damage(err, raw.kept())
    if blocks:
        yield _container(header, sync, blocks), count
    if failure is not None:
        raise failure
    if damage is not None:
        yield damage


#: Avro types that polars reads as the record reader gives them (no logical types, no maps, …).
_PLAIN_TYPES = frozenset({"null", "boolean", "int", "long", "string"})


def _plain_schema(schema: Any) -> bool:
    """Whether polars may read these records: a record of plain fields, lists of plain items, unions."""
    return (
        isinstance(schema, dict)
        and schema.get("type") == "record"
        and all(
            isinstance(field, dict) and _plain_type(field.get("type"), lists=True) for field in schema.get("fields", ())
        )
    )


def _plain_type(kind: Any, lists: bool) -> bool:
    if isinstance(kind, str):
        return kind in _PLAIN_TYPES
    if isinstance(kind, list):
        return all(_plain_type(option, lists) for option in kind)
    if isinstance(kind, dict) and "logicalType" not in kind:
        if kind.get("type") == "array":
            return lists and _plain_type(kind.get("items"), lists=False)
        return kind.get("type") in _PLAIN_TYPES
    return False


def _header(schema: str) -> tuple[bytes, bytes]:
    """An Avro container's header for `schema`, blocks uncompressed, and its sync marker."""
    sync = os.urandom(16)
    metadata = [(b"avro.schema", schema.encode()), (b"avro.codec", b"null")]
    entries = b"".join(_bytes(key) + _bytes(value) for key, value in metadata)
    return b"Obj\x01" + _long(len(metadata)) + entries + _long(0) + sync, sync


def _container(header: bytes, sync: bytes, blocks: list[tuple[int, bytes]]) -> bytes:
    framed = (b"".join((_long(count), _long(len(body)), body, sync)) for count, body in blocks)
    return header + b"".join(framed)


def _long(value: int) -> bytes:
    """Avro's zig-zag variable-length encoding of an integer."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


def _at_once(
    container: bytes, count: int, event_type: str, index: int, ordinal: int, context: ReadContext
) -> RecordBatch | None:
    """A run's `count` records read by polars and mapped at once, or None to read them one by one."""
    try:
        records = pl.read_avro(io.BytesIO(container))
    except (Exception, pl.exceptions.PanicException):  # what it cannot read, the slow path words
        return None
    if records.height != count:  # blocks whose records do not fill them as they say: damage
        return None
    frame = records if "event_type" in records.columns else records.with_columns(event_type=pl.lit(event_type))
    read = braze_rows(frame, index, "record {}", context)
    if read is None:
        return None
    rows, sources, ignored = read

    def raw_of(row: int) -> str:  # as the record-by-record path keeps it
        return _raw(records.row(int(sources[row]), named=True))

    return RecordBatch(ordinal, count=rows.height, parsed=True, frame=rows, raw_of=raw_of, ignored=ignored)


def _one_by_one(
    container: bytes, event_type: str, index: int, ordinal: int, limits: Limits
) -> tuple[list[RecordBatch], bool]:
    """A run's records read and mapped one at a time, in batches, and whether damage ended the reading
    (its rejection last)."""
    batches = [RecordBatch(ordinal)]
    damaged = False
    for expanded, parsed in _records(container, event_type, index):
        batch = batches[-1]
        batch.add(expanded)
        batch.parsed = batch.parsed or parsed
        damaged = not parsed
        if batch.count >= limits.tuning.batch_rows:
            batches.append(RecordBatch(batch.first_ordinal + batch.count))
    return [batch for batch in batches if batch.count or batch.ignored], damaged


def _records(container: bytes, event_type: str, index: int) -> Iterator[tuple[Expanded, bool]]:
    try:
        for record in fastavro.reader(io.BytesIO(container)):
            if not isinstance(record, dict):  # a container of other than records: not Currents'
                raise ValueError(f"a {type(record).__name__}, not a record")
            yield braze.expand_currents(record, event_type, f"record {index}", _raw(record)), True
            index += 1
    except _PASSED_ON:
        raise
    except Exception as err:
        yield _unreadable(index, err), False


def _raw(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def _damaged(index: int, ordinal: int, err: Exception) -> RecordBatch:
    batch = RecordBatch(ordinal)
    batch.add(_unreadable(index, err))
    return batch


def _unreadable(index: int, err: Exception) -> Expanded:
    where = "the file is not an Avro container" if index == 0 else f"after record {index - 1}"
    detail = f"unreadable Avro data ({where}): {type(err).__name__}: {err}; the rest of the file is not read"
    return rejected(f"record {index}", "", "unreadable_file", detail)


def _event_type(schema: Any, name: str) -> str:
    """The Braze event type: the records' schema name from `users.` on, else what the path says."""
    full = schema.get("name", "") if isinstance(schema, dict) else ""
    at = full.find("users.")
    return full[at:] if at >= 0 else braze.event_type_in(name)
