"""Cold start: the time to import a module in a fresh interpreter (import only, best of many).

Runs ``python -E -c "import <module>"`` (this venv's python) again and again for the run's
duration and reports the fastest import, timed inside the child with ``perf_counter`` so
interpreter start-up is left out. Also reports the least CPU time of an import (steadier than
wall time on a busy machine) and the ``-X importtime`` total of the fastest of a few extra runs
(the sum of every module's own time, in ms).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import Result, main

MIN_RUNS = 5

TIMED = (
    "import time\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "import {module}\n"
    "print(time.perf_counter() - t, time.process_time() - c)\n"
)


def _import_once(module: str) -> tuple[float, float]:
    """(wall, CPU) milliseconds of one import in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-E", "-c", TIMED.format(module=module)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall, cpu = out.stdout.split()
    return float(wall) * 1000, float(cpu) * 1000


def _importtime_total(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-E", "-X", "importtime", "-c", f"import {module}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    total = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0][12:].strip().isdigit():
            total += int(parts[0][12:])
    return total / 1000


def measure(args: argparse.Namespace) -> Result:
    module = args.module
    _import_once(module)  # writes the .pyc files
    times, cpu_times = [], []
    deadline = time.perf_counter() + args.duration
    while len(times) < MIN_RUNS or time.perf_counter() < deadline:
        wall, cpu = _import_once(module)
        times.append(wall)
        cpu_times.append(cpu)
    importtime = min(_importtime_total(module) for _ in range(3))
    return {
        "rate": min(times),
        "unit": "ms",
        "count": len(times),
        "median": statistics.median(times),
        "cpu_ms": min(cpu_times),
        "importtime_ms": importtime,
        "module": module,
    }


if __name__ == "__main__":
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("httpcore")
    except PackageNotFoundError:  # httpcore-base alone
        installed = version("httpcore-base")
    main(measure, {"version": installed})
