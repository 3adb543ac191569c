"""Make ``import pipeline`` in a benchmark load this checkout.

``python benchmarks/bench_x.py`` puts ``benchmarks/`` first on ``sys.path``;
an installed (non-editable) ``pipeline`` in site-packages would otherwise
shadow the code the benchmark belongs to, and the figures would describe
another version. Each benchmark imports this module before ``pipeline``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
