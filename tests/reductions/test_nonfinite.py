"""pipeline.reductions.nonfinite: NaN and Inf pixels fail their pair when they are read.

``nan_policy="mask"`` and the setting's checks are exercised end to end in
tests/end_to_end/test_errors.py and test_numeric_extremes.py.
"""

from __future__ import annotations

import numpy as np

import pipeline as sp


def test_nan_pixels_fail_their_pair_when_read(rng):
    # nan_policy="fail" (default): that pair fails with the count; the others are computed.
    x = rng.random((2, 20, 20))
    y = x.copy()
    y[1, 3, 4] = np.nan
    ds = sp.evaluate(x, y, data_range=1.0)
    assert ds["status"].values[0] == "ok"
    reason = "non-finite pixels: reference has 0 NaN or Inf pixel(s), generated 1"
    assert ds["status"].values[1].startswith(reason)
    assert np.isnan(ds["ssim"].values[1]).all()
