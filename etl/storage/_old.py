"""The one I/O layer: every read and write of a file goes through these functions.

Local filesystem today; an object-store implementation replaces this module's bodies, not its callers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_BYTES = 4 * 1024 * 1024  # also the NDJSON block size: 8 MB blocks held ~120 MB more at the peak, no faster
PARQUET_COMPRESSION: Final = "zstd"
# Level 1: as small as the default level 3 on event tables here (hashes and ids dominate), and faster.
PARQUET_LEVEL: Final = 1


class FeedReadError(Exception):
    """A landing file's bytes could not be read to the end (truncated or corrupt compression)."""


def iter_bytes(
    path: Path,
    chunk_bytes: int = CHUNK_BYTES,
    on_read: Callable[[int], None] | None = None,
    content: ContentHash | None = None,
) -> Iterator[bytes]:
    """The decompressed bytes of a landing file, in chunks of at most `chunk_bytes`.

    `.gz` is decompressed as a stream with bounded output per step, so a decompression bomb never
    expands in memory; everything before a truncation or corruption is still delivered.
    `on_read` is told how many bytes of the file itself each step read (for progress); `content`
    hashes them as they go by, so a file is read once to hash and parse it.
    """
    with open(path, "rb") as stream:
        reader = _Watched(stream, on_read, content) if on_read or content else stream
        if not path.name.lower().endswith(".gz"):
            while chunk := reader.read(chunk_bytes):
                yield chunk
            return
        yield from _gunzip(reader, chunk_bytes)


class ContentHash:
    """The SHA-256 of a file's bytes, fed while the file is read for parsing."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._whole = False

    def update(self, data: bytes) -> None:
        if not data:  # a read at the end of the file: every byte went by
            self._whole = True
        self._digest.update(data)

    def hexdigest(self) -> str | None:
        """The hash, when the reading reached the end of the file; None when it stopped before."""
        return self._digest.hexdigest() if self._whole else None


class _Watched:
    def __init__(self, stream: BinaryIO, on_read: Callable[[int], None] | None, content: ContentHash | None) -> None:
        self._stream, self._on_read, self._content = stream, on_read, content

    def read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if self._on_read:
            self._on_read(len(data))
        if self._content:
            self._content.update(data)
        return data


def _gunzip(stream: BinaryIO | _Watched, chunk_bytes: int) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    started = False
    try:
        while raw := stream.read(chunk_bytes):
            data = raw
            while data:
                started = True
                if decompressor.eof:  # a file of several gzip members, one after the other
                    decompressor = zlib.decompressobj(wbits=31)
                out = decompressor.decompress(data, chunk_bytes)
                if out:
                    yield out
                data = decompressor.unconsumed_tail or (decompressor.unused_data if decompressor.eof else b"")
    except zlib.error as err:
        raise FeedReadError(f"the compressed stream is corrupt ({err})") from err
    if started and not decompressor.eof:
        raise FeedReadError("the compressed stream is truncated")


@dataclass(frozen=True)
class Entry:
    """A file found by `list_files`: where it is, and whether it is a link leading out of the root."""

    path: Path
    relative: str
    escapes_root: bool


def list_files(root: Path) -> Iterator[Entry]:
    """Every file under `root`, sorted, without following directory links."""
    resolved = root.resolve()
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            path = Path(directory) / name
            escapes = path.is_symlink() and not _inside(path.resolve(), resolved)
            yield Entry(path, path.relative_to(root).as_posix(), escapes)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def file_stat(path: Path) -> os.stat_result:
    return path.stat()


def list_dirs(path: Path) -> list[str]:
    """Names of the folders directly in `path` (none when it does not exist)."""
    if not path.is_dir():
        return []
    return sorted(entry.name for entry in path.iterdir() if entry.is_dir())


def scan_table(folder: Path) -> pl.LazyFrame | None:
    """A Hive-partitioned table folder as one lazy frame; None when it holds no Parquet file yet."""
    if not any(folder.glob("*/*.parquet")):
        return None
    return pl.scan_parquet(str(folder / "**" / "*.parquet"), hive_partitioning=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write a Parquet file durably (fsync) so a later rename publishes complete bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_LEVEL, statistics=True)
    _fsync(path)


def sink_parquet(frame: pl.LazyFrame, path: Path) -> None:
    """Stream a lazy frame to a Parquet file durably, in bounded memory and in its row order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.sink_parquet(
        path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_LEVEL, statistics=True, maintain_order=True
    )
    _fsync(path)


def sink_parquet_split(frames: Iterable[pl.LazyFrame], key: pl.Expr, folder: Path) -> list[list[Path]]:
    """Stream lazy frames into scratch Parquet files grouped by the value of `key` (the key itself is
    not written), in one pass and bounded memory; the files of each group, across all frames.

    Frames are written one after the other: a sink reading many files at once buffers far more.
    Scratch files are read once and thrown away: fast compression, no statistics, no fsync.
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
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*/_group=*/*.parquet")):
        groups.setdefault(path.parent.name, []).append(path)
    return list(groups.values())


class ParquetSink:
    """One Parquet file written batch by batch (so a large input never sits whole in memory)."""

    def __init__(
        self,
        path: Path,
        empty: pl.DataFrame,
        dictionary: list[str] | None = None,
        statistics: list[str] | None = None,
    ) -> None:
        """`dictionary`: the columns worth dictionary-encoding (few distinct values); `statistics`: the
        columns readers filter on. Both default to all columns; naming them makes writing cheaper."""
        self.path = path
        self._schema = _arrow(empty).schema
        self._options: dict[str, Any] = {
            "use_dictionary": True if dictionary is None else dictionary,
            "write_statistics": True if statistics is None else statistics,
        }
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.path,
                self._schema,
                compression=PARQUET_COMPRESSION,
                compression_level=PARQUET_LEVEL,
                **self._options,
            )
        table = _arrow(frame)
        self._writer.write_table(table if table.schema == self._schema else table.cast(self._schema))

    def close(self) -> None:
        if self._writer is None:
            self.write(pl.from_arrow(self._schema.empty_table()))  # type: ignore[arg-type]
        assert self._writer is not None
        self._writer.close()
        _fsync(self.path)


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow without copying: polars keeps text as string views, which Parquet writes
    directly (converting them to plain strings first cost a third of the write time)."""
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def scan_parquet(paths: list[Path], path_column: str | None = None) -> pl.LazyFrame:
    """Parquet files as one lazy frame, in the order given; with `path_column`, each row also says
    which file it came from (as `path_key` of the file)."""
    return pl.scan_parquet([path_key(p) for p in paths], include_file_paths=path_column)


def path_key(path: Path) -> str:
    """How a scan names a file in its `path_column`."""
    return str(path)


def iter_parquet(path: Path, rows: int) -> Iterator[pl.DataFrame]:
    """A Parquet file in batches of at most `rows` rows, in file order (bounded memory)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def read_parquet(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2, sort_keys=False, default=str)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def replace(src: Path, dst: Path) -> None:
    """Atomically put `src` at `dst` (same filesystem), replacing what was there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def remove(path: Path) -> None:
    """Remove a file, and its directory when that leaves it empty; a missing file is fine."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError):  # not empty: other files still live there
        path.parent.rmdir()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
