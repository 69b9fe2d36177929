"""Each normalisation rule and each contract rule, with its failure case and reason code."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from contracts import EVENT_NAMES, REASON_CODES, EventCandidate
from contracts.docs import contract_document
from etl.normalise import canonical_event, parse_epoch, parse_timestamp_general, parse_timestamp_text
from tests.helpers import INGESTED_AT, ingest_text, record


def one(tmp_path: Path, rec: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the loaded event, or the quarantine row) of a single-record file."""
    outcome = ingest_text("f.ndjson", json.dumps(rec) + "\n", tmp_path)
    assert outcome.read == outcome.events.height + outcome.quarantine.height == 1
    event = outcome.events.row(0, named=True) if outcome.events.height else None
    rejected = outcome.quarantine.row(0, named=True) if outcome.quarantine.height else None
    return event, rejected


def reason_of(tmp_path: Path, rec: Any) -> str:
    event, rejected = one(tmp_path, rec)
    assert event is None and rejected is not None, f"expected a rejection for {rec}"
    assert rejected["raw"] == json.dumps(rec)
    return str(rejected["reason"])


# --- user id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rec", "user"),
    [
        ({"id": "ABC12345"}, "ABC12345"),
        ({"userId": "ABC12345"}, "ABC12345"),
        ({"id": 42}, "42"),
        ({"id": 2**80}, str(2**80)),
        ({"id": "  padded "}, "padded"),
        ({"id": "X", "userId": "X"}, "X"),
        ({"id": 7, "userId": "7"}, "7"),
    ],
)
def test_user_id_forms(tmp_path: Path, rec: dict[str, Any], user: str) -> None:
    event, _ = one(tmp_path, {**rec, "event": "Message Sent", "timestamp": "2024-05-01"})
    assert event is not None and event["user_id"] == user


@pytest.mark.parametrize("rec", [{}, {"id": ""}, {"id": "   "}, {"id": None}, {"userId": None}])
def test_missing_user_id(tmp_path: Path, rec: dict[str, Any]) -> None:
    assert reason_of(tmp_path, {**rec, "event": "Message Sent"}) == "missing_user_id"


def test_conflicting_user_ids(tmp_path: Path) -> None:
    assert reason_of(tmp_path, {"id": "A", "userId": "B", "event": "Message Sent"}) == "conflicting_user_id"


@pytest.mark.parametrize("value", [1.5, True, {"a": 1}, [1]])
def test_user_id_of_wrong_type(tmp_path: Path, value: Any) -> None:
    assert reason_of(tmp_path, {"id": value, "event": "Message Sent"}) == "wrong_type"


# --- event name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ("Message Sent", "Message Sent"),
        ("MESSAGE_SENT", "Message Sent"),
        ("message  sent", "Message Sent"),
        ("  Message\tDelivered ", "Message Delivered"),
        ("message soft bounced", "Message soft_bounced"),
        ("MESSAGE_HARD_BOUNCED", "Message hard_bounced"),
        ("Message marked as spam", "Message marked_as_spam"),
    ],
)
def test_event_names_are_matched_loosely(tmp_path: Path, sent: str, canonical: str) -> None:
    event, _ = one(tmp_path, record(event=sent))
    assert event is not None and event["event"] == canonical


def test_unknown_and_missing_event(tmp_path: Path) -> None:
    assert reason_of(tmp_path, record(event="Message Opened")) == "unknown_event"
    assert reason_of(tmp_path, {"id": "U1", "timestamp": "2024-05-01"}) == "missing_event"
    assert reason_of(tmp_path, record(event="")) == "missing_event"
    assert reason_of(tmp_path, record(event=3)) == "wrong_type"


