"""Generate other providers' exports from the same user journeys as `feedgen`: SendGrid Event Webhook
arrays, SES Firehose NDJSON, Mailgun and Postmark webhook bodies and Segment track calls (NDJSON),
Braze Currents Avro files (with Braze's published schemas), and a small mixed-provider sample in the
providers' real shapes.

    python bench/providers_feedgen.py --events 200000 --shape sendgrid --out bench/out/sendgrid.json
    python bench/providers_feedgen.py --events 200000 --shape ses --out bench/out/ses.ndjson
    python bench/providers_feedgen.py --sample data/landing     # a week of four providers, small

The records look like the published samples (`../shared/providers/`): the same keys, nesting and
value types, so that reading them costs what reading real exports costs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.feedgen import journeys

SHAPES = ("sendgrid", "ses")
_SENDGRID_EVENTS = {
    "Message Sent": "processed",
    "Message Delivered": "delivered",
    "Message Viewed": "open",
    "Message Clicked": "click",
    "Message Unsubscribed": "unsubscribe",
    "Message marked_as_spam": "spamreport",
    "Message soft_bounced": "bounce",
    "Message hard_bounced": "bounce",
}
_SES_EVENTS = {
    "Message Sent": "Send",
    "Message Delivered": "Delivery",
    "Message Viewed": "Open",
    "Message Clicked": "Click",
    "Message Unsubscribed": "Subscription",
    "Message marked_as_spam": "Complaint",
    "Message soft_bounced": "Bounce",
    "Message hard_bounced": "Bounce",
}
_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def _address(user: str) -> str:
    return f"{user.lower()}@example.com"


def sendgrid_events(
    n_events: int, seed: int = 7, ignored: float = 0.03, campaign_offset: int = 1001
) -> Iterator[dict[str, Any]]:
    """SendGrid Event Webhook objects, with a share of `deferred` events (ignored by the mapping)."""
    rng = random.Random(seed)
    for index, record in enumerate(journeys(n_events, seed=seed, campaign_offset=campaign_offset)):
        kind = _SENDGRID_EVENTS[record["event"]]
        message = f"{record['messageId']}.filterdrecv-p3mdw1-56c97568b5-2wv9x-18-5F5FC76C-9.0"
        event: dict[str, Any] = {
            "email": _address(record["id"]),
            "timestamp": _epoch(record["timestamp"]),
            "smtp-id": f"<{record['messageId']}@ismtpd0039p1iad1.sendgrid.net>",
            "event": kind,
            "category": record["type"],
            "sg_event_id": f"ZHJvcC0xMDk5NDkxOS1{index:012d}",
            "sg_message_id": message,
            "campaign_id": record["campaignId"],  # a custom arg
        }
        if kind == "delivered":
            event.update(response="250 OK", tls=1, ip="167.89.17.173")
        if kind in ("open", "click"):
            event.update(useragent=_AGENT, ip="255.255.255.255")
        if kind == "open":
            event["sg_machine_open"] = rng.random() < 0.4
        if kind == "click":
            event["url"] = record["url"]
        if kind == "bounce":
            soft = record["event"] == "Message soft_bounced"
            event.update(type="blocked" if soft else "bounce", status="5.0.0", reason="500 unknown recipient")
        yield event
        if rng.random() < ignored:
            yield {**event, "event": "deferred", "response": "400 try again later", "attempt": "1"}


def ses_events(
    n_events: int, seed: int = 7, ignored: float = 0.03, campaign_offset: int = 1001
) -> Iterator[dict[str, Any]]:
    """SES event-publishing records (one recipient each), with a share of `DeliveryDelay` (ignored)."""
    rng = random.Random(seed)
    for record in journeys(n_events, seed=seed, campaign_offset=campaign_offset):
        kind = _SES_EVENTS[record["event"]]
        address = _address(record["id"])
        message = f"0100018{record['messageId']}-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
        at = record["timestamp"].replace("Z", ".123Z")
        sent = record["timestamp"].replace("Z", ".012Z")
        out: dict[str, Any] = {"eventType": kind, "mail": _ses_mail(address, message, sent, record["campaignId"])}
        if kind == "Delivery":
            out["delivery"] = {
                "timestamp": at,
                "processingTimeMillis": 546,
                "recipients": [address],
                "smtpResponse": "250 ok:  Message 64111812 accepted",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
            }
        elif kind == "Send":
            out["send"] = {}
        elif kind in ("Open", "Click"):
            out[kind.lower()] = {"ipAddress": "192.0.2.1", "timestamp": at, "userAgent": _AGENT}
            if kind == "Click":
                out["click"].update(link=record["url"], linkTags={"samplekey0": ["samplevalue0"]})
        elif kind == "Bounce":
            soft = record["event"] == "Message soft_bounced"
            out["bounce"] = {
                "bounceType": "Transient" if soft else "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {"emailAddress": address, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550"}
                ],
                "timestamp": at,
                "feedbackId": f"0100015{record['messageId']}-61b59c11-9236-11e6-8f96-7be8aexample-000000",
                "reportingMTA": "dsn; mta.example.com",
            }
        elif kind == "Complaint":
            out["complaint"] = {
                "complainedRecipients": [{"emailAddress": address}],
                "timestamp": at,
                "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
                "complaintFeedbackType": "abuse",
            }
        elif kind == "Subscription":
            out["subscription"] = {
                "contactList": "Newsletter",
                "timestamp": at,
                "source": "UnsubscribeHeader",
                "newTopicPreferences": {"unsubscribeAll": True},
                "oldTopicPreferences": {"unsubscribeAll": False},
            }
        yield out
        if rng.random() < ignored:
            delay = {"delayType": "TransientCommunicationFailure", "expirationTime": at, "timestamp": at}
            yield {"eventType": "DeliveryDelay", "mail": out["mail"], "deliveryDelay": delay}


def _ses_mail(address: str, message: str, sent: str, campaign: str) -> dict[str, Any]:
    return {
        "timestamp": sent,
        "source": "Sender Name <sender@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
        "sendingAccountId": "123456789012",
        "messageId": message,
        "destination": [address],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Sender Name <sender@example.com>"},
            {"name": "To", "value": address},
            {"name": "Subject", "value": "Message sent from Amazon SES"},
            {"name": "Content-Type", "value": 'multipart/alternative; boundary="----=_Part_7307378_1629847660"'},
        ],
        "commonHeaders": {
            "from": ["Sender Name <sender@example.com>"],
            "to": [address],
            "messageId": message,
            "subject": "Message sent from Amazon SES",
        },
        "tags": {"ses:configuration-set": ["ConfigSet"], "ses:from-domain": ["example.com"], "campaign_id": [campaign]},
    }


def write_json_array(path: Path, items: Iterator[dict[str, Any]]) -> Path:
    """As SendGrid posts them: one JSON array (here an element per line, compact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for index, item in enumerate(items):
            out.write((",\n" if index else "") + json.dumps(item, separators=(",", ":")))
        out.write("]\n")
    return path


def write_ndjson(path: Path, items: Iterator[dict[str, Any]]) -> Path:
    """As Firehose delivers them: one compact record per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, separators=(",", ":")) + "\n")
    return path


def write_provider_sample(landing: Path) -> None:
    """A small landing zone of six providers in their real shapes (run by `make run` with the rest)."""
    write_json_array(landing / "2024-03-02/sendgrid-webhook.json", sendgrid_events(600, seed=21, campaign_offset=6001))
    write_ndjson(landing / "2024-03-03/ses-firehose.ndjson", ses_events(600, seed=22, campaign_offset=7001))
    write_ndjson(landing / "2024-03-04/mailgun-webhooks.ndjson", mailgun_events(300, seed=23))
    write_ndjson(landing / "2024-03-05/postmark-webhooks.ndjson", _postmark_events(300, seed=24))
    write_ndjson(landing / "2024-03-06/segment-track.ndjson", segment_events(300, seed=25))
    write_braze_avro(landing / "2024-03-07/braze-currents", None, 300, seed=26)


def mailgun_events(n_events: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Mailgun webhook bodies, `{"event-data": {...}}`."""
    return ({"event-data": item} for item in _mailgun_events(n_events, seed))


def postmark_events(n_events: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Postmark webhook bodies (Postmark posts nothing for a message sent)."""
    return _postmark_events(n_events, seed)


_SEGMENT_EVENTS = {
    "Message Delivered": "Email Delivered",
    "Message Viewed": "Email Opened",
    "Message Clicked": "Email Link Clicked",
    "Message hard_bounced": "Email Bounced",
    "Message marked_as_spam": "Email Marked as Spam",
    "Message Unsubscribed": "Unsubscribed",
}


def segment_events(n_events: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Segment Email-spec track calls, as its S3 destination writes them (no track call for a send)."""
    for record in journeys(n_events, seed=seed, campaign_offset=8001):
        name = _SEGMENT_EVENTS.get(record["event"])
        if name is None:
            continue
        properties = {"email_id": record["messageId"], "email_subject": "Sale", "campaign_id": record["campaignId"]}
        if name == "Email Link Clicked":
            properties["link_url"] = record["url"]
        yield {
            "type": "track",
            "userId": record["id"],
            "event": name,
            "timestamp": record["timestamp"],
            "context": {"ip": "67.207.109.102", "user_agent": _AGENT, "traits": {"email": _address(record["id"])}},
            "properties": properties,
        }


_BRAZE_TYPES = {
    "Message Sent": "Send",
    "Message Delivered": "Delivery",
    "Message Viewed": "Open",
    "Message Clicked": "Click",
    "Message Unsubscribed": "Unsubscribe",
    "Message marked_as_spam": "MarkAsSpam",
    "Message soft_bounced": "SoftBounce",
    "Message hard_bounced": "Bounce",
}


def write_braze_avro(folder: Path, schemas: Path | None, n_events: int, seed: int = 7) -> list[Path]:
    """Braze Currents' email events as Avro container files, one per event type as Currents writes
    them, each with Braze's published schema (`schemas`: the folder of `users.messages.email.*.avsc`),
    or, without it, a schema of the fields written here, named and typed as Currents' are."""
    import fastavro

    rng = random.Random(seed)
    records: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _BRAZE_TYPES.values()}
    for index, record in enumerate(journeys(n_events, seed=seed, campaign_offset=9001)):
        kind = _BRAZE_TYPES[record["event"]]
        event: dict[str, Any] = {
            "id": f"e{index:012d}",
            "user_id": f"5e9f{index % 100_000:08x}",
            "external_user_id": record["id"],
            "email_address": _address(record["id"]),
            "time": _epoch(record["timestamp"]),
            "campaign_id": record["campaignId"],
            "campaign_name": "Spring sale",
            "send_id": record["messageId"],
            "dispatch_id": f"d{record['messageId']}",
            "message_variation_id": "v1",
            "timezone": "Europe/Berlin",
            "ip_pool": "pool-1",
            "esp": "SendGrid",
            "from_domain": "example.com",
        }
        if kind == "Click":
            event.update(url=record["url"], user_agent=_AGENT, is_suspected_bot_click=rng.random() < 0.05)
        if kind == "Open":
            event.update(user_agent=_AGENT, machine_open="true" if rng.random() < 0.4 else None)
        records[kind].append(event)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, rows in records.items():
        if not rows:  # (Currents writes no file for an event type without events)
            continue
        published = schemas / f"users.messages.email.{kind}.avsc" if schemas else None
        schema = fastavro.parse_schema(json.loads(published.read_text()) if published else _currents_schema(kind))
        names = {field["name"] for field in schema["fields"]}
        path = folder / f"users.messages.email.{kind}.avro"
        kept = ({key: value for key, value in row.items() if key in names} for row in rows)
        with path.open("wb") as out:
            marker = hashlib.sha256(f"{seed}/{kind}".encode()).digest()[:16]  # the same bytes every time
            fastavro.writer(out, schema, kept, codec="deflate", sync_marker=marker)
        written.append(path)
    return written


def _mailgun_events(n_events: int, seed: int) -> Iterator[dict[str, Any]]:
    names = {
        "Message Sent": "accepted",
        "Message Delivered": "delivered",
        "Message Viewed": "opened",
        "Message Clicked": "clicked",
        "Message Unsubscribed": "unsubscribed",
        "Message marked_as_spam": "complained",
        "Message soft_bounced": "failed",
        "Message hard_bounced": "failed",
    }
    for record in journeys(n_events, seed=seed, campaign_offset=4001):
        event: dict[str, Any] = {
            "event": names[record["event"]],
            "timestamp": _epoch(record["timestamp"]) + 0.25,
            "recipient": _address(record["id"]),
            "tags": ["newsletter"],
            "user-variables": {"campaign_id": record["campaignId"]},
            "message": {"headers": {"message-id": f"{record['messageId']}@mg.example.com"}},
        }
        if record["event"].endswith("bounced"):
            event["severity"] = "temporary" if "soft" in record["event"] else "permanent"
        if record["event"] == "Message Clicked":
            event["url"] = record["url"]
        yield event


def _postmark_events(n_events: int, seed: int) -> Iterator[dict[str, Any]]:
    kinds = {
        "Message Delivered": ("Delivery", "DeliveredAt"),
        "Message Viewed": ("Open", "ReceivedAt"),
        "Message Clicked": ("Click", "ReceivedAt"),
        "Message marked_as_spam": ("SpamComplaint", "BouncedAt"),
        "Message soft_bounced": ("Bounce", "BouncedAt"),
        "Message hard_bounced": ("Bounce", "BouncedAt"),
        "Message Unsubscribed": ("SubscriptionChange", "ChangedAt"),
    }
    for record in journeys(n_events, seed=seed, campaign_offset=5001):
        if record["event"] not in kinds:
            continue  # Postmark sends no webhook for a message sent
        kind, stamp = kinds[record["event"]]
        event: dict[str, Any] = {
            "RecordType": kind,
            "MessageStream": "broadcast",
            "MessageID": f"883953f4-6105-42a2-a16a-{record['messageId']}",
            "Recipient": _address(record["id"]),
            "Tag": "newsletter",
            stamp: record["timestamp"],
            "Metadata": {"campaign_id": record["campaignId"]},
        }
        if kind == "Bounce":
            event["Type"] = "SoftBounce" if "soft" in record["event"] else "HardBounce"
        if kind == "Click":
            event["OriginalLink"] = record["url"]
        if kind == "SubscriptionChange":
            event.update(SuppressSending=True, SuppressionReason="ManualSuppression")
        yield event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, help="write the mixed-provider sample into this landing folder")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--shape", choices=SHAPES, default="sendgrid")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.sample:
        write_provider_sample(args.sample)
    elif args.out and args.shape == "sendgrid":
        write_json_array(args.out, sendgrid_events(args.events, seed=args.seed))
    elif args.out:
        write_ndjson(args.out, ses_events(args.events, seed=args.seed))
    else:
        parser.error("give --sample DIR or --out FILE")


