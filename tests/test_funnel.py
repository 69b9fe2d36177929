"""Funnels per message (SPEC §5), against hand counts that exercise every clause: a click without a
view, a soft bounce then delivery, a hard bounce after delivery, a provider without Delivered, events
without message id, a late Sent that moves a message to an earlier send date, messages without
campaign, machine opens and bot clicks."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from contracts import DailyFunnel, LifetimeFunnel, Message
from etl.funnel import daily_funnel, funnel_in_shares, lifetime_funnel, ratio, user_share
from etl.messages import MESSAGE_INPUT, messages_of
from tests.helpers import assert_accounted, record, run_at, table, write

GOLDEN_LANDING = Path(__file__).parent / "fixtures" / "golden_landing"
S, D, V, C = "Message Sent", "Message Delivered", "Message Viewed", "Message Clicked"
U, SOFT, HARD, SPAM = "Message Unsubscribed", "Message soft_bounced", "Message hard_bounced", "Message marked_as_spam"

# (campaign, user, message id, event, "MM-DDTHH:MM" in 2024, machine_open, suspected_bot)
GOLDEN_EVENTS: list[tuple[Any, ...]] = [
    ("C1", "u1", "m1", S, "05-01T09:00", None, None),
    ("C1", "u1", "m1", D, "05-01T09:01", None, None),
    ("C1", "u1", "m1", V, "05-02T10:00", True, None),  # a machine open ...
    ("C1", "u1", "m1", V, "05-03T10:00", False, None),  # ... and a person's
    ("C1", "u1", "m1", C, "05-03T10:05", None, None),
    ("C1", "u2", "m2", S, "05-01T09:00", None, None),
    ("C1", "u2", "m2", C, "05-02T08:00", None, True),  # a click without a view, by a bot
    ("C1", "u3", "m3", S, "05-01T09:00", None, None),
    ("C1", "u3", "m3", SOFT, "05-01T09:30", None, None),  # a soft bounce, then delivery
    ("C1", "u3", "m3", D, "05-01T11:00", None, None),
    ("C1", "u4", "m4", S, "05-01T09:00", None, None),
    ("C1", "u4", "m4", D, "05-01T09:02", None, None),
    ("C1", "u4", "m4", HARD, "05-02T09:00", None, None),  # a hard bounce after delivery
    ("C1", "u5", "m5", S, "05-01T09:00", None, None),
    ("C1", "u5", "m5", HARD, "05-01T09:03", None, None),
    ("C1", "u1", "m6", S, "05-02T09:00", None, None),  # u1's second message
    ("C1", "u1", "m6", U, "05-02T12:00", None, None),
    ("C1", "u7", None, S, "05-01T09:00", None, None),  # no message id: one message ...
    ("C1", "u7", None, V, "05-02T09:00", True, None),
    ("C1", "u7", None, S, "05-03T09:00", None, None),  # ... sent on its first Sent
    ("C1", "u8", "m8", D, "05-03T09:00", None, None),  # no Sent yet: sent on its first event ...
    ("C1", "u8", "m8", V, "05-03T10:00", None, None),
    ("C2", "u9", "m9", S, "05-01T09:00", None, None),  # a provider without Delivered
    ("C2", "u9", "m9", V, "05-01T12:00", None, None),
    ("C2", "u10", "m10", S, "05-01T09:00", None, None),
    ("C2", "u10", "m10", SOFT, "05-01T09:05", None, None),
    ("C2", "u11", "m11", S, "05-01T09:00", None, None),
    ("C2", "u9", "m12", S, "05-02T09:00", None, None),
    ("C2", "u9", "m12", SPAM, "05-02T15:00", None, None),
    (None, "u12", "m13", S, "05-02T09:00", None, None),  # no campaign
    (None, "u12", "m13", D, "05-02T09:01", None, None),
    (None, "u12", "m13", V, "05-02T10:00", None, None),
]
LATE_SENT = ("C1", "u8", "m8", S, "04-30T09:00", None, None)  # ... until a late Sent moves it earlier

COUNTS = [name for name, column in LifetimeFunnel.to_schema().columns.items() if column.dtype.type == pl.Int64]
RATES = [name for name in LifetimeFunnel.to_schema().columns if name.endswith("_rate")]


def expected(campaign: str | None, rates: str, estimated: bool, **counts: int) -> dict[str, Any]:
    """A hand-counted funnel row: counts not given are 0; `rates` in RATES order, as fractions."""
    row: dict[str, Any] = {"campaign_id": campaign, **dict.fromkeys(COUNTS, 0), **counts}
    row["delivered_estimated"] = estimated
    values = rates.split()
    assert len(values) == len(RATES)
    row |= {
        name: None if value == "null" else float(Fraction(value)) for name, value in zip(RATES, values, strict=True)
    }
    return row


# Rates: delivery bounce hard_bounce open human_open click click_to_open unsubscribe spam
LIFETIME = [
    expected(
        "C1", "7/8 1/8 1/8 4/7 2/7 2/7 2/4 1/7 0/7", False,
        messages=8, sent=8, delivered=4, viewed=4, viewed_human=2, clicked=2, clicked_human=1, unsubscribed=1,
        soft_bounced=1, hard_bounced=2, bounced=1, hard_bounced_final=1, views=4, clicks=2,
        unique_users=7, unique_sent=7, unique_delivered=4, unique_viewed=4, unique_clicked=2,
        unique_unsubscribed=1, unique_soft_bounced=1, unique_hard_bounced=2, delivered_base=7,
    ),
    expected(
        "C2", "null 1/4 0/4 1/3 1/3 0/3 0/1 0/3 1/3", True,
        messages=4, sent=4, viewed=1, viewed_human=1, soft_bounced=1, marked_as_spam=1, bounced=1, views=1,
        unique_users=3, unique_sent=3, unique_viewed=1, unique_soft_bounced=1, unique_marked_as_spam=1,
        delivered_base=3,
    ),
    expected(
        None, "1/1 0/1 0/1 1/1 1/1 0/1 0/1 0/1 0/1", False,
        messages=1, sent=1, delivered=1, viewed=1, viewed_human=1, views=1,
        unique_users=1, unique_sent=1, unique_delivered=1, unique_viewed=1, delivered_base=1,
    ),
]  # fmt: skip
DAILY = {
    (date(2024, 4, 30), "C1"): expected(
        "C1", "1/1 0/1 0/1 1/1 1/1 0/1 0/1 0/1 0/1", False,
        messages=1, sent=1, delivered=1, viewed=1, viewed_human=1, views=1,
        unique_users=1, unique_sent=1, unique_delivered=1, unique_viewed=1, delivered_base=1,
    ),
    (date(2024, 5, 1), "C1"): expected(
        "C1", "5/6 1/6 1/6 3/5 1/5 2/5 2/3 0/5 0/5", False,
        messages=6, sent=6, delivered=3, viewed=3, viewed_human=1, clicked=2, clicked_human=1, soft_bounced=1,
        hard_bounced=2, bounced=1, hard_bounced_final=1, views=3, clicks=2, unique_users=6, unique_sent=6,
        unique_delivered=3, unique_viewed=3, unique_clicked=2, unique_soft_bounced=1, unique_hard_bounced=2,
        delivered_base=5,
    ),
    (date(2024, 5, 2), "C1"): expected(
        "C1", "null 0/1 0/1 0/1 0/1 0/1 null 1/1 0/1", True,
        messages=1, sent=1, unsubscribed=1, unique_users=1, unique_sent=1, unique_unsubscribed=1, delivered_base=1,
    ),
    (date(2024, 5, 1), "C2"): expected(
        "C2", "null 1/3 0/3 1/2 1/2 0/2 0/1 0/2 0/2", True,
        messages=3, sent=3, viewed=1, viewed_human=1, soft_bounced=1, bounced=1, views=1,
        unique_users=3, unique_sent=3, unique_viewed=1, unique_soft_bounced=1, delivered_base=2,
    ),
    (date(2024, 5, 2), "C2"): expected(
        "C2", "null 0/1 0/1 0/1 0/1 0/1 null 0/1 1/1", True,
        messages=1, sent=1, marked_as_spam=1, unique_users=1, unique_sent=1, unique_marked_as_spam=1,
        delivered_base=1,
    ),
    (date(2024, 5, 2), None): LIFETIME[2],
}  # fmt: skip


def golden_events(rows: list[tuple[Any, ...]], flags: bool = True) -> pl.DataFrame:
    """The events as the messages transform reads them; without `flags`, as the platform's shapes
    give them (machine_open and suspected_bot null)."""
    frame = pl.DataFrame(
        [
            (c, u, m, e, datetime.fromisoformat(f"2024-{t}:00+00:00"), mo if flags else None, sb if flags else None)
            for c, u, m, e, t, mo, sb in rows
        ],
        schema=[name for name in MESSAGE_INPUT if name != "event_date"],
        orient="row",
    )
    return frame.with_columns(event_date=pl.col("event_ts").dt.date())


def assert_rows(actual: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(actual) == len(want)
    for got, row in zip(actual, want, strict=True):
        assert set(row) <= set(got)
        for column, value in row.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12), (row["campaign_id"], column)
            else:
                assert got[column] == value, (row["campaign_id"], column)


@pytest.fixture(scope="module")
def golden_messages() -> pl.DataFrame:
    return messages_of(golden_events([*GOLDEN_EVENTS, LATE_SENT]).lazy()).collect()


def test_messages_follow_every_clause(golden_messages: pl.DataFrame) -> None:
    by_id = {row["message_id"] or row["user_id"]: row for row in golden_messages.iter_rows(named=True)}
    assert len(by_id) == 13
    m1, m2, m3, m4, m5 = (by_id[f"m{n}"] for n in range(1, 6))
    assert (m1["views"], m1["clicks"], m1["opened_human"], m1["clicked_human"]) == (2, 1, True, True)
    assert (m2["opened"], m2["delivered"], m2["opened_human"], m2["clicked_human"]) == (True, True, False, False)
    assert (m3["delivered"], m3["bounced"]) == (True, False)  # delivered after a soft bounce
    assert (m4["delivered"], m4["bounced"], m4["hard_bounced_final"]) == (True, False, False)
    assert (m5["delivered"], m5["bounced"], m5["hard_bounced_final"]) == (False, True, True)
    u7 = by_id["u7"]  # no message id
    assert (u7["send_date"], u7["opened"], u7["opened_human"]) == (date(2024, 5, 1), True, False)
    assert by_id["m8"]["send_date"] == date(2024, 4, 30)
    assert by_id["m8"]["sent_at"] == datetime(2024, 4, 30, 9, tzinfo=UTC)
    assert by_id["m8"]["delivered_at"] == datetime(2024, 5, 3, 9, tzinfo=UTC)
    Message.validate(golden_messages)


def test_lifetime_funnel_matches_hand_count(golden_messages: pl.DataFrame) -> None:
    actual = lifetime_funnel(golden_messages.lazy()).collect()
    LifetimeFunnel.validate(actual)
    assert_rows(actual.rows(named=True), LIFETIME)


def test_daily_funnel_matches_hand_count_and_adds_up(golden_messages: pl.DataFrame) -> None:
    actual = daily_funnel(golden_messages.lazy()).collect()
    DailyFunnel.validate(actual)
    got = {(row["send_date"], row["campaign_id"]): row for row in actual.iter_rows(named=True)}
    assert list(got) == sorted(DAILY, key=lambda k: (k[0], k[1] is None, k[1] or ""))
    for key, row in DAILY.items():
        assert_rows([got[key]], [row])
    counts = [name for name in COUNTS if not name.startswith("unique_")]
    summed = actual.group_by("campaign_id").agg(pl.col(counts).sum()).sort("campaign_id", nulls_last=True)
    lifetime = lifetime_funnel(golden_messages.lazy()).collect()
    assert summed.equals(lifetime.select("campaign_id", *counts))  # daily counts add up to lifetime


def test_every_rate_lies_between_0_and_1() -> None:
    rng = random.Random(11)
    names = [S, D, V, C, U, SOFT, HARD, SPAM]
    rows = [
        (rng.choice(["A", "B", None]), f"u{rng.randrange(60)}", rng.choice(["x", "y", None]), rng.choice(names),
         f"05-0{rng.randrange(1, 8)}T0{rng.randrange(10)}:00", rng.choice([True, False, None]),
         rng.choice([True, False, None]))
        for _ in range(2000)
    ]  # fmt: skip
    messages = messages_of(golden_events(rows).lazy())
    for funnel in (lifetime_funnel(messages).collect(), daily_funnel(messages).collect()):
        rates = funnel.select(RATES).unpivot()["value"].drop_nulls()
        assert rates.is_between(0.0, 1.0).all()


def test_rates_are_null_never_nan_or_inf() -> None:
    frame = pl.DataFrame({"n": [0, 1, 0, 3], "d": [0, 0, None, 4]})
    assert frame.select(ratio(pl.col("n"), pl.col("d"))).to_series().to_list() == [None, None, None, 0.75]


def test_funnels_in_shares_equal_the_whole(golden_messages: pl.DataFrame) -> None:
    rng = random.Random(5)
    rows = [
        (rng.choice(["A", "B", None]), f"u{rng.randrange(400)}", rng.choice(["x", None]), rng.choice([S, D, V, C]),
         f"05-0{rng.randrange(1, 3)}T10:00", None, None)
        for _ in range(3000)
    ]  # fmt: skip
    messages = messages_of(golden_events(rows).lazy()).collect()
    lifetime = lifetime_funnel(messages.lazy()).collect()
    daily = daily_funnel(messages.lazy()).collect()
    assert lifetime["unique_users"].sum() < daily["unique_users"].sum()  # users repeat across days
    for shares in (2, 7):
        assert funnel_in_shares(messages.lazy(), ["campaign_id"], shares).equals(lifetime)
        assert funnel_in_shares(messages.lazy(), ["send_date", "campaign_id"], shares).equals(daily)


def test_a_users_share_is_the_published_xxh64_of_the_id() -> None:
    """Units on other nodes (another polars, another machine) must put a user in the same share. The
    values are XXH64's reference results for "" and "a" (seed 0): 0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B."""
    users = pl.DataFrame({"user_id": ["", "a"]})
    for shares in (7, 1000):
        got = users.select(user_share(shares)).to_series().to_list()
        assert got == [0xEF46DB3751D8E999 % shares, 0xD24EC4F1A98C6E5B % shares]


