"""Run a command in a network namespace of its own that has only loopback (`lo`), for tests of
programs that would otherwise bind to, or talk to, the machine's network (Ray does both).

`unshare --net` (root, or a user namespace where allowed) creates the namespace; `ip link set lo up`
brings up its loopback. Nothing inside can reach any address but 127.0.0.1 and ::1, and nothing
outside can reach what listens inside. The namespace ends with the last process in it.

When a namespace cannot be made here, `require_loopback_namespace()` skips the test, saying why; in
CI (the `CI` variable set), where the tests run as root, it fails it instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

# `sh -c SCRIPT sh ARGS...`: the command follows as "$@", exec'd so that it is the process we wait on.
_INSIDE = 'ip link set lo up && exec "$@"'


def loopback_only(command: Sequence[str]) -> list[str]:
    """`command`, run in a new network namespace with only `lo`, up."""
    return ["unshare", "--net", "sh", "-c", _INSIDE, "sh", *command]


@functools.cache
def namespace_problem() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None when it can."""
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian's {package})"
    probe = subprocess.run(loopback_only(["true"]), capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"`unshare --net` is not permitted here ({probe.stderr.strip() or probe.returncode}); run as root"
    return None


def unavailable(reason: str) -> None:
    """Skip the test, or fail it in CI, where everything it needs is installed."""
    if os.environ.get("CI"):
        pytest.fail(f"cannot run in CI: {reason}")
    pytest.skip(reason)


def require_loopback_namespace() -> None:
    problem = namespace_problem()
    if problem:
        unavailable(problem)


def run_loopback_only(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `command` inside a loopback-only namespace; on a timeout, kill everything it started."""
    process = subprocess.Popen(
        loopback_only(command),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, to kill as one
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"{' '.join(command)} ran longer than {timeout:.0f} s:\n{stderr[-4000:]}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
