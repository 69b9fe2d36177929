"""The command line: a thin shell around the library."""

import os

# Polars allocates through its own jemalloc, which by default keeps several arenas per core. One
# arena held about 60 MB less at the peak of a 2M-event run (NDJSON 490 -> 430 MB, arrays 600 ->
# 540 MB) at the same speed. jemalloc reads this once, when polars loads, so it is set here, before
# any command module imports polars. Polars itself exports its defaults in this variable, so a
# parent process that imported polars hands them down: the arena setting is added to what is there,
# unless that already chooses the arenas. See also `etl.cli.process`.
_ALLOCATOR = "_RJEM_MALLOC_CONF"
if "narenas" not in os.environ.get(_ALLOCATOR, ""):
    os.environ[_ALLOCATOR] = ",".join(filter(None, [os.environ.get(_ALLOCATOR), "narenas:1"]))
