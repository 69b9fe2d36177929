"""Stages overlapped on threads keep order, bounded work in flight, and every error."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from etl.overlap import Behind, prefetched


def test_prefetched_items_come_in_order() -> None:
    assert list(prefetched(iter(range(50)))) == list(range(50))


def test_an_error_while_producing_reaches_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    received = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(items()):
            received.append(item)
    assert received == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    for item in prefetched(endless(), ahead=2):
        if item == 3:
            break
    assert not any(t.name == "etl-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 1 + 2 + 1  # what was taken, at most `ahead` queued and one in hand


def test_behind_runs_calls_in_order_and_raises_their_error() -> None:
    seen: list[int] = []
    write = Behind(seen.append)
    for n in range(20):
        write(n)
    write.close()
    assert seen == list(range(20))

    def fail(n: int) -> None:
        if n == 2:
            raise ValueError("cannot write")

    failing = Behind(fail)
    with pytest.raises(ValueError, match="cannot write"):
        for n in range(10):
            failing(n)
        failing.close()
    failing.close()  # closing again after the error is quiet
