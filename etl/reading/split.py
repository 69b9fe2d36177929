"""Split a file's decompressed bytes into records ("units") of raw JSON text, isolating every syntax error.

NDJSON is cut into blocks of whole lines (`line_blocks`, the one line splitter): the vectorised path
takes a clean block at once, `line_units` splits any block into its records. A line over the size
limit is passed over as it streams, keeping only a preview.

A `.json` file is a sequence of JSON values (normally one array, or one object). Arrays are read
element by element from a streaming text buffer, so a multi-GB document is never held whole; a
`WindowReader` (the vectorised path) may take many elements at once. A broken element is cut out at
its structural end (`scan`), or at the line where the next element of a pretty-printed array begins,
so the elements after it still load. Records over the size limit are skipped as a stream.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from etl.reading.scan import ScanState, cut_point, scan, value_end
from etl.reading.types import DEFAULT_MAX_DEPTH, Block, FeedReadError, Limits, Unit, is_line_delimited

PREVIEW_CHARS = 4096

_SURROGATE = re.compile("[\udc80-\udcff]")
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_SEPARATORS = re.compile(r"[ \t\r\n,]*")  # between array elements; stray and trailing commas carry no data
_LINE_COLUMN = re.compile(r"at line 1, column (\d+)$")
LINE_BREAK = ord("\n")

#: Reads the objects at the start of an array window at once: (text, start, index of the first
#: element, position prefix) -> the Block and how many characters it took, or None to go one by one.
WindowReader = Callable[[str, int, int, str], tuple[Block, int] | None]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def iter_units(
    name: str, chunks: Iterator[bytes], limits: Limits | None = None, read_window: WindowReader | None = None
) -> Iterator[Unit | Block]:
    """Every record in a file named `name` whose decompressed bytes arrive as `chunks`; Blocks only
    where `read_window` took part of an array at once."""
    limits = limits or Limits()
    if is_line_delimited(name):
        return iter_line_units(chunks, limits)
    return iter_document_units(chunks, limits, read_window)


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
class Lines:
    """Lines `first` to `first + count - 1` of an NDJSON stream: whole lines, each ending in a line
    break but perhaps the file's last. Or one line that could not be kept whole: over the size limit
    (`oversized` is its size, `data` a preview) or cut short by a read error (`read_error`)."""

    data: bytes
    first: int
    count: int = 1
    oversized: int = 0
    read_error: str = ""

    @property
    def plain(self) -> bool:
        return not self.oversized and not self.read_error


def line_blocks(chunks: Iterator[bytes], max_record_bytes: int) -> Iterator[Lines]:
    """The stream as blocks of whole lines, one block per chunk that completes a line. A line going
    over the limit before its end arrived is passed over as it streams, keeping its first
    PREVIEW_CHARS bytes; long lines complete within a block are left to `line_units`."""
    number = 1
    carry = b""
    skipped = 0  # > 0 while inside an oversized line: bytes of it seen so far
    preview = b""
    try:
        for chunk in chunks:
            if skipped:
                end = chunk.find(b"\n")
                preview += chunk[: min(PREVIEW_CHARS - len(preview), len(chunk) if end < 0 else end)]
                if end < 0:
                    skipped += len(chunk)
                    continue
                yield Lines(preview, number, oversized=skipped + end)
                number, skipped, chunk = number + 1, 0, chunk[end + 1 :]
            cut = chunk.rfind(b"\n") + 1
            if cut:  # the lines completed, copied once (a chunk of whole lines not at all)
                data = chunk if not carry and cut == len(chunk) else b"".join((carry, memoryview(chunk)[:cut]))
                count = line_breaks(data)
                yield Lines(data, number, count)
                number += count
                carry = chunk[cut:]
            else:
                carry += chunk
            if len(carry) > max_record_bytes:
                skipped, preview, carry = len(carry), carry[:PREVIEW_CHARS], b""
    except FeedReadError as err:
        if skipped:
            yield Lines(preview, number, oversized=skipped)
        else:
            tail = "; the file ends inside this line" if carry else ""
            yield Lines(carry, number, read_error=f"truncated: {err}{tail}")
        return
    if skipped:
        yield Lines(preview, number, oversized=skipped)
    elif carry:
        yield Lines(carry, number)


def line_breaks(data: bytes) -> int:
    """How many `\n` the bytes hold (numpy counts them in 60 % of the time `bytes.count` takes)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == LINE_BREAK))


def iter_line_units(chunks: Iterator[bytes], limits: Limits) -> Iterator[Unit]:
    """Every record of an NDJSON stream, one by one."""
    for lines in line_blocks(chunks, limits.max_record_bytes):
        yield from line_units(lines, limits)


def line_units(lines: Lines, limits: Limits) -> Iterator[Unit]:
    """The records of a block of lines (blank lines hold none)."""
    if not lines.plain:
        unit = _line_unit(lines.data, lines.first, limits, lines.oversized, lines.read_error)
        if unit is not None:
            yield unit
        return
    for number, line in enumerate(lines.data.split(b"\n")[: lines.count], start=lines.first):
        if len(line) > limits.max_record_bytes:
            unit = _line_unit(line[:PREVIEW_CHARS], number, limits, oversized=len(line))
        else:
            unit = _line_unit(line, number, limits)
        if unit is not None:
            yield unit


