"""The shipped sample data: `make run`'s funnels match an independent count over the raw feeds."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl

from contracts import FUNNEL_NAMES
from tests.helpers import assert_accounted, run_at

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "landing"


def raw_events() -> list[dict[str, Any]]:
    """Every event of the sample feeds, read with the standard json module; broken records skipped."""
    found = []
    for path in sorted(SAMPLE.rglob("*")):
        if not path.is_file():
            continue
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        if ".ndjson" in path.name:
            values = []
            for line in text.splitlines():
                try:
                    values.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        else:
            document = json.loads(text)
            values = document if isinstance(document, list) else [document]
        for value in values:
            for event in value.get("events", [value]):
                flat = {**value, **event, **event.get("properties", {})}
                found.append(flat)
    return found


def hand_count() -> dict[str | None, dict[str, int]]:
    """Counts and distinct users per campaign, after the contract's rules and deduplication."""
    seen = set()
    counts: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    users: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    for event in raw_events():
        user = event.get("id", event.get("userId"))
        if "id" in event and "userId" in event and str(event["id"]) != str(event["userId"]):
            continue
        campaign = event.get("campaignId")
        if event.get("event") not in FUNNEL_NAMES or not user or not isinstance(campaign, str | None):
            continue
        if "T" not in str(event.get("timestamp", "")):
            continue
        identity = (str(user), event["event"], event["timestamp"], event.get("channel"), event.get("type"),
                    event.get("url"), campaign, event.get("messageId"))  # fmt: skip
        if identity in seen:
            continue
        seen.add(identity)
        name = FUNNEL_NAMES[event["event"]]
        counts[campaign][name] += 1
        users[(campaign, name)].add(str(user))
    for (campaign, name), who in users.items():
        counts[campaign][f"unique_{name}"] = len(who)
    return counts


def test_sample_funnels_match_an_independent_count(tmp_path: Path) -> None:
    shutil.copytree(SAMPLE, tmp_path / "landing")
    result = run_at(tmp_path / "landing", tmp_path / "wh")
    assert result.exit_code == 0
    assert_accounted(result.document)
    assert result.document["totals"]["quarantined"] == 6
    funnel = pl.read_parquet(tmp_path / "wh" / "campaign_funnel" / "part-0.parquet")
    expected = hand_count()
    assert set(funnel["campaign_id"].to_list()) == set(expected)
    columns = [*FUNNEL_NAMES.values(), *(f"unique_{n}" for n in FUNNEL_NAMES.values())]
    for row in funnel.iter_rows(named=True):
        want = expected[row["campaign_id"]]
        assert {c: row[c] for c in columns} == {c: want.get(c, 0) for c in columns}, row["campaign_id"]
    estimated = dict(zip(funnel["campaign_id"], funnel["delivered_estimated"], strict=True))
    assert estimated["3001"] is True and estimated["1001"] is False  # the provider without Delivered
