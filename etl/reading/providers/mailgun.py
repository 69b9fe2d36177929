"""Mailgun: webhook bodies `{"event-data": {...}}`, Events API pages `{"items": [...]}`, or bare event-data."""

from __future__ import annotations

from typing import Any

from etl.reading.providers.base import Field, Picker, Rule, Table, begin, extra_json, get, rejected
from etl.reading.types import Expanded, ReadContext, Unit
from etl.reading.values import json_type, preview

TABLE = Table(
    provider="mailgun",
    title="Mailgun",
    recognised_by=(
        'Mailgun: `{"event-data": {...}}` webhook bodies, Events API pages `{"items": [...]}`, '
        "or bare event-data objects with `event` and `recipient` "
        "(or `log-level`: `rejected` events have no recipient)"
    ),
    event_field="event",
    user_id=Field(("recipient",)),
    event_ts=Field(("timestamp",), doc="`timestamp` (float epoch s)"),
    campaign_id=Field(
        ("user-variables.campaign_id", "campaigns[0].id"),
        doc="`user-variables.campaign_id`, else the first `campaigns[].id`",
    ),
    message_id=Field(("message.headers.message-id",)),
    url=Field(("url",)),
    rules=(
        Rule(("accepted",), "Sent"),
        Rule(("delivered",), "Delivered"),
        Rule(("opened",), "Viewed"),
        Rule(("clicked",), "Clicked"),
        Rule(
            ("failed",),
            "soft_bounced",
            when=(("severity", ("temporary",)),),
            label='failed with `severity` "temporary"',
        ),
        Rule(("failed",), "hard_bounced", when=(("severity", ("permanent",)),), label='failed "permanent"'),
        Rule(("unsubscribed",), "Unsubscribed"),
        Rule(("complained",), "marked_as_spam"),
        Rule(("rejected",), None),
        Rule(("stored",), None),
        Rule(("list_member_uploaded", "list_member_upload_error", "list_uploaded"), None, label="list events"),
    ),
    message_type=Field(("tags[0]",), doc="first of `tags`"),
    machine_open="`client-info.bot` non-empty (on Viewed)",
    suspected_bot="`client-info.bot` non-empty (on Clicked)",
    options={
        "campaign_id": "the user variable holding the campaign id, instead of `user-variables.campaign_id`",
        "user_id": "the user variable holding the user id, instead of `recipient`",
    },
)
BOT = "client-info.bot"


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    if isinstance(record.get("event-data"), dict) or isinstance(record.get("items"), list):
        return True
    return "event" in record and ("recipient" in record or "log-level" in record)


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    options = context.options_of(TABLE.provider)
    if "event-data" in record:  # a webhook body: its other fields (the signature) kept under `webhook`
        data = record["event-data"]
        if not isinstance(data, dict):
            detail = f"Mailgun `event-data` must be an object, found {json_type(data)} {preview(data)}"
            return rejected(unit.position, unit.raw, "not_an_object", detail)
        rest = {key: value for key, value in record.items() if key != "event-data"}
        return _event(data, unit.position, unit.raw, "event-data.", options, ("webhook", rest))
    if isinstance(record.get("items"), list):  # a page of the Events API: one event per item
        out = Expanded()
        for index, item in enumerate(record["items"]):
            position = f"{unit.position} event {index}"
            if isinstance(item, dict):
                one = _event(item, position, unit.raw, f"items[{index}].", options)
            else:
                detail = f"Mailgun `items[{index}]` must be an object, found {json_type(item)}"
                one = rejected(position, unit.raw, "not_an_object", detail)
            out.rows += one.rows
            out.rejections += one.rejections
            out.ignored += one.ignored
        return out
    return _event(record, unit.position, unit.raw, "", options)


def _event(
    data: dict[str, Any],
    position: str,
    raw: str,
    prefix: str,
    options: dict[str, str],
    wrapper: tuple[str, dict[str, Any]] | None = None,
) -> Expanded:
    picker = begin(TABLE, data, position, raw, prefix)
    if isinstance(picker, Expanded):
        return picker
    user_paths = (f"user-variables.{options['user_id']}",) if "user_id" in options else TABLE.user_id.paths
    campaign_paths = (f"user-variables.{options.get('campaign_id', 'campaign_id')}", TABLE.campaign_id.paths[1])
    user = picker.user(user_paths)
    text, number = picker.timestamp(TABLE.event_ts.paths, epoch=True)
    bot = _bot(picker) if picker.event in ("Message Viewed", "Message Clicked") else None
    columns: dict[str, Any] = {
        "user_id": user,
        "timestamp_text": text,
        "timestamp_number": number,
        "channel": "Email",
        "message_type": picker.text(TABLE.message_type.paths),
        "url": picker.text(TABLE.url.paths),
        "campaign_id": picker.text(campaign_paths),
        "message_id": picker.text(TABLE.message_id.paths),
        "machine_open": bot if picker.event == "Message Viewed" else None,
        "suspected_bot": bot if picker.event == "Message Clicked" else None,
    }
    return picker.row(**columns, extra=extra_json(data, picker.used, wrapper))


def _bot(picker: Picker) -> bool | None:
    """`client-info.bot` names the bot (`apple`, `gmail`, …); empty says it was none; absent says nothing."""
    value = get(picker.record, BOT)
    if value is None:
        return None
    picker.used.append(BOT)
    if isinstance(value, str):
        return bool(value.strip())
    picker.wrong.append(f"Mailgun {picker.name(BOT)} must be a string, found {json_type(value)} {preview(value)}")
    return None
