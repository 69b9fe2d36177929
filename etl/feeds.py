"""Split a landing file into records ("units") of raw JSON text, isolating every syntax error.

A `.json` file is a sequence of JSON values (normally one array, or one object). Arrays are read
element by element from a streaming text buffer, so a multi-GB document is never held whole, and a
broken element is cut out at its structural end so the elements after it still load. NDJSON files
are read line by line.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from etl.storage import FeedReadError

FEED_SUFFIXES = (".json", ".ndjson", ".jsonl")
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024

_SURROGATE = re.compile("[\udc80-\udcff]")
_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_END = re.compile(r'["\\]')
_WHITESPACE = " \t\r\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


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


def iter_units(name: str, chunks: Iterator[bytes], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[Unit]:
    """Every record in a file named `name` whose decompressed bytes arrive as `chunks`."""
    if is_line_delimited(name):
        return iter_line_units(chunks, max_record_bytes)
    return iter_document_units(chunks, max_record_bytes)


def parse_json(text: str) -> tuple[Any, tuple[str, str] | None]:
    """Parse one record's text; on failure the reason code and a detail with line and column."""
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as err:
        return None, ("invalid_json", f"{err.msg} at line {err.lineno}, column {err.colno}")
    except RecursionError:
        return None, ("too_deeply_nested", "the record nests arrays or objects too deeply to read")
    except ValueError as err:
        return None, ("invalid_json", str(err))


# --- NDJSON ---------------------------------------------------------------------------------


