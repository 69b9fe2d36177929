"""The command line: a thin shell around the library."""

import os

# Polars allocates through its own jemalloc, which by default keeps several arenas per core. One
# arena held about 60 MB less at the peak of a 2M-event run (NDJSON 490 -> 430 MB, arrays 600 ->
# 540 MB) at the same speed. jemalloc reads this once, when polars loads, so it is set here, before
# any command module imports polars; a value the user set wins. See also `etl.cli.process`.
os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1")
