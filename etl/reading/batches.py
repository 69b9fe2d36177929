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

import numpy as np
import polars as pl

from etl.reading.avro import avro_batches
from etl.reading.fast import array_block, ndjson_block
from etl.reading.mapping import expand_unit
from etl.reading.providers.vectorised import sniff
from etl.reading.split import Lines, iter_document_units, line_blocks, line_units
from etl.reading.types import Block, Limits, ReadContext, RecordBatch, Unit, is_avro, is_line_delimited


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

    Clean blocks are read at once on two threads of their own (`_read_ahead`), each block on one
    core, while this thread goes on splitting the stream; a block the fast path declines is read
    record by record here, in its turn."""
    ordinal = 0
    blocks = line_blocks(chunks, limits.max_record_bytes)
    if not limits.use_vectorised:
        for lines in blocks:
            for batch in _batches(line_units(lines, limits), ordinal, limits.tuning.batch_rows, context):
                ordinal += batch.count
                yield batch
        return
    for lines, fast in _read_ahead(_gathered(blocks, context, limits.tuning.provider_block_bytes), limits, context):
        if fast is not None:
            batch = _vectorised_batch(fast, ordinal)
            ordinal += batch.count
            yield batch
            continue
        for batch in _batches(line_units(lines, limits), ordinal, limits.tuning.batch_rows, context):
            ordinal += batch.count
            yield batch


def _read_ahead(
    blocks: Iterator[Lines], limits: Limits, context: ReadContext, ahead: int = 2
) -> Iterator[tuple[Lines, Block | None]]:
    """Each block with its records read at once (None: declined, or not plain), up to `ahead` blocks
    being read at a time. Order is kept; an error is raised when its block's turn comes."""
    pending: deque[tuple[Lines, Future[Block | None] | None]] = deque()
    for lines in blocks:
        read = (
            _readers().submit(ndjson_block, lines.data, lines.first, limits.max_record_bytes, lines.count, context)
            if lines.plain
            else None
        )
        pending.append((lines, read))
        if len(pending) >= ahead:
            yield _taken(pending.popleft())
    while pending:
        yield _taken(pending.popleft())


def _taken(item: tuple[Lines, Future[Block | None] | None]) -> tuple[Lines, Block | None]:
    lines, read = item
    return lines, None if read is None else read.result()


@cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read NDJSON blocks at once, started by the first file that needs them."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="etl-block")


def _gathered(blocks: Iterator[Lines], context: ReadContext, limit: int) -> Iterator[Lines]:
    """Consecutive blocks of a provider's NDJSON joined up to `limit` bytes (its records are large:
    a block of few of them costs as much to read at once as a block of many)."""
    held: list[Lines] = []
    for lines in blocks:
        if lines.plain and (held or sniff(lines.data[: lines.data.find(b"\n")], context)):
            held.append(lines)
            if sum(len(block.data) for block in held) < limit:
                continue
        if held:
            yield Lines(b"".join(block.data for block in held), held[0].first, sum(block.count for block in held))
            if held[-1] is lines:
                held = []
                continue
            held = []
        yield lines
    if held:
        yield Lines(b"".join(block.data for block in held), held[0].first, sum(block.count for block in held))


def _vectorised_batch(block: Block, first_ordinal: int) -> RecordBatch:
    return RecordBatch(
        first_ordinal, count=block.rows.height, parsed=True, frame=block.rows, raw_of=block.raw, ignored=block.ignored
    )


def _batches(
    units: Iterator[Unit | Block], first_ordinal: int, batch_rows: int, context: ReadContext
) -> Iterator[RecordBatch]:
    batch = RecordBatch(first_ordinal)
    for unit in units:
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
    for batch in batches:
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
