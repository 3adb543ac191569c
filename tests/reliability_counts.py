"""Counts of the bad inputs, faults and interruptions the reliability tests exercise.

Tests call :func:`record` as each case passes its checks. Counting is off unless
``SSIM_RELIABILITY_COUNTS`` names a file; then every call appends one JSON line.
``docs/reliability.md`` is made from a run like::

    rm -f /tmp/counts.jsonl
    SSIM_RELIABILITY_COUNTS=/tmp/counts.jsonl python -m pytest -q -p no:randomly \\
        tests/end_to_end/test_errors.py tests/results/test_lock.py \\
        tests/end_to_end/test_disk_full.py tests/end_to_end/test_interrupt.py \\
        tests/end_to_end/test_fuzz.py tests/end_to_end/test_properties.py
    python tests/reliability_counts.py /tmp/counts.jsonl
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

KINDS = ("bad_input", "faults", "interruptions", "fuzz", "properties")


def record(kind: str, case: str, n: int = 1) -> None:
    """Count ``n`` passed cases of ``kind`` (one of :data:`KINDS`) named ``case``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    target = os.environ.get("SSIM_RELIABILITY_COUNTS")
    if not target:
        return
    with Path(target).open("a") as handle:
        handle.write(json.dumps({"kind": kind, "case": case, "n": n}) + "\n")


def summarize(path: Path) -> str:
    """A Markdown table of the counts in ``path``, per kind and per case."""
    totals: Counter[str] = Counter()
    cases: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        totals[entry["kind"]] += entry["n"]
        cases[entry["kind"]][entry["case"]] += entry["n"]
    lines = ["| kind | cases run | distinct scenarios |", "|---|---|---|"]
    for kind in KINDS:
        lines.append(f"| {kind} | {totals[kind]} | {len(cases[kind])} |")
    for kind in KINDS:
        if cases[kind]:
            lines.append(f"\n**{kind}**\n")
            lines += [f"- {case}: {n}" for case, n in sorted(cases[kind].items())]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
