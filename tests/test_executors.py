"""Executors (etl/executors): the same ordered results everywhere, workers killed, jobs that fail.

The jobs are module-level functions of `Job`s, so that worker processes (and Ray workers, in
tests/support/ray_cluster.py) import them by name. They leave marks in `Job.folder` to count their
attempts and to know a first attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from etl.errors import UsageError
from etl.executors import (
    InProcess,
    JobFailed,
    LocalProcesses,
    Resources,
    WorkerLost,
    available_cores,
    make_executor,
)
from etl.faults import fault_point
from tests.support.ray_cluster import KILLED_EVERY_TIME, run_scenario

# Jobs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    number: int
    folder: str = ""  # where the job leaves its marks
    seconds: float = 0.0  # how long it takes
    after: int | None = None  # the number of a job this one waits for


def describe(job: Job) -> str:
    return f"job {job.number}"


def square(job: Job) -> int:
    if job.after is not None:
        _wait_for(Path(job.folder, f"done-{job.after}"))
    time.sleep(job.seconds)
    if job.folder:
        Path(job.folder, f"done-{job.number}").touch()
    return job.number**2


def square_killed_once(job: Job) -> int:
    """Job 2 is killed (SIGKILL, as the OOM killer does) the first time it runs."""
    first = Path(job.folder, f"killed-{job.number}")
    if job.number == 2 and not first.exists():
        first.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return square(job)


def square_stopped_once(job: Job) -> int:
    """Job 2's worker alone gets SIGTERM the first time it runs it (an operator's `kill`)."""
    first = Path(job.folder, f"stopped-{job.number}")
    if job.number == 2 and not first.exists():
        first.touch()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # (the job is stopped here)
    return square(job)


def leave_a_temporary_file(job: Job) -> str:
    handle, path = tempfile.mkstemp(prefix="left-")
    os.close(handle)
    return path


def square_killed_always(job: Job) -> int:
    """The job named by ETL_KILL_AT (`job-N`) is killed at each attempt: each runs in a new process."""
    _note_attempt(job, "killed_always")
    fault_point(f"job-{job.number}")
    return square(job)


def square_failing(job: Job) -> int:
    _note_attempt(job, "failing")
    if job.number == 3:
        raise ValueError("bad row 17")
    return square(job)


def worker_facts(job: Job) -> dict[str, Any]:
    """What a job sees of its process, and a log line for the driver."""
    import polars as pl
    import pyarrow as pa

    logging.getLogger("etl.test").info("job %d ran in process %d", job.number, os.getpid())
    return {
        "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS"),
        "polars_threads": pl.thread_pool_size(),
        "arrow_pool": pa.default_memory_pool().backend_name,
        "allocator": os.environ.get("_RJEM_MALLOC_CONF", ""),
        "pid": os.getpid(),
    }


def pandas_after_judging(judge: Any, job: Job) -> bool:
    """Whether the process imported pandas once `judge` (the contract's check: pandera, loaded when the
    job's arguments were unpickled, before the worker's settings) ran on a bad row."""
    import polars as pl

    with contextlib.suppress(RuntimeError):  # (not the candidates' columns: every check ran first)
        judge(pl.DataFrame({"user_id": [None]}))
    return "pandas" in sys.modules


def attempts(job: Job, kind: str) -> int:
    marks = Path(job.folder, f"{kind}-{job.number}")
    return len(marks.read_text().splitlines()) if marks.exists() else 0


def _note_attempt(job: Job, kind: str) -> None:
    with Path(job.folder, f"{kind}-{job.number}").open("a") as marks:
        marks.write(f"{os.getpid()}\n")


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


class Finished:
    """An `on_done` hook: the numbers of the jobs, in the order they finished."""

    def __init__(self) -> None:
        self.numbers: list[int] = []

    def __call__(self, job: Job, result: object) -> None:
        self.numbers.append(job.number)


class Messages(logging.Handler):
    """The messages logged to the `etl` logger, as the driver's handler gets them."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@pytest.fixture
def etl_log() -> Any:
    messages = Messages()
    logger = logging.getLogger("etl")
    before = logger.level
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(messages)
    logger.setLevel(before)


@pytest.fixture
def two_workers() -> Any:
    with LocalProcesses(2) as executor:
        yield executor


# Local executors -------------------------------------------------------------------------------------


def test_every_local_executor_gives_the_same_results_in_job_order(tmp_path: Path) -> None:
    jobs = [Job(n) for n in range(7)]
    expected = [n * n for n in range(7)]
    for executor in (InProcess(), LocalProcesses(1), LocalProcesses(2)):
        finished = Finished()
        with executor:
            results = executor.map(square, jobs, describe=describe, on_done=finished)
        assert results == expected, executor
        assert sorted(finished.numbers) == list(range(7)), executor
    assert InProcess().map(square, [], describe=describe) == []


