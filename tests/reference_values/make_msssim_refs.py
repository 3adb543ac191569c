"""Recompute the pinned MS-SSIM reference values with pytorch-msssim.

Run from the repository root (needs ``torch`` CPU and ``pytorch-msssim``, the
``bench`` extra; the test suite itself never imports torch)::

    python tests/reference_values/make_msssim_refs.py

It writes ``msssim_refs.json`` next to this file: for each named pair in
``msssim_cases.py``

* ``pytorch_msssim``: ``pytorch_msssim.ms_ssim`` on float64 tensors with a float64
  Gaussian window passed as ``win`` (its algorithm in float64 throughout);
* ``pytorch_msssim_default_window``: the same call with its default window, which
  pytorch-msssim builds in float32 (its taps sum to 1 - 3.1e-8), kept to show how
  far that rounding alone moves the score;
* for the odd-size cases also ``msssim_m_rule``: the same per-scale statistics
  (``pytorch_msssim.ssim._ssim``) but with ``msssim.m``'s downsampling (the last
  sample of an odd side repeated, then a 2x2 mean; TensorFlow's rule too), written
  here with torch ops, independent of :mod:`pipeline`.
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from pytorch_msssim.ssim import _ssim

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from msssim_cases import CASES, ODD_CASES, build_case  # noqa: E402

WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
DATA_RANGE = 255.0


def _window64() -> torch.Tensor:
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    return g / g.sum()


def _to_nchw(a: np.ndarray, channel_axis: int | None) -> torch.Tensor:
    t = torch.from_numpy(a)
    if channel_axis is None:
        return t[None, None]
    return torch.movedim(t, channel_axis, 0)[None]


def _msssim_m_rule(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> float:
    """MS-SSIM with msssim.m's symmetric (edge-repeating) downsampling on odd sides."""
    levels = len(WEIGHTS)
    factors = []
    for level in range(levels):
        ssim_pc, cs = _ssim(x, y, data_range=DATA_RANGE, win=win, size_average=False)
        if level < levels - 1:
            factors.append(torch.relu(cs))
            pad = [0, x.shape[-1] % 2, 0, x.shape[-2] % 2]  # (left, right, top, bottom)
            x = F.avg_pool2d(F.pad(x, pad, mode="replicate"), kernel_size=2)
            y = F.avg_pool2d(F.pad(y, pad, mode="replicate"), kernel_size=2)
    factors.append(torch.relu(ssim_pc))
    stacked = torch.stack(factors, dim=0)
    w = torch.tensor(WEIGHTS, dtype=torch.float64).view(-1, 1, 1)
    return float(torch.prod(stacked**w, dim=0).mean())


def _record(case: dict[str, Any], odd: bool) -> dict[str, Any]:
    x, y = build_case(case)
    channel_axis = case.get("channel_axis")
    tx, ty = _to_nchw(x, channel_axis), _to_nchw(y, channel_axis)
    channels = tx.shape[1]
    win = _window64()[None, None, None].repeat(channels, 1, 1, 1)
    out = dict(case)
    out["shape"] = list(x.shape)
    out["y_mean"] = float(y.mean())
    out["pytorch_msssim"] = float(ms_ssim(tx, ty, data_range=DATA_RANGE, win=win))
    out["pytorch_msssim_default_window"] = float(ms_ssim(tx, ty, data_range=DATA_RANGE))
    if odd:
        out["msssim_m_rule"] = _msssim_m_rule(tx, ty, win)
    return out


def main() -> None:
    torch.set_num_threads(2)
    refs = {
        "provenance": {
            "command": "python tests/reference_values/make_msssim_refs.py",
            "date": datetime.date.today().isoformat(),
            "python": platform.python_version(),
            "torch": version("torch"),
            "pytorch-msssim": version("pytorch-msssim"),
            "numpy": version("numpy"),
            "scipy": version("scipy"),
            "scikit-image": version("scikit-image"),
            "data_range": DATA_RANGE,
            "weights": WEIGHTS,
            "window": "Gaussian, 11 taps, sigma 1.5 (float64 via win=, except *_default_window)",
        },
        "cases": [_record(c, odd=False) for c in CASES],
        "odd_cases": [_record(c, odd=True) for c in ODD_CASES],
    }
    path = HERE / "msssim_refs.json"
    path.write_text(json.dumps(refs, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
