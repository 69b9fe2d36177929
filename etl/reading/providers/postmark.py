"""Postmark webhooks: one object per event, its kind in `RecordType`."""

from __future__ import annotations

from typing import Any

from etl.reading.providers.base import Field, Rule, Table, begin
from etl.reading.types import Expanded, ReadContext, Unit

TABLE = Table(
    provider="postmark",
    title="Postmark",
    recognised_by="Postmark webhooks: objects with `RecordType`",
    event_field="RecordType",
    user_id=Field(("Recipient", "Email")),
    event_ts=Field(
        ("DeliveredAt", "ReceivedAt", "BouncedAt", "ChangedAt"),
        doc="`DeliveredAt`, `ReceivedAt`, `BouncedAt` or `ChangedAt` by type",
    ),
    campaign_id=Field(("Metadata.campaign_id", "Tag")),
    message_id=Field(("MessageID",)),
    url=Field(("OriginalLink",)),
    rules=(
        Rule(("Delivery",), "Delivered"),
        Rule(("Open",), "Viewed"),
        Rule(("Click",), "Clicked"),
        Rule(("SpamComplaint",), "marked_as_spam"),
        Rule(
            ("Bounce",),
            "hard_bounced",
            when=(("Type", ("HardBounce", "BadEmailAddress")),),
            label="Bounce by `Type`: HardBounce, BadEmailAddress",
        ),
        Rule(
            ("Bounce",),
            "soft_bounced",
            when=(("Type", ("SoftBounce", "Transient", "DnsError")),),
            label="SoftBounce, Transient, DnsError",
        ),
        Rule(
            ("SubscriptionChange",),
            "Unsubscribed",
            when=(("SuppressSending", (True,)), ("SuppressionReason", ("ManualSuppression",))),
            label="SubscriptionChange with `SuppressSending` true and reason ManualSuppression",
        ),
        Rule(("Bounce",), None, label="other bounce types"),
        Rule(("SubscriptionChange",), None, label="other subscription changes"),
    ),
    message_type=Field(("MessageStream",)),
    options={
        "campaign_id": "the Metadata key holding the campaign id, instead of `campaign_id`",
        "user_id": "the Metadata key holding the user id, instead of `Recipient`",
    },
)
#: Which field holds each record type's time.
TIME_OF = {
    "Delivery": "DeliveredAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "SubscriptionChange": "ChangedAt",
}


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    return "RecordType" in record


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    options = context.options_of(TABLE.provider)
    picker = begin(TABLE, record, unit.position, unit.raw)
    if isinstance(picker, Expanded):
        return picker
    user_paths = (f"Metadata.{options['user_id']}",) if "user_id" in options else TABLE.user_id.paths
    campaign_paths = (f"Metadata.{options.get('campaign_id', 'campaign_id')}", "Tag")
    user = picker.user(user_paths)
    text, number = picker.timestamp((TIME_OF[record["RecordType"]],), epoch=False)
    return picker.row(
        user_id=user,
        timestamp_text=text,
        timestamp_number=number,
        channel="Email",
        message_type=picker.text(TABLE.message_type.paths),
        url=picker.text(TABLE.url.paths),
        campaign_id=picker.text(campaign_paths),
        message_id=picker.text(TABLE.message_id.paths),
    )
