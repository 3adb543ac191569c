"""The command line with several models, one of them holding bad files.

``ssim-pipeline evaluate REFERENCE GEN_A GEN_B --out r.zarr`` on photograph folders of two
image sizes, where one model has a truncated PNG and an image of another size: the run
finishes with exit status 1 (failed pairs), those two rows of that model failed with the
file named, every other row ok with its own single run's values; ``report`` of the store
opens on the model comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import pipeline as sp
from pipeline.cli.main import main
from pipeline.testing import degrade, photograph


def _folders(root: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(3)
    base = photograph("astronaut")
    folders = tuple(root / name for name in ("real", "noise", "blur"))
    for folder in folders:
        folder.mkdir()
    for k, size in enumerate((64, 48, 48, 64, 48)):
        top, left = rng.integers(0, base.shape[0] - size, 2)
        crop = np.ascontiguousarray(base[top : top + size, left : left + size])
        Image.fromarray(crop).save(folders[0] / f"p{k}.png")
        for kind, folder in zip(("noise", "blur"), folders[1:], strict=True):
            Image.fromarray(degrade(crop, kind, rng=rng)).save(folder / f"p{k}.png")
    return folders


def test_cli_run_with_one_models_bad_files_fails_those_rows_only(tmp_path, capsys):
    reference, noise, blur = _folders(tmp_path)
    truncated = blur / "p0.png"
    truncated.write_bytes(truncated.read_bytes()[:30])
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(blur / "p2.png")
    out = tmp_path / "r.zarr"
    code = main(["evaluate", str(reference), str(noise), str(blur), "--out", str(out)])
    assert code == 1
    printed = capsys.readouterr()
    assert "p0.png" in printed.out + printed.err and "p2.png" in printed.out + printed.err
    ds = sp.open_results(str(out)).load()
    failed = {
        (str(m), str(i)): str(ds.status.sel(model=m, image=i).values)
        for m in ds.model.values
        for i in ds.image.values
        if ds.status.sel(model=m, image=i).values != "ok"
    }
    assert sorted(failed) == [("blur", "p0.png"), ("blur", "p2.png")]
    assert str(truncated) in failed["blur", "p0.png"]
    assert "(48, 48, 3)" in failed["blur", "p2.png"] and "(40, 40, 3)" in failed["blur", "p2.png"]
    own = sp.evaluate(reference, blur).load()
    for image in ("p1.png", "p3.png", "p4.png"):
        np.testing.assert_array_equal(
            ds.ssim.sel(model="blur", image=image).values, own.ssim.sel(image=image).values
        )
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report)]) == 0
    assert "Paired tests on PSNR" in (report / "report.html").read_text(encoding="utf-8")
