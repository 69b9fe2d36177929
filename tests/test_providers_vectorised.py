"""SendGrid arrays and SES NDJSON read a block at a time give exactly what the adapters give record by
record: rows (`extra` text included), rejections, ignored events; and clean blocks do take that path."""

from __future__ import annotations

import contextlib
import io
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.reading import ROW_COLUMNS, Limits, ReadContext, SourceRule, Sources, Tuning, read_batches
from tests.test_reading_fast import outcome_rows

# Text that JSON must escape, that looks like structure, and that is not ASCII; and text that looks
# like the null members cut out of `extra`.
tricky = st.one_of(
    st.text(
        alphabet=st.sampled_from(
            [*string.ascii_letters[:6], '"', "\\", "\n", "\x01", "é", "😀", ":", "{", ",", "}", " "]
        ),
        max_size=8,
    ),
    st.sampled_from([":null", ":null,", ':null"', 'a":null', "a:null", "{,", "x{,}", '":null}', "\\:null"]),
)
plain = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)
scalars = st.one_of(
    tricky, st.integers(-5, 10**12), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(plain, inner, max_size=3)),
    max_leaves=6,
)
texts = st.one_of(plain, st.integers(0, 10**9), st.just(""), st.none())


def present(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its absent fields (marked `...`)."""
    return {key: value for key, value in record.items() if value is not ...}


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is usually clean, sometimes absent (the `...` marker) or odd."""
    return st.one_of(strategy, strategy, strategy, st.just(...), values)


sendgrid_records = st.fixed_dictionaries(
    {
        "sg_event_id": maybe(plain),
        "sg_message_id": maybe(texts),
        "event": maybe(
            st.sampled_from(
                [
                    "processed",
                    "delivered",
                    "open",
                    "click",
                    "bounce",
                    "deferred",
                    "dropped",
                    "spamreport",
                    "unsubscribe",
                    "group_unsubscribe",
                    "Nope",
                ]
            )
        ),
        "email": maybe(st.one_of(plain.map(lambda s: f" {s}@example.com"), st.just(""))),
        "timestamp": maybe(
            st.one_of(st.integers(1_600_000_000, 1_700_000_000), st.just(1591726752372), st.just("1600000000"))
        ),
        "category": maybe(st.one_of(plain, st.lists(plain, max_size=3))),
        "type": maybe(st.sampled_from(["blocked", "bounce"])),
        "marketing_campaign_id": maybe(st.one_of(st.integers(1, 99), st.just(""))),
        "campaign_id": maybe(texts),
        "url": maybe(texts),
        "sg_machine_open": maybe(st.booleans()),
        "custom": maybe(values),
        "nested": maybe(st.dictionaries(plain, values, max_size=3)),
    }
).map(present)


def ses_records() -> st.SearchStrategy[dict[str, Any]]:
    addresses = st.lists(plain.map(lambda s: f"{s}@example.com"), min_size=0, max_size=3)
    stamp = maybe(st.sampled_from(["2024-05-01T10:00:00.123Z", "2024-05-01 10:00", "2024-13-45T99:00:00Z", "soon", ""]))
    mail = st.fixed_dictionaries(
        {
            "timestamp": stamp,
            "messageId": maybe(texts),
            "destination": maybe(addresses),
            "tags": maybe(
                st.fixed_dictionaries({"campaign_id": maybe(st.lists(plain, max_size=2)), "zz": st.just(["x"])}).map(
                    present
                )
            ),
            "headers": maybe(st.lists(st.fixed_dictionaries({"name": plain, "value": tricky}), max_size=2)),
            "other": maybe(values),
        }
    ).map(present)
    kind = st.sampled_from(["Send", "Delivery", "Open", "Click", "Bounce", "Complaint", "Reject", "DeliveryDelay"])

    def build(kind: str, mail: dict[str, Any], recipients: list[str], stamp: Any, extra: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"eventType": kind, "mail": mail}
        body: dict[str, Any] = {} if stamp is ... else {"timestamp": stamp}
        if kind == "Delivery":
            body["recipients"] = recipients
        if kind == "Bounce":
            body.update(
                bounceType="Permanent", bouncedRecipients=[{"emailAddress": r, "status": "5.1.1"} for r in recipients]
            )
        if kind == "Click":
            body["link"] = "https://example.com/x"
        record[{"DeliveryDelay": "deliveryDelay"}.get(kind, kind.lower())] = body
        if extra is not ...:
            record["extra"] = extra
        return record

    return st.builds(build, kind, mail, addresses, stamp, maybe(values))


def both_paths(name: str, content: str, limits: Limits = Limits()) -> tuple[Any, Any]:
    fast = outcome_rows(Path("."), content, name=name, limits=limits)
    slow = outcome_rows(Path("."), content, name=name, limits=Limits(vectorised=False, sources=limits.sources))
    return fast, slow


@settings(max_examples=150)
@given(st.lists(sendgrid_records, min_size=1, max_size=8))
def test_sendgrid_arrays_agree_on_both_paths(records: list[dict[str, Any]]) -> None:
    fast, slow = both_paths("sg.json", json.dumps(records, ensure_ascii=False))
    assert fast == slow


@settings(max_examples=150)
@given(st.lists(ses_records(), min_size=1, max_size=6))
def test_ses_ndjson_agrees_on_both_paths(records: list[dict[str, Any]]) -> None:
    content = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    fast, slow = both_paths("ses.ndjson", content)
    assert fast == slow


@settings(max_examples=40)
@given(st.lists(ses_records(), min_size=1, max_size=4))
def test_options_agree_on_both_paths(records: list[dict[str, Any]]) -> None:
    content = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    options = (("campaign_id", "zz"), ("user_id", "campaign_id"))
    limits = Limits(sources=Sources(rules=(SourceRule("*", ".*", "ses", options),)))
    fast, slow = both_paths("ses.ndjson", content, limits)
    assert fast == slow


def clean_sendgrid(count: int) -> list[dict[str, Any]]:
    kinds = ["processed", "delivered", "open", "click", "deferred"]
    return [
        {
            "email": f"u{n}@example.com",
            "timestamp": 1714557600 + n,
            "smtp-id": f"<{n}@x>",
            "event": kinds[n % 5],
            "category": ["news", "weekly"],
            "sg_event_id": f"e{n}",
            "sg_message_id": f"m{n // 5}.filter",
            "campaign_id": "C1",
            "useragent": 'Mozilla "quoted" \\ é',
            "tls": 1,
        }
        for n in range(count)
    ]


def clean_ses(count: int) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        mail = {
            "timestamp": "2024-05-01T10:00:00.012Z",
            "messageId": f"M{n}",
            "destination": [f"u{n}@example.com"],
            "headers": [{"name": "Content-Type", "value": 'multipart/alternative; boundary="b"'}],
            "tags": {"ses:configuration-set": ["cfg"], "campaign_id": ["C1"]},
        }
        out.append(
            {
                "eventType": "Delivery",
                "mail": mail,
                "delivery": {"timestamp": "2024-05-01T10:00:01.5Z", "recipients": [f"u{n}@example.com"]},
            }
        )
    return out


def test_clean_sendgrid_arrays_and_ses_lines_are_read_vectorised() -> None:
    for name, content in [
        ("sg.json", json.dumps(clean_sendgrid(500))),
        ("ses.ndjson", "".join(json.dumps(r) + "\n" for r in clean_ses(300))),
    ]:
        batches = list(read_batches(name, iter([content.encode()]), Limits()))
        assert all(batch.frame is not None for batch in batches), name
        assert sum(batch.read for batch in batches) == (500 if name == "sg.json" else 300)
        fast, slow = both_paths(name, content)
        assert fast == slow


def test_a_pinned_provider_reads_records_without_its_marks() -> None:
    records = [{"email": "a@example.com", "timestamp": 1714557600, "event": "unsubscribe", "newsletter": {"id": "1"}}]
    limits = Limits(sources=Sources(rules=(SourceRule("legacy/*", "legacy/[^/]*", "sendgrid"),)))
    fast, slow = both_paths("legacy/x.json", json.dumps(records), limits)
    assert fast == slow
    count, _, rows, rejections, _ = fast
    assert count == 1 and not rejections and rows[0][1:3] == ("a@example.com", "Message Unsubscribed")
    context = limits.sources.context("legacy/x.json")
    assert context == ReadContext("legacy/x.json", "sendgrid", {})


@pytest.mark.parametrize("text", [":null", ":null,", "{,", "\\u003anull"])
@pytest.mark.parametrize("where", ["value", "key", "listed", "nested"])
def test_text_that_looks_like_null_members_agrees_on_both_paths(text: str, where: str) -> None:
    value = json.loads(f'"{text}"')
    extra = {"value": {"note": value}, "key": {value: 1}, "listed": {"notes": ["x", value]}}.get(where)
    extra = extra or {"deep": {"er": {"note": value, "gone": None}}}
    records = [{**record, **extra} for record in clean_ses(3)]
    content = "".join(json.dumps(r) + "\n" for r in records)
    fast, slow = both_paths("ses.ndjson", content)
    assert fast == slow
    batches = list(read_batches("ses.ndjson", iter([content.encode()]), Limits()))
    written = json.dumps(value, ensure_ascii=False)
    # Text that keeps `":null` after the cut is read record by record; other text stays on the fast path.
    assert all((batch.frame is None) == ('":null' in written) for batch in batches), written


@pytest.mark.parametrize("key", [":x", ",x", "]x", "}x"])
def test_a_key_that_could_make_the_cut_start_in_a_string_goes_record_by_record(key: str) -> None:
    records = [{**record, "extra": {key: "v", "gone": None}} for record in clean_ses(3)]
    content = "".join(json.dumps(r) + "\n" for r in records)
    fast, slow = both_paths("ses.ndjson", content)
    assert fast == slow
    batches = list(read_batches("ses.ndjson", iter([content.encode()]), Limits()))
    assert all(batch.frame is None for batch in batches)


def test_small_blocks_of_provider_lines_are_read_together_and_agree() -> None:
    content = "".join(json.dumps(r) + "\n" for r in clean_ses(200)).encode()
    chunks = [content[i : i + 4096] for i in range(0, len(content), 4096)]
    batches = list(read_batches("ses.ndjson", iter(chunks), Limits()))
    assert len(batches) == 1 and batches[0].frame is not None and batches[0].read == 200
    frame = batches[0].frame
    assert frame["source_position"].to_list() == [f"line {n}" for n in range(1, 201)]
    slow = list(read_batches("ses.ndjson", iter(chunks), Limits(vectorised=False)))
    assert [row[0] for batch in slow for row in batch.rows] == frame["user_id"].to_list()


# --- Braze Currents Avro --------------------------------------------------------------------------


def _optional(name: str, kind: Any) -> dict[str, Any]:
    return {"name": name, "type": ["null", kind], "default": None}


def currents_schema(event_type: str) -> dict[str, Any]:
    channel_kind = event_type.rsplit(".", 1)
    return {
        "type": "record",
        "name": channel_kind[1],
        "namespace": f"dataexport.S3.inner.{channel_kind[0]}",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "user_id", "type": "string"},
            _optional("external_user_id", "string"),
            {"name": "time", "type": "int"},
            _optional("campaign_id", "string"),
            _optional("canvas_id", "string"),
            _optional("send_id", "string"),
            _optional("dispatch_id", "string"),
            _optional("url", "string"),
            _optional("machine_open", "string"),
            _optional("is_suspected_bot_click", "boolean"),
            _optional("note", "string"),
            _optional("tags", {"type": "array", "items": ["null", "string"]}),
        ],
    }


