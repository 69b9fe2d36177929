"""The high-volume provider shapes read a block at a time: SendGrid arrays, SES Firehose NDJSON and
Braze Currents' Avro files.

Arrow parses the block with its types inferred (a few fields pinned to text); the provider's table
(`sendgrid.TABLE`, `ses.TABLE`, `braze.TABLE`) becomes polars expressions, and `extra` is written by
polars' JSON writer (`extra_expr`) as exactly `base.extra_json`'s text (sorted keys, compact, no null
members). As with the platform's own shapes, anything the record-by-record adapter would word (a
missing recipient, a timestamp in no accepted form, a wrong type, a record of another provider, a
number with a fraction in `extra`) makes the block decline: it is then read record by record.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
from polars.datatypes import DataTypeClass

from etl.reading.providers import braze, sendgrid, ses
from etl.reading.providers.base import CONTRACT_EVENTS, ISO_TIMESTAMP, TRIM, Table
from etl.reading.types import ROW_COLUMNS, Ignored, ReadContext

#: Read at once: a provider whose records a block's first record shows, or that the file is pinned to.
VECTORISED = ("sendgrid", "ses")
_TIMESTAMP_TEXT = pa.struct([("timestamp", pa.string())])
#: Fields each reader needs as text, given to Arrow so that it does not infer them to be dates.
PINNED_TEXT: dict[str, list[tuple[str, pa.DataType]]] = {
    "ses": [("mail", _TIMESTAMP_TEXT), *((key, _TIMESTAMP_TEXT) for key in ses.TYPE_OBJECT.values())],
}
#: Fields by which an adapter tried before SES's (or SES's notifications) would take a record.
_EARLIER = ("notificationType", "sg_event_id", "sg_message_id", "event-data", "items", "RecordType", "recipient")
_TEXT = (pl.String, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)

#: The rows of a block: (rows in ROW_COLUMNS, each row's record, the ignored events), or None to decline.
Read = tuple[pl.DataFrame, np.ndarray, Counter[Ignored]] | None
DType = pl.DataType | DataTypeClass
Used = dict[str, Any]  # field -> a row condition (the field went to a column) or the Used of its fields


def sniff(head: bytes, context: ReadContext) -> str | None:
    """Which reader to try on a block whose first record is `head`: a provider's name, "" for the
    platform's own shapes, None for none (the file is pinned to a provider read record by record)."""
    if context.pinned:
        return context.pinned if context.pinned in VECTORISED else None
    if b'"sg_event_id"' in head or b'"sg_message_id"' in head:
        return "sendgrid"
    if b'"eventType"' in head and b'"mail"' in head:
        return "ses"
    return ""


class _Fields:
    """A block's parsed records (one row each): their fields by dotted path, absent ones as null."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.schema = frame.schema
        self.kept: list[tuple[str, pl.Expr]] = []

    def keep(self, name: str, expr: pl.Expr) -> pl.Expr:
        """`expr` computed once, as a column of its own: polars would compute it again in each
        expression that uses it (conditions, columns and `extra` share the same few)."""
        column = f"_kept_{name}"
        self.kept.append((column, expr))
        return pl.col(column)

    def get(self, path: str) -> tuple[pl.Expr, DType]:
        first, *rest = path.split(".")
        if first not in self.schema:
            return pl.lit(None), pl.Null()
        expr: pl.Expr = pl.col(first)
        dtype: DType = self.schema[first]
        for step in rest:
            fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
            if step not in fields:
                return pl.lit(None), pl.Null()
            expr, dtype = expr.struct.field(step), fields[step]
        return expr, dtype

    def text(self, path: str) -> tuple[pl.Expr, pl.Expr]:
        """A text field (strings or integers, as the contract takes them), and where it is awkward."""
        expr, dtype = self.get(path)
        if isinstance(dtype, pl.Null):
            return pl.lit(None, pl.String), pl.lit(False)
        if dtype in _TEXT:
            return expr.cast(pl.String), pl.lit(False)
        return pl.lit(None, pl.String), expr.is_not_null()

    def first_of(self, paths: tuple[str, ...]) -> tuple[pl.Expr, list[pl.Expr], pl.Expr]:
        """`a`, else `b`: the first present text, which path gave it (a condition per path), and where
        a present value has a type the contract does not take."""
        value, awkward, before = pl.lit(None, pl.String), pl.lit(False), pl.lit(False)
        used = []
        for path in reversed(paths):  # the first path's value wins: it is applied last
            text, _ = self.text(path)
            value = pl.when(text.is_not_null() & (text != "")).then(text).otherwise(value)
        for path in paths:
            text, bad = self.text(path)
            present = (text.is_not_null() & (text != "")).fill_null(False)
            used.append(~before & present)
            awkward = awkward | (~before & bad)
            before = before | present | bad  # (a present value of a wrong type is taken too)
        return value, used, awkward

    def rule_event(self, table: Table, name: pl.Expr) -> pl.Expr:
        """The contract event of each record by the table's rules, null for those it ignores."""
        chain: Any = pl
        for rule in table.rules:
            condition = name.is_in(list(rule.events))
            for path, values in rule.when:
                expr, dtype = self.get(path)
                kinds = {type(value) for value in values}
                if (kinds == {str} and dtype == pl.String) or (kinds == {bool} and dtype == pl.Boolean):
                    condition = condition & expr.is_in(list(values)).fill_null(False)
                else:
                    condition = pl.lit(False)
            chain = chain.when(condition).then(pl.lit(CONTRACT_EVENTS[rule.to] if rule.to else None, pl.String))
        return chain.otherwise(pl.lit(None, pl.String))


