"""``resume=True`` retries the pairs that failed for a transient reason, and only those."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
from PIL import Image

import pipeline as sp
from pipeline.inputs.files import is_transient_status

SETTINGS = {"batch_images": 2, "regions": "2x2"}


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(77)
    for side in ("reference", "generated"):
        (tmp_path / side).mkdir()
    for i in range(6):
        x = rng.integers(0, 256, (24, 24), dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
        Image.fromarray(x).save(tmp_path / "reference" / f"img{i}.png")
        Image.fromarray(y).save(tmp_path / "generated" / f"img{i}.png")
    # A file that is there and readable but does not decode: failing again is certain.
    data = (tmp_path / "generated" / "img2.png").read_bytes()
    (tmp_path / "generated" / "img2.png").write_bytes(data[: len(data) // 2])
    return tmp_path / "reference", tmp_path / "generated"


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def test_resume_retries_transient_failures_and_says_how_many(folders, tmp_path):
    reference, generated = folders
    whole = sp.evaluate(str(reference), str(generated), output=str(tmp_path / "w.zarr"), **SETTINGS)
    assert whole["status"].values[2] != "ok"  # the truncated file
    assert not is_transient_status(str(whole["status"].values[2]))

    out = str(tmp_path / "r.zarr")
    moved = tmp_path / "img4.png"

    def lose_a_file(done: int, total: int, n: int) -> None:
        if done == 1:  # after the run opened its sources: gone when its batch is read
            shutil.move(generated / "img4.png", moved)

    first = sp.evaluate(
        str(reference), str(generated), output=out, on_batch=lose_a_file, **SETTINGS
    )
    status = first["status"].values.tolist()
    assert is_transient_status(status[4]) and "img4.png" in status[4]
    assert status[2] == whole["status"].values[2]

    shutil.move(moved, generated / "img4.png")  # the cause fixed
    retried: list[int] = []
    batches: list[int] = []
    resumed = sp.evaluate(
        str(reference),
        str(generated),
        output=out,
        resume=True,
        on_retry=retried.append,
        on_batch=lambda done, total, n: batches.append(total),
        **SETTINGS,
    )
    assert retried == [1]
    assert batches == [1]  # img4's batch only: img2's decode failure is not retried
    xr.testing.assert_identical(_without_time(resumed), _without_time(whole))

    again: list[int] = []
    sp.evaluate(
        str(reference), str(generated), output=out, resume=True, on_retry=again.append, **SETTINGS
    )
    assert again == []  # nothing transient is left