def test_results_come_in_job_order_when_jobs_finish_out_of_order(tmp_path: Path, two_workers: LocalProcesses) -> None:
    # Job 0 waits until job 3 is done, on the other worker, and a little more.
    jobs = [Job(0, str(tmp_path), seconds=0.5, after=3), *(Job(n, str(tmp_path)) for n in range(1, 4))]
    finished = Finished()
    results = two_workers.map(square, jobs, describe=describe, on_done=finished)
    assert results == [0, 1, 4, 9]
    assert finished.numbers == [1, 2, 3, 0]


def test_the_largest_jobs_start_first_and_results_keep_job_order(tmp_path: Path, two_workers: LocalProcesses) -> None:
    # Job 0 waits until job 3 is done: only if job 3, the largest, starts first can it finish first.
    jobs = [Job(0, str(tmp_path), after=3), *(Job(n, str(tmp_path), seconds=0.2) for n in range(1, 4))]
    finished = Finished()
    sizes = {0: 2, 1: 1, 2: 1, 3: 5}
    results = two_workers.map(square, jobs, describe=describe, on_done=finished, size=lambda job: sizes[job.number])
    assert results == [0, 1, 4, 9]
    assert finished.numbers[:2] == [3, 0]  # (without sizes: 1 first, while 0 waits for 3)


