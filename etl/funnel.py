"""Campaign funnel metrics: pure transforms from events to the daily and lifetime funnel tables."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from contracts import FUNNEL_NAMES, LifetimeFunnel

FUNNEL_COLUMNS = list(LifetimeFunnel.to_schema().columns)


def lifetime_funnel(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per campaign over all dates; distinct users are exact over the campaign's whole life."""
    return _funnel(events, ["campaign_id"])


def lifetime_funnel_in_shares(events: pl.LazyFrame, shares: int) -> pl.DataFrame:
    """`lifetime_funnel`, computed one share of the users at a time (see `funnel_in_shares`)."""
    return funnel_in_shares(events, ["campaign_id"], shares)


def daily_funnel_in_shares(events: pl.LazyFrame, shares: int) -> pl.DataFrame:
    """`daily_funnel`, computed one share of the users at a time (see `funnel_in_shares`)."""
    return funnel_in_shares(events, ["event_date", "campaign_id"], shares)


def funnel_in_shares(events: pl.LazyFrame, keys: list[str], shares: int) -> pl.DataFrame:
    """The funnel over `keys`, one share of the users at a time (split by a hash of user_id).

    A user is in one share only, so distinct users add up across shares: the same result, with the
    memory of one share's user sets. Each share is a filtered pass over `events`.
    """
    if shares <= 1:
        return _funnel(events, keys).collect(engine="streaming")
    return funnel_of_user_shares([events.filter(user_share(shares) == n) for n in range(shares)], keys)


def funnel_of_user_shares(parts: Iterable[pl.LazyFrame], keys: list[str]) -> pl.DataFrame:
    """The funnel over `keys` of events given as parts that split the users (no user in two parts),
    counted one part at a time."""
    return funnel_from_counts([funnel_counts(part, keys).collect(engine="streaming") for part in parts], keys)


def funnel_from_counts(counts: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """The funnel from the `funnel_counts` of parts that split the users: their sums, and the rates."""
    totals = pl.concat(counts).lazy().group_by(keys).agg(pl.all().sum())
    return _finish(totals, keys).collect()


def user_share(shares: int) -> pl.Expr:
    """Which of `shares` shares a user belongs to (a hash of user_id, stable within a process)."""
    return pl.col("user_id").hash(seed=0) % shares


def daily_funnel(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (event_date, campaign_id); rates use that day's counts."""
    return _funnel(events, ["event_date", "campaign_id"])


def _funnel(events: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    return _finish(funnel_counts(events, keys), keys)


def funnel_counts(events: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Event counts and distinct users per event type over `keys`, before rates."""
    counts = [(pl.col("event") == event).sum().cast(pl.Int64).alias(name) for event, name in FUNNEL_NAMES.items()]
    uniques = [
        pl.col("user_id").filter(pl.col("event") == event).n_unique().cast(pl.Int64).alias(f"unique_{name}")
        for event, name in FUNNEL_NAMES.items()
    ]
    return events.group_by(keys).agg(*counts, *uniques)


def _finish(counts: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    return (
        counts.with_columns(_rates())
        .select(*keys, *[name for name in FUNNEL_COLUMNS if name not in keys])
        .sort(keys, nulls_last=True)
    )


def _rates() -> list[pl.Expr]:
    sent, bounced = pl.col("sent"), pl.col("soft_bounced") + pl.col("hard_bounced")
    estimated = pl.col("delivered") == 0
    base = pl.when(estimated).then(pl.max_horizontal(sent - bounced, pl.lit(0))).otherwise(pl.col("delivered"))
    return [
        estimated.alias("delivered_estimated"),
        base.cast(pl.Int64).alias("delivered_base"),
        pl.when(~estimated).then(ratio(pl.col("delivered"), sent)).alias("delivery_rate"),
        ratio(bounced, sent).alias("bounce_rate"),
        ratio(pl.col("hard_bounced"), sent).alias("hard_bounce_rate"),
        ratio(pl.col("unique_viewed"), base).alias("open_rate"),
        ratio(pl.col("unique_clicked"), base).alias("click_rate"),
        ratio(pl.col("unique_clicked"), pl.col("unique_viewed")).alias("click_to_open_rate"),
        ratio(pl.col("unique_unsubscribed"), base).alias("unsubscribe_rate"),
        ratio(pl.col("unique_marked_as_spam"), base).alias("spam_rate"),
    ]


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator as float64, null (never NaN or inf) when the denominator is 0 or null."""
    return pl.when(denominator > 0).then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
