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
        if not path.is_file() or "providers" in path.parts:  # (other providers' shapes: see below)
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
    """Message counts and distinct users per campaign (SPEC §5), after the contract's rules and
    deduplication: a message is (campaign, user, message id), its flags from the set of its events."""
    seen = set()
    messages: dict[tuple[Any, str, Any], set[str]] = defaultdict(set)
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
        messages[(campaign, str(user), event.get("messageId"))].add(FUNNEL_NAMES[event["event"]])
    counts: dict[str | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    users: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    for (campaign, user, _), has in messages.items():
        engaged = bool(has & {"viewed", "clicked", "unsubscribed", "marked_as_spam"})
        delivered = "delivered" in has or engaged
        flags = {name for name in has if name != "viewed"}
        if has & {"viewed", "clicked"}:
            flags.add("viewed")
        if has & {"soft_bounced", "hard_bounced"} and not delivered:
            flags.add("bounced")
        counts[campaign]["messages"] += 1
        for name in flags:
            counts[campaign][name] += 1
            users[(campaign, name)].add(user)
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
    by_provider = pl.read_parquet(tmp_path / "wh" / "events", hive_partitioning=True)
    from_providers = by_provider.filter(pl.col("source_format") != "activatepro")
    assert set(from_providers["source_format"]) == {"sendgrid", "ses", "mailgun", "postmark", "segment", "braze"}
    provider_campaigns = set(from_providers["campaign_id"]) - set(expected)
    assert provider_campaigns  # the providers' campaigns are funnels of their own
    assert set(funnel["campaign_id"].to_list()) == set(expected) | provider_campaigns
    platform = ~pl.col("campaign_id").is_in(list(provider_campaigns)).fill_null(False)
    funnel = funnel.filter(platform)
    columns = ["messages", "bounced", *FUNNEL_NAMES.values(), *(f"unique_{n}" for n in FUNNEL_NAMES.values())]
    for row in funnel.iter_rows(named=True):
        want = expected[row["campaign_id"]]
        assert {c: row[c] for c in columns} == {c: want.get(c, 0) for c in columns}, row["campaign_id"]
    estimated = dict(zip(funnel["campaign_id"], funnel["delivered_estimated"], strict=True))
    assert estimated["3001"] is True and estimated["1001"] is False  # the provider without Delivered
    # No rate above 100 % anywhere, and each campaign's days add up to its lifetime.
    daily = pl.read_parquet(tmp_path / "wh" / "campaign_daily_funnel", hive_partitioning=True).filter(platform)
    for table in (funnel, daily):
        rates = table.select(pl.col("^.*_rate$")).unpivot()["value"].drop_nulls()
        assert rates.is_between(0.0, 1.0).all()
    counts = ["messages", "sent", "delivered", "viewed", "clicked", "bounced", "views", "clicks"]
    summed = daily.group_by("campaign_id").agg(pl.col(counts).sum()).sort("campaign_id", nulls_last=True)
    assert summed.equals(funnel.select("campaign_id", *counts).sort("campaign_id", nulls_last=True))
