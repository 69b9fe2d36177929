"""Which executor a run uses, from `--executor`, `--workers` and where its data lives (SPEC §8)."""

from __future__ import annotations

import importlib.util

from etl.errors import UsageError
from etl.executors.base import Executor
from etl.executors.inprocess import InProcess
from etl.executors.local import LocalProcesses
from etl.executors.worker import available_cores

KINDS = ("local", "ray")
_IN_MEMORY = "memory://"


def check_executor(kind: str, workers: int | None, locations: list[str]) -> None:
    """A `UsageError` for an executor that cannot be made (said before a run starts its work)."""
    if kind not in KINDS:
        raise UsageError(f"--executor {kind} is not known: use local or ray")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: give at least 1")
    in_memory = [location for location in locations if location.startswith(_IN_MEMORY)]
    if kind == "ray" and in_memory:
        raise UsageError(f"--executor ray cannot use {in_memory[0]}: a memory store lives in one process")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray: pip install 'outbound-events-etl[ray]'")


def make_executor(kind: str, workers: int | None, locations: list[str]) -> Executor:
    """`local`: `workers` processes (default: the cores), or this process for one worker or for memory
    stores, which do not cross processes. `ray`: Ray tasks; with no `RAY_ADDRESS`, `workers` is the
    CPUs of the Ray started for the run (default: all)."""
    check_executor(kind, workers, locations)
    in_memory = [location for location in locations if location.startswith(_IN_MEMORY)]
    if kind == "ray":
        from etl.executors.ray_tasks import RayExecutor  # Ray is optional: imported only when asked for

        return RayExecutor(cpus=workers)
    workers = workers or available_cores()
    if workers == 1 or in_memory:
        return InProcess()
    return LocalProcesses(workers)
