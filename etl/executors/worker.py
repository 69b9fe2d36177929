"""What runs inside a worker process (local or Ray): its process settings, and one job with its log.

A worker gets the settings the `etl` command gives its own process (see `etl.cli`): Arrow and glibc
keep little freed memory, jemalloc one arena, and polars as many threads as the job's share of the
cores, since N workers each with a thread per core would fight over them. The variables are set
before the job first uses polars, which reads them then (its thread pool starts on first use).

A job's log records travel back with its result and are emitted by the driver, so they reach the
driver's handlers (format, level, run id). A job that dies takes its records with it; it is rerun.
"""

from __future__ import annotations

import logging
import os
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")

_ALLOCATOR = "_RJEM_MALLOC_CONF"  # polars' jemalloc; as in `etl.cli`
_LOGGER = "etl"


def available_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_environment(threads: int) -> dict[str, str]:
    """Variables a worker process needs, as text: a Ray worker on another machine gets them this way."""
    allocator = os.environ.get(_ALLOCATOR, "")
    if "narenas" not in allocator:
        allocator = ",".join(filter(None, [allocator, "narenas:1"]))
    return {
        "POLARS_MAX_THREADS": str(max(1, threads)),
        _ALLOCATOR: allocator,
        # What `etl.cli.process.use_lean_memory` does, for a process started with these variables.
        "MALLOC_ARENA_MAX": "2",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
    }


class _Collector(logging.Handler):
    """Keeps a job's log records to send back with its result."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        # Arguments and tracebacks may not pickle: send the finished text.
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


_collector: _Collector | None = None
_running = False  # a job is running in this worker
_stopping = False  # the running job was told to stop (it is told once: its cleanup must not be cut)
_stop_waiting = False  # a stop came between jobs: for the next one


def prepare_worker(environment: dict[str, str], log_level: int) -> None:
    """Apply the process settings of a worker; a Ray task calls it each time, so it may repeat."""
    global _collector
    os.environ.update(environment)
    # (Importing etl.cli applies the CLI's process settings too: the allocator, pandera without pandas.)
    from etl.cli.process import use_lean_memory  # imports pyarrow: not at module import

    use_lean_memory()
    if _collector is None:
        _collector = _Collector()
    logger = logging.getLogger(_LOGGER)
    logger.handlers[:] = [_collector]
    logger.setLevel(log_level)
    logger.propagate = False


@dataclass
class Outcome(Generic[R]):
    """A job's result, or the error it raised, and what it logged."""

    value: R | None = None
    error: BaseException | None = None
    records: list[logging.LogRecord] = field(default_factory=list)


def run_job(function: Callable[[A], R], job: A) -> Outcome[R]:
    """Run one job in a prepared worker. Its own error is returned, not raised: the pool and Ray
    retry what raises (a dead worker), and an error of the job would fail again."""
    global _running, _stopping, _stop_waiting
    assert _collector is not None, "prepare_worker first"
    _collector.take()  # nothing of an earlier job
    if _stop_waiting:  # (handed this job just as its worker was told to stop)
        _stop_waiting = False
        raise KeyboardInterrupt
    _running, _stopping = True, False
    try:
        value = function(job)
    except Exception as error:
        return Outcome(error=_portable(error), records=_collector.take())
    finally:
        _running = False
    return Outcome(value=value, records=_collector.take())


def stop_the_job(signum: int, frame: object) -> None:
    """A signal handler: stop the running job by raising KeyboardInterrupt in it (once: what it does
    then is removing what it was writing), or, between jobs, the next one before it starts."""
    global _stopping, _stop_waiting
    if not _running:
        _stop_waiting = True
    elif not _stopping:
        _stopping = True
        raise KeyboardInterrupt


def _portable(error: Exception) -> BaseException:
    """The error with the worker's traceback as a note, as something that pickles."""
    text = "".join(traceback.format_exception(error)).rstrip()
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        error = RuntimeError(f"{type(error).__name__}: {error}")
    error.add_note(f"In the worker (pid {os.getpid()}):\n{text}")
    return error


def emit_records(records: list[logging.LogRecord]) -> None:
    """In the driver: hand a worker's records to the driver's loggers, as if logged here."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
