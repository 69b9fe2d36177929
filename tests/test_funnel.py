"""Funnel metrics: a hand-counted golden feed, and the rules for rates."""

from __future__ import annotations

import random
import shutil
from datetime import date
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest

from contracts import DailyFunnel, LifetimeFunnel
from etl.funnel import daily_funnel, daily_funnel_in_shares, lifetime_funnel, lifetime_funnel_in_shares, ratio
from tests.helpers import assert_accounted, run_at, table

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_LANDING = Path(__file__).parent / "fixtures" / "golden_landing"


def read_golden(name: str) -> list[dict[str, object]]:
    lines = [line for line in (GOLDEN / name).read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        row: dict[str, object] = {}
        for column, cell in zip(header, line.split(","), strict=True):
            if cell == "null":
                row[column] = None
            elif "/" in cell:
                row[column] = float(Fraction(cell))
            elif cell in ("true", "false"):
                row[column] = cell == "true"
            elif column in ("campaign_id", "event_date"):
                row[column] = cell
            else:
                row[column] = int(cell)
        rows.append(row)
    return rows


def as_rows(frame: pl.DataFrame) -> list[dict[str, object]]:
    frame = frame.with_columns(pl.col(pl.Date).cast(pl.String))
    return frame.rows(named=True)


def assert_rows_equal(actual: list[dict[str, object]], expected: list[dict[str, object]]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert list(got) == list(want), "columns differ from the golden file"
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12), (want["campaign_id"], column)
            else:
                assert got[column] == value, (want.get("event_date"), want["campaign_id"], column)


@pytest.fixture(scope="module")
def golden_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("golden")
    landing = root / "landing"
    shutil.copytree(GOLDEN_LANDING, landing)
    result = run_at(landing, root / "warehouse")
    return root / "warehouse", result.document


def test_lifetime_funnel_matches_hand_count(golden_warehouse: tuple[Path, dict[str, object]]) -> None:
    warehouse, _ = golden_warehouse
    actual = pl.read_parquet(warehouse / "campaign_funnel" / "part-0.parquet")
    LifetimeFunnel.validate(actual)
    assert_rows_equal(as_rows(actual), read_golden("campaign_funnel.csv"))


def test_daily_funnel_matches_hand_count(golden_warehouse: tuple[Path, dict[str, object]]) -> None:
    warehouse, _ = golden_warehouse
    actual = table(warehouse, "campaign_daily_funnel").sort("event_date", "campaign_id", nulls_last=True)
    actual = actual.select("event_date", *LifetimeFunnel.to_schema().columns)
    DailyFunnel.validate(actual)
    assert_rows_equal(as_rows(actual), read_golden("campaign_daily_funnel.csv"))


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


def test_rates_are_null_never_nan_or_inf() -> None:
    frame = pl.DataFrame({"n": [0, 1, 0, 3], "d": [0, 0, None, 4]})
    assert frame.select(ratio(pl.col("n"), pl.col("d"))).to_series().to_list() == [None, None, None, 0.75]


def test_campaign_without_any_events_of_a_kind() -> None:
    events = pl.DataFrame(
        {
            "campaign_id": ["X", "X"],
            "event": ["Message Viewed", "Message Clicked"],
            "user_id": ["a", "a"],
            "event_date": [date(2024, 1, 1)] * 2,
        }
    )
    [row] = lifetime_funnel(events.lazy()).collect().rows(named=True)
    assert row["sent"] == 0 and row["delivered_base"] == 0 and row["delivered_estimated"] is True
    rates = [v for k, v in row.items() if k.endswith("_rate") and k != "click_to_open_rate"]
    assert rates == [None] * len(rates)
    assert row["click_to_open_rate"] == 1.0
    daily = daily_funnel(events.lazy()).collect()
    DailyFunnel.validate(daily)


def test_lifetime_uniques_are_exact_not_sums_of_days() -> None:
    events = pl.DataFrame(
        {
            "campaign_id": ["X"] * 4,
            "event": ["Message Viewed"] * 4,
            "user_id": ["a", "b", "a", "b"],
            "event_date": [date(2024, 1, 1), date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 2)],
        }
    )
    assert lifetime_funnel(events.lazy()).collect()["unique_viewed"].to_list() == [2]
    assert daily_funnel(events.lazy()).collect()["unique_viewed"].sum() == 4


def test_funnels_in_shares_equal_the_whole() -> None:
    rng = random.Random(5)
    names = ["Message Sent", "Message Delivered", "Message Viewed", "Message Clicked", "Unsubscribed"]
    events = pl.DataFrame(
        {
            "campaign_id": [rng.choice(["A", "B", None]) for _ in range(3000)],
            "event": [rng.choice(names) for _ in range(3000)],
            "user_id": [f"u{rng.randrange(400)}" for _ in range(3000)],
            "event_date": [date(2024, 1, rng.choice([1, 2])) for _ in range(3000)],
        }
    )
    lifetime = lifetime_funnel(events.lazy()).collect()
    daily = daily_funnel(events.lazy()).collect()
    assert lifetime["unique_viewed"].sum() < daily["unique_viewed"].sum()  # users repeat across days
    for shares in (2, 7):
        assert lifetime_funnel_in_shares(events.lazy(), shares).equals(lifetime)
        assert daily_funnel_in_shares(events.lazy(), shares).equals(daily)
