"""Run settings: one typed object, filled from command-line options and ETL_* variables by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from etl.feeds import DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES, Limits

DEFAULT_LANDING = Path("data/landing")
DEFAULT_WAREHOUSE = Path("data/warehouse")


@dataclass(frozen=True)
class Settings:
    landing: Path = DEFAULT_LANDING
    warehouse: Path = DEFAULT_WAREHOUSE
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    min_file_age: float = 0.0
    max_reject_rate: float | None = None
    max_depth: int = DEFAULT_MAX_DEPTH

    @property
    def limits(self) -> Limits:
        return Limits(self.max_record_bytes, self.max_depth)