@given(
    st.sampled_from(EVENT_NAMES),
    st.lists(st.sampled_from([" ", "_", "\t", "  "]), min_size=1, max_size=3),
    st.booleans(),
)
def test_event_name_variants_property(name: str, separators: list[str], upper: bool) -> None:
    words = name.replace("_", " ").split(" ")
    variant = "".join(word + separators[i % len(separators)] for i, word in enumerate(words)).strip("_")
    variant = variant.upper() if upper else variant.lower()
    result = pl.select(canonical_event(pl.lit(variant))).item()
    assert result == name


# --- timestamps ---------------------------------------------------------------------------


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-01-11T00:00:00Z", utc(2022, 1, 11)),
        ("2022-01-11 08:30:00Z", utc(2022, 1, 11, 8, 30)),
        ("2022-01-11T08:30:00.123456789Z", utc(2022, 1, 11, 8, 30, 0, 123456)),
        ("2022-01-11T08:30:00,5Z", utc(2022, 1, 11, 8, 30, 0, 500000)),
        ("2022-01-11T08:30:00+02:00", utc(2022, 1, 11, 6, 30)),
        ("2022-01-11T08:30:00-0530", utc(2022, 1, 11, 14, 0)),
        ("2022-01-11T08:30:00+02", utc(2022, 1, 11, 6, 30)),
        ("2022-01-11T08:30", utc(2022, 1, 11, 8, 30)),
        ("2022-01-11T08:30:00", utc(2022, 1, 11, 8, 30)),
        ("2022-01-11", utc(2022, 1, 11)),
        ("2024-02-29T23:59:59Z", utc(2024, 2, 29, 23, 59, 59)),
        ("2022-01-01T00:30:00+01:00", utc(2021, 12, 31, 23, 30)),
        ("0001-01-01T00:00:00Z", utc(1, 1, 1)),
        ("9999-12-31T23:59:59Z", utc(9999, 12, 31, 23, 59, 59)),
        ("2024-03-01T14:40:26.012Z", utc(2024, 3, 1, 14, 40, 26, 12000)),  # as SES writes it
        ("2024-03-01T14:40:26.123456Z", utc(2024, 3, 1, 14, 40, 26, 123456)),
        ("2024-03-01T14:40:26.1234567Z", utc(2024, 3, 1, 14, 40, 26, 123456)),  # cut to microseconds
        ("0000-12-31T23:59:60Z", utc(1, 1, 1)),  # a leap second out of year 0
    ],
)
def test_accepted_timestamp_text(text: str, expected: datetime) -> None:
    assert pl.select(parse_timestamp_text(pl.lit(text))).item() == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2023-02-29",
        "2022-13-01",
        "2022-01-11T25:00:00Z",
        "2022-01-11T24:00:00Z",
        "0000-01-01",
        "0000-01-01T00:00:00Z",  # the common form, year 0
        "0000-06-01T00:00:00.5Z",
        "9999-12-31T23:59:60Z",  # a leap second into year 10000
        "9999-12-31T23:59:60.5Z",
        "9999-12-31T23:59:60.123456Z",
        "11/01/2022",
        "2022-01-11T08:30:00+2",
    ],
)
def test_rejected_timestamp_text(text: str) -> None:
    assert pl.select(parse_timestamp_text(pl.lit(text))).item() is None


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (1641889800, utc(2022, 1, 11, 8, 30)),
        (1641889800.25, utc(2022, 1, 11, 8, 30, 0, 250000)),
        (1641889800123, utc(2022, 1, 11, 8, 30, 0, 123000)),
        (0, utc(1970, 1, 1)),
        (-86400, utc(1969, 12, 31)),
        (1e20, None),
        (-1e15, None),
    ],
)
def test_epoch_numbers(number: float, expected: datetime | None) -> None:
    assert pl.select(parse_epoch(pl.lit(float(number)))).item() == expected


def test_missing_timestamp_defaults_to_first_ingestion(tmp_path: Path) -> None:
    for rec in ({"id": "U1", "event": "Message Sent"}, {"id": "U1", "event": "Message Sent", "timestamp": None}):
        event, _ = one(tmp_path, rec)
        assert event is not None
        assert event["event_ts"] == INGESTED_AT and event["timestamp_defaulted"] is True


