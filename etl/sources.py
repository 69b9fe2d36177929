"""The --sources file (TOML): where which provider's exports land, their options, pseudonymisation.

    pseudonymise = true              # email addresses as user ids are stored as their HMAC (the key
                                     # still comes from ETL_PSEUDONYMISE_KEY, never from this file)
    [sendgrid]                       # a provider's options, for all its records
    campaign_id = "campaign"         # the custom arg holding the campaign id

    [[source]]                       # landing files whose path matches a glob
    glob = "sendgrid/**/*.json"      # relative to the landing zone; `*`, `?`, `[abc]`, `**` (folders)
    provider = "sendgrid"            # read as this provider's records, whatever their shape
    user_id = "customer_id"          # this provider's options, for these files only

Which options a provider has (the field holding the campaign id or the user id, where the provider
leaves that to the sender) is in its table (`etl.reading.providers.<name>.TABLE.options`). Anything
else is a usage error naming its line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from etl import storage
from etl.errors import EtlError, UsageError
from etl.reading import PROVIDERS, SourceRule, Sources
from etl.reading.providers import ADAPTERS

KEY_VARIABLE = "ETL_PSEUDONYMISE_KEY"
_TOP_KEYS = ("pseudonymise", "source", *PROVIDERS)
_FIELD_NAME = re.compile(r"[^.\[\]]+")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def load_sources(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Sources:
    """The sources file at `path` (a local path or an object-store URI; None: there is none) with the
    pseudonymisation key from the environment. Raises UsageError, naming the line, for anything it
    cannot use."""
    environ = os.environ if environ is None else environ
    key = environ.get(KEY_VARIABLE, "").encode("utf-8") or None
    if path is None:
        return Sources(pseudonymise_key=key)
    shown = str(path)
    folder, _, name = shown.rpartition("/")
    try:
        text = storage.read_text(storage.open_store(folder or "."), name)
    except (OSError, UnicodeDecodeError, ValueError, EtlError) as err:
        why = getattr(err, "strerror", None) or str(err).rstrip(".")
        raise UsageError(f"Cannot read the sources file {shown}: {why}.") from err
    return parse_sources(text, shown, key)


def parse_sources(text: str, shown: str, key: bytes | None) -> Sources:
    """A sources file's text (`shown` names it in errors) -> Sources."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = _TOML_LINE.search(str(err))
        line = found.group(1) if found else str(max(len(text.splitlines()), 1))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(err))
        raise UsageError(f"{shown}, line {line}: not valid TOML: {message}.") from err
    lines = _Lines(text, shown)
    for name in document:
        if name not in _TOP_KEYS:
            raise lines.error(
                None, name, f"unknown key `{name}` (expected `pseudonymise`, `source` or a provider: {_known()})"
            )
    pseudonymise = document.get("pseudonymise", False)
    if not isinstance(pseudonymise, bool):
        raise lines.error(None, "pseudonymise", "`pseudonymise` must be true or false")
    if pseudonymise and key is None:
        raise lines.error(None, "pseudonymise", f"pseudonymisation is turned on but {KEY_VARIABLE} is not set")
    general = []
    for provider in PROVIDERS:
        if provider in document:
            table = document[provider]
            if not isinstance(table, dict):
                raise lines.error(None, provider, f"`{provider}` must be a table of options ([{provider}])")
            general.append((provider, _options(table, provider, lines, f"[{provider}]")))
    entries = document.get("source", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise lines.error(None, "source", "`source` must be a list of tables ([[source]])")
    rules = tuple(_rule(entry, index, lines) for index, entry in enumerate(entries))
    return Sources(rules=rules, provider_options=tuple(general), pseudonymise_key=key)


def _rule(entry: dict[str, Any], index: int, lines: _Lines) -> SourceRule:
    table = f"[[source]] #{index + 1}"
    header = ("[[source]]", index)
    if "glob" not in entry:
        raise lines.error(header, None, f"{table} has no `glob`")
    written = entry["glob"]
    if not isinstance(written, str):
        raise lines.error(header, "glob", "`glob` must be text")
    try:
        pattern = glob_pattern(written)
    except ValueError as err:
        raise lines.error(header, "glob", f"bad glob {written!r}: {err}") from err
    provider = entry.get("provider")
    if provider is not None and provider not in PROVIDERS:
        raise lines.error(header, "provider", f"no provider is named {provider!r} (known: {_known()})")
    options = {key: value for key, value in entry.items() if key not in ("glob", "provider")}
    if options and provider is None:
        first = next(iter(options))
        raise lines.error(header, first, f"unknown key `{first}` (options need a `provider`)")
    parsed = _options(options, provider, lines, header) if provider else ()
    return SourceRule(written, pattern, provider, parsed)


def _options(table: dict[str, Any], provider: str, lines: _Lines, where: Any) -> tuple[tuple[str, str], ...]:
    known = ADAPTERS[provider].TABLE.options
    header = (where, 0) if isinstance(where, str) else where
    out = []
    for name, value in table.items():
        if name not in known:
            has = f"it has {', '.join(f'`{k}`' for k in known)}" if known else "it has none"
            raise lines.error(header, name, f"{provider} has no option `{name}` ({has})")
        if not isinstance(value, str) or not _FIELD_NAME.fullmatch(value):
            raise lines.error(header, name, f"`{name}` must be a field name: text without `.`, `[` or `]`")
        out.append((name, value))
    return tuple(out)


def glob_pattern(pattern: str) -> str:
    """A glob over landing-relative paths as a regular expression: `*` and `?` within a folder name,
    `[abc]`/`[!abc]` a character, `**` (a whole path part) any number of folders. ValueError when bad."""
    if not pattern or pattern.startswith("/") or "\\" in pattern:
        raise ValueError("a glob is a non-empty path relative to the landing zone, with `/` between folders")
    parts = pattern.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("empty, `.` and `..` path parts are not allowed")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in part:
            raise ValueError("`**` must be a whole path part (`a/**/b`)")
        out.append(_part_pattern(part) + ("" if last else "/"))
    return "".join(out)


def _part_pattern(part: str) -> str:
    out, pos = [], 0
    while pos < len(part):
        char = part[pos]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = part.find("]", pos + 2)
            if end < 0:
                raise ValueError("a `[` has no closing `]`")
            body = part[pos + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                raise ValueError("`[]` names no character")
            escaped = re.escape(body).replace("\\-", "-")
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
            pos = end
        elif char == "]":
            raise ValueError("a `]` has no opening `[`")
        else:
            out.append(re.escape(char))
        pos += 1
    return "".join(out)


def _known() -> str:
    return ", ".join(PROVIDERS)


class _Lines:
    """Finds the line of a key in the file's text, for errors (tomllib reports no lines of its values)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")

    def __init__(self, text: str, shown: str) -> None:
        self.lines = text.splitlines()
        self.shown = shown

    def error(self, header: tuple[str, int] | None, key: str | None, message: str) -> UsageError:
        return UsageError(f"{self.shown}, line {self.line(header, key)}: {message}.")

    def line(self, header: tuple[str, int] | None, key: str | None) -> int:
        """The line of `key` in the table `header` ("[name]" or "[[name]]", and which occurrence), or
        at the top (header None); the header's line when the key is not found."""
        current: str | None = None
        seen: dict[str, int] = {}
        header_line = 1
        for number, line in enumerate(self.lines, start=1):
            found = self._HEADER.match(line)
            if found:
                current = f"{found.group(1)}{found.group(2)}{']' * len(found.group(1))}"
                seen[current] = seen.get(current, -1) + 1
                if header and current == header[0] and seen[current] == header[1]:
                    header_line = number
                continue
            here = current is None if header is None else (current == header[0] and seen.get(current) == header[1])
            if here and key is not None and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
                return number
            if here and header is None and key is not None and re.match(rf"\s*\[\[?\s*{re.escape(key)}\b", line):
                return number
        if header is None and key is not None:  # a provider or `source` given as a table
            for number, line in enumerate(self.lines, start=1):
                if re.match(rf"\s*\[\[?\s*[\"']?{re.escape(key)}[\"']?\s*\]", line):
                    return number
        return header_line