# --- SendGrid -------------------------------------------------------------------------------------


def sendgrid_rows(frame: pl.DataFrame, first: int, position: str, context: ReadContext) -> Read:
    table, fields = sendgrid.TABLE, _Fields(frame)
    options = context.options_of(table.provider)
    if not _is_text(fields, "event"):
        return None
    name = pl.col("event")
    recognised = (
        pl.lit(True)
        if context.pinned
        else (fields.get("sg_event_id")[0].is_not_null() | fields.get("sg_message_id")[0].is_not_null())
    )
    event = fields.keep("event", fields.rule_event(table, name))
    user, user_used, user_bad = fields.first_of(sendgrid.user_paths(options))
    campaign, campaign_used, campaign_bad = fields.first_of(sendgrid.campaign_paths(options))
    message_id, message_used, message_bad = fields.first_of(table.message_id.paths)
    url, url_used, url_bad = fields.first_of(table.url.paths)
    category, category_dtype = fields.get("category")
    if isinstance(category_dtype, pl.List) and category_dtype.inner == pl.String:
        message_type = category.list.join(", ")
    elif category_dtype in (pl.String, pl.Null):
        message_type = pl.when(category != "").then(category.cast(pl.String))
    else:
        return None
    stamp, stamp_dtype = fields.get("timestamp")
    if not (stamp_dtype.is_numeric() or isinstance(stamp_dtype, pl.Null)) or stamp_dtype == pl.Boolean:
        return None
    machine, machine_dtype = fields.get("sg_machine_open")
    if machine_dtype not in (pl.Boolean, pl.Null):
        return None
    viewed = event == CONTRACT_EVENTS["Viewed"]
    category_present = (
        category.is_not_null() & (category != "") if category_dtype == pl.String else category.is_not_null()
    )
    used: Used = {"event": pl.lit(True), "timestamp": stamp.is_not_null(), "category": category_present}
    _mark_first_of(
        used,
        (sendgrid.user_paths(options), user_used),
        (sendgrid.campaign_paths(options), campaign_used),
        (table.message_id.paths, message_used),
        (table.url.paths, url_used),
    )
    used["sg_machine_open"] = viewed & machine.is_not_null()
    columns = {
        "user_id": user,
        "event": event,
        "timestamp_text": pl.lit(None, pl.String),
        "timestamp_number": stamp.cast(pl.Float64),
        "channel": pl.lit("Email"),
        "message_type": message_type,
        "url": url,
        "campaign_id": campaign,
        "message_id": message_id,
        "machine_open": pl.when(viewed).then(machine.cast(pl.Boolean)),
    }
    awkward = ~recognised | name.is_null() | (name == "") | user_bad | campaign_bad | message_bad | url_bad
    return _finish(frame, fields, table, name, event, columns, used, awkward, first, position)


# --- SES ------------------------------------------------------------------------------------------


