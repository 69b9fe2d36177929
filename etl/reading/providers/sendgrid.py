"""SendGrid Event Webhook: each posted JSON array holds event objects, flat, with custom args at the top."""

from __future__ import annotations

from typing import Any

from etl.reading.providers.base import Field, Picker, Rule, Table, begin
from etl.reading.types import Expanded, ReadContext, Unit
from etl.reading.values import json_type, preview

TABLE = Table(
    provider="sendgrid",
    title="SendGrid",
    recognised_by="SendGrid Event Webhook: JSON array of objects with `sg_event_id` or `sg_message_id`",
    event_field="event",
    user_id=Field(("email",)),
    event_ts=Field(("timestamp",), doc="`timestamp` (epoch s)"),
    campaign_id=Field(
        ("marketing_campaign_id", "singlesend_id", "campaign_id"),
        doc="`marketing_campaign_id`, else `singlesend_id`, else a top-level `campaign_id` custom arg",
    ),
    message_id=Field(("sg_message_id",)),
    url=Field(("url",)),
    rules=(
        Rule(("processed",), "Sent"),
        Rule(("delivered",), "Delivered"),
        Rule(("open",), "Viewed"),
        Rule(("click",), "Clicked"),
        Rule(("bounce",), "soft_bounced", when=(("type", ("blocked",)),), label='bounce with `type` "blocked"'),
        Rule(("bounce",), "hard_bounced", label="other bounce"),
        Rule(("spamreport",), "marked_as_spam"),
        Rule(("unsubscribe", "group_unsubscribe"), "Unsubscribed"),
        Rule(("deferred",), None),
        Rule(("dropped",), None),
        Rule(("group_resubscribe",), None),
    ),
    message_type=Field(("category",), doc="`category` (an array's items joined with `, `)"),
    machine_open="`sg_machine_open` (on Viewed)",
    options={
        "campaign_id": "the custom arg holding the campaign id, instead of `campaign_id`",
        "user_id": "the custom arg holding the user id, instead of `email`",
    },
)
MACHINE_OPEN: dict[Any, bool | None] = {True: True, False: False}


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    return "sg_event_id" in record or "sg_message_id" in record


def user_paths(options: dict[str, str]) -> tuple[str, ...]:
    return (options["user_id"],) if "user_id" in options else TABLE.user_id.paths


def campaign_paths(options: dict[str, str]) -> tuple[str, ...]:
    return (*TABLE.campaign_id.paths[:2], options.get("campaign_id", TABLE.campaign_id.paths[2]))


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    options = context.options_of(TABLE.provider)
    picker = begin(TABLE, record, unit.position, unit.raw)
    if isinstance(picker, Expanded):
        return picker
    user = picker.user(user_paths(options))
    text, number = picker.timestamp(TABLE.event_ts.paths, epoch=True)
    viewed = picker.event == "Message Viewed"
    return picker.row(
        user_id=user,
        timestamp_text=text,
        timestamp_number=number,
        channel="Email",
        message_type=_category(picker),
        url=picker.text(TABLE.url.paths),
        campaign_id=picker.text(campaign_paths(options)),
        message_id=picker.text(TABLE.message_id.paths),
        machine_open=picker.flag("sg_machine_open", MACHINE_OPEN) if viewed else None,
    )


def _category(picker: Picker) -> str | None:
    """`category` is a string, or an array of them (joined with `, `)."""
    path, value = picker.pick(TABLE.message_type.paths)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if value is None or isinstance(value, str):
        return value
    found = f"{json_type(value)} {preview(value)}"
    picker.wrong.append(f"SendGrid {picker.name(path)} must be a string or an array of strings, found {found}")
    return None