maybe_null = st.one_of(st.none(), st.none(), texts.map(lambda value: None if value is None else str(value)))
currents_records = st.fixed_dictionaries(
    {
        "id": plain,
        "user_id": st.sampled_from(["u1", "", "  u2 ", "é"]),
        "external_user_id": st.one_of(st.none(), st.sampled_from(["x1", "", " "])),
        "time": st.integers(0, 2**31 - 1),
        "campaign_id": maybe_null,
        "canvas_id": maybe_null,
        "send_id": maybe_null,
        "dispatch_id": maybe_null,
        "url": maybe_null,
        "machine_open": st.one_of(st.none(), st.sampled_from(["true", "false", "", "maybe"])),
        "is_suspected_bot_click": st.one_of(st.none(), st.booleans()),
        "note": st.one_of(st.none(), tricky),
        "tags": st.one_of(st.none(), st.lists(st.one_of(st.none(), tricky), max_size=3)),
    }
)
currents_types = st.sampled_from(
    [
        "users.messages.email.Open",
        "users.messages.email.Click",
        "users.messages.sms.ShortLinkClick",
        "users.messages.pushnotification.Send",
        "users.messages.email.Deferral",
    ]
)


def avro_file(event_type: str, records: list[dict[str, Any]], sync_interval: int = 200) -> bytes:
    out = io.BytesIO()
    schema = fastavro.parse_schema(currents_schema(event_type))
    fastavro.writer(out, schema, records, sync_interval=sync_interval, codec="deflate")
    return out.getvalue()