def ses_rows(frame: pl.DataFrame, first: int, position: str, context: ReadContext) -> Read:
    table, fields = ses.TABLE, _Fields(frame)
    options = context.options_of(table.provider)
    if not _is_text(fields, "eventType") or any(column in frame.columns for column in _EARLIER):
        return None  # SES notifications, and records an adapter tried before SES takes, go record by record
    name = pl.col("eventType")
    mail, mail_dtype = fields.get("mail")
    if not isinstance(mail_dtype, pl.Struct):
        return None
    event = fields.keep("event", fields.rule_event(table, name))
    recipients, list_used, list_bad = _ses_recipients(fields, name)
    campaign_tag = f"mail.tags.{options.get('campaign_id', 'campaign_id')}"
    campaign, campaign_whole, campaign_bad = _first_item(fields, campaign_tag)
    message_id, (message_used,), message_bad = fields.first_of(table.message_id.paths)
    url, (url_used,), url_bad = fields.first_of(table.url.paths)
    stamp, stamp_used, stamp_bad = _ses_time(fields, name)
    used: Used = {"eventType": pl.lit(True), "mail": {"messageId": message_used}, "click": {"link": url_used}}
    _merge(used, campaign_tag, campaign_whole)
    for path, condition in stamp_used.items():
        _merge(used, path, condition)
    if "user_id" in options:
        user_tag = f"mail.tags.{options['user_id']}"
        tag_user, user_whole, user_bad = _first_item(fields, user_tag)
        _merge(used, user_tag, user_whole)
        list_bad = user_bad
    else:
        tag_user = None
        for path, condition in list_used.items():
            _merge(used, path, condition)
    columns = {
        "_recipients": recipients,
        "event": event,
        "timestamp_text": stamp,
        "timestamp_number": pl.lit(None, pl.Float64),
        "channel": pl.lit("Email"),
        "url": url,
        "campaign_id": campaign,
        "message_id": message_id,
    }
    if tag_user is not None:
        columns["_tag_user"] = tag_user
    recognised = pl.lit(True) if context.pinned else mail.is_not_null()
    awkward = ~recognised | name.is_null() | (name == "") | list_bad | campaign_bad | message_bad | url_bad | stamp_bad
    return _finish(frame, fields, table, name, event, columns, used, awkward, first, position)


def _ses_recipients(fields: _Fields, kind: pl.Expr) -> tuple[pl.Expr, Used, pl.Expr]:
    """Each record's recipients (`ses.recipients_of`), which list gave them, and where a list is awkward."""
    destination, destination_bad = _string_list(fields, "mail.destination")
    chosen = destination
    chose_destination = pl.lit(True)
    used: Used = {}
    awkward = destination_bad
    for event_type, (path, item) in ses.RECIPIENTS.items():
        listed, bad = _string_list(fields, path, item)
        if item:  # addresses taken out of a list of objects
            listed = fields.keep(f"{event_type}_recipients", listed)
        own = (kind == event_type) & (listed.list.len() > 0).fill_null(False)
        chosen = pl.when(own).then(listed).otherwise(chosen)
        chose_destination = chose_destination & ~own
        awkward = awkward | ((kind == event_type) & bad)
        if not item:  # a list of addresses is used up
            used[path] = own
    used["mail.destination"] = chose_destination
    return chosen, used, awkward


def _string_list(fields: _Fields, path: str, item: str = "") -> tuple[pl.Expr, pl.Expr]:
    expr, dtype = fields.get(path)
    if isinstance(dtype, pl.Null):
        return pl.lit(None, pl.List(pl.String)), pl.lit(False)
    if not isinstance(dtype, pl.List):
        return pl.lit(None, pl.List(pl.String)), expr.is_not_null()
    inner = dtype.inner
    if item:
        fields_of = {f.name: f.dtype for f in inner.fields} if isinstance(inner, pl.Struct) else {}
        if fields_of.get(item) != pl.String:
            return pl.lit(None, pl.List(pl.String)), expr.is_not_null()
        return expr.list.eval(pl.element().struct.field(item)), pl.lit(False)
    if inner != pl.String:
        return pl.lit(None, pl.List(pl.String)), expr.is_not_null()
    return expr, pl.lit(False)


