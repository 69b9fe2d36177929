"""From a stream of byte chunks to batches of rows: where the reading path is put together.

NDJSON: `split.line_blocks` cuts the stream into blocks of whole lines; each clean block is read at
once (`fast.ndjson_block`), any other goes record by record (`split.line_units`, `mapping.expand_unit`).
JSON documents: `split.iter_document_units` walks the text, offering array windows to
`fast.array_block` and taking what it declines one element at a time. Consecutive blocks read at once
are joined into one batch, so that judging them costs one call per `judge_rows` rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import polars as pl

from etl.reading.fast import array_block, ndjson_block
from etl.reading.mapping import expand_unit
from etl.reading.split import Lines, iter_document_units, line_blocks, line_units
from etl.reading.types import Block, Limits, RecordBatch, Unit, is_line_delimited


def read_batches(name: str, chunks: Iterator[bytes], limits: Limits) -> Iterator[RecordBatch]:
    """Every record of the file named `name`, whose decompressed bytes arrive as `chunks`, as batches
    of rows and rejections numbered in file order (ordinals from 0, one per row or rejection)."""
    tuning = limits.tuning
    if is_line_delimited(name):
        return _joined(_line_batches(chunks, limits), tuning.judge_rows)
    read_window = (
        partial(array_block, max_record_bytes=limits.max_record_bytes, tuning=tuning) if limits.use_vectorised else None
    )
    units = iter_document_units(chunks, limits, read_window)
    return _joined(_batches(units, 0, tuning.batch_rows), tuning.judge_rows)


def _line_batches(chunks: Iterator[bytes], limits: Limits) -> Iterator[RecordBatch]:
    """NDJSON in blocks of whole lines: each block read at once when it is clean, else record by record."""
    ordinal = 0
    for lines in line_blocks(chunks, limits.max_record_bytes):
        for batch in _lines_batches(lines, ordinal, limits):
            ordinal += batch.count
            yield batch


def _lines_batches(lines: Lines, first_ordinal: int, limits: Limits) -> Iterator[RecordBatch]:
    if lines.plain and limits.use_vectorised:
        fast = ndjson_block(lines.data, lines.first, limits.max_record_bytes, lines.count)
        if fast is not None:
            yield _vectorised_batch(fast, first_ordinal)
            return
    yield from _batches(line_units(lines, limits), first_ordinal, limits.tuning.batch_rows)


def _vectorised_batch(block: Block, first_ordinal: int) -> RecordBatch:
    return RecordBatch(first_ordinal, count=block.rows.height, parsed=True, frame=block.rows, raw_of=block.raw)


def _batches(units: Iterator[Unit | Block], first_ordinal: int, batch_rows: int) -> Iterator[RecordBatch]:
    batch = RecordBatch(first_ordinal)
    for unit in units:
        if isinstance(unit, Block):  # records read at once: a batch of their own
            if batch.count:
                yield batch
            batch = RecordBatch(batch.first_ordinal + batch.count)
            yield _vectorised_batch(unit, batch.first_ordinal)
            batch = RecordBatch(batch.first_ordinal + unit.rows.height)
            continue
        batch.add(expand_unit(unit))
        batch.parsed = batch.parsed or unit.error is None
        if batch.count >= batch_rows:
            yield batch
            batch = RecordBatch(batch.first_ordinal + batch.count)
    if batch.count:
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
    return RecordBatch(run[0].first_ordinal, count=frame.height, parsed=True, frame=frame, raw_of=raw_of)
