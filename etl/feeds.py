"""Split a landing file into records ("units") of raw JSON text, isolating every syntax error.

A `.json` file is a sequence of JSON values (normally one array, or one object). Arrays are read
element by element from a streaming text buffer, so a multi-GB document is never held whole. A broken
element is cut out at its structural end (brackets and strings), or at the line where the next element
of a pretty-printed array begins, so the elements after it still load. NDJSON files are read line by
line. Records over the size limit are skipped as a stream, keeping only a preview.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from etl.fastpath import VECTORISED_DEPTH, WINDOW_CHARS, Block, array_block
from etl.storage import FeedReadError

FEED_SUFFIXES = (".json", ".ndjson", ".jsonl")
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
PREVIEW_CHARS = 4096
SLOW_RUN = 5000  # after the vectorised path declines a window

_SURROGATE = re.compile("[\udc80-\udcff]")
_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_END = re.compile(r'["\\]')
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_SEPARATORS = re.compile(r"[ \t\r\n,]*")  # between array elements; stray and trailing commas carry no data
_LINE_COLUMN = re.compile(r"at line 1, column (\d+)$")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(frozen=True)
class Limits:
    """Bounds on one record; what exceeds them is quarantined with its own reason code."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    vectorised: bool = True  # try the vectorised path first (off only to compare both paths)

    @property
    def use_vectorised(self) -> bool:
        """Whether to try the vectorised path: it reads records up to API-payload depth, so a lower
        --max-depth leaves every record to the record-by-record judgement."""
        return self.vectorised and self.max_depth >= VECTORISED_DEPTH


@dataclass(frozen=True)
class Unit:
    """One record's text as found in the file: parsed, or with the reason it could not be."""

    position: str
    raw: str
    value: Any = None
    error: tuple[str, str] | None = None


def is_feed_file(name: str) -> bool:
    lowered = name.lower().removesuffix(".gz")
    return lowered.endswith(FEED_SUFFIXES)