def feed_records(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The golden events as the platform's feed records (which say nothing of machine opens)."""
    out = []
    for campaign, user, message, event, at, _, _ in rows:
        fields = {key: value for key, value in (("campaignId", campaign), ("messageId", message)) if value}
        out.append(record(user, event, f"2024-{at}:00Z", **fields))
    return out


def test_the_warehouse_counts_messages_and_moves_a_message_on_a_late_sent(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    write(landing, "day-1.json", feed_records(GOLDEN_EVENTS))
    run_at(landing, warehouse)
    before = table(warehouse, "campaign_daily_funnel")
    m8_before = before.filter(pl.col("send_date") == date(2024, 5, 3))
    assert m8_before.select("campaign_id", "messages", "sent", "delivered", "viewed").row(0) == ("C1", 1, 0, 1, 1)

    write(landing, "late.json", feed_records([LATE_SENT]))
    result = run_at(landing, warehouse)
    assert result.document["send_dates_written"] == ["2024-04-30"]
    assert result.document["send_dates_deleted"] == ["2024-05-03"]
    assert not (warehouse / "messages" / "send_date=2024-05-03").exists()

    all_events = golden_events([*GOLDEN_EVENTS, LATE_SENT], flags=False)
    want_messages = messages_of(all_events.lazy()).collect()
    got_messages = table(warehouse, "messages")
    Message.validate(got_messages)
    assert got_messages.sort("campaign_id", "user_id", "message_id", nulls_last=True).equals(
        want_messages.select(got_messages.columns).sort("campaign_id", "user_id", "message_id", nulls_last=True)
    )
    daily = table(warehouse, "campaign_daily_funnel").sort("send_date", "campaign_id", nulls_last=True)
    assert daily.equals(daily_funnel(want_messages.lazy()).collect().select(daily.columns))
    lifetime = table(warehouse, "campaign_funnel")
    assert lifetime.equals(lifetime_funnel(want_messages.lazy()).collect())
    # Without machine flags, human opens and clicks are all opens and clicks.
    assert lifetime["viewed_human"].to_list() == lifetime["viewed"].to_list() == [4, 1, 1]


@pytest.fixture(scope="module")
def golden_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("golden")
    landing = root / "landing"
    shutil.copytree(GOLDEN_LANDING, landing)
    result = run_at(landing, root / "warehouse")
    return root / "warehouse", result.document


def test_golden_accounting(golden_warehouse: tuple[Path, dict[str, object]]) -> None:
    _, manifest = golden_warehouse
    assert_accounted(manifest)  # type: ignore[arg-type]
    by_name = {f["name"]: f for f in manifest["files"]}  # type: ignore[index]
    assert {k: by_name["campaign-a.json"][k] for k in ("read", "loaded", "quarantined", "duplicates")} == {
        "read": 21,
        "loaded": 19,
        "quarantined": 1,
        "duplicates": 1,
    }
    assert {k: by_name["campaign-b-api.ndjson"][k] for k in ("read", "loaded", "quarantined", "duplicates")} == {
        "read": 10,
        "loaded": 8,
        "quarantined": 1,
        "duplicates": 1,
    }
