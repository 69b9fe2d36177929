"""What every provider adapter shares: its mapping table as data, and reading one event's fields.

An adapter is a module of this package that exports
- `TABLE`: its mapping to the contract (`Table`), the single source of truth that both its code and
  the documentation (`provider_mapping_markdown`) read;
- `matches(record, context) -> bool`: whether a parsed JSON object is in the provider's format;
- `expand(record, unit, context) -> Expanded`: the record's event rows, rejections and ignored events.

A provider's fields are read through a `Picker`, which remembers what it used (the rest of the record
goes to `extra`) and names every problem by the provider's own field (`email`, `event-data.timestamp`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from etl.reading.types import ROW_COLUMNS, Expanded, Rejection
from etl.reading.values import as_text, json_type, preview

#: The contract's eight events by the short names the tables use (`Sent` is `Message Sent`).
CONTRACT_EVENTS = {
    short: f"Message {short}"
    for short in (
        "Sent",
        "Delivered",
        "Viewed",
        "Clicked",
        "Unsubscribed",
        "soft_bounced",
        "hard_bounced",
        "marked_as_spam",
    )
}
#: White space trimmed from user ids (as the platform's own shapes do).
TRIM = " \t\n\r\x0b\x0c"
#: The date-time forms the contract accepts (etl.normalise's pattern, ASCII digits), without anchors
#: so that Python (`fullmatch`) and polars (`^(?:…)$`) read it alike. A string that does not match is
#: named by its provider field; one that matches but is no real date is the contract's to judge.
ISO_TIMESTAMP = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:[.,][0-9]+)?)?"
    r"\s*(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_ISO = re.compile(ISO_TIMESTAMP)
_EPOCH_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_INDEX = re.compile(r"^(.*)\[(\d*)\]$")


@dataclass(frozen=True)
class Field:
    """Where a contract column comes from: the first of `paths` that holds a value (`a`, else `b`).
    A path is dotted (`message.headers.message-id`); `[0]` takes a list's first item. `doc` words the
    table cell when the paths alone do not say everything."""

    paths: tuple[str, ...] = ()
    doc: str = ""

    def describe(self) -> str:
        return self.doc or ", else ".join(f"`{path}`" for path in self.paths) or "—"


@dataclass(frozen=True)
class Rule:
    """The provider events named `events` (and, with `when`, only those whose fields hold one of the
    values given) become the contract event `to`; `to=None` ignores them. Rules are tried in order."""

    events: tuple[str, ...]
    to: str | None
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    label: str = ""  # how the table shows the rule, when not just the event names

    def applies(self, name: str, record: dict[str, Any]) -> bool:
        return name in self.events and all(_is_in(get(record, path), values) for path, values in self.when)

    def describe(self) -> str:
        return self.label or " and ".join(self.events)


@dataclass(frozen=True)
class Table:
    """One provider's mapping to the contract (SPEC §2.3), as data."""

    provider: str  # its name in `source_format`, in --sources and in the manifest's `ignored`
    title: str
    recognised_by: str
    event_field: str  # the field naming the provider's event
    user_id: Field
    event_ts: Field
    campaign_id: Field
    message_id: Field
    url: Field
    rules: tuple[Rule, ...]
    otherwise: str = "anything else"  # the ignored events no rule names, in words
    channel: str = "`Email`"
    message_type: Field = Field(doc="null")
    machine_open: str = "null"
    suspected_bot: str = "null"
    #: What a --sources file may choose for this provider: option -> what it is.
    options: dict[str, str] = field(default_factory=dict)

    def classify(self, name: str, record: dict[str, Any]) -> str | None:
        """The contract event of a provider event, or None when the mapping ignores it."""
        for rule in self.rules:
            if rule.applies(name, record):
                return CONTRACT_EVENTS[rule.to] if rule.to else None
        return None


