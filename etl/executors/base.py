"""What every executor shares: the interface, the resources a job declares, and the errors of a map."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, TypeVar

from etl.errors import EtlError

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class Resources:
    """What one job needs: Ray schedules by it, and polars in the job gets `cpus` threads."""

    cpus: int = 1
    memory_bytes: int | None = None


#: What one unit of work of a run declares it needs: a unit's peak memory is bounded (etl.settings.Tuning).
UNIT_OF_WORK = Resources(cpus=1, memory_bytes=1 << 30)


class Executor(Protocol):
    """Runs the jobs of a map somewhere and returns their results in the order of `jobs`.

    `describe(job)` names a job in errors ("landing file a.json"). `on_done(job, result)` is called in
    the calling process as each job finishes (in any order): progress hooks go there, since a worker
    cannot call back into the driver. `size(job)`, when given, says how much work a job is: the
    larger start first, so that a large job left for last does not run alone (its result still comes
    in job order). When `map` raises, none of its jobs is still running.
    """

    def map(
        self,
        function: Callable[[A], R],
        jobs: Sequence[A],
        *,
        describe: Callable[[A], str],
        resources: Resources | None = None,
        on_done: Callable[[A, R], None] | None = None,
        size: Callable[[A], float] | None = None,
    ) -> list[R]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


def largest_first(jobs: Sequence[A], size: Callable[[A], float] | None) -> list[int]:
    """The jobs' indices in the order to start them: by `size`, largest first (ties, and no size: in
    job order)."""
    order = range(len(jobs))
    return list(order) if size is None else sorted(order, key=lambda index: -size(jobs[index]))


class Closing:
    """`with executor:` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class JobFailed(EtlError):
    """A job raised an error (a bug, bad data): not retried, since it would fail the same way again."""

    def __init__(self, job: str, cause: BaseException) -> None:
        detail = str(cause) if isinstance(cause, EtlError) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"{job}: {detail}")
        self.job = job
        self.cause = cause


class WorkerLost(EtlError):
    """A job's worker kept dying (killed, out of memory, a crash in native code) or its node was lost."""

    def __init__(self, job: str, detail: str) -> None:
        super().__init__(f"{job}: {detail}")
        self.job = job