def _first_item(fields: _Fields, path: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """`path[0]` as text; where the list goes from `extra` (it had that one item); where it is awkward."""
    expr, dtype = fields.get(path)
    if isinstance(dtype, pl.Null):
        return pl.lit(None, pl.String), pl.lit(False), pl.lit(False)
    if not isinstance(dtype, pl.List) or dtype.inner not in _TEXT:
        return pl.lit(None, pl.String), pl.lit(False), expr.is_not_null()
    item = expr.list.first().cast(pl.String)
    present = item.is_not_null() & (item != "")
    return pl.when(present).then(item), (present & (expr.list.len() == 1)).fill_null(False), pl.lit(False)


def _ses_time(fields: _Fields, kind: pl.Expr) -> tuple[pl.Expr, Used, pl.Expr]:
    """`<type>.timestamp`, else `mail.timestamp`: the text, where each was used, where it is awkward
    (not text, or text in no accepted form: the adapter names those)."""
    own_chain: Any = pl
    own_paths = {}
    awkward = pl.lit(False)
    for event_type, key in ses.TYPE_OBJECT.items():
        expr, dtype = fields.get(f"{key}.timestamp")
        if isinstance(dtype, pl.Null):
            continue
        if dtype != pl.String:
            awkward = awkward | ((kind == event_type) & expr.is_not_null())
            continue
        own_chain = own_chain.when(kind == event_type).then(expr)
        own_paths[f"{key}.timestamp"] = kind == event_type
    own = pl.lit(None, pl.String)
    if own_paths:
        own = fields.keep("own_time", own_chain.otherwise(own))
    mail, mail_dtype = fields.get("mail.timestamp")
    if mail_dtype != pl.String:
        awkward = awkward | mail.is_not_null()
        mail = pl.lit(None, pl.String)
    own_present = fields.keep("own_time_present", (own.is_not_null() & (own != "")).fill_null(False))
    mail_present = (mail.is_not_null() & (mail != "")).fill_null(False)
    stamp = fields.keep("time", pl.when(own_present).then(own).when(mail_present).then(mail))
    used: Used = {path: condition & own_present for path, condition in own_paths.items()}
    used["mail.timestamp"] = ~own_present & mail_present
    # SES writes `2017-08-05T00:41:02.669Z`: only other text is matched against every accepted form.
    other = pl.when(~stamp.str.contains(_SES_TIME).fill_null(True)).then(stamp)
    bad = other.is_not_null() & ~other.str.strip_chars().str.contains(f"^(?:{ISO_TIMESTAMP})$")
    return stamp, used, awkward | bad.fill_null(False)


_SES_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z$"  # one accepted form


# --- Braze Currents (Avro) -----------------------------------------------------------------------


def braze_rows(frame: pl.DataFrame, first: int, position: str, context: ReadContext) -> Read:
    """Currents records as polars reads them from Avro (`avro._plain_schema`: text, integers, booleans,
    lists of those), with their event type in an `event_type` column (the schema's name, as
    `braze.expand_currents` adds it)."""
    table, fields = braze.TABLE, _Fields(frame)
    if not _is_text(fields, "event_type"):
        return None
    name = pl.col("event_type")
    event = fields.keep("event", fields.rule_event(table, name))
    user, user_used, user_bad = fields.first_of(table.user_id.paths)
    campaign, campaign_used, campaign_bad = fields.first_of(table.campaign_id.paths)
    message_id, message_used, message_bad = fields.first_of(table.message_id.paths)
    url, url_used, url_bad = fields.first_of(table.url.paths)
    stamp, stamp_dtype = fields.get("time")
    machine, machine_dtype = fields.get("machine_open")
    bot, bot_dtype = fields.get("is_suspected_bot_click")
    if not (stamp_dtype.is_integer() or isinstance(stamp_dtype, pl.Null)):
        return None
    if machine_dtype not in (pl.String, pl.Boolean, pl.Null) or bot_dtype not in (pl.Boolean, pl.Null):
        return None  # the adapter's rules for other types (any other value is a machine open, …)
    viewed, clicked = event == CONTRACT_EVENTS["Viewed"], event == CONTRACT_EVENTS["Clicked"]
    used: Used = {"event_type": pl.lit(True), "time": stamp.is_not_null()}
    used["machine_open"] = viewed & machine.is_not_null()
    if machine_dtype == pl.String:  # `braze.MACHINE_OPEN`: "" says nothing, "false" is no, any other text yes
        machine = pl.when(machine == "").then(None).otherwise(machine != "false")
    used["is_suspected_bot_click"] = clicked & bot.is_not_null()
    _mark_first_of(
        used,
        (table.user_id.paths, user_used),
        (table.campaign_id.paths, campaign_used),
        (table.message_id.paths, message_used),
        (table.url.paths, url_used),
    )
    channel = name.str.split(".").list.get(2, null_on_oob=True).replace_strict(braze.CHANNELS, default=None)
    columns = {
        "user_id": user,
        "event": event,
        "timestamp_text": pl.lit(None, pl.String),
        "timestamp_number": stamp.cast(pl.Float64),
        "channel": channel,
        "url": url,
        "campaign_id": campaign,
        "message_id": message_id,
        "machine_open": pl.when(viewed).then(machine.cast(pl.Boolean)),
        "suspected_bot": pl.when(clicked).then(bot.cast(pl.Boolean)),
    }
    awkward = name.is_null() | (name == "") | user_bad | campaign_bad | message_bad | url_bad
    return _finish(frame, fields, table, name, event, columns, used, awkward, first, position)


# --- shared ---------------------------------------------------------------------------------------

Reader = Callable[[pl.DataFrame, int, str, ReadContext], Read]
READERS: dict[str, Reader] = {"sendgrid": sendgrid_rows, "ses": ses_rows, "braze": braze_rows}


def _mark_first_of(used: Used, *picked: tuple[tuple[str, ...], list[pl.Expr]]) -> None:
    """Mark the top-level fields `first_of` took (its paths, and where each path gave the value) as used."""
    for paths, conditions in picked:
        for path, condition in zip(paths, conditions, strict=True):
            used[path] = used[path] | condition if path in used else condition


def _is_text(fields: _Fields, path: str) -> bool:
    return fields.get(path)[1] == pl.String


def _merge(used: Used, path: str, condition: pl.Expr) -> None:
    *parents, leaf = path.split(".")
    node = used
    for step in parents:
        node = node.setdefault(step, {})
        if not isinstance(node, dict):
            return
    node[leaf] = node[leaf] | condition if isinstance(node.get(leaf), pl.Expr) else condition


def _finish(
    frame: pl.DataFrame,
    fields: _Fields,
    table: Table,
    name: pl.Expr,
    event: pl.Expr,
    columns: dict[str, pl.Expr],
    used: Used,
    awkward: pl.Expr,
    first: int,
    position: str,
) -> Read:
    """Rows of the mapped records, ignored events counted; None when some record is awkward.

    Computed in steps, each a column that the next ones use (as one expression, polars would compute
    a shared part again wherever it is used): what the fields keep (`_Fields.keep`); the columns and
    each condition of `used`; the `extra` text; its null members cut (`Extra.cut`) and what the cut
    left checked; an empty `{}` made null."""
    if any(name.startswith("_") for name in frame.columns):
        return None  # a field that could be taken for one of the columns made here (`_record`, …)
    conditions: dict[str, pl.Expr] = {}
    named_used = _named(used, conditions)
    recipients = columns.pop("_recipients", None)
    if recipients is not None:  # no recipient is one event without a user (which declines the block)
        nobody = pl.lit([None], pl.List(pl.String))
        recipients = pl.when(recipients.list.len().fill_null(0) > 0).then(recipients).otherwise(nobody)
        recipients = fields.keep("recipients", recipients)
    tag_user = columns.pop("_tag_user", None)
    events_of = recipients.list.len().fill_null(0).clip(lower_bound=1) if recipients is not None else pl.lit(1)
    lazy = frame.lazy()
    for column, expr in fields.kept:  # in order: each may use those before it
        lazy = lazy.with_columns(expr.alias(column))
    lazy = lazy.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_record"),
        name.alias("_name"),
        events_of.alias("_events"),
        awkward.fill_null(True).alias("_awkward"),
        **{key: condition.fill_null(False) for key, condition in conditions.items()},
        **{f"_column_{key}": value for key, value in columns.items()},
        **({"_recipient": recipients} if recipients is not None else {}),
        **({"_column_user_id": tag_user} if tag_user is not None else {}),
    )
    extra = extra_expr(frame, named_used)
    # Written once, then cut and checked: as one expression, polars would write each record again per use.
    lazy = lazy.with_columns(
        extra.text.alias("_extra"), (pl.col("_awkward") | extra.awkward.fill_null(True)).alias("_awkward")
    )
    if extra.cut is not None:
        lazy = lazy.with_columns(extra.cut.cut(pl.col("_extra")).alias("_extra"))
        lazy = lazy.with_columns(pl.col("_awkward") | extra.cut.left(pl.col("_extra")))
    lazy = lazy.with_columns(pl.when(pl.col("_extra") != "{}").then(pl.col("_extra")).alias("_extra"))
    outputs = [*columns, *(["user_id"] if tag_user is not None else [])]
    kept = ["_record", "_name", "_events", "_awkward", "_extra", *(["_recipient"] if recipients is not None else [])]
    lazy = lazy.select(*kept, *(pl.col(f"_column_{key}").alias(key) for key in outputs))
    mapped = pl.col("event").is_not_null()
    refused = lazy.select(pl.col("_awkward").any())
    ignored = lazy.filter(~mapped).group_by("_name").agg(pl.col("_events").sum())
    rows = lazy.filter(mapped)
    if recipients is not None:  # an SES record's row once per recipient (`… event K` when several)
        rows = rows.with_columns(pl.int_ranges(pl.col("_events")).alias("_event")).explode("_recipient", "_event")
        rows = rows.with_columns(pl.when(pl.col("_events") > 1).then(pl.col("_event")).otherwise(-1).cast(pl.Int64))
        if tag_user is None:
            rows = rows.with_columns(pl.col("_recipient").alias("user_id"))
    else:
        rows = rows.with_columns(pl.lit(-1, pl.Int64).alias("_event"))
    where = pl.format(position, pl.col("_record") + first)
    where = pl.when(pl.col("_event") < 0).then(where).otherwise(pl.format("{} event {}", where, pl.col("_event")))
    rows = rows.with_columns(
        pl.col("user_id").str.strip_chars(TRIM),
        where.alias("source_position"),
        pl.col("_extra").alias("extra"),
        pl.lit(None, pl.String).alias("wrong_type"),
        pl.lit(None, pl.String).alias("user_id_conflict"),
        pl.lit("").alias("raw"),
        pl.lit(table.provider).alias("source_format"),
        *(pl.lit(None, pl.Boolean).alias(flag) for flag in ("machine_open", "suspected_bot") if flag not in columns),
        *(pl.lit(None, pl.String).alias(text) for text in ("message_type",) if text not in columns),
    )
    checked, counted, collected = pl.collect_all([refused, ignored, rows.select(*ROW_COLUMNS, "_record")])
    no_user = collected.select((pl.col("user_id").is_null() | (pl.col("user_id") == "")).any()).item()
    if checked.item() or no_user:
        return None  # the adapter words what is wrong
    ignored_events: Counter[Ignored] = Counter({(table.provider, n): int(c) for n, c in counted.iter_rows()})
    return collected.drop("_record"), collected["_record"].to_numpy(), ignored_events


