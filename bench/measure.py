"""Run one command and report what it cost: wall time, CPU-seconds and peak memory of its process tree.

    python bench/measure.py COMMAND [ARGS…]     # prints one JSON object on stdout

- `seconds`: wall time from start to exit.
- `cpu_seconds`: user + system time of the command and its descendants: `getrusage(RUSAGE_CHILDREN)`
  of this process (taken before and after), which counts every descendant its parent waited for; or,
  if higher, the sum of each descendant's own time as last seen in /proc (every 20 ms), which also
  counts processes nobody waits for (Ray's workers, whose raylet is killed at shutdown).
- `peak_kib`: peak resident memory of the tree: the largest sum of VmRSS over the command and its
  descendants, sampled every 20 ms, or the high-water mark of its largest single process (exact, from
  the kernel) if that is higher. With several processes, the shared pages of their libraries count once
  per process.
- `code`, `out`: the command's exit code and its stdout (its stderr passes through).

Only the standard library: this process must not add to what it measures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

SAMPLE_SECONDS = 0.02
RESCAN_EVERY = 10  # samples between looks for new descendants (a scan of /proc costs about 1 ms)
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def descendants(root: int) -> set[int]:
    """`root` and every process below it, from the parent pids in /proc."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue
        parent = int(text[text.rindex(b")") + 2 :].split()[1])  # the field after the state
        parents.setdefault(parent, []).append(int(name))
    tree, todo = {root}, [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def cpu_ticks(pids: set[int], seen: dict[int, int]) -> None:
    """Record each process's own user + system clock ticks so far (what it has used until now)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it has exited: its last reading stands
        seen[pid] = int(fields[11]) + int(fields[12])  # utime, stime


def resident_kib(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            pass  # it has exited
    return total


def measure(command: list[str]) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    tree, peak, tick, ticks = {child.pid}, 0, 0, {}
    # stdout is read after the exit: the commands measured print a line or two, never a pipe's worth.
    while child.poll() is None:
        if tick % RESCAN_EVERY == 0:
            tree = descendants(child.pid)
        peak = max(peak, resident_kib(tree))
        cpu_ticks(tree, ticks)
        tick += 1
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(cpu, sum(ticks.values()) / os.sysconf("SC_CLK_TCK"))
    out = child.stdout.read().decode() if child.stdout else ""
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_kib": max(peak, after.ru_maxrss),  # ru_maxrss: KiB on Linux, the largest waited-for process
        "code": child.returncode,
        "out": out,
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1:])))
