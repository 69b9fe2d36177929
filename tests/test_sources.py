"""The --sources file: pins, provider options, pseudonymisation; and every mistake named by its line."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest

from etl.errors import UsageError
from etl.reading import Limits
from etl.sources import glob_pattern, load_sources, parse_sources
from tests.helpers import ingest_text, ndjson

GOOD = """\
# which provider's exports are where
pseudonymise = true

[sendgrid]
campaign_id = "campaign"

[[source]]
glob = "sendgrid/**/*.json"
provider = "sendgrid"
user_id = "customer_id"

[[source]]
glob = "exports/postmark-*.ndjson"
provider = "postmark"
"""


def test_a_sources_file_pins_providers_and_sets_their_options() -> None:
    sources = parse_sources(GOOD, "sources.toml", b"key")
    nested = sources.context("sendgrid/2024/05/batch.json")
    assert nested.pinned == "sendgrid"
    assert nested.options_of("sendgrid") == {"campaign_id": "campaign", "user_id": "customer_id"}
    elsewhere = sources.context("landing/other.json")
    assert elsewhere.pinned is None and elsewhere.options_of("sendgrid") == {"campaign_id": "campaign"}
    assert sources.context("exports/postmark-1.ndjson").pinned == "postmark"
    assert sources.context("exports/sub/postmark-1.ndjson").pinned is None


def test_load_sources_takes_the_key_from_the_environment_only(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(GOOD)
    sources = load_sources(path, {"ETL_PSEUDONYMISE_KEY": "s3cret"})
    assert sources.pseudonymise_key == b"s3cret" and "s3cret" not in repr(sources)
    assert load_sources(None, {"ETL_PSEUDONYMISE_KEY": "k"}).pseudonymise_key == b"k"  # the variable alone turns it on
    assert load_sources(None, {}).pseudonymise_key is None


ERRORS = [
    ("pseudonymise = true\n", None, 1, "ETL_PSEUDONYMISE_KEY is not set"),
    ("colour = 'blue'\n", b"k", 1, "unknown key `colour`"),
    ("[sendgird]\ncampaign_id = 'x'\n", b"k", 1, "unknown key `sendgird`"),
    ("[mailgun]\ncampaign = 'x'\n", b"k", 2, "mailgun has no option `campaign`"),
    ("[segment]\ncampaign_id = 'x'\n", b"k", 2, "segment has no option `campaign_id` (it has none)"),
    ("[ses]\n\ncampaign_id = 'a.b'\n", b"k", 3, "must be a field name"),
    ("[[source]]\nglob = 'a/[b'\nprovider = 'ses'\n", b"k", 2, "bad glob 'a/[b'"),
    ("[[source]]\nglob = '/abs/*.json'\n", b"k", 2, "bad glob"),
    ("[[source]]\nglob = 'a/**b/*.json'\n", b"k", 2, "`**` must be a whole path part"),
    (
        "[[source]]\nglob = 'a/*'\n\n[[source]]\nglob = 'b/*'\nprovider = 'sparkpost'\n",
        b"k",
        6,
        "no provider is named 'sparkpost'",
    ),
    ("[[source]]\nglob = 'a/*'\nuser_id = 'x'\n", b"k", 3, "options need a `provider`"),
    ("[[source]]\nprovider = 'ses'\n", b"k", 1, "has no `glob`"),
    ("[[source]]\nglob = 'a/*'\nprovider = 'ses'\nfolder = 'x'\n", b"k", 4, "ses has no option `folder`"),
    ("pseudonymise = 'yes'\n", b"k", 1, "must be true or false"),
    ("[sendgrid]\ncampaign_id = \n", b"k", 2, "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "line", "message"), ERRORS, ids=[e[3] for e in ERRORS])
def test_mistakes_are_usage_errors_naming_the_line(text: str, key: bytes | None, line: int, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_sources(text, "sources.toml", key)
    assert str(caught.value).startswith(f"sources.toml, line {line}: "), str(caught.value)
    assert message in str(caught.value)


def test_an_unreadable_sources_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Cannot read the sources file"):
        load_sources(tmp_path / "missing.toml", {})


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("*.json", ["a.json"], ["d/a.json", "a.ndjson"]),
        ("**/*.json", ["a.json", "d/a.json", "d/e/a.json"], ["a.jsonl"]),
        ("sg/**", ["sg/a", "sg/d/a.json"], ["sgx/a"]),
        ("d/[ab]?.json", ["d/a1.json", "d/bz.json"], ["d/c1.json", "d/a/1.json"]),
        ("d/[!a]*", ["d/b.json"], ["d/a.json"]),
    ],
)
def test_globs(glob: str, matches: list[str], misses: list[str]) -> None:
    pattern = glob_pattern(glob)
    assert all(re.fullmatch(pattern, name) for name in matches)
    assert not any(re.fullmatch(pattern, name) for name in misses)


def test_options_choose_the_fields_of_campaign_and_user(tmp_path: Path) -> None:
    text = """
