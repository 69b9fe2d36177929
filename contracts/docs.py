"""Render the contract (every table's columns, the event names, timestamp forms, reason codes)
from the pandera models, as Markdown for people and JSON for programs."""

from __future__ import annotations

import json
from typing import Any

import pandera.polars as pa

from contracts.events import Event
from contracts.funnel import DailyFunnel, LifetimeFunnel
from contracts.messages import Message
from contracts.quarantine import QuarantineRecord
from contracts.reasons import REASONS
from contracts.vocabulary import EVENT_NAMES, TIMESTAMP_FORMS

TABLES: tuple[tuple[str, type[pa.DataFrameModel]], ...] = (
    ("events", Event),
    ("quarantine", QuarantineRecord),
    ("messages", Message),
    ("campaign_daily_funnel", DailyFunnel),
    ("campaign_funnel", LifetimeFunnel),
)


def contract_document() -> dict[str, Any]:
    return {
        "tables": {name: _table(model) for name, model in TABLES},
        "event_names": list(EVENT_NAMES),
        "timestamp_forms": [{"example": example, "meaning": meaning} for example, meaning in TIMESTAMP_FORMS],
        "reason_codes": [{"code": r.code, "meaning": r.meaning, "fix": r.fix} for r in REASONS],
    }


def contract_json() -> str:
    return json.dumps(contract_document(), indent=2, ensure_ascii=False) + "\n"


def contract_markdown() -> str:
    doc = contract_document()
    lines: list[str] = []
    for name, table in doc["tables"].items():
        lines += [f"### `{name}`", "", table["description"], ""]
        lines += ["| column | type | nullable | rule | description |", "|---|---|---|---|---|"]
        for column in table["columns"]:
            rule = "; ".join(column["rules"]) or "—"
            lines.append(
                f"| `{column['name']}` | {column['type']} | {'yes' if column['nullable'] else 'no'} "
                f"| {_cell(rule)} | {_cell(column['description'])} |"
            )
        if table["rules"]:
            lines += ["", "Table rules: " + "; ".join(rule.rstrip(".") for rule in table["rules"]) + "."]
        lines.append("")
    lines += ["### Event names", ""] + [f"- `{name}`" for name in doc["event_names"]] + [""]
    lines += ["### Accepted timestamps", "", "| example | meaning |", "|---|---|"]
    lines += [f"| `{form['example']}` | {_cell(form['meaning'])} |" for form in doc["timestamp_forms"]]
    lines += ["", "### Reason codes", "", "| code | meaning | what the sender should fix |", "|---|---|---|"]
    lines += [f"| `{r['code']}` | {_cell(r['meaning'])} | {_cell(r['fix'])} |" for r in doc["reason_codes"]]
    return "\n".join(lines) + "\n"


def _table(model: type[pa.DataFrameModel]) -> dict[str, Any]:
    schema = model.to_schema()
    columns = []
    for name, column in schema.columns.items():
        metadata = column.metadata or {}
        rules = [_describe_check(check) for check in column.checks]
        if column.unique:
            rules.append("unique")
        if metadata.get("partition"):
            rules.append("Hive partition key")
        columns.append(
            {
                "name": name,
                "type": _type_name(column.dtype),
                "nullable": bool(column.nullable),
                "rules": rules,
                "description": column.description or "",
            }
        )
    meanings = {reason.code: reason.meaning for reason in REASONS}
    table_rules = [f"{check.name}: {meanings.get(check.name, '')}".rstrip(": ") for check in schema.checks]
    unique = getattr(schema, "unique", None)
    if unique:
        table_rules.append("unique (" + ", ".join(unique) + ")")
    return {"description": (model.__doc__ or "").strip(), "columns": columns, "rules": table_rules}


def _describe_check(check: Any) -> str:
    stats = check.statistics or {}
    if check.name == "isin":
        allowed = list(stats.get("allowed_values", []))
        return "one of the event names" if allowed == list(EVENT_NAMES) else "one of the reason codes"
    if check.name == "str_length":
        return f"length ≥ {stats.get('min_value')}"
    if check.name == "str_matches":
        return f"matches `{stats.get('pattern')}`"
    if check.name == "greater_than_or_equal_to":
        return f"≥ {stats.get('min_value')}"
    if check.name == "less_than_or_equal_to":
        return f"≤ {stats.get('max_value')}"
    return str(check.name)


def _type_name(dtype: Any) -> str:
    names = {"String": "string", "Int64": "int64", "Float64": "float64", "Boolean": "bool", "Date": "date"}
    text = str(dtype)
    if text.startswith("Datetime"):
        return "timestamp[us, UTC]"
    return names.get(text, text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


README_START = "<!-- contract:start -->\n"
README_END = "<!-- contract:end -->"


def update_readme(path: str, markdown: str | None = None) -> bool:
    """Put the generated contract (`markdown`, by default the tables') between the README's contract
    markers; True when it changed."""
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    updated = head + README_START + (markdown or contract_markdown()) + README_END + tail
    if updated != text:
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    print("README contract updated" if update_readme(sys.argv[1]) else "README contract up to date")
