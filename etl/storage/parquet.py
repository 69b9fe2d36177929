"""Parquet objects in a store: scanned by polars, written whole, streamed, or written batch by batch.

On local disk polars reads the files in place (lazily, only the row groups and columns a query
needs); elsewhere an object is fetched whole before it is scanned, and written to a local file
first, then uploaded as one object.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from etl.storage.store import PendingWrite, Store

PARQUET_COMPRESSION: Final = "zstd"
# Level 1: as small as the default level 3 on event tables here (hashes and ids dominate), and faster.
PARQUET_LEVEL: Final = 1


def scan_parquet(store: Store, keys: list[str], key_column: str | None = None) -> pl.LazyFrame:
    """Parquet objects as one lazy frame, in the order given; with `key_column`, each row also says
    which object it came from (its key)."""
    paths = [store.local_path(key) for key in keys]
    if all(path is not None for path in paths):
        scan = pl.scan_parquet([str(path) for path in paths], include_file_paths=key_column)
        if key_column is None:
            return scan
        by_path = {str(path): key for path, key in zip(paths, keys, strict=True)}
        return scan.with_columns(pl.col(key_column).replace_strict(by_path, return_dtype=pl.String))
    sources = [store.cloud_source(key) for key in keys]
    if keys and all(source is not None for source in sources):
        return _scan_cloud([source for source in sources if source is not None], keys, key_column)
    frames = [pl.scan_parquet(io.BytesIO(store.read_bytes(key))) for key in keys]
    if key_column is not None:
        frames = [frame.with_columns(pl.lit(key).alias(key_column)) for frame, key in zip(frames, keys, strict=True)]
    return pl.concat(frames)


def _scan_cloud(sources: list[tuple[str, dict[str, Any]]], keys: list[str], key_column: str | None) -> pl.LazyFrame:
    """Objects polars reads itself from the object store (row groups and columns as needed)."""
    uris = [uri for uri, _ in sources]
    scan = pl.scan_parquet(uris, storage_options=sources[0][1], include_file_paths=key_column)
    if key_column is None:
        return scan
    by_uri = dict(zip(uris, keys, strict=True))
    return scan.with_columns(pl.col(key_column).replace_strict(by_uri, return_dtype=pl.String))


def scan_table(store: Store, table: str) -> pl.LazyFrame | None:
    """A Hive-partitioned table (`table/key=value/….parquet`) as one lazy frame, partition keys as
    columns (ISO dates as dates); None when it holds no Parquet object yet."""
    keys = [info.key for info in store.list(table) if info.key.endswith(".parquet")]
    if not keys:
        return None
    paths = [store.local_path(key) for key in keys]
    if all(path is not None for path in paths):
        return pl.scan_parquet([str(path) for path in paths], hive_partitioning=True)
    sources = [store.cloud_source(key) for key in keys]
    if all(source is not None for source in sources):
        options = sources[0][1] if sources[0] else {}
        return pl.scan_parquet(
            [source[0] for source in sources if source], storage_options=options, hive_partitioning=True
        )
    frames = []
    for key in keys:
        partitions = [part.split("=", 1) for part in key.split("/")[1:-1] if "=" in part]
        values = [pl.lit(_partition_value(value)).alias(name) for name, value in partitions]
        frames.append(pl.scan_parquet(io.BytesIO(store.read_bytes(key))).with_columns(values))
    return pl.concat(frames, how="diagonal_relaxed")


def _partition_value(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def read_parquet(store: Store, key: str) -> pl.DataFrame:
    path = store.local_path(key)
    if path is None and (source := store.cloud_source(key)) is not None:
        return pl.read_parquet(source[0], storage_options=source[1])
    return pl.read_parquet(path if path is not None else io.BytesIO(store.read_bytes(key)))


def rows_in(store: Store, key: str) -> int:
    """Rows of one Parquet object (from its metadata)."""
    return int(scan_parquet(store, [key]).select(pl.len()).collect().item())


def iter_parquet(store: Store, key: str, rows: int) -> Iterator[pl.DataFrame]:
    """A Parquet object in batches of at most `rows` rows, in file order (bounded memory)."""
    path = store.local_path(key)
    source: Any = path if path is not None else io.BytesIO(store.read_bytes(key))
    for batch in pq.ParquetFile(source).iter_batches(batch_size=rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def write_parquet(store: Store, frame: pl.DataFrame, key: str, required: Iterable[str] = ()) -> None:
    """Write a frame as one whole Parquet object; the `required` columns are declared non-null."""
    if required:  # (the eager writer does not apply an Arrow schema's nullability; the sink does)
        sink_parquet(store, frame.lazy(), key, required)
        return
    with store.writing(key) as path:
        frame.write_parquet(path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_LEVEL, statistics=True)


def sink_parquet(store: Store, frame: pl.LazyFrame, key: str, required: Iterable[str] = ()) -> None:
    """Stream a lazy frame into one whole Parquet object, in bounded memory and in its row order.

    The `required` columns are declared non-null in the file's schema, so that engines and BI tools
    see what the contract guarantees (a null in one of them fails the write)."""
    schema = _arrow_schema(frame.collect_schema(), set(required)) if required else None
    with store.writing(key) as path:
        frame.sink_parquet(
            path,
            compression=PARQUET_COMPRESSION,
            compression_level=PARQUET_LEVEL,
            statistics=True,
            maintain_order=True,
            arrow_schema=schema,
        )


def _arrow_schema(schema: pl.Schema, required: set[str]) -> pa.Schema:
    """The Arrow schema polars writes for `schema`, with the `required` columns not nullable."""
    written = pl.DataFrame(schema=schema).to_arrow().schema
    return pa.schema([field.with_nullable(field.name not in required) for field in written])


def sink_parquet_split(frames: Iterable[pl.LazyFrame], key: pl.Expr, folder: Path) -> dict[int, list[Path]]:
    """Stream lazy frames into scratch Parquet files in a local `folder`, grouped by the value of `key`
    (an integer; the key itself is not written), in one pass and bounded memory; the files of each
    group with rows, by its value.

    Frames are written one after the other: a sink reading many files at once buffers far more.
    Scratch files are read once and thrown away: fast compression, no statistics.
    (Polars calls `PartitionBy` unstable; tests/test_lifetime.py runs this path on every change.)
    """
    for index, frame in enumerate(frames):
        frame.sink_parquet(
            # Small row groups: the writer buffers one per group, and there may be dozens of groups.
            pl.PartitionBy(folder / str(index), key={"_group": key}, include_key=False),
            compression="lz4",
            statistics=False,
            row_group_size=8192,
            mkdir=True,
        )
    groups: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("*/_group=*/*.parquet")):
        groups.setdefault(int(path.parent.name.removeprefix("_group=")), []).append(path)
    return dict(sorted(groups.items()))


def split_into_objects(
    store: Store, frame: pl.LazyFrame, key: pl.Expr, object_key: Callable[[int, int], str], scratch: str
) -> dict[int, list[str]]:
    """Split a lazy frame by the (integer) value of `key` into Parquet objects in `store`, in one pass
    and bounded memory: the objects of each value with rows, at `object_key(value, n)`. The split is
    written locally first (`store.scratch(scratch)`: on local disk, in the store's own folder)."""
    written: dict[int, list[str]] = {}
    with store.scratch(scratch) as folder:
        for value, files in sink_parquet_split([frame], key, folder).items():
            for number, path in enumerate(files):
                target = object_key(value, number)
                with store.writing(target) as local:
                    shutil.move(path, local)
                written.setdefault(value, []).append(target)
    return written


class ParquetSink:
    """One Parquet object written batch by batch (so a large input never sits whole in memory);
    it appears whole at `close`, or not at all after `discard`."""

    def __init__(
        self,
        store: Store,
        key: str,
        empty: pl.DataFrame,
        dictionary: list[str] | None = None,
        statistics: list[str] | None = None,
    ) -> None:
        """`dictionary`: the columns worth dictionary-encoding (few distinct values); `statistics`: the
        columns readers filter on. Both default to all columns; naming them makes writing cheaper."""
        self.key = key
        self._schema = _arrow(empty).schema
        self._options: dict[str, Any] = {
            "use_dictionary": True if dictionary is None else dictionary,
            "write_statistics": True if statistics is None else statistics,
        }
        self._writer: pq.ParquetWriter | None = None
        self._pending: PendingWrite = store.open_write(key)  # last: nothing after it can fail and leave it

    def write(self, frame: pl.DataFrame) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._pending.path,
                self._schema,
                compression=PARQUET_COMPRESSION,
                compression_level=PARQUET_LEVEL,
                **self._options,
            )
        table = _arrow(frame)
        self._writer.write_table(table if table.schema == self._schema else table.cast(self._schema))

    def close(self, key: str | None = None) -> None:
        """Publish the object, at `key` when given (else at the key it was opened with); whatever stops
        that (an error, an interrupt) leaves no local file behind."""
        try:
            if self._writer is None:
                self.write(pl.from_arrow(self._schema.empty_table()))  # type: ignore[arg-type]
            assert self._writer is not None
            self._writer.close()
            self._pending.commit(key)
        except BaseException:
            self._pending.discard()
            raise

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._pending.discard()


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow without copying: polars keeps text as string views, which Parquet writes
    directly (converting them to plain strings first cost a third of the write time)."""
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())
