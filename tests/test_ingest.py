"""ingest: folder -> Zarr stack; evaluating the stacks equals evaluating the folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

import pipeline as sp
from pipeline.ingest import ingest_folder


@pytest.fixture
def folders(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for name, shape in [("a.png", (30, 40, 3)), ("b/c.png", (30, 40, 3)), ("g.png", (24, 24))]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
        for root, image in ((ref, x), (gen, y)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name)
    return ref, gen


def test_stack_equals_folder(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ref_stack = ingest_folder(folders[0], tmp_path / "ref.zarr")
    gen_stack = ingest_folder(folders[1], tmp_path / "gen.zarr")
    assert set(ref_stack.arrays) == {"30x40x3_uint8", "24x24x1_uint8"}
    assert not ref_stack.failed and not gen_stack.failed
    by_folder = sp.evaluate(*folders, regions="2x2").load()
    for group in ref_stack.arrays:
        stored = xr.open_zarr(tmp_path / "ref.zarr", group=group, consolidated=False)
        files = stored.file.values.tolist()
        assert (stored.status.values == "ok").all()
        ds = sp.evaluate(
            tmp_path / "ref.zarr" / group / "images",
            tmp_path / "gen.zarr" / group / "images",
            channel_axis=-1,
            regions="2x2",
        )
        expected = by_folder.sel(image=files)
        for name in ("ssim", "luminance", "contrast", "structure", "count", "ssim_hist"):
            np.testing.assert_array_equal(ds[name].values, expected[name].values)


def test_ingest_marks_bad_files_and_refuses_existing(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    data = bytearray((folders[0] / "a.png").read_bytes())
    data[-100:-60] = bytes(40)
    (folders[0] / "a.png").write_bytes(bytes(data))
    (folders[0] / "empty.png").write_bytes(b"")
    result = ingest_folder(folders[0], tmp_path / "s.zarr")
    assert set(result.failed) == {"a.png", "empty.png"}
    stored = xr.open_zarr(tmp_path / "s.zarr", group="30x40x3_uint8", consolidated=False)
    status = dict(zip(stored.file.values.tolist(), stored.status.values.tolist(), strict=True))
    assert status["b/c.png"] == "ok" and status["a.png"] != "ok"
    with pytest.raises(FileExistsError, match="already exists"):
        ingest_folder(folders[0], tmp_path / "s.zarr")
    ingest_folder(folders[0], tmp_path / "s.zarr", overwrite=True)