def iter_line_units(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[Unit]:
    for number, (line, read_error) in enumerate(_iter_lines(chunks, max_record_bytes), start=1):
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        stripped = line.strip(b" \t\r\n")
        position = f"line {number}"
        if read_error:
            if stripped:
                yield Unit(position, _lenient(stripped), error=("invalid_json", read_error))
            continue
        if not stripped:
            continue
        if len(stripped) > max_record_bytes:
            detail = f"the line is {len(stripped)} bytes, over the limit of {max_record_bytes}"
            yield Unit(position, _lenient(stripped[:4096]), error=("record_too_large", detail))
            continue
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as err:
            detail = f"byte {err.start + 1} of line {number} is not valid UTF-8"
            yield Unit(position, _lenient(stripped), error=("invalid_utf8", detail))
            continue
        value, error = parse_json(text)
        if error and error[0] == "invalid_json":
            error = ("invalid_json", error[1].replace("at line 1,", f"at line {number},"))
        yield Unit(position, text, value, error)


def _iter_lines(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[tuple[bytes, str]]:
    """Lines of the stream; a final tuple element is set when the stream broke off inside a line."""
    carry = b""
    try:
        for chunk in chunks:
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                yield line, ""
            if len(carry) > max_record_bytes:
                # Keep the overlong line's size known without holding it: it is reported whole below.
                yield carry, ""
                carry = b""
    except FeedReadError as err:
        yield carry, f"{err}; the file ends inside this line"
        return
    if carry:
        yield carry, ""


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
        if not self.dirty and _SURROGATE.search(decoded):
            self.dirty = True
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

    def next_char(self) -> str:
        """Skip white space; the next character, or "" at the end of the stream."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
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


def iter_document_units(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[Unit]:
    buffer = _TextBuffer(chunks)
    if buffer.next_char() == "\ufeff":
        buffer.pos += 1
    top = 0
    while char := buffer.next_char():
        name = "document" if top == 0 else f"value {top}"
        if char == "[":
            buffer.pos += 1
            yield from _iter_array(buffer, "" if top == 0 else f"{name} ", max_record_bytes)
        else:
            yield _decode_value(buffer, name, max_record_bytes)
        top += 1


def _iter_array(buffer: _TextBuffer, prefix: str, max_record_bytes: int) -> Iterator[Unit]:
    index = 0
    while True:
        buffer.compact()
        char = buffer.next_char()
        if char in ("", "]"):
            buffer.pos += 1 if char else 0
            return
        if char == ",":  # separators, and the stray or trailing commas people leave, carry no data
            buffer.pos += 1
            continue
        yield _decode_value(buffer, f"{prefix}element {index}", max_record_bytes)
        index += 1


def _decode_value(buffer: _TextBuffer, position: str, max_record_bytes: int) -> Unit:
    start = buffer.pos
    while True:
        text = buffer.text
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as err:
            end_or_none = _structural_end(text, start)
            if end_or_none is None and _can_grow(buffer, start, max_record_bytes):
                continue
            return _bad_value(buffer, position, start, end_or_none, err.pos, err.msg, max_record_bytes)
        except RecursionError:
            end_or_none = _structural_end(text, start)
            if end_or_none is None and _can_grow(buffer, start, max_record_bytes):
                continue
            return _cut(buffer, position, start, end_or_none, ("too_deeply_nested", "the record nests too deeply"))
        except ValueError as err:  # NaN/Infinity constants, integers too long to convert
            return _cut(buffer, position, start, _structural_end(text, start), ("invalid_json", str(err)))
        if end >= len(text) and _can_grow(buffer, start, max_record_bytes):
            continue  # a number may go on in the next chunk
        break
    if end - start > max_record_bytes:
        detail = f"the record is {end - start} characters, over the limit of {max_record_bytes}"
        return _cut(buffer, position, start, end, ("record_too_large", detail))
    raw = text[start:end]
    buffer.pos = end
    if buffer.dirty and _SURROGATE.search(raw):
        offset = _SURROGATE.search(raw).start()  # type: ignore[union-attr]
        line = buffer.line_at(start + offset)
        detail = f"invalid UTF-8 byte at line {line}, column {buffer.column_at(start + offset)}"
        return Unit(position, _repair(raw), error=("invalid_utf8", detail))
    return Unit(position, raw, value)


def _can_grow(buffer: _TextBuffer, start: int, max_record_bytes: int) -> bool:
    return len(buffer.text) - start <= max_record_bytes and buffer.fill()


def _bad_value(
    buffer: _TextBuffer,
    position: str,
    start: int,
    end: int | None,
    error_pos: int,
    message: str,
    max_record_bytes: int,
) -> Unit:
    if end is None and len(buffer.text) - start > max_record_bytes:
        detail = f"the record is over the limit of {max_record_bytes} characters"
        return _cut(buffer, position, start, start + max_record_bytes, ("record_too_large", detail))
    if end is None:
        why = buffer.read_error or "the file ends inside this record"
        return _cut(buffer, position, start, None, ("invalid_json", f"truncated: {why}"))
    line, column = buffer.line_at(error_pos), buffer.column_at(error_pos)
    return _cut(buffer, position, start, end, ("invalid_json", f"{message} at line {line}, column {column}"))


def _cut(buffer: _TextBuffer, position: str, start: int, end: int | None, error: tuple[str, str]) -> Unit:
    stop = len(buffer.text) if end is None else max(end, start + 1)
    buffer.pos = stop
    return Unit(position, _repair(buffer.text[start:stop]), error=error)


def _structural_end(text: str, start: int) -> int | None:
    """Where the JSON value starting at `start` ends, judged by brackets and strings alone.

    Stops at a `,` or `]` of the enclosing array, or after the bracket that closes the value.
    None when the text ends first (more input is needed, or the file is truncated).
    """
    depth = 0
    pos = start
    while True:
        match = _STRUCTURE.search(text, pos)
        if match is None:
            return None
        char, pos = match.group(), match.start()
        if char == '"':
            string_end = _string_end(text, pos + 1)
            if string_end is None:
                return None
            pos = string_end
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return pos if char == "]" else pos + 1
            depth -= 1
            if depth == 0:
                return pos + 1
        elif depth == 0:  # a comma outside any bracket ends the value
            return pos
        pos += 1


def _string_end(text: str, pos: int) -> int | None:
    while True:
        match = _STRING_END.search(text, pos)
        if match is None:
            return None
        if match.group() == '"':
            return match.start() + 1
        pos = match.start() + 2


def _repair(text: str) -> str:
    """Text safe to store: undecodable bytes (lone surrogates) become U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
