"""Run settings: one typed object, filled from command-line options and ETL_* variables by the CLI.

Locations are text: a local folder (a path) or a URI (`memory://name`). Tuning values that trade
memory for passes live here too, so that a unit of work running in another process gets them as an
argument, not from a module global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from etl.reading.types import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES, Limits, Sources

DEFAULT_LANDING = "data/landing"
DEFAULT_WAREHOUSE = "data/warehouse"


@dataclass(frozen=True)
class Tuning:
    """Sizes that bound memory; each was measured (see where it is used)."""

    # Finding a date's repeats held about 85 MB at the peak with shares of 250k rows and 165 MB with
    # 500k (which made the rebuild the peak of a 10M-event run); more shares mean more passes.
    share_rows: int = 300_000
    # Rows one unit of a split reads (etl/split_shares.py): a sink reading many partitions at once
    # buffers more (10M events in 8 partitions: +120 MB with one partition per sink, +230 MB with all).
    split_rows: int = 1_500_000
    # Up to this many shares, a filtered pass per share costs less than one split (the lifetime count,
    # when the driver split alone: 2M events in 7 shares 0.43 s in passes vs 0.53 s split; 3M in 10
    # shares 1.3 s vs 0.9 s).
    max_passes: int = 8
    # Rows converted at a time when an old warehouse's staged copies are upgraded.
    upgrade_batch_rows: int = 100_000


@dataclass(frozen=True)
class Settings:
    landing: str = DEFAULT_LANDING
    warehouse: str = DEFAULT_WAREHOUSE
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    min_file_age: float = 0.0
    max_reject_rate: float | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    tuning: Tuning = field(default_factory=Tuning)
    executor: str = "local"  # where the units of work run: local processes, or Ray tasks (etl.executors)
    # Worker processes of the local executor; 1: in this process. (The command line's default is the
    # machine's cores; a library caller asks for workers.) With Ray: the CPUs of a Ray started for the run.
    workers: int | None = 1
    sources: Sources = field(default_factory=Sources)  # the --sources file and ETL_PSEUDONYMISE_KEY

    def __post_init__(self) -> None:
        for name in ("landing", "warehouse"):  # a Path is accepted, and kept as its text
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))

    @property
    def limits(self) -> Limits:
        return Limits(self.max_record_bytes, self.max_depth, sources=self.sources)
