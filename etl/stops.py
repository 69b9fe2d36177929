"""Stops (Ctrl-C, or SIGTERM as the CLI takes it) held off where the driver must not be cut short.

A stop raises KeyboardInterrupt wherever the driver's main thread happens to be. During the commit
and the apply of its plan that would leave the tables half published until the next run (which
completes them, but a nightly job's next run may be a day away): there a stop is noted, and taken
as done once the commit is, which takes a moment (`held_off`). A second stop is not held: an apply
stuck on a store can be stopped (the next run completes it). Starting a worker and recording it is
not cut in two either: a stop then is raised right after (`deferred`). The CLI has SIGTERM stop a
command as Ctrl-C does (`sigterm_interrupts`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("etl")

_STOPS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def held_off(doing: str) -> Iterator[None]:
    """Run the block to its end though a stop comes (said in the log), not a second one; main thread
    only, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(number: int, frame: object) -> None:
        if noted:
            raise KeyboardInterrupt
        noted.append(number)

    try:
        with _answered_by(note, _STOPS):
            yield
    finally:
        if noted:
            name = signal.Signals(noted[0]).name
            log.warning("a stop (%s) came while the run was %s: the run finished that first", name, doing)


@contextmanager
def deferred() -> Iterator[None]:
    """Raise a stop that comes during the block (KeyboardInterrupt) only once it has ended: for a
    step that must not be cut in two, such as starting a process and recording it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    with _answered_by(lambda number, frame: noted.append(number), _STOPS):
        yield
    if noted:
        raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM interrupts the block as Ctrl-C does (by default it would end the process at once,
    leaving a run's staging and lease for the next run to clear)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _answered_by(_interrupt, (signal.SIGTERM,)):
        yield


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def _answered_by(handler: Callable[[int, Any], None], numbers: tuple[signal.Signals, ...]) -> Iterator[None]:
    """The signals `numbers` answered by `handler` during the block, as before it after."""
    before = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield
    finally:
        for number, previous in before.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
