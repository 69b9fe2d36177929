"""JSON values as the contract sees them: which types a text column takes, and how a value is named
in a quarantine detail. Shared by the platform's shapes (`mapping`) and the providers' adapters."""

from __future__ import annotations

import json
from typing import Any


def as_text(value: Any) -> tuple[str | None, str]:
    """A text column's value and, when its JSON type is not taken, what was found instead."""
    if value is None or isinstance(value, str):
        return value, ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), ""
    return None, f"must be a string or an integer, found {json_type(value)} {preview(value)}"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"({text[:40]}…)" if len(text) > 40 else f"({text})"
