"""The campaign funnel tables, counted per message: daily (send_date, campaign_id) and lifetime (campaign_id)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandera.polars as pa
from pandera.engines.polars_engine import Date


def _count(what: str, label: str | None = None) -> Any:
    """A count; `label`: its short heading where funnels are shown (`etl metrics`)."""
    return pa.Field(ge=0, description=what, metadata={"label": label} if label else None)


def _users(what: str) -> Any:
    return _count(f"Distinct users of the messages {what} (exact, never a sum of days).")


def _rate(definition: str, label: str | None = None) -> Any:
    """A rate: `definition` (before the first `;`) is what the report shows beside it."""
    return pa.Field(
        nullable=True,
        ge=0.0,
        le=1.0,
        description=f"{definition}; null when the denominator is 0.",
        metadata={"label": label} if label else None,
    )


class LifetimeFunnel(pa.DataFrameModel):
    """Funnel of one campaign's messages over all its send dates; the `campaign_funnel` table."""

    campaign_id: str = pa.Field(
        nullable=True, unique=True, description="The campaign; one row with null for messages without one."
    )
    messages: int = _count("Messages: distinct (campaign_id, user_id, message_id).", "messages")
    sent: int = _count("Messages with a Sent event.", "sent")
    delivered: int = _count("Messages with a Delivered event.", "delivered")
    viewed: int = _count("Messages opened: a Viewed or a Clicked event.", "opened")
    viewed_human: int = _count("Messages opened_human: not only machine opens (see the messages table).")
    clicked: int = _count("Messages with a Clicked event.", "clicked")
    clicked_human: int = _count("Messages with a Clicked event whose suspected_bot is not true.")
    unsubscribed: int = _count("Messages with an Unsubscribed event.")
    soft_bounced: int = _count("Messages with a soft_bounced event.")
    hard_bounced: int = _count("Messages with a hard_bounced event.")
    marked_as_spam: int = _count("Messages with a marked_as_spam event.")
    bounced: int = _count("Messages bounced: soft or hard bounced and not delivered.")
    hard_bounced_final: int = _count("Messages hard bounced and not delivered.")
    views: int = _count("Message Viewed events (total opens).")
    clicks: int = _count("Message Clicked events (total clicks).")
    unique_users: int = _users("of the row")
    unique_sent: int = _users("sent")
    unique_delivered: int = _users("with a Delivered event")
    unique_viewed: int = _users("opened")
    unique_clicked: int = _users("clicked")
    unique_unsubscribed: int = _users("unsubscribed")
    unique_soft_bounced: int = _users("soft bounced")
    unique_hard_bounced: int = _users("hard bounced")
    unique_marked_as_spam: int = _users("marked as spam")
    delivered_estimated: bool = pa.Field(
        description="True when no message of the row has a Delivered event (some providers never send "
        "one): delivered_base is then the messages not bounced."
    )
    delivered_base: int = _count(
        "Messages delivered (a Delivered event, or engagement); when delivered_estimated, messages not bounced."
    )
    delivery_rate: float = _rate("delivered_base / messages; also null when delivered_estimated", "delivery")
    bounce_rate: float = _rate("bounced / messages", "bounce")
    hard_bounce_rate: float = _rate("hard_bounced_final / messages")
    open_rate: float = _rate("viewed / delivered_base", "open")
    human_open_rate: float = _rate("viewed_human / delivered_base", "human open")
    click_rate: float = _rate("clicked / delivered_base", "click")
    click_to_open_rate: float = _rate("clicked / viewed")
    unsubscribe_rate: float = _rate("unsubscribed / delivered_base", "unsub")
    spam_rate: float = _rate("marked_as_spam / delivered_base", "spam")

    class Config:
        strict = True
        coerce = False


class DailyFunnel(LifetimeFunnel):
    """Funnel of one campaign's messages sent on one date; `campaign_daily_funnel`. A campaign's
    daily counts add up to its lifetime counts (its distinct users do not)."""

    campaign_id: str = pa.Field(
        nullable=True, description="The campaign; one row a date with null for messages without one."
    )
    send_date: Date = pa.Field(
        description="The messages' send date (UTC date of their first Sent event; without one, of their "
        "first event); the Hive partition key (in the path, not in the files).",
        metadata={"partition": True},
    )

    class Config:
        strict = True
        coerce = False
        unique = ("send_date", "campaign_id")


@cache
def column_labels(model: type[pa.DataFrameModel] = LifetimeFunnel) -> dict[str, str]:
    """The columns shown where funnels are shown, in table order, with their short headings."""
    columns = model.to_schema().columns.items()
    return {name: column.metadata["label"] for name, column in columns if (column.metadata or {}).get("label")}


@cache
def rate_definitions(model: type[pa.DataFrameModel] = LifetimeFunnel) -> dict[str, str]:
    """Each rate column with its definition (its description up to the first `;`)."""
    columns = model.to_schema().columns.items()
    return {name: (column.description or "").split(";")[0] for name, column in columns if name.endswith("_rate")}
