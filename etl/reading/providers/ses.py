"""Amazon SES event publishing: records with `eventType` and `mail` (a Firehose NDJSON line each), or
SNS envelopes whose `Message` string holds one. One event per recipient."""

from __future__ import annotations

from typing import Any

from etl.reading.providers.base import TRIM, Field, Picker, Rule, Table, begin, extra_json, get, rejected
from etl.reading.split import parse_json
from etl.reading.types import Expanded, ReadContext, Unit
from etl.reading.values import json_type, preview

TABLE = Table(
    provider="ses",
    title="SES",
    recognised_by=(
        "Amazon SES event publishing: objects with `eventType` and `mail` (Firehose NDJSON), or SNS envelopes "
        "whose `Message` string holds one (SES notifications, with `notificationType`, are read alike)"
    ),
    event_field="eventType",
    user_id=Field(
        (
            "bounce.bouncedRecipients[].emailAddress",
            "complaint.complainedRecipients[].emailAddress",
            "delivery.recipients[]",
            "mail.destination[]",
        ),
        doc="one event per recipient: `bounce.bouncedRecipients[].emailAddress`, `complaint.complainedRecipients[]`, "
        "`delivery.recipients[]`, else `mail.destination[]`",
    ),
    event_ts=Field(("<type>.timestamp", "mail.timestamp"), doc="`<type>.timestamp`, else `mail.timestamp`"),
    campaign_id=Field(("mail.tags.campaign_id[0]",)),
    message_id=Field(("mail.messageId",)),
    url=Field(("click.link",)),
    rules=(
        Rule(("Send",), "Sent"),
        Rule(("Delivery",), "Delivered"),
        Rule(("Open",), "Viewed"),
        Rule(("Click",), "Clicked"),
        Rule(("Bounce",), "hard_bounced", when=(("bounce.bounceType", ("Permanent",)),), label="Bounce Permanent"),
        Rule(("Bounce",), "soft_bounced", when=(("bounce.bounceType", ("Transient",)),), label="Transient"),
        Rule(("Complaint",), "marked_as_spam"),
        Rule(
            ("Subscription",),
            "Unsubscribed",
            when=(("subscription.newTopicPreferences.unsubscribeAll", (True,)),),
            label="Subscription unsubscribing from all",
        ),
        Rule(("Reject",), None),
        Rule(("Rendering Failure",), None),
        Rule(("DeliveryDelay",), None),
        Rule(("Bounce",), None, label="Bounce Undetermined"),
    ),
    options={
        "campaign_id": "the message tag holding the campaign id, instead of `campaign_id`",
        "user_id": "the message tag holding the user id, instead of the recipients",
    },
)
#: The object of each event type, holding its time (and for some, its recipients).
TYPE_OBJECT = {
    "Send": "send",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Subscription": "subscription",
    "Reject": "reject",
    "Rendering Failure": "failure",
    "DeliveryDelay": "deliveryDelay",
}
#: Where an event type lists its recipients: (list path, field of each item or "" for plain strings).
RECIPIENTS = {
    "Bounce": ("bounce.bouncedRecipients", "emailAddress"),
    "Complaint": ("complaint.complainedRecipients", "emailAddress"),
    "Delivery": ("delivery.recipients", ""),
}
DESTINATION = ("mail.destination", "")


def matches(record: dict[str, Any], context: ReadContext) -> bool:
    return is_event(record) or is_envelope(record)


def is_event(record: dict[str, Any]) -> bool:
    return ("eventType" in record or "notificationType" in record) and "mail" in record


def is_envelope(record: dict[str, Any]) -> bool:
    return "Type" in record and "TopicArn" in record and isinstance(record.get("Message"), str)


