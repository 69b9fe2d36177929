"""Objects under one root location, behind one interface shaped like an object store.

A location is a local folder (a path) or a URI: `s3://bucket/prefix` (AWS S3 or any S3-compatible
store, see `etl.storage.s3`) or `memory://name` (one process's memory, for fast tests). Keys are
`/`-separated and relative to the root (on S3, to the prefix). Operations are those an object store
offers: list (size, etag, modification time), streaming read, write a whole object, write it only
if absent, replace it only if unchanged, copy, move, delete. There is no rename of folders, no
partial write, no append.

obstore (Rust's `object_store`) does the work. In object stores:
- `put_if_absent` is a PUT with `If-None-Match: *`, `replace_if_unchanged` a PUT with `If-Match` on
  the etag seen; both send the whole object in one request and return the new object's etag.
- `move` is a copy, then a delete (there is no rename); `put` and a `writing` block publish an object
  with one PUT, or one multipart upload for a large file: readers see it wholly old or wholly new,
  and an upload killed half-way leaves no visible object (only parts, which a bucket lifecycle rule
  removes).
- `read_chunks` streams one GET in chunks (bounded memory). Given `expect_etag` (the etag its listing
  saw) the GET carries `If-Match`: an object replaced since its listing raises `ObjectChanged` (the
  caller leaves it for the next run). One replaced while it is read is still delivered whole as
  listed (one GET is one version), unless a dropped download must resume: then `ObjectChanged`
  too. Never a mix of two versions.
- A file written with `writing`/`open_write`, and `scratch` space, are in the local temporary folder
  (`TMPDIR`) until uploaded.
- A store's errors a user can act on (no credentials, no bucket, access denied, an endpoint that
  does not answer, a store failing after every retry) are raised as one sentence each
  (`etl.storage.errors`); a missing object stays a `FileNotFoundError`.

On local disk this layer adds what a disk needs and obstore's `LocalStore` lacks: a written object
appears whole (written beside its place, then renamed), and is made durable by `sync` (the journal
syncs every object it publishes before its commit: one fsync pass at the end instead of two fsyncs
per object while the units of work wait on each); `put_if_absent` and `replace_if_unchanged` (the
lock and the commit) are durable when they return. Symbolic links leading out of the root are
reported (not followed), the root folder is created only by the first write, `replace_if_unchanged`
(obstore: not implemented for local files) is done under a lock on the folder, and reads use plain
buffered I/O (300 MB streamed in 4 MB chunks: 0.07-0.16 s, obstore's local stream 0.8-1.9 s on this
machine); `expect_etag` is checked on the open file before and after it is read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import obstore
from obstore.store import MemoryStore

from etl.errors import UsageError
from etl.storage import s3
from etl.storage.errors import Action, ObjectChanged, storage_error

if TYPE_CHECKING:
    from obstore import GetResult, ObjectMeta, PutResult

CHUNK_BYTES: Final = 4 * 1024 * 1024  # also the NDJSON block size: 8 MB held ~120 MB more at the peak, no faster
# Multipart uploads: parts of 8 MB, 4 at a time (what an upload holds in memory: 32 MB); objects up to 80 GB.
UPLOAD_PART_BYTES: Final = 8 * 1024 * 1024
UPLOAD_PARTS_AT_ONCE: Final = 4
MEMORY_SCHEME: Final = "memory://"
_SYNCS_AT_ONCE: Final = 16
_MEMORY: dict[str, MemoryStore] = {}  # memory:// stores of this process, by name


class UnsupportedLocation(ValueError):
    """A location this version cannot use."""


@dataclass(frozen=True)
class ObjectInfo:
    """An object found by `list` or `head`."""

    key: str
    size: int
    etag: str  # changes whenever the object does
    modified: datetime
    escapes_root: bool = False  # local disk: a symbolic link leading out of the root
    mtime_ns: int = 0  # local disk: the modification time in ns (what earlier versions registered)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class Store:
    """Objects under one root location (see the module docstring)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def describe(self, key: str = "") -> str:
        """The location of `key` as a user would write it."""
        return f"{self.location.rstrip('/')}/{key}" if key else self.location

    # --- reading ---------------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the root exists (a folder on disk; always true for object stores)."""
        return True

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        raise NotImplementedError

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def read_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES, expect_etag: str = "") -> Iterator[bytes]:
        """The object's bytes in chunks of at most `chunk_bytes`, read as they are consumed; with
        `expect_etag`, `ObjectChanged` when the object read is not (or is no longer) that version."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        return b"".join(self.read_chunks(key))

    def local_path(self, key: str) -> Path | None:
        """A path that readers such as polars can open directly; None off local disk."""
        return None

    def cloud_source(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """A URI and its storage options that polars can scan directly (reading only the row groups
        and columns it needs, in bounded memory); None where there is none (local disk, memory)."""
        return None

    # --- writing ---------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Write a whole object: readers see it wholly old or wholly new (on local disk durable only
        after `sync`)."""
        raise NotImplementedError

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Write the object only if there is none at `key`: its etag, or None when there was one."""
        raise NotImplementedError

    def replace_if_unchanged(self, key: str, data: bytes, etag: str) -> str | None:
        """Replace the object only if it still has `etag`: its new etag, or None when it changed or is gone."""
        raise NotImplementedError

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """A local file to write; on a clean exit it becomes the object at `key` (whole), else nothing
        (on local disk durable only after `sync`)."""
        pending = self.open_write(key)
        try:
            yield pending.path
        except BaseException:
            pending.discard()
            raise
        pending.commit()

    def open_write(self, key: str) -> PendingWrite:
        """A local file to write now and publish at `key` later (`commit`), or throw away (`discard`)."""
        folder = Path(tempfile.mkdtemp(prefix="etl-"))
        try:  # (a stop raised as the next call starts must not leave the folder behind)
            return PendingWrite(folder / "object", key, self._upload, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def sync(self, keys: Iterable[str]) -> None:
        """Make the objects at `keys` durable: on local disk they survive a crash of the machine once
        this returns (object stores: they are, once written)."""

    def copy(self, source: str, target: str) -> None:
        raise NotImplementedError

    def move(self, source: str, target: str) -> None:
        """Put the object `source` at `target` (replacing it) and remove `source`."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is fine."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix`."""
        for info in self.list(prefix):
            self.delete(info.key)

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A local folder for temporary files of one step, removed after it."""
        folder = Path(tempfile.mkdtemp(prefix="etl-scratch-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _upload(self, path: Path, key: str) -> None:
        raise NotImplementedError


def private_temporary_folder(kind: str) -> Path:
    """A new local folder for other processes' temporary files (`TMPDIR`), removed whole, with what
    they left in it, by `remove_private_temporary_folder`."""
    return Path(tempfile.mkdtemp(prefix=f"etl-{kind}-"))


def remove_private_temporary_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def use_temporary_folder_of_environment() -> None:
    """Take TMPDIR as it is now for temporary files (Python reads it once, and may have already)."""
    tempfile.tempdir = None


class PendingWrite:
    """A local file being written, to become an object on `commit` (at the key given when it was
    opened, or at another one chosen once the content is known), or to be thrown away."""

    def __init__(self, path: Path, key: str, publish: Callable[[Path, str], None], cleanup: Path | None = None) -> None:
        self.path = path
        self.key = key
        self._publish = publish
        self._cleanup = cleanup

    def commit(self, key: str | None = None) -> None:
        try:
            self._publish(self.path, key or self.key)
        finally:
            self._remove()

    def discard(self) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)


class ObjectStoreBackend(Store):
    """Any obstore store (S3, memory): every operation is the store's own, and the errors a user can
    act on are said in one sentence (`etl.storage.errors`)."""

    def __init__(self, location: str, store: obstore.store.ObjectStore, endpoint: str = "") -> None:  # type: ignore[name-defined]
        super().__init__(location)
        self._store = store
        self._endpoint = endpoint  # named in errors ('' for AWS's own)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        with self._said("list", prefix):
            batches = obstore.list(self._store, prefix or None, chunk_size=1000)  # pages are read as they are needed
            found = [_info(meta) for batch in batches for meta in batch]
        return sorted((info for info in found if _under(info.key, prefix)), key=lambda info: info.key)

    def head(self, key: str) -> ObjectInfo | None:
        with self._said("read", key):
            try:
                return _info(obstore.head(self._store, key))
            except FileNotFoundError:
                return None

    def read_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES, expect_etag: str = "") -> Iterator[bytes]:
        with self._said("read", key):
            result = self._get(key, expect_etag)
            etag = expect_etag or str(result.meta.get("e_tag") or "")
            try:
                yield from _exact_chunks(result.stream(min_chunk_size=chunk_bytes), chunk_bytes)
            except obstore.exceptions.BaseError:
                # obstore resumes a dropped download, and fails it when the object changed meanwhile: say so.
                if etag and (now := self.head(key)) is not None and now.etag != etag:
                    raise ObjectChanged(self.describe(key), etag) from None
                raise

    def read_bytes(self, key: str) -> bytes:
        with self._said("read", key):
            return self._get(key, "").bytes().to_bytes()  # (held once, not as chunks and their join)

    def cloud_source(self, key: str) -> tuple[str, dict[str, Any]] | None:
        if not self.location.startswith(s3.S3_SCHEME):
            return None
        return f"{self.location.rstrip('/')}/{key}", s3.polars_options()

    def _get(self, key: str, etag: str) -> GetResult:
        try:
            return obstore.get(self._store, key, options={"if_match": etag} if etag else None)
        except obstore.exceptions.PreconditionError:
            raise ObjectChanged(self.describe(key), etag) from None

    def put(self, key: str, data: bytes) -> None:
        with self._said("write", key):
            obstore.put(self._store, key, data, chunk_size=UPLOAD_PART_BYTES, max_concurrency=UPLOAD_PARTS_AT_ONCE)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        with self._said("write", key):
            try:
                written = obstore.put(self._store, key, data, mode="create")
            except obstore.exceptions.AlreadyExistsError:
                return None
        return _etag_of(written)

    def replace_if_unchanged(self, key: str, data: bytes, etag: str) -> str | None:
        with self._said("write", key):
            try:
                written = obstore.put(self._store, key, data, mode={"e_tag": etag})
            except (obstore.exceptions.PreconditionError, FileNotFoundError):
                return None
        return _etag_of(written)

    def copy(self, source: str, target: str) -> None:
        with self._said("write", target):
            obstore.copy(self._store, source, target)

    def move(self, source: str, target: str) -> None:
        self.copy(source, target)  # object stores have no rename
        self.delete(source)

    def delete(self, key: str) -> None:
        with self._said("delete", key), contextlib.suppress(FileNotFoundError):
            obstore.delete(self._store, key)

    def delete_prefix(self, prefix: str) -> None:
        keys = [info.key for info in self.list(prefix)]
        if not keys:
            return
        with self._said("delete", prefix), contextlib.suppress(FileNotFoundError):
            obstore.delete(self._store, keys)  # in batches of up to 1000 keys

    def _upload(self, path: Path, key: str) -> None:
        with self._said("write", key):  # one multipart upload for a large file, completed only at its end
            obstore.put(self._store, key, path, chunk_size=UPLOAD_PART_BYTES, max_concurrency=UPLOAD_PARTS_AT_ONCE)

    @contextlib.contextmanager
    def _said(self, action: Action, key: str) -> Iterator[None]:
        """The store's errors a user can act on, as one sentence each."""
        try:
            yield
        except Exception as error:
            said = storage_error(error, self.describe(key), action, self._endpoint, self.location)
            if said is None:
                raise
            raise said from error


class LocalStore(Store):
    """A folder on local disk."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.root = Path(location)
        self._store: obstore.store.LocalStore | None = None

    def exists(self) -> bool:
        return self.root.is_dir()

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def local_path(self, key: str) -> Path:
        return self.root / key

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every file under `prefix`, by key; links to folders are not followed, and a link to a file
        outside the root is listed with `escapes_root` (so that callers can say they skip it)."""
        start = self.root / prefix if prefix else self.root
        if not start.is_dir():
            return [info] if prefix and (info := self.head(prefix)) else []
        root = self.root.resolve()
        found = []
        for directory, subdirs, names in os.walk(start, followlinks=False):
            subdirs.sort()
            for name in sorted(names):
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                escapes = path.is_symlink() and not _inside(path.resolve(), root)
                try:
                    stat = path.stat()
                except OSError:  # a dangling link, or no permission to look: listed, fails when read
                    found.append(ObjectInfo(key, 0, "", datetime.fromtimestamp(0, UTC), escapes))
                    continue
                found.append(_stat_info(key, stat, escapes))
        return sorted(found, key=lambda info: info.key)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = (self.root / key).stat()
        except FileNotFoundError:
            return None
        return _stat_info(key, stat)

    def read_chunks(self, key: str, chunk_bytes: int = CHUNK_BYTES, expect_etag: str = "") -> Iterator[bytes]:
        with open(self.root / key, "rb") as stream:
            self._check_version(stream, key, expect_etag)
            while chunk := stream.read(chunk_bytes):
                yield chunk
            self._check_version(stream, key, expect_etag)  # (a file written to in place while it was read)

    def _check_version(self, stream: BinaryIO, key: str, etag: str) -> None:
        if etag and _stat_info(key, os.fstat(stream.fileno())).etag != etag:
            raise ObjectChanged(self.describe(key), etag)

    def put(self, key: str, data: bytes) -> None:
        with self.writing(key) as path:
            path.write_bytes(data)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        pending = self.open_write(key)
        try:
            pending.path.write_bytes(data)
            _fsync(pending.path)
            os.link(pending.path, target)  # fails when the target exists: an atomic create-if-absent
        except FileExistsError:
            return None
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            # A filesystem without hard links (SMB, some FUSE).
            return _stat_info(key, target.stat()).etag if _create_exclusive(target, data) else None
        finally:
            pending.discard()
        _fsync_dir(target.parent)
        return _stat_info(key, target.stat()).etag

    def replace_if_unchanged(self, key: str, data: bytes, etag: str) -> str | None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target.parent, f".{target.name}.lock"):
            current = self.head(key)
            if current is None or current.etag != etag:
                return None
            pending = self.open_write(key)
            try:  # durable before it is in place: a lease is never seen empty after a crash
                pending.path.write_bytes(data)
                _fsync(pending.path)
                pending.commit()
            finally:
                pending.discard()
            _fsync_dir(target.parent)
            return _stat_info(key, target.stat()).etag

    def sync(self, keys: Iterable[str]) -> None:
        """fsync each file, then every folder above one up to the root (a folder the run created holds
        its entry), several at a time: the filesystem commits concurrent fsyncs together (the ~180
        objects of a 2M-event run: 0.1-0.5 s here)."""
        files = sorted({self.root / key for key in keys})
        folders = sorted({folder for path in files for folder in path.parents if self.root in folder.parents})
        folders += [self.root] if files else []
        with ThreadPoolExecutor(_SYNCS_AT_ONCE) as pool:
            list(pool.map(_fsync, files))
            list(pool.map(_fsync_dir, folders))

    def open_write(self, key: str) -> PendingWrite:
        # Written beside the target, so that publishing it is one rename on the same disk.
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        return PendingWrite(temporary, key, lambda path, final: _publish_local(path, self.root / final))

    def copy(self, source: str, target: str) -> None:
        (self.root / target).parent.mkdir(parents=True, exist_ok=True)
        obstore.copy(self._obstore(), source, target)

    def move(self, source: str, target: str) -> None:
        (self.root / target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / source, self.root / target)
        _remove_empty_folders(self.root / source, self.root)

    def delete(self, key: str) -> None:
        path = self.root / key
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _remove_empty_folders(path, self.root)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix, ignore_errors=True)
        _remove_empty_folders(self.root / prefix, self.root)

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A folder under `prefix` in the root (same disk as the data), removed after the step."""
        folder = self.root / prefix / f"scratch-{secrets.token_hex(4)}"
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _obstore(self) -> obstore.store.LocalStore:
        if self._store is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._store = obstore.store.LocalStore(self.root)
        return self._store


def open_store(location: str | Path) -> Store:
    """The store at a location: a local folder (a path), `s3://bucket/prefix` or `memory://name`."""
    text = str(location)
    if text.startswith(MEMORY_SCHEME):
        name = text.removeprefix(MEMORY_SCHEME).strip("/")
        return ObjectStoreBackend(f"{MEMORY_SCHEME}{name}", _MEMORY.setdefault(name, MemoryStore()))
    if text.startswith(s3.S3_SCHEME):
        return _open_s3(text)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise UnsupportedLocation(f"{text}: {scheme}:// locations are not supported by this version")
    return LocalStore(text)


