"""A new file is read once: hashed while it is parsed, unless it could hold known content."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etl import storage
from etl.landing import discover
from etl.storage import open_store
from tests.helpers import (
    INGESTED_AT,
    assert_same_tables,
    day_file_records,
    deny_reading,
    events,
    record,
    run_at,
    table,
    write,
)


def spy_on_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names of the files hashed on their own and of the files read for parsing."""
    seen: dict[str, list[str]] = {"hashed": [], "parsed": []}
    real_hash, real_bytes = storage.sha256_of, storage.iter_bytes

    def hashing(store: Any, key: str, expect_etag: str = "") -> str:
        seen["hashed"].append(key.rsplit("/", 1)[-1])
        return real_hash(store, key, expect_etag)

    def reading(store: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        seen["parsed"].append(key.rsplit("/", 1)[-1])
        return real_bytes(store, key, *args, **kwargs)

    monkeypatch.setattr(storage, "sha256_of", hashing)
    monkeypatch.setattr(storage, "iter_bytes", reading)
    return seen


def registered(warehouse: Path) -> dict[str, str]:
    """Registered landing file -> the SHA-256 it is registered under."""
    files = json.loads((warehouse / "_state" / "registry.json").read_text())["files"]
    return {entry["path"]: sha256 for sha256, entry in files.items()}


def test_a_new_file_is_hashed_while_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    path = write(landing, "a.json", [*day_file_records(1, range(3)), record(event="nope")])
    seen = spy_on_reads(monkeypatch)
    run_at(landing, wh)
    assert seen == {"hashed": [], "parsed": ["a.json"]}
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert registered(wh)["a.json"] == sha256
    assert set(events(wh)["source_sha256"]) == {sha256}
    assert table(wh, "quarantine")["source_sha256"].to_list() == [sha256]
    staged = pl.read_parquet(wh / "_state" / "staged" / f"{sha256}.parquet")
    assert "source_sha256" not in staged.columns  # the copy's name says it


def test_a_file_that_could_hold_known_content_is_hashed_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    content = day_file_records(1, range(3))
    write(landing, "a.json", content)
    run_at(landing, wh)
    seen = spy_on_reads(monkeypatch)
    write(landing, "moved/a.json", content)  # known content under a new name: the same size
    write(landing, "b.json", [record("u1"), record("u2")])  # two new files of one size: maybe copies
    write(landing, "c.json", [record("u3"), record("u4")])
    result = run_at(landing, wh, at=INGESTED_AT + timedelta(days=1))
    assert sorted(seen["hashed"]) == ["a.json", "b.json", "c.json"]
    assert sorted(seen["parsed"]) == ["b.json", "c.json"]
    assert result.document["totals"]["files_new"] == 2 and result.document["totals"]["files_skipped"] == 2


def test_discover_leaves_unhashed_only_files_of_a_size_nothing_else_has(tmp_path: Path) -> None:
    write(tmp_path, "one.json", "[1]")
    write(tmp_path, "two.json", "[22]")
    write(tmp_path, "twin.json", "[33]")
    write(tmp_path, "known.json", "[444]")
    found = {file.name: file.sha256 for file in discover(open_store(tmp_path), registered_sizes={5}).files}
    assert found["one.json"] == ""
    assert found["two.json"] == hashlib.sha256(b"[22]").hexdigest() and found["twin.json"]
    assert found["known.json"] == hashlib.sha256(b"[444]").hexdigest()
    assert all(discover(open_store(tmp_path)).files[i].sha256 for i in range(4))  # a reprocess hashes every file


def test_a_file_whose_reading_stopped_early_is_hashed_whole(tmp_path: Path) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    data = gzip.compress(json.dumps(day_file_records(1, range(50))).encode())
    # Corrupt early, then more bytes than one read takes: parsing stops before the end of the file.
    tail = bytes(range(256)) * (2 * storage.CHUNK_BYTES // 256)
    path = write(landing, "cut.json.gz", data[: len(data) // 2] + b"\x00garbage" + tail)
    run_at(landing, wh)
    assert registered(wh)["cut.json.gz"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_file_that_cannot_be_read_is_skipped_and_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, wh = tmp_path / "landing", tmp_path / "wh"
    write(landing, "locked.json", [record("u0", campaignId="C-long")])
    write(landing, "ok.json", [record("u1")])
    deny_reading(monkeypatch, "locked.json")
    result = run_at(landing, wh)
    assert result.exit_code == 0 and events(wh)["user_id"].to_list() == ["u1"]
    assert "locked.json: skipped, cannot be read (Permission denied)" in " ".join(result.document["notes"])
    assert list(registered(wh)) == ["ok.json"]


def test_staged_copies_that_still_hold_the_hash_column_rebuild_the_same(tmp_path: Path) -> None:

    old, fresh = tmp_path / "old", tmp_path / "fresh"
    for root in (old, fresh):
        write(root / "landing", "a.json", day_file_records(1, range(4)))
    run_at(old / "landing", old / "wh")
    [staged] = (old / "wh" / "_state" / "staged").glob("*.parquet")
    columns = pl.read_parquet(staged)
    position = columns.columns.index("source_position") + 1
    columns.insert_column(position, pl.lit(staged.stem).alias("source_sha256")).write_parquet(staged)  # as before
    for root in (old, fresh):
        write(root / "landing", "b.json", day_file_records(1, range(2, 7)))
    run_at(old / "landing", old / "wh", at=INGESTED_AT + timedelta(hours=1))
    run_at(fresh / "landing", fresh / "wh")
    assert_same_tables(old / "wh", fresh / "wh")