def expand(record: dict[str, Any], unit: Unit, context: ReadContext) -> Expanded:
    options = context.options_of(TABLE.provider)
    if not is_envelope(record):
        return _event(record, unit, options)
    message, error = parse_json(record["Message"])
    if error:
        return rejected(
            unit.position, unit.raw, "invalid_json", f"the SNS envelope's `Message` is not JSON: {error[1]}"
        )
    if not isinstance(message, dict) or not is_event(message):
        what = "an SES event" if isinstance(message, dict) else json_type(message)
        detail = f"the SNS envelope's `Message` holds no SES event (`eventType` and `mail`), found {what}"
        return rejected(unit.position, unit.raw, "missing_event", detail)
    rest = {key: value for key, value in record.items() if key != "Message"}
    return _event(message, unit, options, ("sns", rest), prefix="Message.")


def _event(
    record: dict[str, Any],
    unit: Unit,
    options: dict[str, str],
    wrapper: tuple[str, dict[str, Any]] | None = None,
    prefix: str = "",
) -> Expanded:
    if "eventType" not in record and "notificationType" in record:  # SES notifications name it so
        record = {"eventType": record["notificationType"], **record}
        del record["notificationType"]
    picker = begin(TABLE, record, unit.position, unit.raw, prefix)
    if isinstance(picker, Expanded):
        return _per_recipient(picker, record) if picker.ignored else picker
    kind = record["eventType"]
    recipients, list_path, item_field = recipients_of(record, kind)
    campaign_paths = (f"mail.tags.{options.get('campaign_id', 'campaign_id')}[0]",)
    time_paths = (f"{TYPE_OBJECT[kind]}.timestamp", "mail.timestamp")
    out = Expanded()
    for index, recipient in enumerate(recipients or [None]):
        position = unit.position if len(recipients) <= 1 else f"{unit.position} event {index}"
        field = f"{list_path}[{index}]" + (f".{item_field}" if item_field else "") if recipients else list_path
        one = Picker(TABLE, record, position, unit.raw, prefix, event=picker.event, used=list(picker.used))
        if "user_id" in options:
            user = one.user((f"mail.tags.{options['user_id']}[0]",))
        else:
            user = _recipient(one, recipient, field)
            if not item_field:  # a list of addresses is used up; a list of objects says more
                one.used.append(list_path)
        text, number = one.timestamp(time_paths, epoch=False)
        columns = {
            "user_id": user,
            "timestamp_text": text,
            "timestamp_number": number,
            "channel": "Email",
            "url": one.text(TABLE.url.paths),
            "campaign_id": one.text(campaign_paths),
            "message_id": one.text(TABLE.message_id.paths),
        }
        got = one.row(**columns, extra=extra_json(record, one.used, wrapper))
        out.rows += got.rows
        out.rejections += got.rejections
    return out


def recipients_of(record: dict[str, Any], kind: str) -> tuple[list[Any], str, str]:
    """The recipients an event is for: its type's own list when it has one with items, else
    `mail.destination`; with the list's path and the field of each item that holds the address."""
    list_path, item_field = RECIPIENTS.get(kind, DESTINATION)
    listed = get(record, list_path)
    if not isinstance(listed, list) or not listed:
        list_path, item_field = DESTINATION
        listed = get(record, list_path)
    if not isinstance(listed, list):
        return [], list_path, item_field
    if item_field:
        return [item.get(item_field) if isinstance(item, dict) else item for item in listed], list_path, item_field
    return listed, list_path, item_field


def _recipient(picker: Picker, value: Any, path: str) -> str | None:
    """One recipient's address, as `Picker.user` takes a field."""
    if value is not None and not isinstance(value, str):
        picker.wrong.append(f"SES {picker.name(path)} must be a string, found {json_type(value)} {preview(value)}")
        return None
    user = value.strip(TRIM) if value else None
    if not user and picker.problem is None:
        detail = f"no user id: SES {picker.name(path)} is missing, null or empty"
        picker.problem = ("missing_user_id", detail)
    return user or None


def _per_recipient(ignored: Expanded, record: dict[str, Any]) -> Expanded:
    """An ignored SES record counts one ignored event per recipient, as a mapped one would."""
    recipients, _, _ = recipients_of(record, record.get("eventType", ""))
    return Expanded(ignored=ignored.ignored * max(len(recipients), 1))