def _open_s3(text: str) -> ObjectStoreBackend:
    location = s3.parse_location(text)
    try:
        bucket = s3.connect(location)
    except obstore.exceptions.BaseError as error:  # a setting in the environment it cannot use
        said = storage_error(error, location.uri, "list")
        raise said or UsageError(f"{text}: {str(error).splitlines()[0]}") from error
    return ObjectStoreBackend(location.uri, bucket, s3.endpoint())


def open_object(location: str | Path) -> tuple[Store, str]:
    """The store holding the object at a location, and its key there (`dir/file.html` -> the store
    of `dir`, key `file.html`; `s3://bucket/dir/file.html` -> the store of `s3://bucket/dir`)."""
    text = str(location)
    if text.startswith(MEMORY_SCHEME):
        name, _, key = text.removeprefix(MEMORY_SCHEME).partition("/")
        return open_store(f"{MEMORY_SCHEME}{name}"), key
    if text.startswith(s3.S3_SCHEME):
        folder, _, key = text.rstrip("/").rpartition("/")
        if folder + "/" == s3.S3_SCHEME or not key:
            raise UsageError(f"{text} names a bucket, not an object in it")
        return open_store(folder), key
    path = Path(text)
    return open_store(path.parent), path.name


def forget_memory(location: str) -> None:
    """Drop a memory:// store of this process (tests)."""
    _MEMORY.pop(location.removeprefix(MEMORY_SCHEME).strip("/"), None)


