"""Start-up of the command line: ``ssim-pipeline --help`` next to ``python -c pass``.

Each command runs ``--repeat`` times in a fresh interpreter; the script prints the
median wall seconds and the median CPU seconds (user + system, of the child) of each,
and what ``--help`` costs beyond the bare interpreter. The CPU seconds say more than
the wall clock on a shared machine. A report, not a gate: nothing fails on a number.

    python benchmarks/bench_startup.py [--repeat 9]

Also timed: ``import pipeline`` (the public names are imported on first use) and
``ssim-pipeline evaluate --help`` (which builds the options from the settings model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import pipeline": [sys.executable, "-c", "import pipeline"],
    "ssim-pipeline --help": [sys.executable, "-m", "pipeline", "--help"],
    "ssim-pipeline evaluate --help": [sys.executable, "-m", "pipeline", "evaluate", "--help"],
}


def _time(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (its output discarded)."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs of each command")
    args = parser.parse_args()
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    medians: dict[str, tuple[float, float]] = {}
    for name, command in COMMANDS.items():
        runs = [_time(command) for _ in range(args.repeat)]
        medians[name] = (
            statistics.median(w for w, _ in runs),
            statistics.median(c for _, c in runs),
        )
        wall, cpu = medians[name]
        print(f"{name:<32} wall {wall:6.3f} s   cpu {cpu:6.3f} s   (median of {args.repeat})")
    base_wall, base_cpu = medians["python -c pass"]
    help_wall, help_cpu = medians["ssim-pipeline --help"]
    print(
        f"--help beyond the interpreter: wall {help_wall - base_wall:+.3f} s, "
        f"cpu {help_cpu - base_cpu:+.3f} s"
    )


if __name__ == "__main__":
    main()
