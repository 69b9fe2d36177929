"""Deterministic fault points: where a test may have the process killed (SIGKILL), as a crash would.

`ETL_KILL_AT=name` kills the process the first time it reaches `fault_point(name)`, `name:N` the Nth
time. With `ETL_KILL_ONCE=FILE` as well, only one process of all is killed: the one that creates FILE
(a worker killed once, whose job is then retried in another). Unset (always, outside tests) a fault
point costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_ENV = "ETL_KILL_AT"
_ONCE = "ETL_KILL_ONCE"
_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(count or 1) and _first_to_die():
        os.kill(os.getpid(), signal.SIGKILL)


def _first_to_die() -> bool:
    once = os.environ.get(_ONCE)
    if not once:
        return True
    try:
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