if __name__ == "__main__":
    main()


def _currents_schema(kind: str) -> dict[str, Any]:
    """A Currents email event's schema, with the fields `write_braze_avro` fills."""
    text = ["null", "string"]
    fields: list[dict[str, Any]] = [
        {"name": "id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "external_user_id", "type": text, "default": None},
        {"name": "time", "type": "int"},
        {"name": "timezone", "type": text, "default": None},
        {"name": "campaign_id", "type": text, "default": None},
        {"name": "campaign_name", "type": text, "default": None},
        {"name": "message_variation_id", "type": text, "default": None},
        {"name": "email_address", "type": "string"},
        {"name": "send_id", "type": text, "default": None},
        {"name": "dispatch_id", "type": text, "default": None},
        {"name": "ip_pool", "type": text, "default": None},
        {"name": "esp", "type": text, "default": None},
        {"name": "from_domain", "type": text, "default": None},
    ]
    if kind in ("Open", "Click"):
        fields.append({"name": "user_agent", "type": text, "default": None})
    if kind == "Open":
        fields.append({"name": "machine_open", "type": text, "default": None})
    if kind == "Click":
        fields.append({"name": "url", "type": text, "default": None})
        fields.append({"name": "is_suspected_bot_click", "type": ["null", "boolean"], "default": None})
    return {"type": "record", "name": kind, "namespace": "dataexport.S3.inner.users.messages.email", "fields": fields}