def test_workers_get_the_process_settings_and_their_log_reaches_the_driver(
    two_workers: LocalProcesses, etl_log: Messages
) -> None:
    facts = two_workers.map(worker_facts, [Job(0), Job(1)], describe=describe, resources=Resources(cpus=1))
    threads = max(1, available_cores() // 2)
    for fact in facts:
        assert fact["POLARS_MAX_THREADS"] == str(threads)
        assert fact["polars_threads"] == threads  # polars in a worker does not take every core
        assert fact["arrow_pool"] == "system"
        assert "narenas:1" in fact["allocator"]
        assert fact["pid"] != os.getpid()
    assert sorted(etl_log.texts) == [f"job {n} ran in process {fact['pid']}" for n, fact in enumerate(facts)]


def test_a_worker_killed_in_a_job_is_replaced_and_the_job_run_again(
    tmp_path: Path, two_workers: LocalProcesses, etl_log: Messages
) -> None:
    jobs = [Job(n, str(tmp_path)) for n in range(6)]
    assert two_workers.map(square_killed_once, jobs, describe=describe) == [n * n for n in range(6)]
    assert (tmp_path / "killed-2").exists()  # it was killed once
    assert any("job 2 is run again" in text for text in etl_log.texts)


def test_a_job_stopped_by_a_sigterm_to_its_worker_alone_is_run_again(
    tmp_path: Path, two_workers: LocalProcesses, etl_log: Messages
) -> None:
    jobs = [Job(n, str(tmp_path)) for n in range(6)]
    started = time.monotonic()
    assert two_workers.map(square_stopped_once, jobs, describe=describe) == [n * n for n in range(6)]
    assert (tmp_path / "stopped-2").exists() and time.monotonic() - started < 25  # stopped, not waited out
    assert any("was stopped; job 2 is run again" in text for text in etl_log.texts)


def test_what_workers_leave_in_their_temporary_folder_goes_with_their_pool(two_workers: LocalProcesses) -> None:
    """Workers write their temporary files into a folder of their pool's own (TMPDIR), removed with
    the pool: what a worker stopped or killed mid-write left there goes too."""
    left = [Path(path) for path in two_workers.map(leave_a_temporary_file, [Job(0), Job(1)], describe=describe)]
    assert all(path.exists() and path.parent.name.startswith("etl-workers-") for path in left)
    assert left[0].parent == left[1].parent != Path(tempfile.gettempdir())
    two_workers.close()
    assert not left[0].parent.exists()


def test_a_job_whose_worker_keeps_dying_fails_the_map_naming_it(
    tmp_path: Path, two_workers: LocalProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_KILL_AT", KILLED_EVERY_TIME)  # workers start with it
    jobs = [Job(n, str(tmp_path)) for n in range(6)]
    with pytest.raises(WorkerLost, match=r"^job 4: the worker process running it died 3 times"):
        two_workers.map(square_killed_always, jobs, describe=describe)
    assert attempts(jobs[4], "killed_always") == 3
    monkeypatch.delenv("ETL_KILL_AT")
    two_workers.close()  # the next map starts workers without ETL_KILL_AT
    assert two_workers.map(square, jobs[:3], describe=describe) == [0, 1, 4]


@pytest.mark.parametrize("kind", ["in process", "2 workers"])
def test_a_job_that_raises_fails_the_map_naming_it_without_a_retry(tmp_path: Path, kind: str) -> None:
    jobs = [Job(n, str(tmp_path)) for n in range(6)]
    with InProcess() if kind == "in process" else LocalProcesses(2) as executor:
        with pytest.raises(JobFailed, match=r"^job 3: ValueError: bad row 17$") as failure:
            executor.map(square_failing, jobs, describe=describe)
        assert isinstance(failure.value.cause, ValueError)
        assert failure.value.__cause__ is failure.value.cause
        assert attempts(jobs[3], "failing") == 1
        assert executor.map(square, jobs[:2], describe=describe) == [0, 1]  # still usable


def test_an_interrupt_while_a_failed_map_waits_for_its_other_job_stops_the_workers_at_once(tmp_path: Path) -> None:
    """Job 3 fails at once while job 0 runs for a minute: the map waits for job 0 (its outputs are the
    failed run's), until Ctrl-C, which stops the workers then and there."""
    jobs = [Job(0, str(tmp_path), seconds=60), Job(3, str(tmp_path))]

    def ctrl_c_once_job_3_failed() -> None:
        _wait_for(tmp_path / "failing-3")
        time.sleep(1.0)  # (the map is waiting for job 0 by now)
        os.kill(os.getpid(), signal.SIGINT)

    started = time.monotonic()
    interrupter = threading.Thread(target=ctrl_c_once_job_3_failed)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # (whatever pytest was started with)
    try:
        interrupter.start()
        with LocalProcesses(2) as executor, pytest.raises(KeyboardInterrupt):
            executor.map(square_failing, jobs, describe=describe)
        interrupter.join()
    finally:
        signal.signal(signal.SIGINT, before)
    assert time.monotonic() - started < 30
    (worker,) = (tmp_path / "failing-0").read_text().split()
    with pytest.raises(ProcessLookupError):
        os.kill(int(worker), 0)  # (killed, and reaped by the pool)


# Choosing an executor --------------------------------------------------------------------------------


def test_make_executor_chooses_by_kind_workers_and_locations() -> None:
    assert isinstance(make_executor("local", 1, ["data/landing", "data/warehouse"]), InProcess)
    assert isinstance(make_executor("local", 2, ["data/landing", "s3://bucket/warehouse"]), LocalProcesses)
    assert isinstance(make_executor("local", 4, ["memory://landing", "data/warehouse"]), InProcess)
    default = make_executor("local", None, ["data/landing"])
    assert isinstance(default, InProcess if available_cores() == 1 else LocalProcesses)
    with pytest.raises(UsageError, match="memory://w"):
        make_executor("ray", None, ["data/landing", "memory://w"])
    with pytest.raises(UsageError, match="--executor dask is not known"):
        make_executor("dask", None, [])
    with pytest.raises(UsageError, match="--workers 0"):
        make_executor("local", 0, [])


def test_the_ray_executor_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(UsageError, match=r"^--executor ray needs Ray: pip install 'outbound-events-etl\[ray\]'$"):
        make_executor("ray", None, ["data/landing"])


# Ray, in a network namespace with only loopback (tests/support/ray_cluster.py) ------------------------


@pytest.mark.heavy
def test_ray_runs_the_jobs_like_local_executors_and_survives_killed_workers(tmp_path: Path) -> None:
    out = run_scenario("local", tmp_path)
    assert out["interfaces"] == ["lo"]
    assert out["node_addresses"] == ["127.0.0.1"]
    assert out["squares"] == [n * n for n in range(6)]
    assert out["late_first"] == [0, 1, 4, 9] and out["finished"][-1] == 0
    for fact in out["facts"]:  # a task declaring one CPU gets one polars thread
        assert (fact["POLARS_MAX_THREADS"], fact["polars_threads"], fact["arrow_pool"]) == ("1", 1, "system")
        assert "narenas:1" in fact["allocator"]
    assert sorted(out["logged"]) == [f"job {n} ran in process {fact['pid']}" for n, fact in enumerate(out["facts"])]
    assert out["killed_once"] == out["squares"]
    assert out["keeps_dying"].startswith("job 4: Ray gave up on it after 3 attempts (WorkerCrashedError")
    assert out["keeps_dying_attempts"] == 3
    assert out["failing"] == "job 3: ValueError: bad row 17"
    assert (out["failing_cause"], out["failing_attempts"]) == ("ValueError", 1)
    assert out["after_failures"] == out["squares"]
    assert out["too_big"].startswith("a job needs 3 CPUs and 0 bytes, more than the Ray started for this run has")
    assert out["pandas_imported"] == [False, False]  # (pandera looks for it at its first check: 0.46 s)


@pytest.mark.heavy
def test_ray_spreads_the_jobs_over_a_cluster_of_two_nodes(tmp_path: Path) -> None:
    out = run_scenario("cluster", tmp_path)
    assert out["interfaces"] == ["lo"]
    assert len(out["nodes"]) == 2
    assert [square for square, _ in out["results"]] == [0, 1, 4, 9]
    assert {node for _, node in out["results"]} == set(out["nodes"])  # both nodes ran jobs
    for fact in out["facts"]:  # a job on a cluster gets the workers' settings with it
        assert (fact["POLARS_MAX_THREADS"], fact["polars_threads"]) == ("1", 1)
