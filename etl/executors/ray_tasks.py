"""`--executor ray`: each job a Ray Core task on the cluster at `RAY_ADDRESS`, or on a Ray started here.

Ray retries a task whose worker or node died (`max_retries`); a job's own error comes back as its
result (see `etl.executors.worker`), so Ray never retries it. Ray is an optional extra, imported
only when this executor is asked for.

A Ray started for the run binds to 127.0.0.1, without dashboard or usage statistics: nothing of it
is reachable from, or talks to, the network. Workers on a cluster need this package installed (the
image), and get no credentials from here.

Workers get the process settings (`worker_environment`) as variables set before they start: a Ray
started here is started with them, so that its workers inherit them and the workers it starts ahead
are used; a job on a cluster gets them as the job's `runtime_env`. A Ray connected by someone else
(a test's cluster), or a job declaring other CPUs than a unit of work, gets them per task, which makes
Ray start workers of their own for them (about a second of start per worker on 2 cores).

Stopping a Ray started here takes over a second (its processes are given time to exit); it is done
on a thread as soon as the last map is done, while the driver commits.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar, cast

# Before a task's arguments are unpickled (which may load pandera): the CLI's process settings,
# pandera without pandas among them. (A Ray worker has its variables from its start, so loading
# polars here is early enough; a local worker sets them first, in `prepare_worker`.)
import etl.cli  # noqa: F401
from etl.errors import EtlError, UsageError
from etl.executors.base import UNIT_OF_WORK, Closing, JobFailed, Resources, WorkerLost, largest_first
from etl.executors.worker import Outcome, emit_records, prepare_worker, run_job, worker_environment

A = TypeVar("A")
R = TypeVar("R")

log = logging.getLogger("etl")

INSTALL_HINT = "--executor ray needs Ray: pip install 'outbound-events-etl[ray]'"
_SETTLE_SECONDS = 60  # after a failure, how long to wait for cancelled tasks to end
_STOP_SECONDS = 5  # interrupted: how long to wait for the tasks whose workers were killed
_stopping: threading.Thread | None = None  # a Ray of this process being stopped
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def ray_task(function: Callable[[A], R], job: A, environment: dict[str, str], log_level: int) -> Outcome[R]:
    """One job in a Ray worker; the worker may be reused, so the settings are applied each time."""
    prepare_worker(environment, log_level)
    return run_job(function, job)


class RayExecutor(Closing):
    """Jobs as Ray tasks. `address`: a cluster (default `RAY_ADDRESS`); none starts a local Ray for
    the run, with `cpus` CPUs (default: all). When Ray is already connected (a test's cluster), the
    connection is used as it is and left open."""

    def __init__(self, address: str | None = None, *, cpus: int | None = None, attempts: int = 3) -> None:
        self._ray = import_ray()
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        self.cpus = cpus
        self.attempts = attempts
        self._connected_here = False
        self._started_here = False
        self._task: Any = None
        self._given: dict[str, str] | None = None  # the settings every worker has from its start

    def map(
        self,
        function: Callable[[A], R],
        jobs: Sequence[A],
        *,
        describe: Callable[[A], str],
        resources: Resources | None = None,
        on_done: Callable[[A, R], None] | None = None,
        size: Callable[[A], float] | None = None,
    ) -> list[R]:
        ray = self._ray
        task = self._connect()
        needs = resources or Resources()
        if self._started_here:
            self._check_fits(needs)
        environment = worker_environment(needs.cpus)
        per_task = {} if environment == self._given else {"runtime_env": {"env_vars": environment}}
        options = task.options(
            num_cpus=needs.cpus,
            memory=needs.memory_bytes,
            max_retries=self.attempts - 1,  # a dead worker or node
            retry_exceptions=False,  # never an error raised by the task itself
            **per_task,  # set before the worker process starts
        )
        level = log.getEffectiveLevel()
        # Ray starts the tasks of a node roughly in the order they were submitted: the largest first.
        index_of = {
            options.remote(function, jobs[index], environment, level): index for index in largest_first(jobs, size)
        }
        refs = list(index_of)
        results: dict[int, R] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    index = index_of[ref]
                    outcome = self._outcome(ref, describe(jobs[index]))
                    emit_records(outcome.records)
                    if outcome.error is not None:
                        raise JobFailed(describe(jobs[index]), outcome.error) from outcome.error
                    results[index] = cast(R, outcome.value)
                    if on_done:
                        on_done(jobs[index], results[index])
        except BaseException as failure:
            self._settle(pending, interrupted=not isinstance(failure, Exception))
            raise
        return [results[index] for index in range(len(jobs))]

    def close(self) -> None:
        """Disconnect (and stop a Ray started here) on a thread; a later connection waits for it."""
        global _stopping
        if self._connected_here:
            _stopping = threading.Thread(target=self._ray.shutdown, name="etl-ray-shutdown")
            _stopping.start()
            self._connected_here = self._started_here = False
        self._task = None
        self._given = None

    def _connect(self) -> Any:
        ray = self._ray
        if _stopping is not None:
            _stopping.join()
        if not ray.is_initialized():
            given = worker_environment(UNIT_OF_WORK.cpus)
            with _keeping_sigterm():  # Ray's own answer to SIGTERM would replace the caller's
                if self.address:
                    ray.init(
                        address=self.address,
                        runtime_env={"env_vars": given},
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                    )
                else:
                    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                    # Ray starts it with token authentication, and says so on every run: that is for us to know.
                    logging.getLogger(_AUTH_LOGGER).setLevel(logging.ERROR)
                    with _inherited(given):
                        ray.init(
                            address="local",  # not a cluster found in /tmp/ray: a Ray of this run's own
                            num_cpus=self.cpus,
                            include_dashboard=False,
                            _node_ip_address="127.0.0.1",
                            log_to_driver=False,  # the jobs' log records come back with their results
                            logging_level=logging.WARNING,
                        )
                    self._started_here = True
            self._connected_here = True
            self._given = given
        if self._task is None:
            self._task = ray.remote(ray_task)
        return self._task

    def _check_fits(self, needs: Resources) -> None:
        """A task bigger than every node waits forever; on a Ray of this machine, none will come."""
        have = self._ray.cluster_resources()
        if needs.cpus > have.get("CPU", 0) or (needs.memory_bytes or 0) > have.get("memory", 0):
            raise EtlError(
                f"a job needs {needs.cpus} CPUs and {needs.memory_bytes or 0:,} bytes, more than the Ray started "
                f"for this run has ({have.get('CPU', 0):g} CPUs, {have.get('memory', 0):,.0f} bytes)"
            )

    def _outcome(self, ref: Any, job: str) -> Outcome[Any]:
        """The task's outcome; Ray's own errors (a worker that kept dying, a lost node) end the map."""
        exceptions = self._ray.exceptions
        try:
            return cast(Outcome[Any], self._ray.get(ref))
        except exceptions.RayTaskError as error:  # raised around the job: its function did not load
            cause = error.cause if isinstance(error.cause, BaseException) else error
            return Outcome(error=cause)
        except exceptions.RayError as error:
            first_line = next(iter(str(error).strip().splitlines()), "")
            detail = f"Ray gave up on it after {self.attempts} attempts ({type(error).__name__}: {first_line})"
            raise WorkerLost(job, detail) from error

    def _settle(self, pending: list[Any], interrupted: bool = False) -> None:
        """Cancel the tasks not finished, and wait a while for them to end; interrupted, their workers
        are killed at once and waited for a few seconds (a scheduler's stop gives the run seconds, not
        a task's length). (Cancelling first gently, then by force, made Ray's core abort now and then:
        "Tried to complete task that was not pending".)"""
        for ref in pending:
            self._ray.cancel(ref, force=interrupted)
        if pending:
            seconds = _STOP_SECONDS if interrupted else _SETTLE_SECONDS
            self._ray.wait(pending, num_returns=len(pending), timeout=seconds, fetch_local=False)


@contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Keep this process's answer to SIGTERM (the CLI's: stop the run as Ctrl-C does) through
    `ray.init`, which installs its own (exit at once, after printing a stack trace); a SIGTERM that
    came while Ray started (its handler's exit) is given to that answer."""
    if threading.current_thread() is not threading.main_thread():  # (where signals cannot be set)
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except SystemExit as exit_:
        if exit_.code == signal.SIGTERM and callable(before):
            before(signal.SIGTERM, None)  # (the CLI's raises KeyboardInterrupt)
        raise
    finally:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


@contextmanager
def _inherited(variables: dict[str, str]) -> Iterator[None]:
    """Set `variables` in this process's environment while the processes that inherit it start.
    (This process read them already: polars and Arrow at their first use, the allocators at start.)"""
    before = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
