"""The vectorised NDJSON path gives exactly the rows, rejections and counts of the record-by-record path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import etl.ingest as ingest
from etl.fastpath import read_block
from tests.helpers import INGESTED_AT, ingest_text

texts = st.text(alphabet=st.sampled_from(list("ab Zé_\t\x1c\u00a0-:T0129")), max_size=8)
stamps = st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01", "bad", "", " 2024-05-02T01:02:03+02:00 "])
events = st.sampled_from(["Message Sent", "MESSAGE_CLICKED", "message  viewed", "Nope", ""])
clean = st.fixed_dictionaries(
    {"event": events},
    optional={
        "id": st.one_of(texts, st.none()),
        "userId": st.one_of(texts, st.none()),
        "timestamp": st.one_of(stamps, st.none()),
        "channel": st.one_of(texts, st.none()),
        "type": texts,
        "url": texts,
        "campaignId": st.one_of(texts, st.none()),
        "messageId": texts,
    },
)
odd_lines = st.sampled_from(
    [
        "",
        "   ",
        '{"id": "u1", "event": "Message Sent", "campaignId": 42}',
        '{"id": "u1", "event": "Message Sent", "country": "NL"}',
        '{"id": "u1", "userId": "u2", "event": "Message Sent"}',
        '{"id": "u1", "id": "u2", "event": "Message Sent"}',
        '{"id": "u1", "event": ',
        "[1, 2]",
        '{"id": "u1", "events": [{"event": "Message Sent"}]}',
        '{"id": "u1", "event": "Message Sent"} {"id": "u2", "event": "Message Sent"}',
    ]
)
lines = st.lists(st.one_of(clean.map(json.dumps), clean.map(json.dumps), odd_lines), min_size=1, max_size=12)


def outcome_rows(tmp_path: Path, content: str) -> tuple[Any, ...]:
    outcome = ingest_text("f.ndjson", content, tmp_path)
    events = outcome.events.sort("_ordinal")
    quarantine = outcome.quarantine.sort("position")
    return outcome.read, events.rows(), quarantine.rows()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_vectorised_and_record_by_record_paths_agree(
    tmp_path: Path, records: list[str], newline: str, final_newline: bool
) -> None:
    content = newline.join(records) + (newline if final_newline else "")
    fast = outcome_rows(tmp_path, content)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "read_block", lambda *args: None)
        slow = outcome_rows(tmp_path, content)
    assert fast == slow


def test_clean_blocks_take_the_vectorised_path() -> None:
    block = b"".join(json.dumps({"id": f"u{i}", "event": "Message Sent"}).encode() + b"\n" for i in range(5))
    rows = read_block(block, 7, 1 << 20)
    assert rows is not None and rows.height == 5
    assert rows["source_position"].to_list() == [f"line {n}" for n in range(7, 12)]


@pytest.mark.parametrize(
    "block",
    [
        b'{"id": "u1", "campaignId": 7}\n',
        b'{"id": "u1", "extra": "x"}\n',
        b'{"id": "u1"}\n\n{"id": "u2"}\n',
        b'\xef\xbb\xbf{"id": "u1"}\n',
        b'{"id": "u1", "id": "u2"}\n',
        b'{"id": "\xff"}\n',
        b'{"id": "a", "userId": "b"}\n',
        b'{"id": "u1"} {"id": "u2"}\n',
    ],
)
def test_anything_unusual_goes_record_by_record(block: bytes) -> None:
    assert read_block(block, 1, 1 << 20) is None


def test_long_lines_go_record_by_record() -> None:
    assert read_block(b'{"id": "' + b"x" * 100 + b'"}\n', 1, 50) is None


def test_quarantined_rows_of_a_vectorised_block_keep_their_raw_text(tmp_path: Path) -> None:
    content = '{"id": "u1", "event": "Message Sent"}\n{"id": "u2", "event": "Nope"}\r\n'
    outcome = ingest_text("f.ndjson", content, tmp_path, at=INGESTED_AT)
    assert outcome.quarantine.select("position", "raw", "reason").rows() == [
        ("line 2", '{"id": "u2", "event": "Nope"}', "unknown_event")
    ]
    assert outcome.events.select(pl.col("user_id")).to_series().to_list() == ["u1"]


single_user = clean.map(lambda record: {k: v for k, v in record.items() if k != "userId"})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(single_user.map(json.dumps), min_size=1, max_size=10))
def test_clean_feeds_are_read_vectorised_and_agree(tmp_path: Path, records: list[str]) -> None:
    content = "\n".join(records) + "\n"
    assert read_block(content.encode(), 1, 1 << 20) is not None
    fast = outcome_rows(tmp_path, content)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "read_block", lambda *args: None)
        slow = outcome_rows(tmp_path, content)
    assert fast == slow
