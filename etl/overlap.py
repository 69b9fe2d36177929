"""Overlap the stages of reading a file on the machine's cores: parsing ahead, writing behind.

The heavy parts of every stage (Arrow's JSON reader, numpy, polars, Parquet encoding) release the
GIL, so a background thread doing one stage runs alongside the main thread doing the next. Order is
kept, the number of items in flight is bounded (memory stays flat), and an error raised in the
background is raised again in the caller, at the point it would have surfaced without the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterator[T], ahead: int = 2) -> Generator[T, None, None]:
    """The items of `items`, produced by a background thread up to `ahead` items in advance."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(handoff, item, stop):
                    return
            _put(handoff, _DONE, stop)
        except BaseException as err:  # handed to the consumer, raised there
            _put(handoff, _Failure(err), stop)

    thread = threading.Thread(target=produce, name="etl-prefetch", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # the consumer left early (or finished): let the producer end
        thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(handoff: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Behind(Generic[T]):
    """Calls of one function, run in order on a background thread, at most `ahead` waiting.

    `close()` waits for all of them and raises the first error; so does a call after an error.
    """

    def __init__(self, function: Callable[[T], None], ahead: int = 2) -> None:
        self._function = function
        self._ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-behind")
        self._pending: list[Future[None]] = []

    def __call__(self, item: T) -> None:
        self._settle(keep=self._ahead - 1)
        self._pending.append(self._pool.submit(self._function, item))

    def close(self) -> None:
        try:
            self._settle(keep=0)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _settle(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._pending.pop(0).result()  # raises the call's error, if it had one
