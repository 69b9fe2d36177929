"""Feed files for command-line tests, built with the json module alone.

They use nothing of `etl`: the command-line tests build their feeds with them alone, and
tests/helpers.py (the library-level helpers) re-exports them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def write(landing: Path, name: str, content: Any) -> Path:
    """Write a feed file: bytes exactly as given; str, or anything else as JSON, encoded (and gzipped
    for `.gz` names)."""
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    data = (content if isinstance(content, str) else json.dumps(content)).encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def ndjson(records: list[Any]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def record(
    user: str = "U1", event: str = "Message Sent", ts: str = "2024-05-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    return {"id": user, "event": event, "timestamp": ts, **fields}


def day_file_records(day: int, users: range, campaign: str = "C1") -> list[dict[str, Any]]:
    """Sent and Delivered for each user on 2024-05-<day>."""
    ts = f"2024-05-{day:02d}T10:00:00Z"
    return [
        record(f"u{u}", event, ts, campaignId=campaign)
        for u in users
        for event in ("Message Sent", "Message Delivered")
    ]


def busy_landing_zone(landing: Path, files: int = 6, users: int = 60_000) -> None:
    """Files that keep two workers busy for a few seconds (two events per user, one date each)."""
    for n in range(files):
        lines = (
            f'{{"id":"u{u}","event":"{event}","timestamp":"2024-05-{n + 2:02d}T10:00:00Z","campaignId":"C{n}"}}\n'
            for u in range(users)
            for event in ("Message Sent", "Message Delivered")
        )
        write(landing, f"busy-{n}.ndjson", "".join(lines))
