"""Segment's Email spec: `track` calls whose `event` names an email event."""

from __future__ import annotations

from typing import Any

from etl.reading.providers.base import Field, Rule, Table, begin
from etl.reading.types import Expanded, ReadContext, Unit

TABLE = Table(
    provider="segment",
    title="Segment",
    recognised_by='Segment Email spec: `type`/`action` "track" with an `event` named as below',
    event_field="event",
    user_id=Field(("userId", "user_id"), doc="`userId` (or `user_id`)"),
    event_ts=Field(("timestamp", "originalTimestamp"), doc="`timestamp`, else `originalTimestamp`, else missing"),
    campaign_id=Field(("properties.campaign_id",)),
    message_id=Field(("properties.email_id",)),
    url=Field(("properties.link_url",)),
    rules=(
        Rule(("Email Delivered",), "Delivered"),
        Rule(("Email Opened",), "Viewed"),
        Rule(("Email Link Clicked",), "Clicked"),
        Rule(("Email Bounced",), "hard_bounced"),
        Rule(("Email Marked as Spam",), "marked_as_spam"),
        Rule(("Unsubscribed",), "Unsubscribed"),
    ),
    otherwise="other track events",
)


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    return (record.get("type") == "track" or record.get("action") == "track") and "event" in record


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    picker = begin(TABLE, record, unit.position, unit.raw)
    if isinstance(picker, Expanded):
        return picker
    user = picker.user(TABLE.user_id.paths)
    text, number = picker.timestamp(TABLE.event_ts.paths, epoch=False)
    return picker.row(
        user_id=user,
        timestamp_text=text,
        timestamp_number=number,
        channel="Email",
        url=picker.text(TABLE.url.paths),
        campaign_id=picker.text(TABLE.campaign_id.paths),
        message_id=picker.text(TABLE.message_id.paths),
    )