[sendgrid]
campaign_id = "campaign"
user_id = "customer_id"

[mailgun]
campaign_id = "cid"

[postmark]
user_id = "customer"

[ses]
campaign_id = "campaign"
"""
    limits = Limits(sources=parse_sources(text, "sources.toml", None))
    records = [
        {
            "sg_event_id": "e",
            "event": "delivered",
            "email": "a@x.y",
            "timestamp": 1714557600,
            "campaign": "SG",
            "customer_id": 7,
        },
        {
            "event-data": {
                "event": "delivered",
                "recipient": "b@x.y",
                "timestamp": 1714557600,
                "user-variables": {"cid": "MG"},
            }
        },
        {
            "RecordType": "Delivery",
            "Recipient": "c@x.y",
            "DeliveredAt": "2024-05-01T10:00:00Z",
            "Metadata": {"customer": "P1"},
            "Tag": "T",
        },
        {
            "eventType": "Send",
            "mail": {"destination": ["d@x.y"], "tags": {"campaign": ["SES"]}, "timestamp": "2024-05-01T10:00:00Z"},
        },
    ]
    outcome = ingest_text("mixed.ndjson", ndjson(records), tmp_path, limits=limits)
    rows = outcome.events.sort("_ordinal").select("user_id", "campaign_id").rows()
    assert rows == [("7", "SG"), ("b@x.y", "MG"), ("P1", "T"), ("d@x.y", "SES")]


def test_a_pinned_file_is_read_as_that_providers_records(tmp_path: Path) -> None:
    sources = parse_sources("[[source]]\nglob = 'legacy/*.json'\nprovider = 'sendgrid'\n", "s.toml", None)
    legacy = [{"email": "n@example.com", "timestamp": 1380822437, "event": "unsubscribe", "category": ["Tests"]}]
    pinned = ingest_text("legacy/newsletter.json", legacy, tmp_path, limits=Limits(sources=sources))
    assert pinned.events.select("user_id", "event", "source_format").rows() == [
        ("n@example.com", "Message Unsubscribed", "sendgrid")
    ]
    unpinned = ingest_text("other/newsletter.json", legacy, tmp_path, limits=Limits(sources=sources))
    assert unpinned.quarantine["reason"].to_list() == ["missing_user_id"]  # not SendGrid's by its shape


def test_pseudonymisation_from_a_sources_file_uses_the_environment_key(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text("pseudonymise = true\n")
    limits = Limits(sources=load_sources(path, {"ETL_PSEUDONYMISE_KEY": "k"}))
    record = {"RecordType": "Open", "Recipient": "Ann@Example.com", "ReceivedAt": "2024-05-01T10:00:00Z"}
    outcome = ingest_text("pm.json", record, tmp_path, limits=limits)
    assert outcome.events["user_id"].to_list() == [hmac.new(b"k", b"ann@example.com", hashlib.sha256).hexdigest()]
