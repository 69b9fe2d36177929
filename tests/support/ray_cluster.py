"""Ray scenarios for tests/test_executors.py, each run in a loopback-only network namespace.

Outside (pytest): `run_scenario(name, folder)` starts `python -m tests.support.ray_cluster NAME
FOLDER` in a new namespace with only `lo` (tests/support/netns.py), with usage statistics off, no
RAY_ADDRESS, and Ray's files (sessions, sockets, its token in ~/.ray) in folders of the test's own.
It returns what the scenario wrote to FOLDER/result.json.

Inside: one scenario per Ray start (a start costs seconds), checking many things with one instance:
- `local`: a Ray started by `RayExecutor` itself for the run (127.0.0.1, no dashboard);
- `cluster`: Ray's multi-node test cluster, two nodes of two CPUs, and a map spread over both;
- `pipeline`: `etl run --executor ray` from the command line, with a Ray it starts for the run;
- `pipeline_cluster_s3`: the run on the two-node cluster, landing and warehouse in the S3 test server;
- `interrupted`: `etl run --executor ray` stopped by SIGTERM while its tasks read.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from tests.support.netns import require_loopback_namespace, run_loopback_only, unavailable

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_SECONDS = 240
KILLED_EVERY_TIME = "job-4"  # ETL_KILL_AT inside the `local` scenario: job 4 dies at each attempt


def run_scenario(name: str, folder: Path) -> dict[str, Any]:
    """Run scenario `name` in a loopback-only namespace; skip (or fail in CI) where it cannot run."""
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("Ray is not installed: pip install -e '.[dev]'")
    require_loopback_namespace()
    ray_files = Path(tempfile.mkdtemp(prefix="etl-ray-", dir="/tmp"))  # short: Ray's socket paths must fit
    home = folder / "home"
    home.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env |= {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(ray_files),
        "HOME": str(home),  # Ray writes its token to ~/.ray
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        "ETL_KILL_AT": KILLED_EVERY_TIME if name == "local" else "",
    }
    command = [sys.executable, "-m", "tests.support.ray_cluster", name, str(folder)]
    try:
        done = run_loopback_only(command, env=env, cwd=ROOT, timeout=SCENARIO_SECONDS)
    finally:
        shutil.rmtree(ray_files, ignore_errors=True)
    result = folder / "result.json"
    assert done.returncode == 0 and result.exists(), f"scenario {name} failed:\n{done.stderr[-6000:]}"
    data: dict[str, Any] = json.loads(result.read_text())
    return data


# Inside the namespace -------------------------------------------------------------------------------


def interfaces() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def node_of(job: Any) -> tuple[int, str]:
    """A job's square and the Ray node it ran on."""
    import ray

    from tests.test_executors import square

    return square(job), ray.get_runtime_context().get_node_id()


