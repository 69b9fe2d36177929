"""JSON and text objects in a store."""

from __future__ import annotations

import json
from typing import Any

from etl.storage.store import Store


def read_json(store: Store, key: str) -> Any:
    return json.loads(read_text(store, key))


def read_text(store: Store, key: str) -> str:
    """A UTF-8 text object (UnicodeDecodeError when it is not UTF-8)."""
    return store.read_bytes(key).decode("utf-8")


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def write_json(store: Store, data: Any, key: str) -> None:
    store.put(key, json_bytes(data))


def write_text(store: Store, text: str, key: str) -> None:
    store.put(key, text.encode("utf-8"))
