"""Deterministic fault points: where a test may have the process killed (SIGKILL), as a crash would.

`ETL_KILL_AT=name` kills the process the first time it reaches `fault_point(name)`, `name:N` the Nth
time. Unset (always, outside tests) a fault point costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_ENV = "ETL_KILL_AT"
_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