def test_present_timestamp_is_not_defaulted(tmp_path: Path) -> None:
    event, _ = one(tmp_path, record(ts="2024-05-01T10:00:00+02:00"))
    assert event is not None
    assert event["event_ts"] == utc(2024, 5, 1, 8) and event["timestamp_defaulted"] is False
    assert str(event["event_date"]) == "2024-05-01"


def test_bad_timestamps_are_violations_never_defaulted(tmp_path: Path) -> None:
    assert reason_of(tmp_path, record(ts="not a date")) == "invalid_timestamp"
    assert reason_of(tmp_path, record(ts=True)) == "wrong_type"
    assert reason_of(tmp_path, record(ts={"at": 1})) == "wrong_type"
    assert reason_of(tmp_path, record(ts=1e20)) == "invalid_timestamp"


def test_future_timestamp(tmp_path: Path) -> None:
    event, _ = one(tmp_path, record(ts="2024-06-02T11:59:00Z"))  # 23h59 after ingestion: fine
    assert event is not None
    _, rejected = one(tmp_path, record(ts="2024-06-02T12:00:01Z"))
    assert rejected is not None and rejected["reason"] == "future_timestamp"
    assert "24 hours" in rejected["detail"]


# --- optional text fields and extra ---------------------------------------------------------


def test_optional_fields(tmp_path: Path) -> None:
    rec = record(channel=" Email ", type="Newsletter", url="", campaignId=123, messageId="304405")
    event, _ = one(tmp_path, rec)
    assert event is not None
    assert (event["channel"], event["message_type"], event["url"], event["campaign_id"], event["message_id"]) == (
        "Email",
        "Newsletter",
        None,
        "123",
        "304405",
    )
    assert event["extra"] is None


@pytest.mark.parametrize("field", ["channel", "type", "url", "campaignId", "messageId"])
@pytest.mark.parametrize("value", [1.5, False, {"x": 1}, ["a"]])
def test_optional_fields_of_wrong_type(tmp_path: Path, field: str, value: Any) -> None:
    _, rejected = one(tmp_path, record(**{field: value}))
    assert rejected is not None and rejected["reason"] == "wrong_type"
    assert rejected["detail"].startswith(field)


def test_unknown_keys_are_kept_in_extra(tmp_path: Path) -> None:
    event, _ = one(tmp_path, record(campaignId="C", country="NL", score=1.5, tags=["a"], properties={"x": {"y": 1}}))
    assert event is not None
    assert json.loads(event["extra"]) == {"country": "NL", "score": 1.5, "tags": ["a"], "x": {"y": 1}}


def test_api_payload_expands_to_one_row_per_event(tmp_path: Path) -> None:
    payload = {
        "id": "ABC12345",
        "source": "crm",
        "events": [
            {
                "event": "Message Sent",
                "timestamp": "2022-01-11T00:00:00Z",
                "properties": {"channel": "Email", "campaignId": 9},
            },
            {
                "event": "Message Delivered",
                "timestamp": "2022-01-11T00:01:00Z",
                "properties": {"channel": "Email", "note": "n"},
            },
            {"event": "Message Nope", "timestamp": "2022-01-11T00:01:00Z"},
        ],
    }
    outcome = ingest_text("p.json", [payload], tmp_path)
    assert outcome.read == 3
    rows = outcome.events.sort("_ordinal")
    assert rows["user_id"].to_list() == ["ABC12345", "ABC12345"]
    assert rows["campaign_id"].to_list() == ["9", None]
    assert [json.loads(x) for x in rows["extra"].to_list()] == [{"source": "crm"}, {"source": "crm", "note": "n"}]
    assert rows["source_position"].to_list() == ["element 0 event 0", "element 0 event 1"]
    assert outcome.quarantine["position"].to_list() == ["element 0 event 2"]
    assert outcome.quarantine["reason"].to_list() == ["unknown_event"]


