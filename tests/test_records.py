"""Record shapes: the fast path for common records gives exactly what the general extraction gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from etl.records import ROW_COLUMNS, _fast_payload_row, _fast_row, _row

keys = st.sampled_from(["id", "userId", "event", "timestamp", "channel", "type", "url", "campaignId", "messageId", "x"])
values = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.none(), st.booleans(), st.floats(allow_nan=False))
records = st.dictionaries(keys, values, max_size=7)


@given(records)
def test_fast_row_matches_the_general_extraction(record: dict[str, Any]) -> None:
    fast = _fast_row(record, "element 0", "{}")
    if fast is not None:
        assert fast == _row([("record", record)], "element 0", "{}")


@given(
    st.dictionaries(st.sampled_from(["id", "userId", "source"]), values, max_size=2),
    st.dictionaries(st.sampled_from(["event", "timestamp", "id", "note"]), values, max_size=3),
    st.one_of(st.none(), records),
)
def test_fast_payload_row_matches_the_general_extraction(
    payload: dict[str, Any], event: dict[str, Any], properties: dict[str, Any] | None
) -> None:
    if properties is not None:
        event = {**event, "properties": properties}
    fast = _fast_payload_row(payload, event, "line 1 event 0", "{}")
    if fast is not None:
        assert fast == _row([("payload", payload), ("event", event)], "line 1 event 0", "{}")


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