def get(record: Any, path: str) -> Any:
    """The value at a dotted path (`a.b`, `a.b[0]`), or None where any step is missing."""
    value = record
    for step in path.split("."):
        indexed = _INDEX.match(step)
        key = indexed.group(1) if indexed else step
        if not isinstance(value, dict):
            return None
        value = value.get(key)
        if indexed:
            if not isinstance(value, list) or not value or not indexed.group(2):
                return None
            value = value[int(indexed.group(2))] if int(indexed.group(2)) < len(value) else None
    return value


def _is_in(value: Any, values: tuple[Any, ...]) -> bool:
    # `True in (1,)` holds in Python: booleans only match booleans.
    return any(value == wanted and type(value) is type(wanted) for wanted in values)


def present(value: Any) -> bool:
    """Whether a field holds a value: `a, else b` passes over missing, null and empty text."""
    return value is not None and value != ""


def rejected(position: str, raw: str, reason: str, detail: str) -> Expanded:
    return Expanded(rejections=[Rejection(position, raw, reason, detail)])


@dataclass
class Picker:
    """Reads one provider event's fields for its row. It remembers the fields it used (the rest of the
    record is `extra`), the fields whose JSON type the contract does not take (`wrong_type`, judged by
    the contract), and the first problem only it can name: a missing user or a timestamp in no accepted
    form. `prefix` is how the provider names the object the fields are in (`event-data.`)."""

    table: Table
    record: dict[str, Any]
    position: str
    raw: str
    prefix: str = ""
    event: str = ""  # the contract event, once the mapping took the provider's event
    used: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    problem: tuple[str, str] | None = None

    def name(self, paths: tuple[str, ...] | str) -> str:
        paths = (paths,) if isinstance(paths, str) else paths
        return " and ".join(f"`{self.prefix}{path}`" for path in paths)

    def pick(self, paths: tuple[str, ...]) -> tuple[str, Any]:
        """The first of `paths` holding a value, marked used; ("", None) when none does."""
        for path in paths:
            value = get(self.record, path)
            if present(value):
                self.used.append(path)
                return path, value
        return "", None

    def text(self, paths: tuple[str, ...]) -> str | None:
        path, value = self.pick(paths)
        text, problem = as_text(value)
        if problem:
            self.wrong.append(f"{self.table.title} {self.name(path)} {problem}")
        return text

    def user(self, paths: tuple[str, ...]) -> str | None:
        """The user id (trimmed); a missing one is this record's problem, named by its fields."""
        text = self.text(paths)
        user = text.strip(TRIM) if text is not None else None
        if not user and self.problem is None:
            what = "is" if len(paths) == 1 else "are"
            detail = f"no user id: {self.table.title} {self.name(paths)} {what} missing, null or empty"
            self.problem = ("missing_user_id", detail)
        return user or None

    def timestamp(self, paths: tuple[str, ...], epoch: bool) -> tuple[str | None, float | None]:
        """(timestamp_text, timestamp_number). `epoch`: the provider sends epoch seconds (a number, or
        its digits as text); otherwise an ISO 8601 string. Missing is the contract's (the ingestion
        time, flagged); a value in neither form is named by its field."""
        path, value = self.pick(paths)
        if value is None:
            return None, None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return None, float(value)
        if not isinstance(value, str):
            expected = "an epoch number" if epoch else "a date-time string"
            self.wrong.append(
                f"{self.table.title} {self.name(path)} must be {expected}, found {json_type(value)} {preview(value)}"
            )
            return None, None
        if epoch and _EPOCH_TEXT.fullmatch(value.strip()):
            return None, float(value)
        if not epoch and _ISO.fullmatch(value.strip()):
            return value, None
        if self.problem is None:
            expected = "an epoch number (seconds since 1970)" if epoch else "an accepted date-time"
            self.problem = (
                "invalid_timestamp",
                f"{self.table.title} {self.name(path)} {preview(value)} is not {expected}",
            )
        return value, None

    def flag(self, path: str, truth: dict[Any, bool | None], otherwise: bool | None = None) -> bool | None:
        """A yes/no the provider may say (`machine_open`): its value looked up in `truth`; missing or
        null stays null (never false). Another value is `otherwise`, or a wrong type when that is None."""
        value = get(self.record, path)
        if value is None:
            return None
        self.used.append(path)
        for known, meaning in truth.items():
            if value == known and type(value) is type(known):
                return meaning
        if otherwise is not None:
            return otherwise
        self.wrong.append(
            f"{self.table.title} {self.name(path)} must be one of {_listed(truth)}, found {preview(value)}"
        )
        return None

    def row(self, **columns: Any) -> Expanded:
        """The event's row (columns by name; the rest of the record in `extra`), or its rejection when
        it has a problem only the adapter can name and no wrong type for the contract to report first."""
        if self.problem and not self.wrong:
            return rejected(self.position, self.raw, *self.problem)
        values: dict[str, Any] = {name: None for name in ROW_COLUMNS}
        values.update(columns)
        values["event"] = self.event
        values["extra"] = columns.get("extra", extra_json(self.record, self.used))
        values["wrong_type"] = "; ".join(self.wrong) if self.wrong else None
        values["source_position"] = self.position
        values["raw"] = self.raw
        values["source_format"] = self.table.provider
        return Expanded(rows=[tuple(values[name] for name in ROW_COLUMNS)])


