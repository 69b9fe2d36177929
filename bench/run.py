"""`make bench`: run every benchmark in this folder and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["incremental.py"]


def main() -> None:
    for script in BENCHMARKS:
        print(f"\n== {script} ==", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
