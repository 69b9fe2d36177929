"""The executor of `--workers 1` and of `memory://` locations: the jobs one after another, here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from etl.executors.base import Closing, JobFailed, Resources

A = TypeVar("A")
R = TypeVar("R")


class InProcess(Closing):
    """Runs each job in this process, in job order. Memory stores work here (they do not cross
    processes), and a job's log and progress reach the driver directly."""

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
        """One at a time, in job order (`size` cannot shorten a run of one)."""
        results = []
        for job in jobs:
            try:
                result = function(job)
            except Exception as error:
                raise JobFailed(describe(job), error) from error
            if on_done:
                on_done(job, result)
            results.append(result)
        return results

    def close(self) -> None:
        """Nothing to release."""
