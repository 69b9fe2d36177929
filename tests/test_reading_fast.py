"""The vectorised path gives exactly the rows, rejections and counts of the record-by-record path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.reading import ROW_COLUMNS, Limits, Tuning, read_batches
from etl.reading.fast import array_block, read_block
from etl.reading.scan import object_bounds
from tests.helpers import INGESTED_AT, ingest_text

ROOT = Path(__file__).resolve().parents[1]

texts = st.text(alphabet=st.sampled_from(list('ab Zé_\t\x1c\u00a0-:T0129"\\{]')), max_size=8)
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
        "null",
        " null",
        "{}",
        '{"id": "u1", "event": "Message Sent"} null',
        '{"id": "u1", "events": [{"event": "Message Sent"}]}',
        '{"id": "u1", "event": "Message Sent"} {"id": "u2", "event": "Message Sent"}',
    ]
)
lines = st.lists(st.one_of(clean.map(json.dumps), clean.map(json.dumps), odd_lines), min_size=1, max_size=12)


def outcome_rows(
    tmp_path: Path,
    content: str | bytes,
    vectorised: bool = True,
    name: str = "f.ndjson",
    tuning: Tuning = Tuning(),
    limits: Limits | None = None,
) -> tuple[Any, ...]:
    """What reading gives, before judging: the record count, every row with its ordinal and raw text,
    every rejection, and whether any record parsed. Judging is one function of exactly these, the
    same for both paths, so equal reading means equal events and quarantine (checked once below)."""
    limits = limits or Limits(vectorised=vectorised, tuning=tuning)
    count, rows, rejections, parsed = 0, [], [], False
    ignored: Counter[tuple[str, str]] = Counter()
    raw_at = ROW_COLUMNS.index("raw")
    data = content.encode("utf-8") if isinstance(content, str) else content
    for batch in read_batches(name, iter([data]), limits):
        count += batch.count
        parsed = parsed or batch.parsed
        ignored.update(batch.ignored)
        if batch.frame is not None:
            raw_of = batch.raw_of
            assert raw_of is not None
            for k, row in enumerate(batch.frame.select(ROW_COLUMNS).rows()):
                rows.append((batch.first_ordinal + k, *row[:raw_at], raw_of(k), *row[raw_at + 1 :]))
        else:
            rows += [(ordinal, *row) for ordinal, row in zip(batch.ordinals, batch.rows, strict=True)]
        rejections += [(r.ordinal, r.position, r.raw, r.reason, r.detail) for r in batch.rejections]
    return count, parsed, rows, rejections, dict(ignored)


def judged_rows(tmp_path: Path, content: str, vectorised: bool = True) -> tuple[Any, ...]:
    outcome = ingest_text("f.ndjson", content, tmp_path, limits=Limits(vectorised=vectorised))
    return outcome.read, outcome.events.sort("_ordinal").rows(), outcome.quarantine.sort("position").rows()


@settings(max_examples=120)
@given(lines, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_vectorised_and_record_by_record_paths_agree(
    tmp_path: Path, records: list[str], newline: str, final_newline: bool
) -> None:
    content = newline.join(records) + (newline if final_newline else "")
    assert outcome_rows(tmp_path, content) == outcome_rows(tmp_path, content, vectorised=False)


@settings(max_examples=30)
@given(lines)
def test_both_paths_judge_to_the_same_events_and_quarantine(tmp_path: Path, records: list[str]) -> None:
    content = "\n".join(records) + "\n"
    assert judged_rows(tmp_path, content) == judged_rows(tmp_path, content, vectorised=False)


def test_clean_blocks_take_the_vectorised_path() -> None:
    block = b"".join(json.dumps({"id": f"u{i}", "event": "Message Sent"}).encode() + b"\n" for i in range(5))
    read = read_block(block, 7, 1 << 20)
    assert read is not None and read[0].height == 5
    assert read[0]["source_position"].to_list() == [f"line {n}" for n in range(7, 12)]


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
        # Two records on a line, and a blank line or a record over two lines in the same block: as many
        # rows as lines, but not one per line.
        b'{"id": "u1"}{"id": "u2"}\n{"id": "u3",\n"event": "Message Sent"}\n',
        b'{"sg_event_id": "a", "event": "open", "email": "a@x.org"}{"sg_event_id": "b", "event": "open", '
        b'"email": "b@x.org"}\n{"sg_event_id": "c", "event": "open", "email": "c@x.org", "x":\n{"a": 1}}\n',
        b'{"id": "u1"} {"id": "u2"}\n \t\r\n{"id": "u3"}\n',
        b'\n{"id": "u1"}{"id": "u2"}\n',
        b'{"id": "u1"}{"id": "u2"}\n  ',
        b'{"id": "u1"}\r\n\r\n{"id": "u2"}\t{"id": "u3"}\r\n',
        b'{"id": "u", "events": [{"event": "Message Sent", "note": "x"}]}\n',
        b'{"id": "u", "events": [{"event": "Message Sent", "properties": {"country": "NL"}}]}\n',
        b'{"id": "u", "events": [{"event": "Message Sent", "properties": {"campaignId": 5}}]}\n',
        b'{"id": "u", "events": [{"event": "Message Sent", "timestamp": 5}]}\n',
        b'{"id": "u", "events": "x"}\n',
        b'{"id": "u", "events": []}\n',
        b'{"id": "u", "channel": "Push", "events": [{"event": "Message Sent"}]}\n',
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


@settings(max_examples=80)
@given(st.lists(single_user.map(json.dumps), min_size=1, max_size=10))
def test_clean_feeds_are_read_vectorised_and_agree(tmp_path: Path, records: list[str]) -> None:
    content = "\n".join(records) + "\n"
    assert read_block(content.encode(), 1, 1 << 20) is not None
    assert outcome_rows(tmp_path, content) == outcome_rows(tmp_path, content, vectorised=False)


odd_elements = st.sampled_from(
    [
        '{"id": "u1", "event": "Message Sent", "campaignId": 42}',
        '{"id": "u1", "event": "Message Sent", "country": "NL"}',
        '{"id": "u1", "userId": "u2", "event": "Message Sent"}',
        '{"id": "u\\u00e9", "event": "Message Sent"}',
        '{"id": "u1", "event": "Message Sent", "properties": {"channel": "Email"}}',
        '{"id": "u1", "events": [{"event": "Message Sent"}]}',
        '"text"',
        "7",
        "null",
        '{"id": "u1", "event": "Message Sent" "timestamp": "2024-05-01"}',
        '{"id": "u1", "note": "a},{b", "event": "Message Sent"}',
    ]
)


@settings(max_examples=150)
@given(
    st.lists(st.one_of(single_user, single_user, clean, odd_elements), max_size=14),
    st.sampled_from([None, 2]),
    st.sampled_from([",", ", ", ",\n  ", " , "]),
)
def test_vectorised_and_record_by_record_paths_agree_on_arrays(
    tmp_path: Path, elements: list[Any], indent: int | None, separator: str
) -> None:
    parts = [e if isinstance(e, str) else json.dumps(e, indent=indent) for e in elements]
    content = "[" + separator.join(parts) + "]"
    fast = outcome_rows(tmp_path, content, name="f.json")
    assert fast == outcome_rows(tmp_path, content, vectorised=False, name="f.json")


@settings(max_examples=60)
@given(st.lists(single_user, min_size=1, max_size=10), st.sampled_from([None, 2, 4]))
def test_clean_arrays_are_read_vectorised(tmp_path: Path, records: list[dict[str, Any]], indent: int | None) -> None:
    content = json.dumps(records, indent=indent)
    found = array_block(content, content.index("{"), 0, "", 1 << 20)
    assert found is not None and found[0].records == len(records)
    assert content[content.index("{") + found[1] :].strip() == "]"
    assert outcome_rows(tmp_path, content, name="f.json") == outcome_rows(
        tmp_path, content, vectorised=False, name="f.json"
    )


def bounds(text: str) -> list[str] | None:
    data = text.encode()
    found = object_bounds(data)
    return None if found is None else [data[a:b].decode() for a, b in zip(*found, strict=True)]


def test_array_windows_respect_strings_escapes_and_the_array_end() -> None:
    assert bounds('{"id": "a},{b", "event": "x"}, {"id": "c"}] trailing {"d": 1}') == [
        '{"id": "a},{b", "event": "x"}',
        '{"id": "c"}',
    ]
    assert bounds('{"id": "a\\"}{[", "e": "\\\\"}, {"id": "c]"}, {"x') == [
        '{"id": "a\\"}{[", "e": "\\\\"}',
        '{"id": "c]"}',
    ]
    assert bounds('{"a": {"b": 1}}, {"c": [1, {"d": 2}]}]') == ['{"a": {"b": 1}}', '{"c": [1, {"d": 2}]}']
    assert bounds('{"a": 1}, [1], {"b": 2}]') is None  # an array where an object should be
    assert bounds('{"a": 1}, 5, {"b": 2}') == ['{"a": 1}', '{"b": 2}']  # Arrow's count check refuses this
    assert bounds('{"a": "unfinished') is None
    assert array_block('[{"id": "u"}, 5, {"id": "v"}]', 1, 0, "", 1000) is None
    assert array_block('[{"id": "u"}, null]', 1, 0, "", 1000) is not None  # the null is left for the next step
    assert array_block('[{"id": "u"}, null, {"id": "v"}]', 1, 0, "", 1000) is None


def test_escaped_feeds_are_read_vectorised(tmp_path: Path) -> None:
    records = [{"id": f'u\u00e9{i}"q', "event": "Message Sent", "url": "https://x/a?b=\\c"} for i in range(3)]
    content = json.dumps(records)  # ensure_ascii: every é written as an escape
    found = array_block(content, 1, 0, "", 1 << 20)
    assert found is not None and found[0].records == 3 and found[0].raw(0) == json.dumps(records[0])
    assert outcome_rows(tmp_path, content, name="f.json") == outcome_rows(
        tmp_path, content, vectorised=False, name="f.json"
    )


properties = st.fixed_dictionaries(
    {}, optional={"channel": texts, "campaignId": st.one_of(texts, st.none()), "url": texts}
)
api_events = st.fixed_dictionaries(
    {"event": events},
    optional={"timestamp": st.one_of(stamps, st.none()), "properties": st.one_of(properties, st.none())},
)
payloads = st.one_of(
    st.fixed_dictionaries({"id": texts, "events": st.lists(api_events, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"userId": texts, "events": st.lists(api_events, max_size=2)}),
    st.fixed_dictionaries({"id": texts, "channel": texts, "events": st.lists(api_events, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"id": texts, "events": st.just([{"event": "Message Sent"}, None, 3])}),
)


@settings(max_examples=150)
@given(st.lists(st.one_of(payloads, payloads, single_user), min_size=1, max_size=8), st.sampled_from([None, 2]))
def test_api_payloads_agree_in_arrays_and_ndjson(tmp_path: Path, records: list[Any], indent: int | None) -> None:
    array = json.dumps(records, indent=indent)
    assert outcome_rows(tmp_path, array, name="f.json") == outcome_rows(
        tmp_path, array, vectorised=False, name="f.json"
    )
    lines = "".join(json.dumps(r) + "\n" for r in records)
    assert outcome_rows(tmp_path, lines) == outcome_rows(tmp_path, lines, vectorised=False)


def test_clean_payloads_are_read_vectorised() -> None:
    payload = {
        "id": "u1",
        "events": [{"event": "Message Sent", "properties": {"campaignId": "C"}}, {"event": "Message Viewed"}],
    }
    block = (json.dumps(payload) + "\n" + json.dumps({"id": "u2", "event": "Message Sent"}) + "\n").encode()
    read = read_block(block, 3, 1 << 20)
    assert read is not None
    rows, sources, _ = read
    assert rows["source_position"].to_list() == ["line 3 event 0", "line 3 event 1", "line 4"]
    assert sources.tolist() == [0, 0, 1]
    assert rows["campaign_id"].to_list() == ["C", None, None]


def test_blocks_judged_together_keep_each_records_raw_text(tmp_path: Path) -> None:
    small_windows = Tuning(window_chars=120)  # many small windows, judged as one batch
    records = [{"id": f"u{i}", "event": "Message Sent" if i != 7 else "Nope"} for i in range(12)]
    outcome = ingest_text("f.json", records, tmp_path, limits=Limits(tuning=small_windows))
    assert outcome.quarantine.select("position", "raw").rows() == [("element 7", json.dumps(records[7]))]
    assert outcome.events.sort("_ordinal")["user_id"].to_list() == [f"u{i}" for i in range(12) if i != 7]
    assert outcome_rows(tmp_path, json.dumps(records), name="f.json", tuning=small_windows) == outcome_rows(
        tmp_path, json.dumps(records), vectorised=False, name="f.json"
    )


HALVES = Tuning(split_bytes=1)  # every window is parsed as two halves


@settings(max_examples=80)
@given(
    st.lists(st.one_of(single_user, single_user, clean, odd_elements), min_size=2, max_size=10),
    st.sampled_from([",", " , ", ",\n  ", " ", ""]),
)
def test_windows_parsed_in_two_halves_agree(tmp_path: Path, elements: list[Any], separator: str) -> None:
    content = "[" + separator.join(e if isinstance(e, str) else json.dumps(e) for e in elements) + "]"
    fast = outcome_rows(tmp_path, content, name="f.json", tuning=HALVES)
    assert fast == outcome_rows(tmp_path, content, vectorised=False, name="f.json")


def test_a_missing_comma_between_the_halves_is_not_read_vectorised() -> None:
    assert array_block('[{"id": "a"}, {"id": "b"}]', 1, 0, "", 1000, HALVES) is not None
    assert array_block('[{"id": "a"} {"id": "b"}]', 1, 0, "", 1000, HALVES) is None
    assert array_block('[{"id": "a"}, 5, {"id": "b"}]', 1, 0, "", 1000, HALVES) is None


def test_a_block_not_starting_with_an_object_is_left_to_the_slow_path() -> None:
    # In a child process: pyarrow 26 crashes (SIGSEGV) on a block whose first value is `null`.
    blocks = [b"null\n", b"\n  null\n", b"null null\n", b"nullx\n", b"7\n"]
    probe = f"from etl.reading.fast import read_block\nfor block in {blocks!r}:\n    print(read_block(block, 1, 1000))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False)
    assert (done.returncode, done.stdout.split()) == (0, ["None"] * len(blocks)), done.stderr


def test_a_null_line_is_not_read_as_an_empty_record(tmp_path: Path) -> None:
    content = '{"id": "u1", "event": "Message Sent"}\nnull\n'
    assert read_block(content.encode(), 1, 1 << 20) is None
    outcome = ingest_text("f.ndjson", content, tmp_path)
    assert outcome.quarantine.select("position", "reason").rows() == [("line 2", "not_an_object")]
    assert outcome_rows(tmp_path, content) == outcome_rows(tmp_path, content, vectorised=False)
