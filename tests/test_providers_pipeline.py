"""Other providers' exports through the whole job: every published sample lands beside the platform's
feeds, the manifest accounts for every event (read = loaded + quarantined + duplicates + ignored) with
the ignored ones by provider and event name, funnels count the providers' messages, `--sources` is
checked as a usage error, and pseudonymised users join across providers without the key being kept."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import assert_accounted, events, record, run_at, table, write
from tests.support.cli import invoke

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "providers"
AT = datetime(2034, 6, 13, 12, 0, tzinfo=UTC)  # after the latest sample (Braze's)


@pytest.fixture(scope="module")
def provider_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    if not SAMPLES.is_dir():
        pytest.skip(f"the published provider samples are not here ({SAMPLES}); CI has them")
    root = tmp_path_factory.mktemp("providers")
    landing = root / "landing"
    shutil.copytree(SAMPLES, landing, ignore=shutil.ignore_patterns("*.md", "schemas"))
    write(
        landing,
        "activatepro/feed.json",
        [record("u1", campaignId="C1"), record("u1", "Message Viewed", campaignId="C1")],
    )
    result = run_at(landing, root / "wh", at=AT)
    return root / "wh", result.document


def test_every_provider_sample_is_accounted_for_with_the_ignored_ones_by_provider_and_event(
    provider_warehouse: tuple[Path, dict[str, object]],
) -> None:
    warehouse, manifest = provider_warehouse
    assert_accounted(manifest)  # type: ignore[arg-type]
    totals = manifest["totals"]
    assert totals["ignored"] > 0 and totals["loaded"] > 0  # type: ignore[index]
    by_provider = manifest["ignored_by_provider"]
    assert "deferred" in by_provider["sendgrid"] and "Reject" in by_provider["ses"]  # type: ignore[index]
    assert sum(sum(e.values()) for e in by_provider.values()) == totals["ignored"]  # type: ignore[union-attr,index]
    for file in manifest["files"]:  # type: ignore[attr-defined]
        assert sum(sum(events.values()) for events in file["ignored_events"].values()) == file["ignored"]
    only_ignored = [f for f in manifest["files"] if f["read"] and f["read"] == f["ignored"]]  # type: ignore[attr-defined]
    assert only_ignored and all(f["status"] == "new" and not f["rejected_reason"] for f in only_ignored)
    formats = set(events(warehouse)["source_format"].unique().to_list())
    assert formats == {"activatepro", "sendgrid", "mailgun", "postmark", "ses", "segment", "braze"}


def test_provider_messages_are_counted_with_machine_opens_apart(
    provider_warehouse: tuple[Path, dict[str, object]],
) -> None:
    warehouse, _ = provider_warehouse
    opens = events(warehouse).filter(pl.col("event") == "Message Viewed")
    assert opens["machine_open"].to_list().count(True) >= 1  # SendGrid's sg_machine_open, Braze, Mailgun's bot
    assert opens.filter(pl.col("source_format") == "activatepro")["machine_open"].null_count() == 1
    messages = table(warehouse, "messages")
    assert (messages["opened_human"] <= messages["opened"]).all()
    lifetime = table(warehouse, "campaign_funnel")
    assert (lifetime["viewed_human"] <= lifetime["viewed"]).all()
    assert (lifetime["viewed_human"] < lifetime["viewed"]).any()  # some campaign's opens include a machine's
    rates = lifetime.select(pl.col("^.*_rate$")).unpivot()["value"].drop_nulls()
    assert rates.is_between(0.0, 1.0).all()


def test_a_sources_file_that_cannot_be_used_is_a_usage_error_naming_the_line(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write(landing, "a.json", [record("u1")])
    sources = tmp_path / "sources.toml"
    sources.write_text('pseudonymise = false\n\n[[source]]\nglob = "x/*.json"\nprovider = "sendmail"\n')
    done = invoke("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh"), "--sources", str(sources))
    assert done.exit_code == 2 and "line 5" in done.stderr and "sendmail" in done.stderr
    assert not (tmp_path / "wh").exists()


def test_pseudonymised_users_join_across_providers_and_the_key_is_kept_nowhere(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh"
    sendgrid = [{"email": "Ann@Example.com", "event": "processed", "timestamp": 1714550400,
                 "sg_event_id": "e1", "sg_message_id": "m1", "marketing_campaign_id": 7}]  # fmt: skip
    ses = {"eventType": "Open", "mail": {"messageId": "m2", "timestamp": "2024-05-01T10:00:00Z",
           "destination": ["ann@example.com"], "tags": {"campaign_id": ["7"]}},
           "open": {"timestamp": "2024-05-01T11:00:00Z"}}  # fmt: skip
    write(landing, "sendgrid.json", sendgrid)
    write(landing, "ses.ndjson", json.dumps(ses) + "\n")
    key = "a-secret-key-of-this-test"
    done = invoke("run", "--landing", str(landing), "--warehouse", str(warehouse), env={"ETL_PSEUDONYMISE_KEY": key})
    assert done.exit_code == 0, done.stderr
    users = events(warehouse)["user_id"].unique().to_list()
    assert len(users) == 1 and len(users[0]) == 64 and "@" not in users[0]
    for path in warehouse.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_the_report_shows_human_opens_beside_opens_where_machine_opens_are_flagged(
    provider_warehouse: tuple[Path, dict[str, object]],
) -> None:
    from etl.report import render_report
    from etl.storage import open_store

    warehouse, _ = provider_warehouse
    page = render_report(open_store(warehouse))
    assert "<th>human open</th>" in page and "opened by people" in page
