"""The closed set of quarantine reason codes, with what each means and what the sender should fix.

When a record breaks several rules, the first in this order is its reason; the detail names the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    meaning: str
    fix: str


REASONS: tuple[Reason, ...] = (
    Reason(
        "invalid_json",
        "The text is not valid JSON (the detail gives line and column).",
        "Emit valid JSON: check commas, quotes and brackets at the position given.",
    ),
    Reason(
        "invalid_utf8",
        "The record contains bytes that are not valid UTF-8.",
        "Encode feed files as UTF-8.",
    ),
    Reason(
        "not_an_object",
        "A record is a number, string, null or array instead of a JSON object.",
        "Send each record as an object: a feed record or an API payload.",
    ),
    Reason(
        "invalid_payload",
        "An API payload's `events` is not a list of objects.",
        'Send `"events": [{"event": ..., "timestamp": ..., "properties": {...}}, ...]`.',
    ),
    Reason(
        "too_deeply_nested",
        "The record nests objects or arrays deeper than the configured limit.",
        "Flatten the record; extra properties should be shallow.",
    ),
    Reason(
        "record_too_large",
        "The record is larger than the configured limit.",
        "Split the record or drop the oversized property.",
    ),
    Reason(
        "wrong_type",
        "A field has a JSON type the contract does not accept (the detail names it).",
        "Send strings (or integers) for ids and properties.",
    ),
    Reason(
        "missing_user_id",
        "Neither `id` nor `userId` holds a non-empty string or integer.",
        "Send the customer's identifier in `id` or `userId`.",
    ),
    Reason(
        "conflicting_user_id",
        "`id` and `userId` are both present with different values.",
        "Send one user identifier, or the same value in both keys.",
    ),
    Reason(
        "missing_event",
        "The record has no `event` name.",
        "Send `event` with one of the eight message event names.",
    ),
    Reason(
        "unknown_event",
        "The `event` is not one of the eight message event names.",
        "Use one of the eight names listed in the contract.",
    ),
    Reason(
        "invalid_timestamp",
        "`timestamp` is present but is not an accepted date-time or epoch number.",
        "Send an ISO 8601 date-time such as 2022-01-11T00:00:00Z, or epoch seconds.",
    ),
    Reason(
        "future_timestamp",
        "`timestamp` lies more than 24 hours after the file was ingested.",
        "Fix the sender's clock or time zone handling.",
    ),
    Reason(
        "unreadable_file",
        "The file could not be read or decompressed (the detail says why).",
        "Re-upload the file; check permissions and that gzip files are complete.",
    ),
)

REASON_CODES: frozenset[str] = frozenset(reason.code for reason in REASONS)
