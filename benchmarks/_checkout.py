"""Make ``import pipeline`` in a benchmark load this checkout.

``python benchmarks/bench_x.py`` puts ``benchmarks/`` first on ``sys.path``;
an installed (non-editable) ``pipeline`` in site-packages would otherwise
shadow the code the benchmark belongs to, and the figures would describe
another version. Each benchmark imports this module before ``pipeline``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def child_json(
    code: str, *arguments: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> dict[str, Any]:
    """Run ``python -c code arguments`` in a fresh process; the JSON of its last output line.

    The benchmarks that compare checkouts time each in a process of its own (one that
    imported another checkout's ``pipeline`` cannot import this one's). A child that
    fails stops the benchmark with the end of its error output.
    """
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=cwd,
    )
    if done.returncode != 0:
        raise SystemExit(f"a benchmark child failed ({arguments[:1]}):\n{done.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found
