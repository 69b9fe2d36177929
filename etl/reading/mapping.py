"""Map one parsed record to event rows: detect its shape, expand API payloads, pick out fields.

`expand_unit` is the whole path of one record; `shape_of` is the one place where a record's format
is recognised. Other providers' formats (SendGrid, Mailgun, Postmark, SES, Segment, Braze) are
adapters in `etl.reading.providers`, tried first (or only the provider pinned for the file); what none
of them recognises is this feed's own: a flat feed record, or an API payload (an object with an
`events` list). A new provider plugs in as one module there (`TABLE`, `matches`, `expand`).

Type checks happen here because only here are JSON types still visible; the verdict on them is the
contract's (the `wrong_type` and `user_id_conflict` facts are judged by `EventCandidate`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from etl.reading.providers import provider_expander
from etl.reading.types import ACTIVATEPRO, ROW_COLUMNS, Expanded, ReadContext, Rejection, Row, Unit
from etl.reading.values import as_text as _as_text
from etl.reading.values import json_type as _json_type
from etl.reading.values import preview as _preview

#: JSON key -> column, for the optional text properties.
PROPERTY_COLUMNS: dict[str, str] = {
    "channel": "channel",
    "type": "message_type",
    "url": "url",
    "campaignId": "campaign_id",
    "messageId": "message_id",
}
USER_KEYS = ("id", "userId")
#: White space trimmed from user ids (ASCII, the same in Python and in polars).
TRIM = " \t\n\r\x0b\x0c"
_RESERVED = {"event", "timestamp", "properties", *USER_KEYS, *PROPERTY_COLUMNS}
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

#: Maps one JSON object of a known shape (the record, and the unit it came from) to what it gives.
Expander = Callable[[dict[str, Any], Unit], Expanded]


def expand_unit(unit: Unit, context: ReadContext | None = None) -> Expanded:
    """The event rows of one record, or why it has none. Every event counts once. `context`: the file's
    name, pinned provider and provider options."""
    if unit.error:
        return _rejected(unit.position, unit, *unit.error)
    if _ESCAPED_SURROGATE.search(unit.raw) and _LONE_SURROGATE.search(json.dumps(unit.value, ensure_ascii=False)):
        detail = "a \\u escape encodes a lone surrogate, which is not a character"
        return _rejected(unit.position, unit, "invalid_utf8", detail)
    record = unit.value
    if not isinstance(record, dict):
        return _rejected(unit.position, unit, "not_an_object", f"expected a JSON object, found {_json_type(record)}")
    return shape_of(record, context or ReadContext())(record, unit)


def shape_of(record: dict[str, Any], context: ReadContext | None = None) -> Expander:
    """Shape detection: how a JSON object is mapped to rows (see the module docstring for adding one)."""
    provider = provider_expander(record, context or ReadContext())
    if provider is not None:
        return provider
    if "events" in record:
        return _expand_payload
    return _expand_feed_record


def _expand_feed_record(record: dict[str, Any], unit: Unit) -> Expanded:
    """A flat feed record: one event, its fields at the top (or in `properties`)."""
    row = _fast_row(record, unit.position, unit.raw) or _row([("record", record)], unit.position, unit.raw)
    return Expanded(rows=[row])


def _expand_payload(record: dict[str, Any], unit: Unit) -> Expanded:
    """An API payload: the user at the top, one row per object of its `events` list."""
    events = record["events"]
    if not isinstance(events, list) or not events:
        what = "an empty list" if isinstance(events, list) else _json_type(events)
        detail = f"`events` must be a non-empty list of event objects, found {what}"
        return _rejected(unit.position, unit, "invalid_payload", detail)
    out = Expanded()
    payload = {key: value for key, value in record.items() if key != "events"}
    for index, event in enumerate(events):
        position = f"{unit.position} event {index}"
        if isinstance(event, dict):
            fast = _fast_payload_row(payload, event, position, unit.raw)
            out.rows.append(fast or _row([("payload", payload), ("event", event)], position, unit.raw))
        else:
            detail = f"events[{index}]: expected a JSON object, found {_json_type(event)}"
            out.rejections.append(Rejection(position, unit.raw, "not_an_object", detail))
    return out


def _rejected(position: str, unit: Unit, reason: str, detail: str) -> Expanded:
    return Expanded(rejections=[Rejection(position, unit.raw, reason, detail)])


_FLAT_KEYS = frozenset({*USER_KEYS, "event", "timestamp", *PROPERTY_COLUMNS})
_EVENT_KEYS = frozenset({"event", "timestamp", "properties"})
_PROPERTY_KEYS = frozenset(PROPERTY_COLUMNS)


def _fast_row(fields: dict[str, Any], position: str, raw: str) -> Row | None:
    """The common case without the general machinery: known keys only, one user key, every value a
    string. Gives exactly what `_row` gives for such a record; None for anything else."""
    if not fields.keys() <= _FLAT_KEYS or ("id" in fields and "userId" in fields):
        return None
    for value in fields.values():
        if type(value) is not str:
            return None
    get = fields.get
    user = get("id", get("userId", "")).strip(TRIM) or None
    # In ROW_COLUMNS order.
    return (user, get("event"), get("timestamp"), None, get("channel"), get("type"), get("url"),
            get("campaignId"), get("messageId"), None, None, None, position, raw, None, None, ACTIVATEPRO)  # fmt: skip


def _fast_payload_row(payload: dict[str, Any], event: dict[str, Any], position: str, raw: str) -> Row | None:
    """`_fast_row` for one event of an API payload whose levels share no key."""
    properties = event.get("properties", {})
    if not (event.keys() <= _EVENT_KEYS and payload.keys() <= set(USER_KEYS) and type(properties) is dict):
        return None
    if not properties.keys() <= _PROPERTY_KEYS:
        return None
    fields = {**payload, **{k: v for k, v in event.items() if k != "properties"}, **properties}
    return _fast_row(fields, position, raw)


def _row(levels: list[tuple[str, dict[str, Any]]], position: str, raw: str) -> Row:
    """One event row from nested levels (outermost first); `properties` objects are a level too."""
    levels = _with_properties(levels)
    found: dict[str, list[tuple[str, Any]]] = {}
    extra: dict[str, Any] = {}
    for level_name, level in levels:
        for key, value in level.items():
            if key in _RESERVED and not (key == "properties" and isinstance(level.get(key), dict)):
                found.setdefault(key, []).append((level_name, value))
            elif key != "properties":
                _keep_extra(extra, level_name, key, value)
    wrong: list[str] = []
    row: dict[str, Any] = {"source_position": position, "raw": raw, "source_format": ACTIVATEPRO}
    row["machine_open"] = row["suspected_bot"] = None  # the platform's shapes do not say
    row["user_id"], row["user_id_conflict"] = _user_id(found, wrong)
    row["event"] = _single(found, "event", wrong, extra, _as_name)
    stamp = _single(found, "timestamp", wrong, extra, _as_timestamp)
    row["timestamp_text"] = stamp if isinstance(stamp, str) else None
    row["timestamp_number"] = float(stamp) if isinstance(stamp, int | float) else None
    for key, column in PROPERTY_COLUMNS.items():
        row[column] = _single(found, key, wrong, extra, _as_text)
    row["extra"] = json.dumps(extra, ensure_ascii=False) if extra else None
    row["wrong_type"] = "; ".join(wrong) if wrong else None
    return tuple(row[name] for name in ROW_COLUMNS)


def _with_properties(levels: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, level in levels:
        out.append((name, level))
        if isinstance(level.get("properties"), dict):
            out.append(("properties", level["properties"]))
    return out


def _keep_extra(extra: dict[str, Any], level_name: str, key: str, value: Any) -> None:
    """Keep an unknown key; the same key at two levels keeps both, the outer one prefixed."""
    if key in extra and extra[key] != value:
        extra[f"{level_name}.{key}"] = value
    else:
        extra[key] = value


def _single(found, key, wrong, extra, convert):  # type: ignore[no-untyped-def]
    """The innermost occurrence of `key` wins; a different value further out is kept in `extra`."""
    occurrences = found.get(key, [])
    if not occurrences:
        return None
    _, value = occurrences[-1]
    for other_level, other in occurrences[:-1]:
        if other != value:
            extra[f"{other_level}.{key}"] = other
    converted, problem = convert(value)
    if problem:
        wrong.append(f"{key} {problem}")
    return converted


def _user_id(found: dict[str, list[tuple[str, Any]]], wrong: list[str]) -> tuple[str | None, str | None]:
    values: list[tuple[str, str]] = []
    for key in USER_KEYS:
        for _, value in found.get(key, []):
            text, problem = _as_text(value)
            if problem:
                wrong.append(f"{key} {problem}")
            elif text is not None and text.strip(TRIM):
                values.append((key, text.strip(TRIM)))
    distinct = dict.fromkeys(text for _, text in values)
    if len(distinct) > 1:
        shown = ", ".join(f"{key}={text!r}" for key, text in values)
        return values[-1][1], f"the user id is given with different values: {shown}"
    return (values[0][1] if values else None), None


def _as_name(value: Any) -> tuple[str | None, str]:
    if value is None or isinstance(value, str):
        return value, ""
    return None, f"must be a string, found {_json_type(value)} {_preview(value)}"


def _as_timestamp(value: Any) -> tuple[str | int | float | None, str]:
    if value is None or isinstance(value, str):
        return value, ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value, ""
    return None, f"must be a date-time string or an epoch number, found {_json_type(value)} {_preview(value)}"
