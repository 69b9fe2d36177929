"""Judge candidate rows by the contract: the valid events, and a reason and detail for every other row."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from contracts import REASONS, EventCandidate, event_columns

_PRIORITY = {reason.code: rank for rank, reason in enumerate(REASONS)}
REJECTION_SCHEMA = {
    "source_position": pl.String,
    "raw": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "_ordinal": pl.Int64,
}


def split_valid(candidates: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid events with the event columns and `event_date`, rejected rows with reason and detail)."""
    indexed = candidates.with_row_index("_row")
    failures = contract_failures(candidates)
    if failures.is_empty():
        return _event_rows(indexed), pl.DataFrame(schema=REJECTION_SCHEMA)
    verdict = (
        failures.with_columns(rank=pl.col("reason").replace_strict(_PRIORITY, return_dtype=pl.Int64))
        .sort("_row", "rank")
        .group_by("_row", maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True))
    )
    judged = indexed.join(verdict, on="_row", how="left", maintain_order="left")  # rows stay in file order
    valid = judged.filter(pl.col("reason").is_null()).drop("reason")
    rejected = judged.filter(pl.col("reason").is_not_null()).select(
        "source_position",
        "raw",
        reason=pl.col("reason").list.first(),
        detail=_detail(pl.col("reason").list.first()) + _also(pl.col("reason")),
        _ordinal=pl.col("_ordinal"),
    )
    return _event_rows(valid), rejected


def contract_failures(candidates: pl.DataFrame) -> pl.DataFrame:
    """(row index, reason code) for every rule of the contract a row breaks."""
    schema = EventCandidate.to_schema()
    try:
        schema.validate(candidates, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pl.DataFrame(schema={"_row": pl.UInt32, "reason": pl.String})
    if cases["index"].null_count():
        structural = cases.filter(pl.col("index").is_null()).row(0, named=True)
        raise RuntimeError(f"candidate frame does not match the contract's columns: {structural}")
    reasons = [
        _reason_code(schema, column, check) for column, check in zip(cases["column"], cases["check"], strict=True)
    ]
    return pl.DataFrame(
        {"_row": cases["index"].cast(pl.UInt32), "reason": reasons}, schema={"_row": pl.UInt32, "reason": pl.String}
    ).unique(maintain_order=True)


def _reason_code(schema: pa.DataFrameSchema, column: str, check: str) -> str:
    """A failed check's reason code: the check's own name, or the column's `reasons` metadata."""
    if check in _PRIORITY:
        return check
    metadata = (schema.columns[column].metadata or {}) if column in schema.columns else {}
    reasons = metadata.get("reasons", {})
    return str(reasons.get(check, reasons.get("*", "wrong_type")))


def _event_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(*event_columns(), "event_date", "_ordinal")


def _detail(reason: pl.Expr) -> pl.Expr:
    details = {
        "missing_user_id": pl.lit("no user id: `id` and `userId` are missing, null or empty"),
        "conflicting_user_id": pl.col("user_id_conflict"),
        "missing_event": pl.lit("no `event` name"),
        "unknown_event": pl.format("event '{}' is not one of the eight message events", pl.col("event")),
        "invalid_timestamp": pl.format(
            "timestamp '{}' is not an accepted date-time or epoch number (or is outside years 1-9999)",
            pl.col("timestamp_input"),
        ),
        "future_timestamp": pl.format(
            "timestamp {} is more than 24 hours after the file was ingested ({})",
            pl.col("event_ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
            pl.col("ingested_at").dt.to_string("%Y-%m-%dT%H:%M:%SZ"),
        ),
        "wrong_type": pl.col("wrong_type"),
    }
    detail = reason
    for code, text in details.items():
        detail = pl.when(reason == code).then(text).otherwise(detail)
    return detail.fill_null(reason)


def _also(reasons: pl.Expr) -> pl.Expr:
    others = reasons.list.slice(1)
    return pl.when(others.list.len() > 0).then(pl.lit("; also: ") + others.list.join(", ")).otherwise(pl.lit(""))
