"""The campaign funnel tables: daily (event_date, campaign_id) and lifetime (campaign_id)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandera.polars as pa
from pandera.engines.polars_engine import Date


def _count(what: str, label: str | None = None) -> Any:
    """A count; `label`: its short heading where funnels are shown (`etl metrics`)."""
    return pa.Field(ge=0, description=what, metadata={"label": label} if label else None)


def _rate(definition: str, label: str | None = None) -> Any:
    """A rate: `definition` (before the first `;`) is what the report shows beside it."""
    return pa.Field(
        nullable=True,
        ge=0.0,
        description=f"{definition}; null when the denominator is 0.",
        metadata={"label": label} if label else None,
    )


class LifetimeFunnel(pa.DataFrameModel):
    """Funnel of one campaign over all its events; the `campaign_funnel` table."""

    campaign_id: str = pa.Field(
        nullable=True, unique=True, description="The campaign; one row with null for events without one."
    )
    sent: int = _count("Message Sent events.", "sent")
    delivered: int = _count("Message Delivered events.", "delivered")
    viewed: int = _count("Message Viewed events.")
    clicked: int = _count("Message Clicked events.")
    unsubscribed: int = _count("Message Unsubscribed events.")
    soft_bounced: int = _count("Message soft_bounced events.")
    hard_bounced: int = _count("Message hard_bounced events.")
    marked_as_spam: int = _count("Message marked_as_spam events.")
    unique_sent: int = _count("Distinct users with Message Sent.")
    unique_delivered: int = _count("Distinct users with Message Delivered.")
    unique_viewed: int = _count("Distinct users with Message Viewed.", "viewers")
    unique_clicked: int = _count("Distinct users with Message Clicked.", "clickers")
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
    delivery_rate: float = _rate("delivered / sent; also null when delivered_estimated", "delivery")
    bounce_rate: float = _rate("(soft_bounced + hard_bounced) / sent", "bounce")
    hard_bounce_rate: float = _rate("hard_bounced / sent")
    open_rate: float = _rate("unique_viewed / delivered_base", "open")
    click_rate: float = _rate("unique_clicked / delivered_base", "click")
    click_to_open_rate: float = _rate("unique_clicked / unique_viewed")
    unsubscribe_rate: float = _rate("unique_unsubscribed / delivered_base", "unsub")
    spam_rate: float = _rate("unique_marked_as_spam / delivered_base", "spam")

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
