"""Campaign funnels from messages (SPEC §5): pure transforms to the daily and lifetime funnel tables.

Every count is a number of messages (or of events, for `views` and `clicks`), so the counts of parts
of a campaign's messages add up; distinct users add up only over parts that split the users, which is
how the large counts are made (`funnel_in_shares`).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import polars_hash

from contracts import LifetimeFunnel

FUNNEL_COLUMNS = list(LifetimeFunnel.to_schema().columns)
#: What counting a funnel reads of a message.
_UTC = pl.Datetime("us", "UTC")
_FIRST_TIMES = ("sent_at", "delivered_at", "clicked_at", "unsubscribed_at", "soft_bounced_at", "hard_bounced_at")
_FLAGS = ("delivered", "opened", "opened_human", "clicked_human", "bounced", "hard_bounced_final")
FUNNEL_INPUT: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "user_id": pl.String(),
    **{column: _UTC for column in (*_FIRST_TIMES, "marked_as_spam_at")},
    "views": pl.Int64(),
    "clicks": pl.Int64(),
    **{flag: pl.Boolean() for flag in _FLAGS},
}
_DELIVERED_MESSAGES = "_delivered_messages"  # messages with the `delivered` flag (not only an event)


def _message_counts() -> dict[str, pl.Expr]:
    """Each count of a funnel row: which messages it counts."""

    def has(column: str) -> pl.Expr:
        return pl.col(column).is_not_null()

    return {
        "sent": has("sent_at"),
        "delivered": has("delivered_at"),
        "viewed": pl.col("opened"),
        "viewed_human": pl.col("opened_human"),
        "clicked": has("clicked_at"),
        "clicked_human": pl.col("clicked_human"),
        "unsubscribed": has("unsubscribed_at"),
        "soft_bounced": has("soft_bounced_at"),
        "hard_bounced": has("hard_bounced_at"),
        "marked_as_spam": has("marked_as_spam_at"),
        "bounced": pl.col("bounced"),
        "hard_bounced_final": pl.col("hard_bounced_final"),
    }


#: The counts whose distinct users are counted too (`unique_<name>`).
_UNIQUE_OF = (
    "sent",
    "delivered",
    "viewed",
    "clicked",
    "unsubscribed",
    "soft_bounced",
    "hard_bounced",
    "marked_as_spam",
)


def funnel_counts(messages: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Message counts, event totals and distinct users over `keys`, before rates."""
    counts = _message_counts()
    user = pl.col("user_id")
    return messages.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("messages"),
        *(condition.sum().cast(pl.Int64).alias(name) for name, condition in counts.items()),
        pl.col("delivered").sum().cast(pl.Int64).alias(_DELIVERED_MESSAGES),
        pl.col("views").sum().cast(pl.Int64),
        pl.col("clicks").sum().cast(pl.Int64),
        user.n_unique().cast(pl.Int64).alias("unique_users"),
        *(user.filter(counts[name]).n_unique().cast(pl.Int64).alias(f"unique_{name}") for name in _UNIQUE_OF),
    )


def lifetime_funnel(messages: pl.LazyFrame) -> pl.LazyFrame:
    """One row per campaign over all its messages; distinct users are exact over its whole life."""
    return _finish(funnel_counts(messages, ["campaign_id"]), ["campaign_id"])


def daily_funnel(messages: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (send_date, campaign_id)."""
    return _finish(funnel_counts(messages, ["send_date", "campaign_id"]), ["send_date", "campaign_id"])


def funnel_in_shares(messages: pl.LazyFrame, keys: list[str], shares: int) -> pl.DataFrame:
    """The funnel over `keys`, one share of the users at a time (split by a hash of user_id).

    A user is in one share only, so distinct users add up across shares: the same result, with the
    memory of one share's user sets. Each share is a filtered pass over `messages`.
    """
    if shares <= 1:
        return _finish(funnel_counts(messages, keys), keys).collect(engine="streaming")
    return funnel_of_user_shares([messages.filter(user_share(shares) == n) for n in range(shares)], keys)


def funnel_of_user_shares(parts: Iterable[pl.LazyFrame], keys: list[str]) -> pl.DataFrame:
    """The funnel over `keys` of messages given as parts that split the users (no user in two
    parts), counted one part at a time."""
    return funnel_from_counts([funnel_counts(part, keys).collect(engine="streaming") for part in parts], keys)


def funnel_from_counts(counts: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """The funnel from the `funnel_counts` of parts that split the users: their sums, and the rates."""
    totals = pl.concat(counts).lazy().group_by(keys).agg(pl.all().sum())
    return _finish(totals, keys).collect()


def user_share(shares: int) -> pl.Expr:
    """Which of `shares` shares a user belongs to: XXH64 of user_id (seed 0), a published algorithm,
    the same in every process, node and version (units of work elsewhere must agree on it; polars'
    own `hash` is guaranteed within one polars version only). A null id would be in no share: the
    contract makes user_id non-null."""
    return polars_hash.col("user_id").nchash.xxhash64() % shares


def _finish(counts: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    return (
        counts.with_columns(_rates())
        .select(*keys, *[name for name in FUNNEL_COLUMNS if name not in keys])
        .sort(keys, nulls_last=True)
    )


def _rates() -> list[pl.Expr]:
    messages, viewed, bounced = pl.col("messages"), pl.col("viewed"), pl.col("bounced")
    estimated = pl.col("delivered") == 0
    base = pl.when(estimated).then(messages - bounced).otherwise(pl.col(_DELIVERED_MESSAGES)).cast(pl.Int64)
    return [
        estimated.alias("delivered_estimated"),
        base.alias("delivered_base"),
        pl.when(~estimated).then(ratio(base, messages)).alias("delivery_rate"),
        ratio(bounced, messages).alias("bounce_rate"),
        ratio(pl.col("hard_bounced_final"), messages).alias("hard_bounce_rate"),
        ratio(viewed, base).alias("open_rate"),
        ratio(pl.col("viewed_human"), base).alias("human_open_rate"),
        ratio(pl.col("clicked"), base).alias("click_rate"),
        ratio(pl.col("clicked"), viewed).alias("click_to_open_rate"),
        ratio(pl.col("unsubscribed"), base).alias("unsubscribe_rate"),
        ratio(pl.col("marked_as_spam"), base).alias("spam_rate"),
    ]


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator as float64, null (never NaN or inf) when the denominator is 0 or null."""
    return pl.when(denominator > 0).then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