def _info(meta: ObjectMeta) -> ObjectInfo:
    return ObjectInfo(str(meta["path"]), int(meta["size"]), str(meta.get("e_tag") or ""), meta["last_modified"])


def _etag_of(written: PutResult) -> str:
    return str(written.get("e_tag") or "") or "(no etag)"  # (every store here returns one; never empty: truthy)


def _exact_chunks(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Pieces of any size (a network stream's) as chunks of exactly `size` bytes, and a last shorter one."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _stat_info(key: str, stat: os.stat_result, escapes: bool = False) -> ObjectInfo:
    etag = f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"
    modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    return ObjectInfo(key, stat.st_size, etag, modified, escapes, stat.st_mtime_ns)


def _under(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix.rstrip("/") + "/")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def _create_exclusive(target: Path, data: bytes) -> bool:
    """Create-if-absent with O_EXCL (readers may see the file before all of it is written)."""
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    return True


def _publish_local(path: Path, target: Path) -> None:
    """Put a written file in its place at once (durable only after `sync`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be synced
        _fsync(path)


def _remove_empty_folders(path: Path, root: Path) -> None:
    """Remove the folders above `path` that are now empty, up to (not including) the root."""
    folder = path.parent
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        folder = folder.parent


@contextlib.contextmanager
def _locked(folder: Path, fallback: str) -> Iterator[None]:
    """An exclusive lock on a folder (for its objects' conditional replaces); where a folder cannot be
    locked (NFS), on a file `fallback` in it, which stays."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _flocked(fd):
            yield
            return
        with open(folder / fallback, "a+b") as stream:
            fcntl.flock(stream, fcntl.LOCK_EX)
            yield
    finally:
        os.close(fd)  # (closing a file unlocks it)


def _flocked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        return False
    return True