def _line_unit(line: bytes, number: int, limits: Limits, oversized: int = 0, read_error: str = "") -> Unit | None:
    data = line.removeprefix(codecs.BOM_UTF8) if number == 1 else line
    stripped = data.strip(b" \t\r\n")
    position = f"line {number}"
    if oversized:
        return Unit(position, _preview(_lenient(stripped), oversized), error=_too_large(oversized, limits))
    if read_error:
        if stripped:
            return Unit(position, _lenient(stripped), error=("invalid_json", read_error))
        return Unit(position, "", error=("unreadable_file", read_error))
    if not stripped:
        return None
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as err:
        detail = f"byte {err.start + 1} of line {number} is not valid UTF-8"
        return Unit(position, _lenient(stripped), error=("invalid_utf8", detail))
    value, error = parse_json(text, limits.max_depth)
    if error and error[0] == "invalid_json" and (where := _LINE_COLUMN.search(error[1])):
        column = int(where.group(1)) + len(data) - len(data.lstrip(b" \t"))
        error = ("invalid_json", f"{error[1][: where.start()]}at line {number}, column {column}")
    return Unit(position, text, value, error)


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
        self.failed: Exception | None = None  # the stream's error, held while the text before it is read
        self.dirty = False
        self._line_base = 1  # line number of text[0]
        self._line_pos = 0  # text index up to which newlines are counted
        self._line_no = 1  # line number at _line_pos

    def fill(self) -> bool:
        """Append the next chunk; False at the end of the stream."""
        if self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed
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


def iter_document_units(
    chunks: Iterator[bytes], limits: Limits, read_window: WindowReader | None = None
) -> Iterator[Unit | Block]:
    """Every value of a JSON document stream; the elements of arrays one by one, or in Blocks where
    `read_window` takes them at once."""
    buffer = _TextBuffer(chunks)
    if buffer.next_char() == "\ufeff":
        buffer.pos += 1
    top = 0
    while char := buffer.next_char():
        name = "document" if top == 0 else f"value {top}"
        if char == "[":
            buffer.pos += 1
            yield from _iter_array(buffer, "" if top == 0 else f"{name} ", limits, read_window)
        else:
            yield _decode_value(buffer, name, limits)
        top += 1
    if buffer.read_error and not buffer.read_error_reported:
        yield Unit("end of file", "", error=("unreadable_file", buffer.read_error))


def _iter_array(
    buffer: _TextBuffer, prefix: str, limits: Limits, read_window: WindowReader | None
) -> Iterator[Unit | Block]:
    index = 0
    slow = 0  # elements to take one by one before the next try of the vectorised path
    while True:
        buffer.compact()
        char = buffer.next_char(_SEPARATORS)
        if char in ("", "]"):
            buffer.pos += 1 if char else 0
            return
        if char == "{" and not slow and read_window is not None:
            block = _window_block(buffer, prefix, index, limits, read_window)
            if block is not None:
                yield block
                index += block.records
                continue
            slow = limits.tuning.slow_run
        yield _decode_value(buffer, f"{prefix}element {index}", limits)
        index += 1
        slow = max(slow - 1, 0)


def _window_block(
    buffer: _TextBuffer, prefix: str, index: int, limits: Limits, read_window: WindowReader
) -> Block | None:
    try:
        while len(buffer.text) - buffer.pos < limits.tuning.window_chars and buffer.fill():
            pass
    except Exception as error:  # the store's: the next fill raises it, after the elements before it
        buffer.failed = error
    found = read_window(buffer.text, buffer.pos, index, prefix)
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
            end_or_none = cut_point(text, start, err.pos)
            if end_or_none is None and _can_grow(buffer, start, limits):
                continue
            return _bad_value(buffer, position, start, end_or_none, err.pos, err.msg, limits)
        except RecursionError:
            end_or_none = value_end(text, start)
            if end_or_none is None and _can_grow(buffer, start, limits):
                continue
            return _cut(buffer, position, start, end_or_none, _too_deep(limits.max_depth))
        except ValueError as err:  # NaN/Infinity constants, integers too long to convert
            return _cut(buffer, position, start, value_end(text, start), ("invalid_json", str(err)))
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
    if end is None and error_pos == start and not buffer.read_error and buffer.text[start] not in '{["':
        # Not a record cut short: text that does not begin a JSON value at all (say, a CSV or a log).
        line, column = buffer.line_at(start), buffer.column_at(start)
        shown = buffer.text[start : start + 40].split("\n", 1)[0]
        detail = f"not JSON: `{shown}` at line {line}, column {column} does not begin a JSON value"
        return _cut(buffer, position, start, None, ("invalid_json", detail))
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
    state = ScanState()
    pos, size = start, 0
    while True:
        end = scan(buffer.text, pos, state)
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


def _repair(text: str) -> str:
    """Text safe to store: undecodable bytes (lone surrogates) become U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
