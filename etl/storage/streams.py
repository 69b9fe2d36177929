"""Reading an object's bytes as a stream: decompressed in bounded steps, hashed as they go by."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator

from etl.reading.types import FeedReadError
from etl.storage.store import CHUNK_BYTES, Store


def iter_bytes(
    store: Store,
    key: str,
    chunk_bytes: int = CHUNK_BYTES,
    on_read: Callable[[int], None] | None = None,
    content: ContentHash | None = None,
    expect_etag: str = "",
) -> Iterator[bytes]:
    """The decompressed bytes of an object, in chunks of at most `chunk_bytes`.

    `.gz` is decompressed as a stream with bounded output per step, so a decompression bomb never
    expands in memory; everything before a truncation or corruption is still delivered.
    `on_read` is told how many bytes of the object itself each step read (for progress); `content`
    hashes them as they go by, so an object is read once to hash and parse it. With `expect_etag` (the
    etag its listing saw) an object that is not, or is no longer, that version raises `ObjectChanged`
    (from `etl.storage.errors`) instead of delivering a mix of two versions.
    """
    raw = _watched(store.read_chunks(key, chunk_bytes, expect_etag), on_read, content)
    if not key.lower().endswith(".gz"):
        yield from raw
        return
    yield from _gunzip(raw, chunk_bytes)


class ContentHash:
    """The SHA-256 of an object's bytes, fed while the object is read for parsing."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._whole = False

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def finish(self) -> None:
        """Every byte went by."""
        self._whole = True

    def hexdigest(self) -> str | None:
        """The hash, when the reading reached the end of the object; None when it stopped before."""
        return self._digest.hexdigest() if self._whole else None


def sha256_of(store: Store, key: str, expect_etag: str = "") -> str:
    digest = hashlib.sha256()
    for chunk in store.read_chunks(key, expect_etag=expect_etag):
        digest.update(chunk)
    return digest.hexdigest()


def _watched(
    chunks: Iterator[bytes], on_read: Callable[[int], None] | None, content: ContentHash | None
) -> Iterator[bytes]:
    for chunk in chunks:
        if on_read:
            on_read(len(chunk))
        if content:
            content.update(chunk)
        yield chunk
    if content:
        content.finish()


def _gunzip(raw: Iterator[bytes], chunk_bytes: int) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=31)
    started = False
    try:
        for data in raw:
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
