"""Settings of the `etl` process itself (not of the library): how it uses memory."""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa

_M_ARENA_MAX = -8  # glibc mallopt parameter


def use_lean_memory() -> None:
    """Arrow allocates from the C heap, and the C heap keeps at most two arenas.

    Arrow's default pool (mimalloc) and glibc's per-thread arenas both keep freed memory for reuse;
    with reading, judging and writing on three threads that held about 140 MB more at the peak for
    no speed gain (measured on 2M NDJSON events with 8 MB blocks: 707 MB -> about 570 MB peak).
    """
    pa.set_memory_pool(pa.system_memory_pool())
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    try:
        libc = ctypes.CDLL(libc_name)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
