"""`make bench`: run every benchmark in this folder and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["speed.py", "memory.py", "incremental.py", "executors.py", "providers.py", "s3.py"]


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None
    options = {
        "speed.py": [f"--events={events}"] if events else [],
        "memory.py": [f"--small={events}", f"--large={5 * events}"] if events else [],
        "incremental.py": [],
        "executors.py": [f"--events-per-file={events // 8}"] if events else [],
        "providers.py": [f"--events={events // 4}"] if events else [],
        "s3.py": [f"--events={events}"] if events else [],
    }
    for script in BENCHMARKS:
        print(f"\n== {script} ==", flush=True)
        extra = options[script]
        subprocess.run([sys.executable, str(HERE / script), *extra], check=True)


if __name__ == "__main__":
    main()
