"""Executors: where the units of work of a run (one landing file, one date) run.

- `InProcess`: one after another in this process (`--workers 1`, memory stores);
- `LocalProcesses`: in N worker processes on this machine (`--executor local --workers N`);
- `RayExecutor` (in `etl.executors.ray_tasks`): as Ray tasks (`--executor ray`), when Ray is installed.

All of them return the results in the order of the jobs, whichever finishes first.
"""

from etl.executors.base import UNIT_OF_WORK, Executor, JobFailed, Resources, WorkerLost
from etl.executors.choice import KINDS, check_executor, make_executor
from etl.executors.inprocess import InProcess
from etl.executors.local import LocalProcesses
from etl.executors.worker import available_cores, worker_environment

__all__ = [
    "KINDS",
    "UNIT_OF_WORK",
    "Executor",
    "InProcess",
    "JobFailed",
    "LocalProcesses",
    "Resources",
    "WorkerLost",
    "available_cores",
    "check_executor",
    "make_executor",
    "worker_environment",
]
