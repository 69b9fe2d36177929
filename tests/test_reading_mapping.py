"""Mapping records to rows: the shortcut for common records gives exactly what the general extraction
gives, and declines everything else."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from etl.reading import ROW_COLUMNS, Unit, expand_unit
from etl.reading.mapping import PROPERTY_COLUMNS, _fast_payload_row, _fast_row, _row

USER_KEYS = ["id", "userId"]
EVENT_KEYS = ["event", "timestamp"]
PROPERTY_KEYS = list(PROPERTY_COLUMNS)

# Strings as they come: user ids with the white space trimmed off them (and not: U+00A0), empty ones.
texts = st.text(alphabet=" \t\n\r\x0b\x0c\u00a0aZé_-:0", max_size=6)
# What a common record must not hold: a value that is not a string, a key nobody knows.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.just([]))
not_strings = st.one_of(scalars, st.just({}))
unknown_keys = st.sampled_from(["x", "country", "properties", "events", "Id"])


def text_fields(keys: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(keys), texts, max_size=len(keys))


@st.composite
def feed_records(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A flat feed record, and whether the shortcut must take it: usually a common record (known keys,
    at most one user key, only strings), else a common record with one thing that takes it out."""
    record = draw(text_fields(EVENT_KEYS + PROPERTY_KEYS))
    user_key = draw(st.sampled_from([*USER_KEYS, None]))
    if user_key:
        record[user_key] = draw(texts)
    twist = draw(st.sampled_from(["none", "none", "none", "not a string", "unknown key", "both user keys"]))
    event(twist)
    if twist == "not a string":
        record[draw(st.sampled_from(USER_KEYS + EVENT_KEYS + PROPERTY_KEYS))] = draw(not_strings)
    elif twist == "unknown key":
        record[draw(unknown_keys)] = draw(st.one_of(texts, not_strings))
    elif twist == "both user keys":
        record.update({"id": draw(texts), "userId": draw(texts)})
    return record, twist == "none"


@given(feed_records())
def test_fast_row_gives_the_general_extraction_or_declines(case: tuple[dict[str, Any], bool]) -> None:
    record, common = case
    fast = _fast_row(record, "element 0", "{}")
    if common:
        assert fast == _row([("record", record)], "element 0", "{}")
    else:
        assert fast is None


@st.composite
def payload_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """One event of an API payload with its payload level, and whether the shortcut must take it: the
    levels share no key and hold only known keys and strings, unless one twist takes them out."""
    user_key = draw(st.sampled_from([*USER_KEYS, None]))
    payload: dict[str, Any] = {user_key: draw(texts)} if user_key else {}
    item: dict[str, Any] = draw(text_fields(EVENT_KEYS))
    if draw(st.booleans()):
        item["properties"] = draw(text_fields(PROPERTY_KEYS))
    twist = draw(
        st.sampled_from(
            ["none", "none", "none", "payload field", "event field", "property field", "odd properties", "not a string"]
        )
    )
    event(twist)
    if twist == "payload field":  # another level's key, or both user keys
        payload[draw(st.sampled_from(["source", "event", "channel", *USER_KEYS]))] = draw(texts)
        if len(payload) == 1:
            payload["id" if "userId" in payload else "userId"] = draw(texts)
    elif twist == "event field":
        item[draw(st.sampled_from(["note", "channel", *USER_KEYS]))] = draw(texts)
    elif twist == "property field":
        item["properties"] = {**item.get("properties", {}), draw(st.sampled_from(["country", "event", "id"])): "x"}
    elif twist == "odd properties":
        item["properties"] = draw(st.one_of(scalars, texts))
    elif twist == "not a string":
        level = draw(st.sampled_from(["payload", "event", "properties"]))
        target = payload if level == "payload" else item if level == "event" else item.setdefault("properties", {})
        keys = USER_KEYS if level == "payload" else EVENT_KEYS if level == "event" else PROPERTY_KEYS
        key = next(iter(target), None) if level == "payload" and target else draw(st.sampled_from(keys))
        target[key] = draw(not_strings)
    return payload, item, twist == "none"


@given(payload_events())
def test_fast_payload_row_gives_the_general_extraction_or_declines(
    case: tuple[dict[str, Any], dict[str, Any], bool],
) -> None:
    payload, item, common = case
    fast = _fast_payload_row(payload, item, "line 1 event 0", "{}")
    if common:
        assert fast == _row([("payload", payload), ("event", item)], "line 1 event 0", "{}")
    else:
        assert fast is None


def test_fast_path_is_taken_for_plain_records() -> None:
    record = {"id": " u1 ", "event": "Message Sent", "timestamp": "2024-05-01", "campaignId": "C"}
    row = _fast_row(record, "element 0", "{}")
    assert (
        row is not None and row[ROW_COLUMNS.index("user_id")] == "u1" and row[ROW_COLUMNS.index("campaign_id")] == "C"
    )
    assert _fast_row({**record, "campaignId": 7}, "element 0", "{}") is None
    assert _fast_row({**record, "country": "NL"}, "element 0", "{}") is None
    payload_row = _fast_payload_row(
        {"id": "u1"}, {"event": "Message Sent", "properties": {"channel": "Email"}}, "p", "{}"
    )
    assert payload_row is not None and payload_row[ROW_COLUMNS.index("channel")] == "Email"


def test_row_columns_hold_the_property_columns_in_order() -> None:
    assert ROW_COLUMNS[ROW_COLUMNS.index("channel") :][: len(PROPERTY_COLUMNS)] == tuple(PROPERTY_COLUMNS.values())


def test_each_shape_expands_to_its_rows() -> None:
    flat = expand_unit(Unit("line 1", "{}", {"id": "u1", "event": "Message Sent"}))
    assert [row[ROW_COLUMNS.index("source_position")] for row in flat.rows] == ["line 1"] and not flat.rejections
    payload = expand_unit(Unit("line 2", "{}", {"id": "u1", "events": [{"event": "Message Sent"}, 3]}))
    assert [row[ROW_COLUMNS.index("source_position")] for row in payload.rows] == ["line 2 event 0"]
    assert [(r.position, r.reason) for r in payload.rejections] == [("line 2 event 1", "not_an_object")]
    assert [r.reason for r in expand_unit(Unit("line 3", "[]", [])).rejections] == ["not_an_object"]
    assert [r.reason for r in expand_unit(Unit("line 4", "{}", {"events": []})).rejections] == ["invalid_payload"]
