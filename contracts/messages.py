"""The `messages` table: one row per message (campaign, user, message id), from all its events."""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
from pandera.engines.polars_engine import Date, DateTime

from contracts.events import UTC_MICROS
from contracts.vocabulary import FUNNEL_NAMES

#: The first-time column of each event type: `Message Sent` -> `sent_at`, and so on.
FIRST_AT: dict[str, str] = {event: f"{name}_at" for event, name in FUNNEL_NAMES.items()}


def _first(event: str) -> Any:
    return pa.Field(nullable=True, dtype_kwargs=UTC_MICROS, description=f"Time of the message's first {event} event.")


def _flag(definition: str) -> Any:
    return pa.Field(description=definition)


class Message(pa.DataFrameModel):
    """One send of a campaign to one user, with what happened to it; the `messages` table.

    Its key is (campaign_id, user_id, message_id), a null being a value of its own: the events of one
    campaign and user without a message id are one message.
    """

    campaign_id: str = pa.Field(nullable=True, description="The campaign; null for events without one.")
    user_id: str = pa.Field(str_length={"min_value": 1}, description="The user the message was sent to.")
    message_id: str = pa.Field(nullable=True, description="The message id; null for events without one.")
    sent_at: DateTime = _first("Message Sent")
    delivered_at: DateTime = _first("Message Delivered")
    viewed_at: DateTime = _first("Message Viewed")
    clicked_at: DateTime = _first("Message Clicked")
    unsubscribed_at: DateTime = _first("Message Unsubscribed")
    soft_bounced_at: DateTime = _first("Message soft_bounced")
    hard_bounced_at: DateTime = _first("Message hard_bounced")
    marked_as_spam_at: DateTime = _first("Message marked_as_spam")
    views: int = pa.Field(ge=0, description="Message Viewed events (every open, not only the first).")
    clicks: int = pa.Field(ge=0, description="Message Clicked events (every click, not only the first).")
    engaged: bool = _flag("Viewed, clicked, unsubscribed or marked as spam.")
    delivered: bool = _flag("A Delivered event, or engaged (engagement proves delivery).")
    opened: bool = _flag("Viewed or clicked (a click implies an open).")
    opened_human: bool = _flag("A Viewed whose machine_open is not true, or a Clicked whose suspected_bot is not true.")
    clicked_human: bool = _flag("A Clicked whose suspected_bot is not true.")
    bounced: bool = _flag("Soft or hard bounced, and not delivered.")
    hard_bounced_final: bool = _flag("Hard bounced, and not delivered.")
    send_date: Date = pa.Field(
        description="UTC date of the message's first Sent event; without one, of its first event. "
        "The Hive partition key (in the path, not in the files).",
        metadata={"partition": True},
    )

    class Config:
        strict = True
        coerce = False
        unique = ("campaign_id", "user_id", "message_id")