@settings(max_examples=100)
@given(currents_types, st.lists(currents_records, min_size=1, max_size=12), st.integers(1, 5))
def test_braze_avro_agrees_on_both_paths(event_type: str, records: list[dict[str, Any]], run: int) -> None:
    content = avro_file(event_type, records)
    name = "currents/part-0.avro"
    tuning = Tuning(judge_rows=run, batch_rows=2)  # several runs of blocks, several batches when declined
    fast = outcome_rows(Path("."), content, name=name, limits=Limits(tuning=tuning))
    slow = outcome_rows(Path("."), content, name=name, limits=Limits(vectorised=False, tuning=tuning))
    assert fast == slow


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_a_damaged_avro_file_reads_alike_on_both_paths(cut: float) -> None:
    records = [
        {"id": f"e{n}", "user_id": f"u{n}", "time": 1714557600 + n, "machine_open": "true", "tags": ["a", None]}
        for n in range(400)
    ]
    data = avro_file("users.messages.email.Open", records)
    content = data[: int(len(data) * cut)]
    tuning = Tuning(judge_rows=50)
    fast = outcome_rows(Path("."), content, name="x.avro", limits=Limits(tuning=tuning))
    slow = outcome_rows(Path("."), content, name="x.avro", limits=Limits(vectorised=False, tuning=tuning))
    assert fast == slow
    _, _, rows, rejections, _ = fast
    assert 0 < len(rows) < 400 and [r[3] for r in rejections] == ["unreadable_file"], rejections