def local_scenario(folder: Path) -> dict[str, Any]:
    import logging

    from etl.errors import EtlError
    from etl.executors import JobFailed, Resources, WorkerLost
    from etl.executors.ray_tasks import RayExecutor
    from etl.judge import contract_failures
    from tests.test_executors import (
        Finished,
        Job,
        Messages,
        attempts,
        describe,
        pandas_after_judging,
        square,
        square_failing,
        square_killed_always,
        square_killed_once,
        worker_facts,
    )

    out: dict[str, Any] = {}
    messages = Messages()
    logger = logging.getLogger("etl")
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    with RayExecutor(cpus=2) as executor:
        jobs = [Job(n, str(folder)) for n in range(6)]
        # First, in fresh workers: a job whose arguments load pandera when they are unpickled.
        judged = partial(pandas_after_judging, contract_failures)
        out["pandas_imported"] = executor.map(judged, jobs[:2], describe=describe)
        out["squares"] = executor.map(square, jobs, describe=describe)
        # Job 0 waits until job 3 is done, and a little more: the jobs finish out of order.
        marks = folder / "late"
        marks.mkdir()
        late = [Job(0, str(marks), seconds=0.5, after=3), *(Job(n, str(marks)) for n in range(1, 4))]
        finished = Finished()
        out["late_first"] = executor.map(square, late, describe=describe, on_done=finished)
        out["finished"] = finished.numbers
        needs = Resources(cpus=1, memory_bytes=256 * 2**20)
        out["facts"] = executor.map(worker_facts, jobs[:2], describe=describe, resources=needs)
        out["logged"] = messages.texts
        out["killed_once"] = executor.map(square_killed_once, jobs, describe=describe)
        try:
            executor.map(square_killed_always, jobs, describe=describe)
        except WorkerLost as error:
            out["keeps_dying"] = str(error)
        out["keeps_dying_attempts"] = attempts(jobs[4], "killed_always")
        try:
            executor.map(square_failing, jobs, describe=describe)
        except JobFailed as error:
            out["failing"] = str(error)
            out["failing_cause"] = type(error.cause).__name__
        out["failing_attempts"] = attempts(jobs[3], "failing")
        out["after_failures"] = executor.map(square, jobs, describe=describe)
        try:  # more CPUs than this Ray has: it would wait forever
            executor.map(square, jobs, describe=describe, resources=Resources(cpus=3))
        except EtlError as error:
            out["too_big"] = str(error)
        import ray

        out["node_addresses"] = sorted({node["NodeManagerAddress"] for node in ray.nodes()})
    return out


