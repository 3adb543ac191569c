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


def test_two_image_objects_are_one_pair_like_two_files(tmp_path, s3_bucket):
    import pytest
    from s3_server import upload

    x = photograph("camera")[:96, :128]
    y = degrade(x, "blur", strength=15)
    Image.fromarray(x).save(tmp_path / "real.png")
    Image.fromarray(y).save(tmp_path / "fake.png")
    upload(tmp_path / "real.png", f"s3://{s3_bucket}/a/real.png")
    upload(tmp_path / "fake.png", f"s3://{s3_bucket}/b/fake.png")
    local = sp.evaluate(str(tmp_path / "real.png"), str(tmp_path / "fake.png"))
    remote = sp.evaluate(f"s3://{s3_bucket}/a/real.png", f"s3://{s3_bucket}/b/fake.png")
    assert remote["image"].values.tolist() == ["real.png"]
    assert remote["reference"].values.tolist() == [f"s3://{s3_bucket}/a/real.png"]
    np.testing.assert_array_equal(remote["ssim"].values, local["ssim"].values)
    # A local file against an object works too.
    mixed = sp.evaluate(str(tmp_path / "real.png"), f"s3://{s3_bucket}/b/fake.png")
    np.testing.assert_array_equal(mixed["ssim"].values, local["ssim"].values)
    with pytest.raises(FileNotFoundError, match="generated image file: no object or prefix at"):
        sp.evaluate(f"s3://{s3_bucket}/a/real.png", f"s3://{s3_bucket}/b/none.png")