def test_clean_braze_avro_is_read_at_once_in_runs_of_blocks() -> None:
    records = [
        {"id": f"e{n}", "user_id": f"u{n}", "time": 1714557600 + n, "machine_open": None, "campaign_id": "C"}
        for n in range(1000)
    ]
    content = avro_file("users.messages.email.Open", records)
    chunks = iter([content[at : at + 999] for at in range(0, len(content), 999)])
    batches = list(read_batches("x.avro", chunks, Limits(tuning=Tuning(judge_rows=300))))
    assert all(batch.frame is not None for batch in batches) and len(batches) > 1
    assert all(batch.count >= 300 for batch in batches[:-1]) and sum(batch.count for batch in batches) == 1000
    frame = pl.concat([batch.frame for batch in batches if batch.frame is not None])
    assert frame["source_position"].to_list() == [f"record {n}" for n in range(1000)]
    assert frame["user_id"].to_list() == [f"u{n}" for n in range(1000)]
    tuning = Tuning(judge_rows=300)
    fast = outcome_rows(Path("."), content, name="x.avro", limits=Limits(tuning=tuning))
    slow = outcome_rows(Path("."), content, name="x.avro", limits=Limits(vectorised=False, tuning=tuning))
    assert fast == slow  # `extra`, raw text, ordinals and counts too


def _avro_of(fields: list[dict[str, Any]], records: list[dict[str, Any]]) -> bytes:
    schema = {"type": "record", "name": "Open", "namespace": "dataexport.S3.inner.users.messages.email"}
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema({**schema, "fields": fields}), records)
    return out.getvalue()


BASIC = [{"name": "user_id", "type": "string"}, {"name": "time", "type": "long"}]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ({"name": "m", "type": {"type": "map", "values": "string"}}, {"k": "v"}),  # polars panics on maps
        ({"name": "external_user_id", "type": {"type": "string", "logicalType": "uuid"}}, "7f0c"),  # not a UUID
        ({"name": "_record", "type": "string"}, "x"),  # the name of a column the mapping makes
        ({"name": "tags", "type": {"type": "array", "items": "long"}}, [1, 2]),
    ],
)
def test_avro_fields_the_fast_path_does_not_read_as_the_record_reader_go_record_by_record(
    field: dict[str, Any], value: Any
) -> None:
    content = _avro_of([*BASIC, field], [{"user_id": "u", "time": 1714557600, field["name"]: value}])
    fast = outcome_rows(Path("."), content, name="x.avro")
    slow = outcome_rows(Path("."), content, name="x.avro", limits=Limits(vectorised=False))
    assert fast == slow