def _named(used: Used, conditions: dict[str, pl.Expr]) -> Used:
    """`used` with each condition computed once, as a column `_used_N` (added to `conditions`)."""
    out: Used = {}
    for key, value in used.items():
        if isinstance(value, pl.Expr):
            column = f"_used_{len(conditions)}"
            conditions[column] = value
            out[key] = pl.col(column)
        else:
            out[key] = _named(value, conditions)
    return out


# --- `extra`, as `base.extra_json` writes it ---------------------------------------------------------


class Extra(NamedTuple):
    """Each record's `extra` as an object text, where it cannot be written exactly, and the cut that
    must still take the null members out of that text (None: it has none). The text is `{}` for a
    record with nothing left (after the cut), which the caller makes null."""

    text: pl.Expr
    awkward: pl.Expr
    cut: _NullCut | None


def extra_expr(frame: pl.DataFrame, used: Used) -> Extra:
    """Each record's `extra` text, before the cut of its null members (the caller applies `Extra.cut`).

    Polars writes the JSON (it escapes as Python's json does) of each record rebuilt with its keys
    sorted; members that are null or went to a column (`used`) must then go. When only top-level
    fields went to columns (SendGrid), the record is written member by member, leaving those out;
    otherwise (SES) it is written whole, to have its null members cut out of the text (`_NullCut`):
    cheaper where the records are large and nested (writing each member on its own, leaving out the
    null ones, measured slower)."""
    nulls, cut = _NullCheck(frame), _NullCut(frame.schema)
    fields: list[tuple[str, pl.Expr, DType]] = [(name, pl.col(name), dtype) for name, dtype in frame.schema.items()]
    if any(isinstance(below, dict) for below in used.values()):
        record, awkward = _rebuilt(fields, used, nulls)
        if not cut.usable:
            return Extra(pl.lit("{}"), pl.lit(True), None)
        return Extra(record.struct.json_encode(), awkward, cut)
    text, awkward = _member_by_member(fields, used, nulls, cut)
    return Extra(text, awkward, None)


