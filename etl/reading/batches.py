"""From a stream of byte chunks to batches of rows: where the reading path is put together.

NDJSON: `split.line_blocks` cuts the stream into blocks of whole lines; each clean block is read at
once (`fast.ndjson_block`), any other goes record by record (`split.line_units`, `mapping.expand_unit`).
JSON documents: `split.iter_document_units` walks the text, offering array windows to
`fast.array_block` and taking what it declines one element at a time. Consecutive blocks read at once
are joined into one batch, so that judging them costs one call per `judge_rows` rows.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache, partial
from typing import TypeVar

import numpy as np
import polars as pl

from etl.reading.avro import avro_batches
from etl.reading.fast import array_block, ndjson_block
from etl.reading.mapping import expand_unit
from etl.reading.providers.vectorised import sniff
from etl.reading.split import Lines, iter_document_units, line_blocks, line_units
from etl.reading.types import Block, Limits, ReadContext, RecordBatch, Unit, is_avro, is_line_delimited

T = TypeVar("T")


def read_batches(name: str, chunks: Iterator[bytes], limits: Limits) -> Iterator[RecordBatch]:
    """Every record of the file named `name`, whose decompressed bytes arrive as `chunks`, as batches
    of rows and rejections numbered in file order (ordinals from 0, one per row or rejection), with
    the events a provider's mapping ignores counted."""
    tuning = limits.tuning
    context = limits.sources.context(name)
    if is_avro(name):
        return avro_batches(chunks, limits, context)
    if is_line_delimited(name):
        return _joined(_line_batches(chunks, limits, context), tuning.judge_rows)
    read_window = (
        partial(array_block, max_record_bytes=limits.max_record_bytes, tuning=tuning, context=context)
        if limits.use_vectorised
        else None
    )
    units = iter_document_units(chunks, limits, read_window)
    return _joined(_batches(units, 0, tuning.batch_rows, context), tuning.judge_rows)


def _line_batches(chunks: Iterator[bytes], limits: Limits, context: ReadContext) -> Iterator[RecordBatch]:
    """NDJSON in blocks of whole lines: each block read at once when it is clean, else record by record.

    Clean blocks are read at once on threads of their own (`_read_ahead`; Arrow's parse of a block
    on one core) while this thread goes on splitting the stream; a block the fast path declines is
    read record by record here, in its turn."""
    ordinal = 0
    blocks = line_blocks(chunks, limits.max_record_bytes)
    read: Iterator[tuple[Lines, Block | None]] = ((lines, None) for lines in blocks)
    if limits.use_vectorised:
        read = _read_ahead(_gathered(blocks, context, limits.tuning.provider_block_bytes), limits, context)
    for lines, fast in read:
        if fast is not None:
            batches = iter([_vectorised_batch(fast, ordinal)])
        else:
            batches = _batches(line_units(lines, limits), ordinal, limits.tuning.batch_rows, context)
        for batch in batches:
            ordinal += batch.count
            yield batch


def _read_ahead(blocks: Iterator[Lines], limits: Limits, context: ReadContext) -> Iterator[tuple[Lines, Block | None]]:
    """Each block with its records read at once (None: declined, or not plain), the next block's
    reading under way while one is taken. Order is kept; a block's error is raised in its turn, and
    an error of the stream after the blocks that came before it."""
    readers, ahead = _readers(), 2
    pending: deque[tuple[Lines, Future[Block | None] | None]] = deque()
    try:
        for lines in _until_failure(blocks):
            if isinstance(lines, _Failed):
                while pending:
                    yield _taken(pending.popleft())
                raise lines.error
            args = (lines.data, lines.first, limits.max_record_bytes, lines.count, context)
            pending.append((lines, readers.submit(ndjson_block, *args) if lines.plain else None))
            if len(pending) >= ahead:
                yield _taken(pending.popleft())
        while pending:
            yield _taken(pending.popleft())
    finally:  # the consumer left early, or a block failed: the blocks not started yet need not be
        for _, read in pending:
            if read is not None:
                read.cancel()


