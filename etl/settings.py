"""Run settings: parsed once from command-line options and ETL_* environment variables."""

from __future__ import annotations

import os
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


def from_environment(**overrides: object) -> Settings:
    """Settings from ETL_* variables, with explicit (non-None) overrides taking precedence."""
    env = os.environ
    values: dict[str, object] = {
        "landing": Path(env.get("ETL_LANDING", DEFAULT_LANDING)),
        "warehouse": Path(env.get("ETL_WAREHOUSE", DEFAULT_WAREHOUSE)),
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    return Settings(**values)  # type: ignore[arg-type]
