"""pipeline.inputs.image_pair: two image files as one pair, through the API.

The CLI's case is in tests/cli/test_main.py.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.testing import degrade, photograph


def test_evaluate_two_image_files_is_one_pair(tmp_path):
    x = photograph("camera")[:96, :128]
    y = degrade(x, "noise", strength=20)
    Image.fromarray(x).save(tmp_path / "real.png")
    Image.fromarray(y).save(tmp_path / "fake.png")
    ds = sp.evaluate(str(tmp_path / "real.png"), str(tmp_path / "fake.png"))
    assert ds["image"].values.tolist() == ["real.png"]
    assert ds["status"].values.tolist() == ["ok"]
    # Reference: scikit-image 0.26 structural_similarity with the wang2004 profile's settings.
    expected = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    np.testing.assert_allclose(ds["ssim"].sel(region="all").values[0], expected, atol=1e-6)