def _taken(item: tuple[Lines, Future[Block | None] | None]) -> tuple[Lines, Block | None]:
    lines, read = item
    return lines, None if read is None else read.result()


@cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read NDJSON blocks at once, started by the first file that needs them: two,
    or one where the process may use one core (one of several workers, a Ray task)."""
    threads = max(1, min(2, pl.thread_pool_size()))
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="etl-block")


class _Failed:
    """The error a source raised, handed on as its last item: a stage that holds items back hands
    them on first, then raises it (the records before a read error are loaded, as they are when
    nothing is held)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _until_failure(items: Iterator[T]) -> Iterator[T | _Failed]:
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # raised again by the stage, after what it holds
            yield _Failed(error)
            return
        yield item


def _gathered(blocks: Iterator[Lines], context: ReadContext, limit: int) -> Iterator[Lines]:
    """Consecutive blocks of a provider's NDJSON joined up to `limit` bytes (its records are large:
    a block of few of them costs as much to read at once as a block of many)."""
    held: list[Lines] = []
    for lines in _until_failure(blocks):
        if isinstance(lines, _Failed):
            if held:
                yield _joined_lines(held)
            raise lines.error
        if lines.plain and (held or sniff(lines.data[: lines.data.find(b"\n")], context)):
            held.append(lines)
            if sum(len(block.data) for block in held) < limit:
                continue
        if held:
            yield _joined_lines(held)
            if held[-1] is lines:
                held = []
                continue
            held = []
        yield lines
    if held:
        yield _joined_lines(held)


def _joined_lines(held: list[Lines]) -> Lines:
    return Lines(b"".join(block.data for block in held), held[0].first, sum(block.count for block in held))


def _vectorised_batch(block: Block, first_ordinal: int) -> RecordBatch:
    return RecordBatch(
        first_ordinal, count=block.rows.height, parsed=True, frame=block.rows, raw_of=block.raw, ignored=block.ignored
    )


def _batches(
    units: Iterator[Unit | Block], first_ordinal: int, batch_rows: int, context: ReadContext
) -> Iterator[RecordBatch]:
    batch = RecordBatch(first_ordinal)
    for unit in _until_failure(units):
        if isinstance(unit, _Failed):
            if batch.count or batch.ignored:
                yield batch
            raise unit.error
        if isinstance(unit, Block):  # records read at once: a batch of their own
            if batch.count:
                yield batch
            batch = RecordBatch(batch.first_ordinal + batch.count)
            yield _vectorised_batch(unit, batch.first_ordinal)
            batch = RecordBatch(batch.first_ordinal + unit.rows.height)
            continue
        batch.add(expand_unit(unit, context))
        batch.parsed = batch.parsed or unit.error is None
        if batch.count >= batch_rows:
            yield batch
            batch = RecordBatch(batch.first_ordinal + batch.count)
    if batch.count or batch.ignored:
        yield batch


def _joined(batches: Iterator[RecordBatch], judge_rows: int) -> Iterator[RecordBatch]:
    """Consecutive batches read at once, joined into one of up to `judge_rows` rows."""
    run: list[RecordBatch] = []
    for batch in _until_failure(batches):
        if isinstance(batch, _Failed):
            if run:
                yield _join(run)
            raise batch.error
        if run and (batch.frame is None or sum(b.count for b in run) >= judge_rows):
            yield _join(run)
            run = []
        if batch.frame is None:
            yield batch
        else:
            run.append(batch)
    if run:
        yield _join(run)


def _join(run: list[RecordBatch]) -> RecordBatch:
    if len(run) == 1:
        return run[0]
    starts = np.cumsum([0] + [b.count for b in run[:-1]])

    def raw_of(row: int) -> str:
        part = int(np.searchsorted(starts, row, side="right")) - 1
        raw = run[part].raw_of
        assert raw is not None
        return raw(row - int(starts[part]))

    frame = pl.concat([b.frame for b in run if b.frame is not None])
    ignored = sum((b.ignored for b in run), Counter())
    return RecordBatch(
        run[0].first_ordinal, count=frame.height, parsed=True, frame=frame, raw_of=raw_of, ignored=ignored
    )
