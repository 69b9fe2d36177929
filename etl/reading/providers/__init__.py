"""Other providers' events (SPEC §2.3): one adapter module per provider, tried in order on each record.

Each adapter (see `base`) is a pure mapping from a parsed record to contract rows, rejections or
ignored events, with its mapping as a data table (`TABLE`): the code reads it, and
`provider_mapping_markdown` renders it for `etl contract` and the README. `vectorised` reads the
high-volume shapes (SendGrid arrays, SES Firehose NDJSON) a block at a time with the same tables;
`avro` reads Braze's Avro container files.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from etl.reading.providers import braze, mailgun, postmark, segment, sendgrid, ses
from etl.reading.providers.base import CONTRACT_EVENTS, Table
from etl.reading.types import Expanded, ReadContext, Unit

#: Tried in this order: the first whose `matches` holds reads the record.
ADAPTERS: dict[str, ModuleType] = {
    module.TABLE.provider: module for module in (sendgrid, mailgun, postmark, ses, segment, braze)
}
PROVIDERS = tuple(ADAPTERS)

Expander = Callable[[dict[str, Any], Unit], Expanded]


def provider_expander(record: dict[str, Any], context: ReadContext) -> Expander | None:
    """How a record is read when it is a provider's (the pinned one's, if the file has one), else None."""
    found = ADAPTERS[context.pinned] if context.pinned else _recognising(record, context)
    if found is None:
        return None
    expand = found.expand
    return lambda record, unit: expand(record, unit, context)


def _recognising(record: dict[str, Any], context: ReadContext) -> ModuleType | None:
    return next((module for module in ADAPTERS.values() if module.matches(record, context)), None)


def tables() -> list[Table]:
    return [module.TABLE for module in ADAPTERS.values()]


def provider_mapping_markdown() -> str:
    """SPEC §2.3's mapping table, generated from the adapters' own tables, with how each provider's
    channel, message type, machine opens and bot clicks are read, and the --sources options."""
    header = (
        "| provider (recognised by) | user_id | event_ts | campaign_id | message_id | url | events mapped | ignored |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for table in tables():
        mapped = ", ".join(f"{rule.describe()}→{_short(rule.to)}" for rule in table.rules if rule.to)
        ignored = [rule.describe() for rule in table.rules if not rule.to] + [table.otherwise]
        cells = [
            table.recognised_by,
            table.user_id.describe(),
            table.event_ts.describe(),
            table.campaign_id.describe(),
            table.message_id.describe(),
            table.url.describe(),
            mapped,
            ", ".join(ignored),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += [
        "",
        "| provider | `source_format` | channel | message_type | machine_open | suspected_bot | --sources options |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for table in tables():
        options = "; ".join(f"`{name}`: {meaning}" for name, meaning in table.options.items()) or "—"
        cells = [
            table.title,
            f"`{table.provider}`",
            table.channel,
            table.message_type.describe(),
            table.machine_open,
            table.suspected_bot,
            options,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def provider_mapping_data() -> list[dict[str, Any]]:
    """The same tables as data, for `etl contract --format json`."""
    out = []
    for table in tables():
        out.append(
            {
                "provider": table.provider,
                "title": table.title,
                "recognised_by": table.recognised_by,
                "user_id": table.user_id.describe(),
                "event_ts": table.event_ts.describe(),
                "campaign_id": table.campaign_id.describe(),
                "message_id": table.message_id.describe(),
                "url": table.url.describe(),
                "channel": table.channel,
                "message_type": table.message_type.describe(),
                "machine_open": table.machine_open,
                "suspected_bot": table.suspected_bot,
                "mapped": [
                    {"provider_events": list(rule.events), "when": rule.describe(), "event": CONTRACT_EVENTS[rule.to]}
                    for rule in table.rules
                    if rule.to
                ],
                "ignored": [rule.describe() for rule in table.rules if not rule.to] + [table.otherwise],
                "options": dict(table.options),
            }
        )
    return out


def _short(event: str | None) -> str:
    assert event in CONTRACT_EVENTS
    return event


__all__ = [
    "ADAPTERS",
    "PROVIDERS",
    "provider_expander",
    "provider_mapping_data",
    "provider_mapping_markdown",
    "tables",
]
