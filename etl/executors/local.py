"""`--executor local --workers N`: the jobs in N worker processes on this machine.

Workers are started with `spawn`: polars runs thread pools that a forked child would inherit in an
unknown state. They live as long as the executor, so a run pays their start (imports) once.

A worker killed in the middle of a job (SIGKILL, the OOM killer) breaks the whole pool: every job
running then is lost, and cannot tell which of them died (a job stopped by a SIGTERM to its worker
alone is lost on its own). So each of them is charged one attempt and
becomes a suspect; a suspect then runs alone, so that a death after that is its own. A job charged
`attempts` times fails the map. A job that raises is not retried: it would fail the same way again.

Workers ignore Ctrl-C (a terminal sends it to every process of its group): the driver, interrupted,
stops them itself (`_stop_workers`: their jobs' outputs are the abandoned run's), also when only it
was signalled (SIGTERM to the driver, as a scheduler stops a job).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import connection
from pathlib import Path
from typing import Any, TypeVar, cast

from etl.executors.base import Closing, JobFailed, Resources, WorkerLost, largest_first
from etl.executors.inprocess import InProcess
from etl.executors.worker import (
    Outcome,
    available_cores,
    emit_records,
    prepare_worker,
    run_job,
    stop_the_job,
    worker_environment,
)
from etl.stops import deferred

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
STOP_SECONDS = 5.0  # interrupted: how long a worker's job has to stop and clean up before it is killed

A = TypeVar("A")
R = TypeVar("R")

log = logging.getLogger("etl")


class LocalProcesses(Closing):
    """Jobs in `workers` processes, each job tried up to `attempts` times if its worker dies."""

    def __init__(self, workers: int, *, attempts: int = 3) -> None:
        if workers < 1 or attempts < 1:
            raise ValueError("workers and attempts must be at least 1")
        self.workers = workers
        self.attempts = attempts
        self._pool: ProcessPoolExecutor | None = None
        self._temporary: Path | None = None  # the workers' TMPDIR, removed with the pool

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
        """`resources` is for Ray's scheduler; here each worker runs one job at a time. A lone job
        before any worker has started runs in this process: starting workers (their imports) would
        cost more than it can gain (a nightly run of one small file)."""
        if len(jobs) == 1 and self._pool is None:
            return InProcess().map(function, jobs, describe=describe, on_done=on_done)
        results: dict[int, R] = {}
        waiting = deque(largest_first(jobs, size))  # indices of jobs not submitted yet, in starting order
        running: dict[Future[Outcome[R]], int] = {}
        charged: Counter[int] = Counter()
        suspects: set[int] = set()
        try:
            while waiting or running:
                self._submit(function, jobs, waiting, running, suspects)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(_died(future) for future in done):
                    wait(running)  # the pool is broken: the other running jobs end too
                    done = set(running)
                    self._replace_pool()
                lost = []
                for future in sorted(done, key=running.__getitem__):  # job order: the first error is raised
                    index = running.pop(future)
                    if _died(future) or _stopped(future):
                        lost.append(index)
                        continue
                    outcome = _outcome(future)
                    emit_records(outcome.records)
                    if outcome.error is not None:
                        raise JobFailed(describe(jobs[index]), outcome.error) from outcome.error
                    results[index] = cast(R, outcome.value)
                    if on_done:
                        on_done(jobs[index], results[index])
                if lost:
                    for index in lost:
                        charged[index] += 1
                        if charged[index] >= self.attempts:
                            raise WorkerLost(describe(jobs[index]), _died_text(charged[index]))
                        log.warning("a worker process died or was stopped; %s is run again", describe(jobs[index]))
                    suspects.update(lost)
                    waiting.extendleft(sorted(lost, reverse=True))
        except BaseException as failure:
            self._end(running, interrupted=not isinstance(failure, Exception))
            raise
        return [results[index] for index in range(len(jobs))]

    def close(self) -> None:
        self._replace_pool()

    def _submit(
        self,
        function: Callable[[A], R],
        jobs: Sequence[A],
        waiting: deque[int],
        running: dict[Future[Outcome[R]], int],
        suspects: set[int],
    ) -> None:
        """Start jobs while a worker is free; a suspect runs with nothing beside it."""
        while waiting and len(running) < self.workers:
            if suspects & set(running.values()) or (waiting[0] in suspects and running):
                return
            index = waiting.popleft()
            try:
                future = _submit_ignoring_ctrl_c(self._pool_now(), function, jobs[index])
            except BrokenProcessPool:  # an idle worker died (the OOM killer chooses freely)
                self._replace_pool()
                future = _submit_ignoring_ctrl_c(self._pool_now(), function, jobs[index])
            running[future] = index

    def _end(self, running: dict[Future[Any], int], interrupted: bool) -> None:
        """After a failure, let the jobs still running end (their outputs are the failed run's), so
        none outlives `map`; interrupted (or while waiting for them), stop the workers at once."""
        try:
            if not interrupted:
                for future in running:
                    future.cancel()
                wait(running)
                return
        except BaseException:
            self._stop_workers()
            raise
        self._stop_workers()

    def _stop_workers(self) -> None:
        """Stop the workers and drop the pool: SIGTERM stops a worker's running job (or the next, if
        it was between two), which removes what it was writing (its temporary files, a staged object
        half written) and ends; the pool, shut down, then ends the workers. Live workers are told again
        every half second (one may have taken a job that was waiting), and one still alive after
        `STOP_SECONDS` (a job in native code that long) is killed; the pool's temporary folder goes
        with whatever they left in it."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        workers = _workers_of(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + STOP_SECONDS
        try:
            while (alive := [worker for worker in workers if worker.is_alive()]) and time.monotonic() < deadline:
                for worker in alive:
                    worker.terminate()
                connection.wait([worker.sentinel for worker in alive], timeout=0.5)
        finally:  # (also when a second stop cuts the wait short)
            _kill_the_rest(workers)
            self._forget_temporary()

    def _pool_now(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # (Storage is not imported with this module: a worker imports it before its initializer
            # limits polars' threads, and the storage package loads polars.)
            from etl.storage import private_temporary_folder

            self._temporary = private_temporary_folder("workers")
            threads = max(1, available_cores() // self.workers)
            environment = worker_environment(threads) | {"TMPDIR": str(self._temporary)}
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=prepare_local_worker,
                initargs=(environment, log.getEffectiveLevel()),
            )
        return self._pool

    def _replace_pool(self) -> None:
        """Shut the pool down and wait for each of its workers (not only for the pool's own thread,
        which may stop early) before their temporary folder goes; the next map starts a new one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            workers = _workers_of(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            deadline = time.monotonic() + STOP_SECONDS
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            _kill_the_rest(workers)
        self._forget_temporary()

    def _forget_temporary(self) -> None:
        """Remove the temporary folder of the pool's workers, which have ended."""
        if self._temporary is not None:
            from etl.storage import remove_private_temporary_folder

            remove_private_temporary_folder(self._temporary)
            self._temporary = None


def _workers_of(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's processes: its own list is the only one that holds them and nothing else."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _kill_the_rest(workers: list[Any]) -> None:
    """Kill the workers still alive, and wait for every one."""
    for worker in workers:
        if worker.is_alive():
            worker.kill()
        worker.join()


def _submit_ignoring_ctrl_c(pool: ProcessPoolExecutor, function: Callable[[A], R], job: A) -> Future[Outcome[R]]:
    """`pool.submit`, which may start a worker: one started while this thread blocks Ctrl-C has it
    blocked from its first instant (a blocked signal stays blocked through `exec`), not only once its
    initializer has run, after its imports. A stop (Ctrl-C, or SIGTERM as the CLI takes it) meanwhile
    is raised once the pool has recorded the worker, so that it is among those the driver stops."""
    if threading.current_thread() is not threading.main_thread():
        return pool.submit(run_job, function, job)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with deferred():
            return pool.submit(run_job, function, job)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def prepare_local_worker(environment: dict[str, str], log_level: int) -> None:
    """A local worker dies with the process that started it: a driver killed mid-run (a crash, the
    OOM killer) must not leave workers behind, holding its files and output open. Ctrl-C is the
    driver's to answer; the driver's SIGTERM stops the worker's job."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_the_job)
    prepare_worker(environment, log_level)
    from etl.storage import use_temporary_folder_of_environment  # (polars may load now: its threads are set)

    use_temporary_folder_of_environment()  # the pool's own folder


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's own checks remain
        return
    if os.getppid() != parent:  # the driver died before the request took effect
        os._exit(1)


def _died(future: Future[Any]) -> bool:
    return isinstance(future.exception(), BrokenProcessPool)


def _stopped(future: Future[Any]) -> bool:
    """Whether the job was stopped by a SIGTERM to its worker alone (`worker.stop_the_job`): as a
    worker that died, it is run again."""
    return isinstance(future.exception(), KeyboardInterrupt)


def _outcome(future: Future[Outcome[R]]) -> Outcome[R]:
    """What a finished job gave. An error raised around it (its function or job could not be sent to
    the worker, or its result back) is the job's own error."""
    error = future.exception()
    if error is not None:
        return Outcome(error=error)
    return future.result()


def _died_text(times: int) -> str:
    return f"the worker process running it died {times} times (killed, out of memory, or a crash)"
