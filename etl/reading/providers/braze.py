"""Braze Currents: Avro container files (read by `avro`), their Avro-JSON form, and custom-HTTP events
(`{"events": [...]}` or one at a time). Avro records carry no event type: it is the schema's name, or,
for Avro-JSON, the file's (`event_type=users.messages.email.Open/…`, `users.messages.email.Open.json`)."""

from __future__ import annotations

import re
from typing import Any

from etl.reading.providers.base import Field, Rule, Table, begin, rejected
from etl.reading.types import Expanded, ReadContext, Unit
from etl.reading.values import json_type

CHANNELS = {"email": "Email", "sms": "SMS", "pushnotification": "Push"}
_THREE = tuple(CHANNELS)


def _each(kind: str, channels: tuple[str, ...] = _THREE) -> tuple[str, ...]:
    return tuple(f"users.messages.{channel}.{kind}" for channel in channels)


TABLE = Table(
    provider="braze",
    title="Braze",
    recognised_by=(
        'Braze Currents: Avro container files, Avro-JSON, or custom-HTTP `{"events": [...]}` whose `event_type` '
        "starts with `users.` (only `users.messages.` events are mapped)"
    ),
    event_field="event_type",
    user_id=Field(("external_user_id", "user_id")),
    event_ts=Field(("time",), doc="`time` (epoch s)"),
    campaign_id=Field(("campaign_id", "canvas_id")),
    message_id=Field(("send_id", "dispatch_id")),
    url=Field(("url",)),
    rules=(
        Rule(_each("Send"), "Sent", label="email/sms/push Send"),
        Rule(_each("Delivery"), "Delivered", label="Delivery"),
        Rule(_each("Open", ("email", "pushnotification")), "Viewed", label="email Open and push Open"),
        Rule(
            ("users.messages.email.Click", "users.messages.sms.ShortLinkClick"),
            "Clicked",
            label="email Click and sms ShortLinkClick",
        ),
        Rule(_each("Bounce"), "hard_bounced", label="Bounce"),
        Rule(_each("SoftBounce"), "soft_bounced", label="SoftBounce"),
        Rule(_each("MarkAsSpam"), "marked_as_spam", label="MarkAsSpam"),
        Rule(_each("Unsubscribe"), "Unsubscribed", label="Unsubscribe"),
    ),
    otherwise="every other event type",
    channel="the channel in its event type (`Email`, `SMS`, `Push`)",
    machine_open='`machine_open` "true" (on Viewed)',
    suspected_bot="`is_suspected_bot_click` (on Clicked)",
)
#: Custom-HTTP events nest the user's fields under `user` and the rest under `properties`.
USER_FIELDS = frozenset({"user_id", "external_user_id", "device_id", "timezone"})
TOP_FIELDS = frozenset({"event_type", "id", "time"})
#: Braze fills `machine_open` with "true" for a machine open; any other text it may add says more of the same.
MACHINE_OPEN: dict[Any, bool | None] = {"true": True, "false": False, True: True, False: False, "": None}
SUSPECTED_BOT: dict[Any, bool | None] = {True: True, False: False, "true": True, "false": False}
#: Avro-JSON wraps a value of a union type in an object naming its type.
AVRO_TYPES = frozenset({"string", "boolean", "int", "long", "float", "double", "bytes", "array", "map"})
_EVENT_TYPE = re.compile(r"users(?:\.[A-Za-z_]+)+")
_SUFFIXES = (".gz", ".json", ".ndjson", ".jsonl", ".avro")


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    if _is_braze_type(record.get("event_type")):
        return True
    events = record.get("events")
    if isinstance(events, list) and any(isinstance(e, dict) and _is_braze_type(e.get("event_type")) for e in events):
        return True
    return (
        "time" in record and ("user_id" in record or "external_user_id" in record) and bool(event_type_in(context.name))
    )


def event_type_in(name: str) -> str:
    """The Braze event type a file's path names (`event_type=users.messages.email.Open/…`), or ""."""
    found = ""
    for part in name.split("/"):
        part = part.removeprefix("event_type=")
        while part.lower().endswith(_SUFFIXES):
            part = part[: part.rfind(".")]
        if _EVENT_TYPE.fullmatch(part):
            found = part
    return found


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    events = record.get("events")
    if "event_type" not in record and isinstance(events, list):  # a custom-HTTP batch
        out = Expanded()
        for index, event in enumerate(events):
            position = f"{unit.position} event {index}"
            if isinstance(event, dict):
                one = _http_event(event, position, unit.raw)
            else:
                one = rejected(
                    position,
                    unit.raw,
                    "not_an_object",
                    f"Braze `events[{index}]` must be an object, found {json_type(event)}",
                )
            out.rows += one.rows
            out.rejections += one.rejections
            out.ignored += one.ignored
        return out
    if "event_type" in record:
        return _http_event(record, unit.position, unit.raw)
    return expand_currents(unwrap(record), event_type_in(context.name), unit.position, unit.raw)


def unwrap(record: dict[str, Any]) -> dict[str, Any]:
    """An Avro-JSON record as Avro readers give it: `{"string": "x"}` is "x"."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in AVRO_TYPES:
            value = next(iter(value.values()))
        out[key] = value
    return out


def expand_currents(record: dict[str, Any], event_type: str, position: str, raw: str) -> Expanded:
    """A flat Currents record (Avro, or Avro-JSON unwrapped) of the given event type."""
    return _mapped({"event_type": event_type, **record}, position, raw, lambda field: field)


def _http_event(event: dict[str, Any], position: str, raw: str) -> Expanded:
    return _mapped(event, position, raw, _http_path)


def _http_path(field: str) -> str:
    if field in TOP_FIELDS:
        return field
    return f"user.{field}" if field in USER_FIELDS else f"properties.{field}"


def _mapped(record: dict[str, Any], position: str, raw: str, path: Any) -> Expanded:
    picker = begin(TABLE, record, position, raw)
    if isinstance(picker, Expanded):
        return picker

    def paths(field: Field) -> tuple[str, ...]:
        return tuple(path(name) for name in field.paths)

    user = picker.user(paths(TABLE.user_id))
    text, number = picker.timestamp(paths(TABLE.event_ts), epoch=True)
    channel = CHANNELS[record["event_type"].split(".")[2]]
    viewed, clicked = picker.event == "Message Viewed", picker.event == "Message Clicked"
    return picker.row(
        user_id=user,
        timestamp_text=text,
        timestamp_number=number,
        channel=channel,
        url=picker.text(paths(TABLE.url)),
        campaign_id=picker.text(paths(TABLE.campaign_id)),
        message_id=picker.text(paths(TABLE.message_id)),
        machine_open=picker.flag(path("machine_open"), MACHINE_OPEN, otherwise=True) if viewed else None,
        suspected_bot=picker.flag(path("is_suspected_bot_click"), SUSPECTED_BOT) if clicked else None,
    )


def _is_braze_type(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("users.")
