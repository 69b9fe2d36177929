"""Where a JSON value ends, judged by brackets and strings alone: the one structural scanner.

The rules: outside a string, `[` `{` open and `]` `}` close (a mismatch is not noticed), and `"` opens
a string; inside one, a backslash escapes the next character and `"` closes it. A backslash outside a
string is an ordinary character. Nothing else is looked at, so broken JSON can be cut apart too.

Two ways of applying the rules:

- `value_end` (with `scan`, which goes on chunk after chunk) walks the text with regular expressions:
  any text, valid or not. It finds where a broken record stops, and skips records over the size limit.
- `object_bounds` finds every object at the start of an array window at once with numpy, for the
  vectorised path. It answers only where the rules cannot be misread by a vectorised pass (no
  backslash outside a string), and then gives exactly what `value_end` gives from each start; a
  property test checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_END = re.compile(r'["\\]')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes
_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = ord("{"), ord("}"), ord("["), ord("]")


@dataclass
class ScanState:
    depth: int = 0
    in_string: bool = False
    skip_next: bool = False  # a backslash ended the previous segment


def value_end(text: str, start: int) -> int | None:
    """Where the JSON value starting at `start` ends.

    Stops at a `,` or `]` of the enclosing array, or after the bracket that closes the value.
    None when the text ends first (more input is needed, or the file is truncated).
    """
    return scan(text, start, ScanState())


def scan(text: str, pos: int, state: ScanState) -> int | None:
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


def cut_point(text: str, start: int, error_pos: int) -> int | None:
    """Where to cut a value that failed to parse: its structural end, or, when its brackets do not
    balance, the line where the next element of a pretty-printed array begins."""
    structural = value_end(text, start)
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


def object_bounds(window: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """[start, end) of each complete object at the start of an array window (which begins with `{`);
    None when there is none, an element is an array, or a backslash stands outside a string before
    the last end. The end of the array ends the window."""
    escaped = b"\\" in window
    masked = _ESCAPE.sub(b"__", window) if escaped else window  # escapes keep their length
    data = np.frombuffer(masked, dtype=np.uint8)
    if data.size == 0 or data[0] != _OPEN_OBJECT:
        return None
    # With escapes masked, every quote opens or closes a string: a bracket after an odd number of
    # quotes is inside one.
    quotes = np.flatnonzero(data == _QUOTE)
    brackets = np.flatnonzero(
        (data == _OPEN_OBJECT) | (data == _CLOSE_OBJECT) | (data == _OPEN_ARRAY) | (data == _CLOSE_ARRAY)
    )
    brackets = brackets[(np.searchsorted(quotes, brackets) & 1) == 0]
    kind = data[brackets]
    opening = (kind == _OPEN_OBJECT) | (kind == _OPEN_ARRAY)
    depth = np.cumsum(np.where(opening, 1, -1), dtype=np.int32)
    below = np.flatnonzero(depth < 0)
    if below.size:  # the first bracket closing more than it opened ends the array (or is garbage)
        if kind[below[0]] != _CLOSE_ARRAY:
            return None
        cut = int(below[0])
        brackets, kind, opening, depth = brackets[:cut], kind[:cut], opening[:cut], depth[:cut]
    if ((kind == _OPEN_ARRAY) & (depth == 1)).any():
        return None  # an array where an object should be
    ends = brackets[~opening & (depth == 0)] + 1
    if ends.size == 0:
        return None
    if escaped:
        # Masking every backslash pair reads the rules right as long as each backslash is inside a
        # string: up to the first one outside, both ways of scanning agree. (Such text is not JSON.)
        backslashes = np.flatnonzero(np.frombuffer(window, dtype=np.uint8) == _BACKSLASH)
        backslashes = backslashes[backslashes < ends[-1]]
        if ((np.searchsorted(quotes, backslashes) & 1) == 0).any():
            return None
    return brackets[opening & (depth == 1)][: ends.size], ends