def test_avro_data_polars_cannot_decode_is_damage_not_a_crash() -> None:
    content = _avro_of(BASIC, [{"user_id": "u", "time": 1}]).replace(b"\x02u\x02", b"\x7eu\x02")
    fast = outcome_rows(Path("."), content, name="x.avro")
    slow = outcome_rows(Path("."), content, name="x.avro", limits=Limits(vectorised=False))
    assert fast == slow
    assert [rejection[3] for rejection in fast[3]] == ["unreadable_file"]


def test_an_avro_file_cut_inside_its_last_sync_marker_loads_the_last_block() -> None:
    content = _avro_of(BASIC, [{"user_id": f"u{n}", "time": 1714557600 + n} for n in range(10)])[:-5]
    for limits in (Limits(), Limits(vectorised=False)):
        _, _, rows, rejections, _ = outcome_rows(Path("."), content, name="x.avro", limits=limits)
        assert [row[1] for row in rows] == [f"u{n}" for n in range(10)]
        assert [(r[1], r[3]) for r in rejections] == [("record 10", "unreadable_file")]
        assert "after record 9" in rejections[0][4]


def test_a_provider_field_named_like_a_column_the_mapping_makes_goes_record_by_record() -> None:
    records = [{**record, "_record": "x", "_extra": {"a": None}} for record in clean_sendgrid(3)]
    fast, slow = both_paths("sg.json", json.dumps(records))
    assert fast == slow
    assert '"_record":"x"' in fast[2][0][ROW_COLUMNS.index("extra") + 1]


def _container_of(blocks: list[tuple[int, bytes]]) -> bytes:
    """An Avro file of BASIC records whose blocks say what is given, however wrong."""
    from etl.reading.avro import _container, _header

    schema = json.dumps({"type": "record", "name": "dataexport.S3.inner.users.messages.email.Open", "fields": BASIC})
    return _container(*_header(schema), blocks)


def _record_bytes(user: str, time: int) -> bytes:
    from etl.reading.avro import _bytes, _long

    return _bytes(user.encode()) + _long(time)


@pytest.mark.parametrize(
    "blocks",
    [
        [(0, _record_bytes("u0", 1714557600)), (1, _record_bytes("u1", 1714557601))],  # a count of 0, bytes
        [(1, _record_bytes("u0", 1714557600) + b"\x00"), (1, _record_bytes("u1", 1714557601))],  # bytes left
        [(2, _record_bytes("u0", 1714557600)), (1, _record_bytes("u1", 1714557601))],  # too few bytes
    ],
)
def test_avro_blocks_that_say_other_than_they_hold_read_as_the_record_reader_reads_them(
    blocks: list[tuple[int, bytes]],
) -> None:
    content = _container_of(blocks)
    expected: list[str] = []  # the records the record reader gives before it stops, if it stops
    with contextlib.suppress(Exception):
        expected.extend(record["user_id"] for record in fastavro.reader(io.BytesIO(content)))
    for limits in (Limits(), Limits(vectorised=False)):
        _, _, rows, _, _ = outcome_rows(Path("."), content, name="x.avro", limits=limits)
        assert [row[1] for row in rows] == expected