def _listed(truth: dict[Any, bool | None]) -> str:
    return ", ".join(json.dumps(value) for value in truth)


def begin(table: Table, record: dict[str, Any], position: str, raw: str, prefix: str = "") -> Picker | Expanded:
    """A Picker for a record whose event the mapping takes (its contract event in `picker.event`), or
    what the record gives instead: ignored (one event), or rejected when it names no event."""
    picker = Picker(table, record, position, raw, prefix)
    name = get(record, table.event_field)
    if not present(name):
        detail = f"no event name: {table.title} {picker.name(table.event_field)} is missing, null or empty"
        return rejected(position, raw, "missing_event", detail)
    if not isinstance(name, str):
        detail = (
            f"{table.title} {picker.name(table.event_field)} must be a string, found {json_type(name)} {preview(name)}"
        )
        return rejected(position, raw, "wrong_type", detail)
    event = table.classify(name, record)
    if event is None:
        return Expanded(ignored=[(table.provider, name)])
    picker.used.append(table.event_field)
    picker.event = event
    return picker


def extra_json(
    record: dict[str, Any], used: list[str], wrapper: tuple[str, dict[str, Any]] | None = None
) -> str | None:
    """The fields of a provider record that no column took, as compact JSON with sorted keys; null
        values left out (they say nothing). A list whose first item was used goes only when that was its only
    item; a field used inside a list item (`campaigns[0].id`) stays.
        `wrapper`: (name, the other fields of an envelope the record came in), kept under that name.

        The vectorised readers write the same text (`vectorised.extra_expr`): sorted keys, compact, no nulls."""
    tree: dict[str, Any] = {}
    for path in used:
        whole = path.removesuffix("[0]")
        if whole != path and len(get(record, whole) or ()) != 1:
            continue  # the other items of a list whose first one was used stay
        steps = whole.split(".")
        if any("[" in step for step in steps):
            continue
        node = tree
        for step in steps[:-1]:
            child = node.setdefault(step, {})
            if child is True:
                break
            node = child
        else:
            node[steps[-1]] = True
    kept = _prune(record, tree)
    if wrapper is not None:
        name, fields = wrapper
        rest = _prune(fields, {})
        if rest:
            kept[name] = rest
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str) if kept else None


def _prune(value: Any, used: Any) -> Any:
    if isinstance(value, dict):
        below = used if isinstance(used, dict) else {}
        return {
            key: _prune(item, below.get(key))
            for key, item in value.items()
            if item is not None and below.get(key) is not True
        }
    if isinstance(value, list):
        return [_prune(item, None) for item in value]
    return value
