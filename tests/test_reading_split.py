"""Splitting files into records: arrays, single objects, NDJSON, and isolation of broken pieces."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

from hypothesis import event, given, settings
from hypothesis import strategies as st

from etl.reading import FeedReadError, Limits, iter_units
from etl.reading.scan import object_bounds, value_end
from etl.reading.split import PREVIEW_CHARS, line_blocks


def units(name: str, data: bytes, chunk: int = 1 << 20, max_record: int = 1 << 20) -> list:  # type: ignore[type-arg]
    return list(iter_units(name, pieces(data, chunk), Limits(max_record_bytes=max_record, vectorised=False)))


def pieces(data: bytes, chunk: int) -> Iterator[bytes]:
    return iter([data[i : i + chunk] for i in range(0, len(data), chunk)])


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


def gunzip_until_cut(data: bytes, chunk: int) -> Iterator[bytes]:
    """What storage delivers for a truncated .gz: every byte before the cut, then a FeedReadError."""
    stream = zlib.decompressobj(wbits=31)
    for start in range(0, len(data), chunk):
        yield stream.decompress(data[start : start + chunk])
    raise FeedReadError("the compressed stream is truncated")


def test_truncated_gzip_stream_keeps_every_element_before_the_cut() -> None:
    data = gzip.compress(json.dumps([{"a": i} for i in range(2000)]).encode())
    found = list(iter_units("f.json.gz", gunzip_until_cut(data[: len(data) // 2], 1024)))
    assert found[0].value == {"a": 0}
    assert found[-1].error is not None and "truncated" in found[-1].error[1]
    assert all(u.error is None for u in found[:-1])


def test_ndjson_truncated_inside_a_line_and_at_a_line_end() -> None:
    def cut(data: bytes) -> Iterator[bytes]:
        yield data
        raise FeedReadError("the compressed stream is truncated")

    inside = list(iter_units("f.ndjson.gz", cut(b'{"a": 1}\n{"b": ')))
    assert [(u.position, u.error) for u in inside] == [
        ("line 1", None),
        ("line 2", ("invalid_json", "truncated: the compressed stream is truncated; the file ends inside this line")),
    ]
    at_end = list(iter_units("f.ndjson.gz", cut(b'{"a": 1}\n')))
    assert [(u.position, u.error) for u in at_end] == [
        ("line 1", None),
        ("line 2", ("unreadable_file", "truncated: the compressed stream is truncated")),
    ]


@given(st.integers(1, 600), st.integers(20, 400))
def test_an_oversized_line_keeps_its_size_and_first_bytes_whatever_the_chunks(chunk: int, size: int) -> None:
    assert size + 9 < PREVIEW_CHARS
    big = b'{"x": "' + b"y" * size + b'"}'
    data = b'{"a": 1}\n' + big + b'\n{"b": 2}\n' + big
    found = units("f.ndjson", data, chunk=chunk, max_record=15)
    assert [u.position for u in found] == ["line 1", "line 2", "line 3", "line 4"]
    assert [u.value for u in found[::2]] == [{"a": 1}, {"b": 2}]
    for unit in found[1::2]:
        assert unit.error == ("record_too_large", f"the record is {len(big):,} bytes, over the limit of 15")
        assert unit.raw == big.decode()  # shorter than PREVIEW_CHARS: all of it, wherever the chunks were cut


def test_line_blocks_cut_after_the_last_line_break_of_each_chunk() -> None:
    blocks = list(line_blocks(iter([b'{"a": 1}\n{"b"', b': 2}\n\n{"c": 3}']), 1 << 20))
    assert [(b.data, b.first, b.count) for b in blocks] == [
        (b'{"a": 1}\n', 1, 1),
        (b'{"b": 2}\n\n', 2, 2),
        (b'{"c": 3}', 4, 1),
    ]


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


# --- the structural scanner: the vectorised form answers only what the sequential one would --------

tricky = st.text(alphabet='ab{}[],:"\\ é', max_size=5)
keys = st.sampled_from(["a", "b{", "c]", 'd"', "e\\", "f,", "", "é }"])
objects = st.dictionaries(
    keys, st.one_of(tricky, st.integers(), st.lists(tricky, max_size=2), st.dictionaries(keys, tricky, max_size=2))
)
# What breaks JSON apart: above all a backslash outside a string, which only the sequential scan reads right.
noise = st.one_of(st.sampled_from(['\\"', '"\\', "\\"]), st.text(alphabet='\\"{}[], x', min_size=1, max_size=3))


@settings(max_examples=300)
@given(st.lists(objects, min_size=1, max_size=5), st.integers(0, 10_000), st.one_of(st.just(""), noise))
def test_object_bounds_agree_with_the_sequential_scan(objects: list[dict], where: int, inserted: str) -> None:  # type: ignore[type-arg]
    elements = [json.dumps(o, ensure_ascii=False) for o in objects]
    text = ", ".join(elements) + "]"
    where %= len(text)
    text = text[:where] + inserted + text[where:]
    data = text.encode()
    found = object_bounds(data)
    event("clean" if not inserted else "broken, declined" if found is None else "broken, answered")
    if not inserted:  # a clean array: every element found
        assert found is not None and [data[a:b].decode() for a, b in zip(*found, strict=True)] == elements
    for start, end in zip(*(found or ((), ())), strict=True):
        start_char, end_char = len(data[:start].decode()), len(data[:end].decode())
        assert value_end(text, start_char) == end_char


def test_a_backslash_outside_a_string_leaves_the_cut_to_the_sequential_scan() -> None:
    text = '{"a": \\"}, {"b": "x"}]'  # the escape-masking reading would end the first object at `}`
    assert value_end(text, 0) is None
    assert object_bounds(text.encode()) is None
    assert object_bounds(b'{"a": "\\\\"}, {"b": "\\"x"}]') is not None  # escapes inside strings are fine