def test_a_store_error_while_reading_an_avro_file_is_raised_after_the_records_before_it() -> None:
    content = _avro_of(BASIC, [{"user_id": f"u{n}", "time": 1714557600 + n} for n in range(3000)])

    def chunks() -> Iterator[bytes]:
        yield content[: len(content) * 3 // 4]  # the first of two blocks whole
        raise OSError("the connection was reset")

    loaded = 0
    with pytest.raises(OSError, match="connection was reset"):
        for batch in read_batches("x.avro", chunks(), Limits(tuning=Tuning(judge_rows=500))):
            loaded += batch.count
    assert 0 < loaded < 3000


def test_a_provider_block_with_very_long_keys_goes_record_by_record() -> None:
    records = clean_ses(2)
    records[0]["custom"] = {f"k{n:04}" + "x" * 300: None for n in range(200)}
    records[1]["custom"] = {f"k{n:04}" + "x" * 300: "v" for n in range(200)}
    content = "".join(json.dumps(r) + "\n" for r in records)
    fast, slow = both_paths("ses.ndjson", content)
    assert fast == slow


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_avro_files_with_a_byte_changed_read_alike_on_both_paths(codec: str) -> None:
    """Damage anywhere (header, counts, sizes, records, sync markers) gives the rows and rejections of
    the record reader. (Unions are left out: polars reads an out-of-range branch where fastavro stops.)"""
    out = io.BytesIO()
    schema = {"type": "record", "name": "dataexport.S3.inner.users.messages.email.Open", "fields": BASIC}
    records = [{"user_id": f"u{n}", "time": 1714557600 + n} for n in range(50)]
    fastavro.writer(out, fastavro.parse_schema(schema), records, sync_interval=200, codec=codec)
    clean = out.getvalue()
    tuning = Tuning(judge_rows=10)
    for at in range(0, len(clean), 3):
        for value in (0x00, 0x7F):
            content = clean[:at] + bytes([value]) + clean[at + 1 :]
            fast = outcome_rows(Path("."), content, name="x.avro", limits=Limits(tuning=tuning))
            slow = outcome_rows(Path("."), content, name="x.avro", limits=Limits(vectorised=False, tuning=tuning))
            assert fast == slow, (at, value)


def _feed_records(shape: str, count: int) -> list[str]:
    if shape == "ses":
        return [json.dumps(record) for record in clean_ses(count)]
    return [
        json.dumps({"id": f"u{n}", "event": "Message Sent", "timestamp": "2024-05-01T10:00:00Z"}) for n in range(count)
    ]


@pytest.mark.parametrize(
    ("name", "shape"), [("feed.ndjson", "feed"), ("ses.ndjson", "ses"), ("feed.json", "feed"), ("ses.json", "ses")]
)
@pytest.mark.parametrize("vectorised", [True, False])
@pytest.mark.parametrize("tuning", [Tuning(), Tuning(judge_rows=7, batch_rows=5, provider_block_bytes=4000)])
def test_a_store_error_while_reading_is_raised_after_every_record_before_it(
    name: str, shape: str, vectorised: bool, tuning: Tuning
) -> None:
    """Blocks read ahead, gathered, or joined for judging are handed on before the error, on both paths."""
    records = _feed_records(shape, 600)
    whole = 400  # records complete before the error; the next one is cut in the middle
    if name.endswith(".ndjson"):
        before = "".join(record + "\n" for record in records[:whole]) + records[whole][:40]
    else:
        before = "[" + ",".join(records[:whole]) + "," + records[whole][:40]
    data = before.encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 997):
            yield data[start : start + 997]
        raise OSError("the connection was reset")

    loaded = 0
    with pytest.raises(OSError, match="connection was reset"):
        for batch in read_batches(name, chunks(), Limits(vectorised=vectorised, tuning=tuning)):
            loaded += batch.count
    assert loaded == whole


def test_an_empty_object_on_the_way_to_a_used_field_stays_in_extra() -> None:
    """`mail.tags` is where the campaign id would be: empty, it is kept as `{}` on both paths."""
    record = {"eventType": "Send", "mail": {"messageId": "", "destination": ["a@example.com"], "tags": {}}, "send": {}}
    fast, slow = both_paths("ses.ndjson", json.dumps(record) + "\n")
    assert fast == slow
    [row] = fast[2]
    assert '"tags":{}' in row[10]


def test_a_store_error_mid_file_loads_the_records_before_it_and_quarantines_the_file_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run records for it: every complete record before the error loaded, then one rejection."""
    from etl import storage
    from tests.helpers import ingest_text

    content = "".join(record + "\n" for record in _feed_records("ses", 300))
    real = storage.iter_bytes

    def reset_after_two_thirds(store: Any, key: str, **options: Any) -> Iterator[bytes]:
        data = b"".join(real(store, key, **options))
        yield data[: len(data) * 2 // 3]
        raise OSError("the connection was reset")

    monkeypatch.setattr(storage, "iter_bytes", reset_after_two_thirds)
    outcome = ingest_text("ses.ndjson", content, tmp_path)
    complete = content.encode()[: len(content.encode()) * 2 // 3].count(b"\n")
    assert outcome.events.height == complete
    [rejection] = outcome.quarantine.rows(named=True)
    assert rejection["reason"] == "unreadable_file" and "connection was reset" in rejection["detail"]
    assert outcome.read == complete + 1