def test_bad_payloads(tmp_path: Path) -> None:
    assert reason_of(tmp_path, {"id": "A", "events": []}) == "invalid_payload"
    assert reason_of(tmp_path, {"id": "A", "events": "x"}) == "invalid_payload"
    outcome = ingest_text(
        "p.json", [{"id": "A", "events": [3, {"event": "Message Sent", "timestamp": "2024-05-01"}]}], tmp_path
    )
    assert outcome.quarantine["reason"].to_list() == ["not_an_object"]
    assert outcome.events.height == 1


def test_non_objects_are_quarantined(tmp_path: Path) -> None:
    outcome = ingest_text("f.json", [1, "x", None, [1]], tmp_path)
    assert outcome.quarantine["reason"].to_list() == ["not_an_object"] * 4
    assert outcome.quarantine["position"].to_list() == [f"element {i}" for i in range(4)]


def test_event_id_is_stable_and_ignores_lineage(tmp_path: Path) -> None:
    first = ingest_text("a.json", [record(campaignId="C")], tmp_path)
    second = ingest_text("b/other.ndjson", json.dumps(record(campaignId="C", country="NL")) + "\n", tmp_path)
    assert first.events["event_id"][0] == second.events["event_id"][0]
    different = ingest_text("c.json", [record(campaignId="D")], tmp_path)
    assert different.events["event_id"][0] != first.events["event_id"][0]
    # The identity must not change between versions: the documented hash of the contract fields.
    micros = str(int(datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()) * 1_000_000)
    fields = ["U1", "Message Sent", micros, "\x00", "\x00", "\x00", "C", "\x00"]
    expected = hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:32]
    assert first.events["event_id"][0] == expected


def test_contract_documents_every_reason_code() -> None:
    doc = contract_document()
    assert {r["code"] for r in doc["reason_codes"]} == REASON_CODES
    assert doc["event_names"] == list(EVENT_NAMES)
    columns = {c["name"] for c in doc["tables"]["events"]["columns"]}
    assert {"event_id", "user_id", "event", "event_ts", "extra", "timestamp_defaulted", "run_id"} <= columns
    assert all(c["description"] for t in doc["tables"].values() for c in t["columns"])


def test_candidate_model_rejects_every_rule_at_once(tmp_path: Path) -> None:
    outcome = ingest_text(
        "f.ndjson", json.dumps({"id": "", "userId": 1.5, "event": "x", "timestamp": "bad"}) + "\n", tmp_path
    )
    [row] = outcome.quarantine.rows(named=True)
    assert row["reason"] == "wrong_type"
    assert row["detail"].startswith("userId must be a string or an integer, found a number with a fraction (1.5)")
    for other in ("missing_user_id", "unknown_event", "invalid_timestamp"):
        assert other in row["detail"].split("also:")[1]
    assert EventCandidate.to_schema().columns["wrong_type"].nullable


timestamp_texts = st.one_of(
    st.builds(
        "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}".format,
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from(["T", " ", "t"]),
        st.integers(0, 25),
        st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["Z", "z", "", "+01:00", ".5Z", " Z", ".Z", ".012Z", ".123456Z", ".1234567Z", ".123456789Z"]),
    ),
    st.text(alphabet="0123456789-:TZ .+", max_size=22),
)


@given(st.lists(timestamp_texts, min_size=1, max_size=20))
@example(["9999-12-31T23:59:60Z", "9999-12-31T23:59:60.5Z", "0000-12-31T23:59:60Z", "0000-01-01T00:00:00.1Z"])
def test_direct_timestamp_parse_agrees_with_the_general_one(texts: list[str]) -> None:
    frame = pl.DataFrame({"t": texts})
    direct = frame.select(parse_timestamp_text(pl.col("t"))).to_series()
    general = frame.select(parse_timestamp_general(pl.col("t"))).to_series()
    assert direct.to_list() == general.to_list()