def cluster_scenario(folder: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from etl.executors import Resources
    from etl.executors.ray_tasks import RayExecutor
    from tests.test_executors import Job, describe, worker_facts

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        # Each job takes a whole node's two CPUs for a second: four of them need both nodes.
        jobs = [Job(n, str(folder), seconds=1.0) for n in range(4)]
        # Connected by the executor, as with RAY_ADDRESS: the workers' settings are the job's runtime_env.
        with RayExecutor(address=cluster.address) as executor:
            results = executor.map(node_of, jobs, describe=describe, resources=Resources(cpus=2))
            facts = executor.map(worker_facts, jobs[:2], describe=describe)
            nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    finally:
        ray.shutdown()  # before the nodes: the cluster refuses to remove the driver's node
        cluster.shutdown()
    return {"results": results, "nodes": nodes, "facts": facts}


def pipeline_scenario(folder: Path) -> dict[str, Any]:
    """`etl run --executor ray` on the test's landing zone, as users run it (the command line), with a
    Ray started for the run."""
    import subprocess

    command = [sys.executable, "-m", "etl", "run", "--landing", str(folder / "landing")]
    command += ["--warehouse", str(folder / "wh-ray"), "--executor", "ray", "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=SCENARIO_SECONDS, check=False)
    return {"exit_code": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-4000:]}


def interrupted_scenario(folder: Path) -> dict[str, Any]:
    """`etl run --executor ray` given SIGTERM (a scheduler stopping the job) once a task has read a
    file: what it said, what the warehouse holds after, and whether Ray's processes outlived it."""
    import subprocess

    from tests.support.feeds import busy_landing_zone

    def ray_processes() -> set[str]:  # its daemons name the session folder; its workers `ray::…`
        found = set()
        for pattern in (os.environ["RAY_TMPDIR"], "^ray::"):
            done = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
            found.update(done.stdout.split())
        return found

    landing, warehouse = folder / "landing-busy", folder / "wh-interrupted"
    busy_landing_zone(landing)
    there_before = ray_processes()
    command = [sys.executable, "-m", "etl", "run", "--landing", str(landing), "--warehouse", str(warehouse)]
    driver = subprocess.Popen(
        [*command, "--executor", "ray", "--workers", "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + SCENARIO_SECONDS / 3
    while not list(warehouse.glob("_state/journal/*/_state/staged/*.parquet")) and driver.poll() is None:
        if time.monotonic() > deadline:
            driver.kill()
            break
        time.sleep(0.02)
    read_before_the_signal = driver.poll() is None
    driver.terminate()
    _, stderr = driver.communicate(timeout=SCENARIO_SECONDS / 3)
    left = ray_processes() - there_before
    for _ in range(100):  # (Ray's stop gives its processes a moment)
        if not left:
            break
        time.sleep(0.1)
        left = ray_processes() - there_before
    return {
        "read_before_the_signal": read_before_the_signal,
        "exit_code": driver.returncode,
        "stderr": stderr.decode()[-4000:],
        "files_left": sorted(p.relative_to(warehouse).as_posix() for p in warehouse.rglob("*") if p.is_file()),
        "ray_processes_left": sorted(left),
    }


def stage_one_noting_its_node(job: Any) -> Any:
    """The reading unit, leaving a mark of the Ray node it ran on (test instrumentation only)."""
    import ray

    from etl.staging import stage_one

    marks = Path(os.environ["ETL_TEST_NODE_MARKS"])
    (marks / ray.get_runtime_context().get_node_id()).touch()
    return stage_one(job)


def pipeline_cluster_s3_scenario(folder: Path) -> dict[str, Any]:
    """The run on Ray's two-node test cluster, with landing zone and warehouse in the S3 test server
    (started in this namespace): the units share no local disk; the tables are copied back after."""
    import ray
    from ray.cluster_utils import Cluster

    import etl.pipeline
    from etl.settings import Settings, Tuning
    from etl.storage import open_store
    from tests.helpers import fixed_clock
    from tests.support.s3 import REGION, start_server, stop_server

    server = start_server(folder / "moto_server.log")
    marks = folder / "node-marks"
    marks.mkdir()
    os.environ.update(  # before the nodes start: their workers inherit it
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=REGION,
        AWS_METADATA_ENDPOINT="http://127.0.0.1:9",
        ETL_TEST_NODE_MARKS=str(marks),
    )
    server.create_bucket("lake")
    landing = open_store("s3://lake/landing")
    for path in sorted((folder / "landing").rglob("*.json")):
        landing.put(path.relative_to(folder / "landing").as_posix(), path.read_bytes())
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        etl.pipeline.stage_one = stage_one_noting_its_node  # type: ignore[attr-defined]
        # Shares of 10 rows, at most 2 passes: messages and lifetime funnel are counted from objects
        # per share that units on both nodes write to and read from the bucket.
        tuning = Tuning(share_rows=10, max_passes=2, split_rows=60)
        settings = Settings("s3://lake/landing", "s3://lake/warehouse", executor="ray", tuning=tuning)
        result = etl.pipeline.run(settings, clock=fixed_clock())
        nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    finally:
        ray.shutdown()
        cluster.shutdown()
    warehouse = open_store("s3://lake/warehouse")
    copy = open_store(folder / "wh-ray")
    for info in warehouse.list():
        if not info.key.startswith("_"):
            copy.put(info.key, warehouse.read_bytes(info.key))
    stop_server(server)
    return {"exit_code": result.exit_code, "nodes": nodes, "task_nodes": sorted(p.name for p in marks.iterdir())}


def main() -> None:
    name, folder = sys.argv[1], Path(sys.argv[2])
    if interfaces() != ["lo"]:  # Ray would bind to, and look for, the machine's address
        sys.exit(f"refusing to start Ray: this namespace has {interfaces()}, not only lo")
    scenarios = {
        "local": local_scenario,
        "cluster": cluster_scenario,
        "pipeline": pipeline_scenario,
        "pipeline_cluster_s3": pipeline_cluster_s3_scenario,
        "interrupted": interrupted_scenario,
    }
    started = time.monotonic()
    out = {"interfaces": interfaces(), **scenarios[name](folder)}
    out["seconds"] = round(time.monotonic() - started, 1)
    (folder / "result.json").write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
