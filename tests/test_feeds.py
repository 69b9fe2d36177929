"""Splitting files into records: arrays, single objects, NDJSON, and isolation of broken pieces."""

from __future__ import annotations

import gzip
import json

from hypothesis import given
from hypothesis import strategies as st

from etl.feeds import Limits, iter_units
from etl.storage import FeedReadError


def units(name: str, data: bytes, chunk: int = 1 << 20, max_record: int = 1 << 20) -> list:  # type: ignore[type-arg]
    pieces = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
    return list(iter_units(name, pieces, Limits(max_record_bytes=max_record, vectorised=False)))


def test_pretty_array_yields_each_element_with_its_index() -> None:
    data = json.dumps([{"a": 1}, {"b": [1, 2]}, {"c": "x"}], indent=4).encode()
    found = units("f.json", data, chunk=5)
    assert [u.position for u in found] == ["element 0", "element 1", "element 2"]
    assert [u.value for u in found] == [{"a": 1}, {"b": [1, 2]}, {"c": "x"}]
    assert all(u.error is None for u in found)


def test_single_object_document() -> None:
    [unit] = units("f.json", b'{"id": "A", "event": "Message Sent"}')
    assert unit.position == "document" and unit.value["id"] == "A"


def test_broken_element_is_isolated_and_the_rest_load() -> None:
    data = b'[\n {"a": 1},\n {"b": 2 "c": 3},\n {"d": {"e": [1, 2]}},\n {"f": 4}\n]'
    found = units("f.json", data, chunk=4)
    assert [u.error is None for u in found] == [True, False, True, True]
    bad = found[1]
    assert bad.raw == '{"b": 2 "c": 3}'
    assert bad.error[0] == "invalid_json"
    assert "line 3, column 10" in bad.error[1]


def test_truncated_array_quarantines_only_the_cut_element() -> None:
    found = units("f.json", b'[{"a": 1}, {"b": 2}, {"c": ')
    assert [u.value for u in found[:2]] == [{"a": 1}, {"b": 2}]
    assert found[2].error[0] == "invalid_json" and "truncated" in found[2].error[1]


def test_non_objects_are_units_too() -> None:
    found = units("f.json", b'[1, "x", null, [1], {"a": 1}]')
    assert [u.value for u in found] == [1, "x", None, [1], {"a": 1}]


def test_empty_and_blank_files_hold_no_records() -> None:
    assert units("f.json", b"") == []
    assert units("f.json", b"  \n") == []
    assert units("f.json", b"[]") == []
    assert units("f.ndjson", b"\n\n") == []


def test_bom_and_crlf() -> None:
    assert units("f.json", b'\xef\xbb\xbf[{"a": 1}]')[0].value == {"a": 1}
    found = units("f.ndjson", b'\xef\xbb\xbf{"a": 1}\r\n{"b": 2}\r\n')
    assert [u.value for u in found] == [{"a": 1}, {"b": 2}]


def test_ndjson_bad_line_reports_line_and_column() -> None:
    found = units("f.ndjson", b'{"a": 1}\n\n{"b": }\n{"c": 3}\n')
    assert [u.position for u in found] == ["line 1", "line 3", "line 4"]
    assert found[1].error == ("invalid_json", "Expecting value at line 3, column 7")


def test_invalid_utf8_is_confined_to_its_record() -> None:
    found = units("f.json", b'[{"a": "ok"}, {"b": "\xff"}, {"c": "\xc3\xa9"}]', chunk=3)
    assert [u.error[0] if u.error else None for u in found] == [None, "invalid_utf8", None]
    assert found[2].value == {"c": "é"}
    assert "\ufffd" in found[1].raw


def test_nan_is_not_json() -> None:
    [unit] = units("f.ndjson", b'{"a": NaN}\n')
    assert unit.error[0] == "invalid_json"


def test_concatenated_documents() -> None:
    found = units("f.json", b'{"a": 1}\n{"b": 2}')
    assert [u.position for u in found] == ["document", "value 1"]


def test_truncated_stream_is_reported() -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'[{"a": 1}, {"b": '
        raise FeedReadError("the compressed stream is truncated or corrupt")

    found = list(iter_units("f.json.gz", chunks()))
    assert found[0].value == {"a": 1}
    assert found[1].error[0] == "invalid_json" and "compressed stream" in found[1].error[1]


def test_gzip_truncation_through_storage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from etl.storage import iter_bytes

    data = gzip.compress(json.dumps([{"a": i} for i in range(2000)]).encode())
    path = tmp_path / "f.json.gz"
    path.write_bytes(data[: len(data) // 2])
    found = list(iter_units(path.name, iter_bytes(path, 1024)))
    assert found[0].value == {"a": 0}
    assert found[-1].error is not None and "truncated" in found[-1].error[1]
    assert all(u.error is None for u in found[:-1])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=6),
    st.integers(1, 40),
    st.booleans(),
)
def test_any_chunking_reads_the_same_records(records, chunk, pretty) -> None:  # type: ignore[no-untyped-def]
    data = json.dumps(records, indent=2 if pretty else None, ensure_ascii=False).encode()
    assert [u.value for u in units("f.json", data, chunk=chunk)] == records
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    assert [u.value for u in units("f.ndjson", lines, chunk=chunk)] == records
