"""The fixed vocabulary of the contract: event names, funnel names and accepted timestamp forms."""

from __future__ import annotations

import re

#: The eight canonical event names, exactly as the platform document spells them.
EVENT_NAMES: tuple[str, ...] = (
    "Message Sent",
    "Message Delivered",
    "Message Viewed",
    "Message Clicked",
    "Message Unsubscribed",
    "Message soft_bounced",
    "Message hard_bounced",
    "Message marked_as_spam",
)

#: Short name of each event in the funnel tables (`sent`, `unique_sent`, ...).
FUNNEL_NAMES: dict[str, str] = {
    "Message Sent": "sent",
    "Message Delivered": "delivered",
    "Message Viewed": "viewed",
    "Message Clicked": "clicked",
    "Message Unsubscribed": "unsubscribed",
    "Message soft_bounced": "soft_bounced",
    "Message hard_bounced": "hard_bounced",
    "Message marked_as_spam": "marked_as_spam",
}

_SPACES = re.compile(r"\s+")


def event_key(name: str) -> str:
    """The matching key of an event name: trimmed, lower-cased, `_` as space, white space collapsed."""
    return _SPACES.sub(" ", name.replace("_", " ").strip().lower())


#: Matching key -> canonical name.
EVENT_BY_KEY: dict[str, str] = {event_key(name): name for name in EVENT_NAMES}

#: The timestamp forms the contract accepts, for documentation.
TIMESTAMP_FORMS: tuple[tuple[str, str], ...] = (
    ("2022-01-11T08:30:00Z", "ISO 8601 / RFC 3339 date-time, `T` or space between date and time"),
    ("2022-01-11 08:30:00.123456789+02:00", "optional fraction (truncated to microseconds)"),
    ("2022-01-11T08:30:00+0200, +02", "numeric offset with or without colon; converted to UTC"),
    ("2022-01-11T08:30", "seconds optional; no offset means UTC"),
    ("2022-01-11", "a date alone is 00:00 UTC"),
    ("1641889800", "JSON number: Unix epoch seconds (fraction allowed)"),
    ("1641889800000", "JSON number above 1e11: Unix epoch milliseconds"),
    ("missing, null or blank", "time the file was first ingested; `timestamp_defaulted = true`"),
)

#: How far after ingestion an event time may lie before it is a clock bug upstream.
MAX_FUTURE_HOURS = 24
