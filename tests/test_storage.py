"""The storage interface, on local disk, in memory and in S3 (the test server): the same behaviour behind
one API. What only an object store does is in test_storage_s3.py."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from etl import storage
from etl.errors import UsageError
from etl.storage import Store, open_object, open_store


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "local":
        yield open_store(tmp_path / "root")
        return
    if request.param == "s3":
        yield open_store(request.getfixturevalue("s3_location"))
        return
    location = f"memory://test-{secrets.token_hex(4)}"
    yield open_store(location)
    storage.forget_memory(location)


def test_put_list_head_read(store: Store) -> None:
    store.put("b/two.json", b"2")
    store.put("a/one.json", b"one")
    listed = store.list()
    assert [(info.key, info.size) for info in listed] == [("a/one.json", 3), ("b/two.json", 1)]
    assert [info.key for info in store.list("a")] == ["a/one.json"]
    assert store.list("nothing-here") == []
    head = store.head("a/one.json")
    assert head is not None and head.size == 3 and head.etag and head.name == "one.json"
    assert store.head("a/missing.json") is None
    assert store.read_bytes("a/one.json") == b"one"
    with pytest.raises(FileNotFoundError):
        store.read_bytes("a/missing.json")


def test_reads_stream_in_bounded_chunks(store: Store) -> None:
    data = os.urandom(10_000)
    store.put("blob", data)
    chunks = list(store.read_chunks("blob", chunk_bytes=1024))
    assert b"".join(chunks) == data and max(len(chunk) for chunk in chunks) <= 1024


def test_a_replaced_object_gets_a_new_etag(store: Store) -> None:
    store.put("x", b"old")
    before = store.head("x")
    store.put("x", b"new")  # the same size: the etag must not be the size alone
    after = store.head("x")
    assert before is not None and after is not None and before.etag != after.etag


def test_put_if_absent_writes_once(store: Store) -> None:
    etag = store.put_if_absent("lock", b"first")
    assert etag and etag == store.head("lock").etag  # type: ignore[union-attr]
    assert store.put_if_absent("lock", b"second") is None
    assert store.read_bytes("lock") == b"first"


def test_replace_if_unchanged(store: Store) -> None:
    store.put("lease", b"v1")
    tag = store.head("lease").etag  # type: ignore[union-attr]
    new_tag = store.replace_if_unchanged("lease", b"v2", tag)
    assert new_tag and new_tag == store.head("lease").etag  # type: ignore[union-attr]
    assert store.replace_if_unchanged("lease", b"v3", tag) is None  # it changed since
    assert store.read_bytes("lease") == b"v2"
    assert store.replace_if_unchanged("lease", b"v3", new_tag)  # the etag it returned is the one to use next
    assert store.replace_if_unchanged("gone", b"v1", tag) is None
    assert store.head("gone") is None
    assert [info.key for info in store.list()] == ["lease"]  # (on disk: no lock file left beside it)


def test_a_read_of_another_version_than_listed_is_refused(store: Store) -> None:
    store.put("feed.json", b"[1]")
    listed = store.head("feed.json")
    assert listed is not None
    assert b"".join(store.read_chunks("feed.json", expect_etag=listed.etag)) == b"[1]"
    store.put("feed.json", b"[1, 2]")  # an upload replaced it after it was listed
    with pytest.raises(storage.ObjectChanged, match=r"feed\.json changed while it was being read"):
        b"".join(store.read_chunks("feed.json", expect_etag=listed.etag))
    with pytest.raises(storage.ObjectChanged):
        storage.sha256_of(store, "feed.json", expect_etag=listed.etag)


def test_copy_move_delete(store: Store) -> None:
    store.put("a/x", b"x")
    store.copy("a/x", "b/y")
    store.move("a/x", "c/z")
    assert [info.key for info in store.list()] == ["b/y", "c/z"]
    store.delete("b/y")
    store.delete("b/y")  # a missing object is fine
    store.put("d/1", b"1")
    store.put("d/e/2", b"2")
    store.delete_prefix("d")
    assert [info.key for info in store.list()] == ["c/z"]


def test_a_failed_write_leaves_nothing(store: Store) -> None:
    store.put("t", b"old")
    with pytest.raises(RuntimeError), store.writing("t") as path:
        path.write_bytes(b"half")
        raise RuntimeError("killed")
    assert store.read_bytes("t") == b"old"
    assert [info.key for info in store.list()] == ["t"]


def test_parquet_sink_publishes_whole_at_close_or_not_at_all(store: Store) -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    sink = storage.ParquetSink(store, "staging/x.parquet", frame.clear())
    sink.write(frame)
    assert store.head("staging/x.parquet") is None
    sink.close("final/hash.parquet")  # the key chosen once the content is known
    assert storage.read_parquet(store, "final/hash.parquet").equals(frame)
    discarded = storage.ParquetSink(store, "staging/y.parquet", frame.clear())
    discarded.write(frame)
    discarded.discard()
    assert [info.key for info in store.list()] == ["final/hash.parquet"]


def test_tables_scan_with_partition_columns(store: Store) -> None:
    for day, values in ((date(2024, 5, 1), [1, 2]), (date(2024, 5, 2), [3])):
        key = f"events/event_date={day.isoformat()}/part-0.parquet"
        storage.write_parquet(store, pl.DataFrame({"v": values}), key)
    table = storage.scan_table(store, "events")
    assert table is not None
    rows = table.sort("v").collect()
    assert rows["v"].to_list() == [1, 2, 3]
    assert rows["event_date"].to_list() == [date(2024, 5, 1), date(2024, 5, 1), date(2024, 5, 2)]
    assert storage.scan_table(store, "nothing") is None
    keys = [info.key for info in store.list("events")]
    tagged = storage.scan_parquet(store, keys, key_column="_key").collect()
    assert set(tagged["_key"]) == set(keys)


def test_bytes_are_decompressed_and_hashed_while_read(store: Store) -> None:
    import gzip
    import hashlib

    raw = b"line\n" * 50_000
    packed = gzip.compress(raw)
    store.put("f.ndjson.gz", packed)
    content = storage.ContentHash()
    read = b"".join(storage.iter_bytes(store, "f.ndjson.gz", chunk_bytes=4096, content=content))
    assert read == raw
    assert content.hexdigest() == hashlib.sha256(packed).hexdigest() == storage.sha256_of(store, "f.ndjson.gz")


def test_local_folder_is_created_only_by_the_first_write(tmp_path: Path) -> None:
    store = open_store(tmp_path / "later")
    assert not store.exists() and store.list() == [] and store.head("x") is None
    assert not (tmp_path / "later").exists()
    store.put("x", b"1")
    assert store.exists()


def test_local_links_out_of_the_root_are_flagged_and_folders_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.json").write_text("{}")
    (root / "link.json").symlink_to(outside / "secret.json")
    (root / "alias.json").symlink_to(root / "inside.json")
    (root / "folder").symlink_to(outside)
    listed = {info.key: info.escapes_root for info in open_store(root).list()}
    assert listed == {"alias.json": False, "inside.json": False, "link.json": True}


def test_locations_name_their_store(tmp_path: Path) -> None:
    parent, key = open_object(tmp_path / "out" / "report.html")
    assert key == "report.html" and parent.describe() == str(tmp_path / "out")
    memory, memory_key = open_object("memory://reports/a/b.html")
    assert memory.location == "memory://reports" and memory_key == "a/b.html"
    bucket, bucket_key = open_object("s3://bucket/reports/a/b.html")  # (no request is made)
    assert bucket.location == "s3://bucket/reports/a" and bucket_key == "b.html"
    assert open_store("s3://bucket/prefix/").describe("x.json") == "s3://bucket/prefix/x.json"
    assert open_store("s3://bucket").describe("x.json") == "s3://bucket/x.json"
    with pytest.raises(UsageError, match="names a bucket"):
        open_object("s3://bucket")
    with pytest.raises(UsageError, match="names a bucket"):
        open_store("s3:///prefix")
    with pytest.raises(storage.UnsupportedLocation, match="ftp://"):
        open_store("ftp://host/x")


def test_create_if_absent_works_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_links(*args: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # as on SMB shares and some FUSE mounts
    store = open_store(tmp_path / "root")
    assert store.put_if_absent("_state/lock.json", b"first")
    assert not store.put_if_absent("_state/lock.json", b"second")
    assert store.read_bytes("_state/lock.json") == b"first"
    assert [info.key for info in store.list()] == ["_state/lock.json"]  # no temporary file left


def test_local_objects_are_made_durable_by_sync_files_and_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr("etl.storage.store._fsync", synced.append)
    store = open_store(tmp_path / "wh")
    store.put("a/new/one.json", b"1")
    storage.write_parquet(store, pl.DataFrame({"x": [1]}), "b/two.parquet")
    assert synced == []  # (written whole, in place at once; durable only when synced)
    store.sync(["a/new/one.json", "b/two.parquet", "a/new/one.json"])
    root = tmp_path / "wh"
    files = [root / "a/new/one.json", root / "b/two.parquet"]
    assert sorted(synced) == sorted([*files, root / "a/new", root / "a", root / "b", root])  # folders: each once


def test_lock_and_commit_primitives_are_durable_when_they_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    store = open_store(tmp_path / "wh")
    store.put("lease.json", b"1")
    etag = store.head("lease.json").etag  # type: ignore[union-attr]
    monkeypatch.setattr("etl.storage.store._fsync", synced.append)
    store.put_if_absent("plan.json", b"plan")
    store.replace_if_unchanged("lease.json", b"2", etag)
    assert len([path for path in synced if path.parent == tmp_path / "wh" and path.name.startswith(".")]) == 2
    assert synced.count(tmp_path / "wh") == 2  # the folder, after each is in place