def is_line_delimited(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith((".ndjson", ".jsonl"))


def iter_units(name: str, chunks: Iterator[bytes], limits: Limits | None = None) -> Iterator[Unit | Block]:
    """Every record in a file named `name` whose decompressed bytes arrive as `chunks`."""
    limits = limits or Limits()
    if is_line_delimited(name):
        return iter_line_units(chunks, limits)
    return iter_document_units(chunks, limits)


def parse_json(text: str, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Any, tuple[str, str] | None]:
    """Parse one record's text; on failure the reason code and a detail with line and column."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as err:
        return None, ("invalid_json", f"{err.msg} at line {err.lineno}, column {err.colno}")
    except RecursionError:
        return None, _too_deep(max_depth)
    except ValueError as err:  # NaN/Infinity constants, integers too long to convert
        return None, ("invalid_json", str(err))
    return _check_depth(value, text, max_depth)


def _check_depth(value: Any, raw: str, max_depth: int) -> tuple[Any, tuple[str, str] | None]:
    if raw.count("{") + raw.count("[") <= max_depth:  # cheap bound: cannot nest deeper than it opens
        return value, None
    if _depth(value) > max_depth:
        return None, _too_deep(max_depth)
    return value, None


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _too_deep(max_depth: int) -> tuple[str, str]:
    return "too_deeply_nested", f"the record nests arrays or objects deeper than the limit of {max_depth} levels"


def _too_large(size: int, limits: Limits) -> tuple[str, str]:
    return "record_too_large", f"the record is {size:,} bytes, over the limit of {limits.max_record_bytes:,}"


def _preview(text: str, size: int) -> str:
    return text if len(text) <= PREVIEW_CHARS else f"{text[:PREVIEW_CHARS]}… [{size:,} in all]"


# --- NDJSON ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    data: bytes
    read_error: str = ""
    oversized: int = 0  # the whole line's size when it was over the limit (data is then a preview)


def iter_line_units(chunks: Iterator[bytes], limits: Limits, first_line: int = 1) -> Iterator[Unit]:
    """Every record of NDJSON bytes whose first line is line `first_line` of its file."""
    for number, line in enumerate(_iter_lines(chunks, limits.max_record_bytes), start=first_line):
        data = line.data.removeprefix(codecs.BOM_UTF8) if number == 1 else line.data
        stripped = data.strip(b" \t\r\n")
        position = f"line {number}"
        if line.oversized:
            yield Unit(position, _preview(_lenient(stripped), line.oversized), error=_too_large(line.oversized, limits))
            continue
        if line.read_error:
            if stripped:
                yield Unit(position, _lenient(stripped), error=("invalid_json", line.read_error))
            else:
                yield Unit(position, "", error=("unreadable_file", line.read_error))
            continue
        if not stripped:
            continue
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as err:
            detail = f"byte {err.start + 1} of line {number} is not valid UTF-8"
            yield Unit(position, _lenient(stripped), error=("invalid_utf8", detail))
            continue
        value, error = parse_json(text, limits.max_depth)
        if error and error[0] == "invalid_json" and (where := _LINE_COLUMN.search(error[1])):
            column = int(where.group(1)) + len(data) - len(data.lstrip(b" \t"))
            error = ("invalid_json", f"{error[1][: where.start()]}at line {number}, column {column}")
        yield Unit(position, text, value, error)


def _iter_lines(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[_Line]:
    """The stream's lines; a line over the limit is passed over as it streams, keeping a preview."""
    carry = b""
    skipped = 0  # > 0 while inside an oversized line: bytes of it seen so far
    preview = b""
    try:
        for chunk in chunks:
            parts = (carry + chunk).split(b"\n")
            carry = parts.pop()
            if skipped:
                if not parts:
                    skipped += len(carry)
                    carry = b""
                    continue
                yield _Line(preview, oversized=skipped + len(parts.pop(0)))
                skipped = 0
            for line in parts:
                yield _Line(line) if len(line) <= max_record_bytes else _Line(line[:PREVIEW_CHARS], oversized=len(line))
            if len(carry) > max_record_bytes:
                skipped, preview, carry = len(carry), carry[:PREVIEW_CHARS], b""
    except FeedReadError as err:
        if skipped:
            yield _Line(preview, oversized=skipped + len(carry))
        else:
            yield _Line(carry, read_error=f"truncated: {err}" + ("; the file ends inside this line" if carry else ""))
        return
    if skipped:
        yield _Line(preview, oversized=skipped + len(carry))
    elif carry:
        yield _Line(carry)


def _lenient(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --- JSON documents -------------------------------------------------------------------------


class _TextBuffer:
    """Decoded text of a byte stream, read on demand; invalid UTF-8 bytes become lone surrogates."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text = ""
        self.pos = 0
        self.eof = False
        self.read_error = ""
        self.read_error_reported = False
        self.dirty = False
        self._line_base = 1  # line number of text[0]
        self._line_pos = 0  # text index up to which newlines are counted
        self._line_no = 1  # line number at _line_pos

    def fill(self) -> bool:
        """Append the next chunk; False at the end of the stream."""
        if self.eof:
            return False
        try:
            decoded = self._decoder.decode(next(self._chunks))
        except StopIteration:
            decoded = self._decoder.decode(b"", final=True)
            self.eof = True
        except FeedReadError as err:
            decoded = self._decoder.decode(b"", final=True)
            self.eof = True
            self.read_error = str(err)
        if not self.dirty and not decoded.isascii() and _SURROGATE.search(decoded):
            self.dirty = True  # (isascii is free: an ASCII text cannot hold undecodable bytes)
        self.text += decoded
        return True

    def compact(self) -> None:
        """Drop the text before `pos`, keeping line numbers right."""
        if self.pos == 0 or self.pos * 2 < len(self.text):
            return  # copying the rest only once half is consumed keeps reading linear
        self.line_at(self.pos)
        self._line_base = self._line_no
        self.text = self.text[self.pos :]
        self._line_pos = 0
        self.pos = 0

    def next_char(self, skip: re.Pattern[str] = _WHITESPACE) -> str:
        """Skip what `skip` matches (white space); the next character, or "" at the end of the stream."""
        while True:
            self.pos = skip.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            self.compact()
            if not self.fill():
                return ""

    def line_at(self, index: int) -> int:
        if index < self._line_pos:
            return self._line_base + self.text.count("\n", 0, index)
        self._line_no += self.text.count("\n", self._line_pos, index)
        self._line_pos = index
        return self._line_no

    def column_at(self, index: int) -> int:
        return index - self.text.rfind("\n", 0, index)


def iter_document_units(chunks: Iterator[bytes], limits: Limits) -> Iterator[Unit | Block]:
    buffer = _TextBuffer(chunks)
    if buffer.next_char() == "\ufeff":
        buffer.pos += 1
    top = 0
    while char := buffer.next_char():
        name = "document" if top == 0 else f"value {top}"
        if char == "[":
            buffer.pos += 1
            yield from _iter_array(buffer, "" if top == 0 else f"{name} ", limits)
        else:
            yield _decode_value(buffer, name, limits)
        top += 1
    if buffer.read_error and not buffer.read_error_reported:
        yield Unit("end of file", "", error=("unreadable_file", buffer.read_error))


def _iter_array(buffer: _TextBuffer, prefix: str, limits: Limits) -> Iterator[Unit | Block]:
    index = 0
    slow = 0  # elements to take one by one before the next try of the vectorised path
    while True:
        buffer.compact()
        char = buffer.next_char(_SEPARATORS)
        if char in ("", "]"):
            buffer.pos += 1 if char else 0
            return
        if char == "{" and not slow and limits.use_vectorised:
            block = _array_block(buffer, prefix, index, limits)
            if block is not None:
                yield block
                index += block.records
                continue
            slow = SLOW_RUN
        yield _decode_value(buffer, f"{prefix}element {index}", limits)
        index += 1
        slow = max(slow - 1, 0)


def _array_block(buffer: _TextBuffer, prefix: str, index: int, limits: Limits) -> Block | None:
    while len(buffer.text) - buffer.pos < WINDOW_CHARS and buffer.fill():
        pass
    found = array_block(buffer.text, buffer.pos, index, prefix, limits.max_record_bytes)
    if found is None:
        return None
    block, consumed = found
    buffer.pos += consumed
    return block


def _decode_value(buffer: _TextBuffer, position: str, limits: Limits) -> Unit:
    start = buffer.pos
    while True:
        text = buffer.text
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as err:
            end_or_none = _cut_point(text, start, err.pos)
            if end_or_none is None and _can_grow(buffer, start, limits):
                continue
            return _bad_value(buffer, position, start, end_or_none, err.pos, err.msg, limits)
        except RecursionError:
            end_or_none = _structural_end(text, start)
            if end_or_none is None and _can_grow(buffer, start, limits):
                continue
            return _cut(buffer, position, start, end_or_none, _too_deep(limits.max_depth))
        except ValueError as err:  # NaN/Infinity constants, integers too long to convert
            return _cut(buffer, position, start, _structural_end(text, start), ("invalid_json", str(err)))
        if end >= len(text) and _can_grow(buffer, start, limits):
            continue  # a number may go on in the next chunk
        break
    raw = text[start:end]
    if end - start > limits.max_record_bytes:
        buffer.pos = end
        return Unit(position, _preview(raw, end - start), error=_too_large(end - start, limits))
    buffer.pos = end
    if buffer.dirty and (bad := _SURROGATE.search(raw)):
        line = buffer.line_at(start + bad.start())
        detail = f"invalid UTF-8 byte at line {line}, column {buffer.column_at(start + bad.start())}"
        return Unit(position, _repair(raw), error=("invalid_utf8", detail))
    value, error = _check_depth(value, raw, limits.max_depth)
    return Unit(position, raw, value, error)


def _can_grow(buffer: _TextBuffer, start: int, limits: Limits) -> bool:
    return len(buffer.text) - start <= limits.max_record_bytes and buffer.fill()


def _bad_value(
    buffer: _TextBuffer,
    position: str,
    start: int,
    end: int | None,
    error_pos: int,
    message: str,
    limits: Limits,
) -> Unit:
    if end is None and len(buffer.text) - start > limits.max_record_bytes:
        return _skip_oversized(buffer, position, start, limits)
    if end is None:
        why = buffer.read_error or "the file ends inside this record"
        buffer.read_error_reported = True
        return _cut(buffer, position, start, None, ("invalid_json", f"truncated: {why}"))
    line, column = buffer.line_at(error_pos), buffer.column_at(error_pos)
    return _cut(buffer, position, start, end, ("invalid_json", f"{message} at line {line}, column {column}"))


def _cut(buffer: _TextBuffer, position: str, start: int, end: int | None, error: tuple[str, str]) -> Unit:
    stop = len(buffer.text) if end is None else max(end, start + 1)
    buffer.pos = stop
    return Unit(position, _repair(buffer.text[start:stop].rstrip(" \t\r\n,")), error=error)


def _skip_oversized(buffer: _TextBuffer, position: str, start: int, limits: Limits) -> Unit:
    """Pass over a value too large to hold, chunk by chunk, to its structural end; keep a preview."""
    preview = _repair(buffer.text[start : start + PREVIEW_CHARS])
    state = _ScanState()
    pos, size = start, 0
    while True:
        end = _scan(buffer.text, pos, state)
        if end is not None:
            size += end - pos
            buffer.pos = end
            break
        size += len(buffer.text) - pos
        buffer.pos = len(buffer.text)
        buffer.compact()
        pos = 0
        if not buffer.fill():
            break
    return Unit(position, f"{preview}… [{size:,} in all]", error=_too_large(size, limits))


def _cut_point(text: str, start: int, error_pos: int) -> int | None:
    """Where to cut a value that failed to parse: its structural end, or, when its brackets do not
    balance, the line where the next element of a pretty-printed array begins."""
    structural = _structural_end(text, start)
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    if indent.strip(" \t"):
        return structural  # the element does not begin its line: not a pretty-printed array
    # From the start of the line where parsing failed: that line may itself begin the next element.
    search_from = max(text.rfind("\n", start, error_pos), start + 1)
    resync = re.compile("\n" + re.escape(indent) + r"[{\[]").search(text, search_from)
    if resync is None:
        return structural
    return resync.start() if structural is None or resync.start() < structural else structural


@dataclass
class _ScanState:
    depth: int = 0
    in_string: bool = False
    skip_next: bool = False  # a backslash ended the previous segment


def _structural_end(text: str, start: int) -> int | None:
    """Where the JSON value starting at `start` ends, judged by brackets and strings alone.

    Stops at a `,` or `]` of the enclosing array, or after the bracket that closes the value.
    None when the text ends first (more input is needed, or the file is truncated).
    """
    return _scan(text, start, _ScanState())


def _scan(text: str, pos: int, state: _ScanState) -> int | None:
    """Advance a structural scan over `text` from `pos`; the end of the value, or None to go on."""
    while True:
        if state.skip_next:
            state.skip_next = False
            pos += 1
        if state.in_string:
            match = _STRING_END.search(text, pos)
            if match is None:
                return None
            if match.group() == '"':
                state.in_string = False
                pos = match.end()
                continue
            if match.end() >= len(text):
                state.skip_next = True
                return None
            pos = match.start() + 2
            continue
        match = _STRUCTURE.search(text, pos)
        if match is None:
            return None
        char, pos = match.group(), match.start()
        if char == '"':
            state.in_string = True
            pos += 1
            continue
        if char in "[{":
            state.depth += 1
        elif char in "]}":
            if state.depth == 0:
                return pos if char == "]" else pos + 1
            state.depth -= 1
            if state.depth == 0:
                return pos + 1
        elif state.depth == 0:  # a comma outside any bracket ends the value
            return pos
        pos += 1


def _repair(text: str) -> str:
    """Text safe to store: undecodable bytes (lone surrogates) become U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
