"""Email addresses as user ids are personal data (SPEC §2.3): with a key, each is replaced by
HMAC-SHA256(key, the lower-cased address) in hex, the same in every file and from every provider, so
that a user's events still join. The key itself is never written anywhere."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

#: An email address: something, one `@`, something, and no white space.
EMAIL = r"^[^@\s]+@[^@\s]+$"


def pseudonymise_users(rows: pl.DataFrame, key: bytes | None) -> pl.DataFrame:
    """`rows` with every `user_id` that is an email address (once trimmed) replaced by its HMAC."""
    if not key or rows.is_empty():
        return rows
    address = pl.col("user_id").str.strip_chars().str.to_lowercase()
    is_email = pl.col("user_id").str.strip_chars().str.contains(EMAIL).fill_null(False)
    found = rows.select(address.filter(is_email).unique()).to_series().to_list()
    if not found:
        return rows
    digests = {text: hmac_hex(key, text) for text in found}
    hashed = address.replace_strict(digests, default=None, return_dtype=pl.String)
    return rows.with_columns(pl.when(is_email).then(hashed).otherwise(pl.col("user_id")).alias("user_id"))


def hmac_hex(key: bytes, address: str) -> str:
    """HMAC-SHA256 of an (already lower-cased) address, in hex."""
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()
