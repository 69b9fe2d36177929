"""`make bench`: run every benchmark in this folder and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["speed.py", "incremental.py"]


def main() -> None:
    events = [f"--events={sys.argv[1]}"] if len(sys.argv) > 1 else []
    for script in BENCHMARKS:
        print(f"\n== {script} ==", flush=True)
        extra = events if script == "speed.py" else []
        subprocess.run([sys.executable, str(HERE / script), *extra], check=True)


if __name__ == "__main__":
    main()
