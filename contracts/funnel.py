"""The campaign funnel tables: daily (event_date, campaign_id) and lifetime (campaign_id)."""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
from pandera.engines.polars_engine import Date


def _count(what: str) -> Any:
    return pa.Field(ge=0, description=what)


def _rate(definition: str) -> Any:
    return pa.Field(nullable=True, ge=0.0, description=f"{definition}; null when the denominator is 0.")


class LifetimeFunnel(pa.DataFrameModel):
    """Funnel of one campaign over all its events; the `campaign_funnel` table."""

    campaign_id: str = pa.Field(
        nullable=True, unique=True, description="The campaign; one row with null for events without one."
    )
    sent: int = _count("Message Sent events.")
    delivered: int = _count("Message Delivered events.")
    viewed: int = _count("Message Viewed events.")
    clicked: int = _count("Message Clicked events.")
    unsubscribed: int = _count("Message Unsubscribed events.")
    soft_bounced: int = _count("Message soft_bounced events.")
    hard_bounced: int = _count("Message hard_bounced events.")
    marked_as_spam: int = _count("Message marked_as_spam events.")
    unique_sent: int = _count("Distinct users with Message Sent.")
    unique_delivered: int = _count("Distinct users with Message Delivered.")
    unique_viewed: int = _count("Distinct users with Message Viewed.")
    unique_clicked: int = _count("Distinct users with Message Clicked.")
    unique_unsubscribed: int = _count("Distinct users with Message Unsubscribed.")
    unique_soft_bounced: int = _count("Distinct users with Message soft_bounced.")
    unique_hard_bounced: int = _count("Distinct users with Message hard_bounced.")
    unique_marked_as_spam: int = _count("Distinct users with Message marked_as_spam.")
    delivered_estimated: bool = pa.Field(
        description="True when there are no Delivered events (some providers never send them): "
        "delivered_base is then estimated as sent minus bounces."
    )
    delivered_base: int = _count(
        "delivered when any Delivered events exist, else max(sent - soft_bounced - hard_bounced, 0)."
    )
    delivery_rate: float = _rate("delivered / sent; also null when delivered_estimated")
    bounce_rate: float = _rate("(soft_bounced + hard_bounced) / sent")
    hard_bounce_rate: float = _rate("hard_bounced / sent")
    open_rate: float = _rate("unique_viewed / delivered_base")
    click_rate: float = _rate("unique_clicked / delivered_base")
    click_to_open_rate: float = _rate("unique_clicked / unique_viewed")
    unsubscribe_rate: float = _rate("unique_unsubscribed / delivered_base")
    spam_rate: float = _rate("unique_marked_as_spam / delivered_base")

    class Config:
        strict = True
        coerce = False


class DailyFunnel(LifetimeFunnel):
    """Funnel of one campaign on one event date, from that day's counts; `campaign_daily_funnel`."""

    campaign_id: str = pa.Field(
        nullable=True, description="The campaign; one row a day with null for events without one."
    )
    event_date: Date = pa.Field(
        description="UTC event date; the Hive partition key (in the path, not in the files).",
        metadata={"partition": True},
    )

    class Config:
        strict = True
        coerce = False
        unique = ("event_date", "campaign_id")