class _NullCut:
    """Cuts the null members out of the JSON text polars wrote for a block's records.

    A null member is `"key":null` for one of the block's keys (any depth): after another member it
    goes with the comma before it, `,"key":null`; a first member leaves `{` (or `{}`). Such a match
    cannot start inside a string: its quote follows `,` or `{`, so it is not escaped; were it the
    closing quote of a string, a `:`, `,`, `]` or `}` would follow it, and no key may begin with one
    of those (a block with such a key declines). Whatever the cut leaves that looks like a null
    member (a key written otherwise than expected, a string holding `":null`) makes the record awkward.
    """

    def __init__(self, schema: pl.Schema) -> None:
        names: set[str] = set()
        for name, dtype in schema.items():
            names.add(name)
            _names_within(dtype, names)
        written = sorted(json.dumps(name, ensure_ascii=False)[1:-1] for name in names)
        # (keys of such length in all would make a regex too large to compile: record by record)
        small = sum(len(key) for key in written) <= _MOST_KEY_TEXT
        self.usable = small and not any(key[:1] in _CLOSING_FOLLOWERS for key in written)
        keys = "|".join(_regex_literal(key) for key in written)
        self._after = f',"(?:{keys})":null'
        self._first = f'\\{{"(?:{keys})":null,?'

    def __call__(self, text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
        """The text without its null members, and where it cannot be trusted."""
        if not self.usable:
            return text, pl.lit(True)
        cut = self.cut(text)
        return cut, self.left(cut)

    def cut(self, text: pl.Expr) -> pl.Expr:
        return text.str.replace_all(self._after, "").str.replace_all(self._first, "{")

    @staticmethod
    def left(cut: pl.Expr) -> pl.Expr:
        """Where the cut text still holds what looks like a null member."""
        return cut.str.contains('":null', literal=True).fill_null(False)


_CLOSING_FOLLOWERS = (":", ",", "]", "}")  # what may follow the closing quote of a string
_MOST_KEY_TEXT = 50_000  # characters; Rust's regex refused 300k (its compiled size limit)
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _names_within(dtype: DType, names: set[str]) -> None:
    if isinstance(dtype, pl.Struct):
        for field in dtype.fields:
            names.add(field.name)
            _names_within(field.dtype, names)
    elif isinstance(dtype, pl.List | pl.Array):
        _names_within(dtype.inner, names)


def _regex_literal(text: str) -> str:
    return "".join(f"\\{char}" if char in _REGEX_META else char for char in text)


class _NullCheck:
    """Whether an object's fields hold a null anywhere in the block."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def nullable(self, expr: pl.Expr) -> bool:
        return bool(self.frame.select(expr.null_count()).item())

    def has_nulls(self, expr: pl.Expr, dtype: pl.Struct) -> bool:
        counts = [expr.struct.field(field.name).null_count() for field in dtype.fields]
        return bool(counts) and bool(self.frame.select(pl.sum_horizontal(counts)).item())

    def anywhere(self, expr: pl.Expr, dtype: DType) -> bool:
        """Whether a value may hold a null member at any depth (objects in lists are not looked into)."""
        if isinstance(dtype, pl.Struct):
            if self.has_nulls(expr, dtype):
                return True
            return any(self.anywhere(expr.struct.field(field.name), field.dtype) for field in dtype.fields)
        return _holds_objects_in_lists(dtype)


def _member_by_member(
    fields: list[tuple[str, pl.Expr, DType]], used: Used, nulls: _NullCheck, cut: _NullCut
) -> tuple[pl.Expr, pl.Expr]:
    """An object's text written one member at a time, keys sorted, leaving out null and used members."""
    members, awkward = [], pl.lit(False)
    for name, expr, dtype in sorted(fields, key=lambda field: field[0]):
        present = expr.is_not_null()
        if isinstance(used.get(name), pl.Expr):  # left out where it went to a column
            present = present & ~used[name].fill_null(False)
        value, bad = _writable(expr, dtype)
        written = pl.struct(value.alias(name)).struct.json_encode()  # `{"name":value}`
        if nulls.anywhere(expr, dtype):
            written, left = cut(written)
            bad = bad | left
        member = written.str.strip_prefix("{").str.strip_suffix("}")
        members.append(pl.when(present).then(member))
        awkward = awkward | (present & bad)
    body = pl.concat_str(members, separator=",", ignore_nulls=True) if members else pl.lit("")
    return pl.concat_str([pl.lit("{"), body, pl.lit("}")]), awkward


def _rebuilt(fields: list[tuple[str, pl.Expr, DType]], used: Used | None, nulls: _NullCheck) -> tuple[pl.Expr, pl.Expr]:
    """An object rebuilt with its keys sorted and the fields `used` for a column nulled where they were."""
    members, awkward = [], pl.lit(False)
    for name, expr, dtype in sorted(fields, key=lambda field: field[0]):
        below = (used or {}).get(name)
        if isinstance(below, pl.Expr):
            kept = ~below.fill_null(False)
            value, bad = _writable(expr, dtype)
            value, bad = pl.when(kept).then(value), kept & bad
        elif isinstance(below, dict) and isinstance(dtype, pl.Struct) and dtype.fields:  # (`{}` is written as it is)
            inner = [(field.name, expr.struct.field(field.name), field.dtype) for field in dtype.fields]
            value, bad = _rebuilt(inner, below, nulls)
            # A missing object stays missing (rebuilt, it would be an object of nulls, written `{}`).
            value = pl.when(expr.is_not_null()).then(value) if nulls.nullable(expr) else value
            bad = expr.is_not_null() & bad
        else:
            value, bad = _writable(expr, dtype)
        members.append(value.alias(name))
        awkward = awkward | bad
    if not members:
        return pl.lit(None, pl.Struct([])), awkward
    return pl.struct(members), awkward


def _writable(expr: pl.Expr, dtype: DType) -> tuple[pl.Expr, pl.Expr]:
    """The value as polars should write it (objects in lists with their keys sorted), and where it cannot
    be written exactly: a number with a fraction (`1` or `1.0`?), a date Arrow recognised (its text is
    lost)."""
    if _plain(dtype):
        return expr, pl.lit(False)
    if isinstance(dtype, pl.Struct) and _writable_type(dtype):
        fields = sorted(dtype.fields, key=lambda field: field.name)
        values = [_writable(expr.struct.field(field.name), field.dtype) for field in fields]
        rebuilt = pl.struct([value.alias(field.name) for (value, _), field in zip(values, fields, strict=True)])
        return pl.when(expr.is_not_null()).then(rebuilt), pl.lit(False)
    if isinstance(dtype, pl.List) and _writable_type(dtype.inner):
        item, _ = _writable(pl.element(), dtype.inner)
        return expr.list.eval(item), pl.lit(False)
    return pl.lit(None), pl.lit(True)


def _plain(dtype: DType) -> bool:
    """Written as it is: scalars, lists of them, and structs whose keys are sorted all the way down."""
    if isinstance(dtype, pl.Struct):
        names = tuple(field.name for field in dtype.fields)
        return _sorted(names) and all(_plain(field.dtype) for field in dtype.fields)
    if isinstance(dtype, pl.List):
        return _plain(dtype.inner)
    return dtype == pl.String or dtype == pl.Boolean or dtype.is_integer() or isinstance(dtype, pl.Null)


def _holds_objects_in_lists(dtype: DType) -> bool:
    if isinstance(dtype, pl.List):
        return isinstance(dtype.inner, pl.Struct) or _holds_objects_in_lists(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_holds_objects_in_lists(field.dtype) for field in dtype.fields)
    return False


@cache
def _sorted(names: tuple[str, ...]) -> bool:
    return list(names) == sorted(names)


def _writable_type(dtype: DType) -> bool:
    if isinstance(dtype, pl.Struct):
        return all(_writable_type(field.dtype) for field in dtype.fields)
    if isinstance(dtype, pl.List):
        return _writable_type(dtype.inner)
    return dtype == pl.String or dtype == pl.Boolean or dtype.is_integer() or isinstance(dtype, pl.Null)
