"""pipeline.inputs.models: model names, and every model's pairs in the references' layout.

Real photograph crops in PNG files; the layout a single model's folder gets on its own
is :func:`pipeline.inputs.folders.open_folder_pair`'s, the one checked throughout
``tests/inputs/test_folders.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.inputs.folders import open_folder_pair
from pipeline.inputs.models import model_sources, open_models
from pipeline.testing import degrade, photograph


def _folders(root: Path) -> tuple[Path, Path, Path]:
    """References of two sizes (64: a, c; 32: b0, b1) and two degraded models of them."""
    rng = np.random.default_rng(5)
    base = photograph("chelsea")
    folders = tuple(root / name for name in ("real", "noise", "blur"))
    for folder in folders:
        folder.mkdir()
    for name, size in (("a.png", 64), ("b0.png", 32), ("b1.png", 32), ("c.png", 64)):
        crop = np.ascontiguousarray(base[:size, 50 : 50 + size])
        Image.fromarray(crop).save(folders[0] / name)
        for kind, folder in zip(("noise", "blur"), folders[1:], strict=True):
            Image.fromarray(degrade(crop, kind, rng=rng)).save(folder / name)
    return folders


def _layout(pair) -> list[tuple[tuple[int, int], list[str]]]:
    return [(group.image_shape, group.image.tolist()) for group in pair.groups]


def test_a_pair_failed_from_its_headers_keeps_its_references_group(tmp_path: Path) -> None:
    reference, noise, blur = _folders(tmp_path)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(blur / "a.png")  # another size
    (blur / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a signature and nothing else
    alone = open_folder_pair(reference, blur)
    # On its own the model's failed pairs sit in its first group, which is now the 32 px one.
    assert _layout(alone) == [((32, 32), ["a.png", "b0.png", "b1.png", "c.png"])]
    pairs = open_models(reference, model_sources([noise, blur]))
    expected = [((64, 64), ["a.png", "c.png"]), ((32, 32), ["b0.png", "b1.png"])]
    assert [_layout(pair) for pair in pairs] == [expected, expected]
    assert pairs[0].status == {}
    assert sorted(pairs[1].status) == [0, 1]
    assert "shape mismatch" in pairs[1].status[0] and str(blur / "a.png") in pairs[1].status[0]
    assert str(blur / "c.png") in pairs[1].status[1]


def test_a_reference_no_model_can_pair_sits_in_the_first_group_of_every_model(
    tmp_path: Path,
) -> None:
    reference, noise, blur = _folders(tmp_path)
    for folder in (noise, blur):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "b1.png")
    pairs = open_models(reference, model_sources([noise, blur]))
    expected = [((64, 64), ["a.png", "b1.png", "c.png"]), ((32, 32), ["b0.png"])]
    assert [_layout(pair) for pair in pairs] == [expected, expected]
    assert [sorted(pair.status) for pair in pairs] == [[1], [1]]


def test_same_names_are_made_distinct_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"'gan' -> 'gan-2', 'gan' -> 'gan-3'"):
        named = model_sources(["a/gan", "b/gan/", "c/gan.zarr"])
    assert [name for name, _ in named] == ["gan", "gan-2", "gan-3"]
    with pytest.raises(ValueError, match=r"generated holds no source"):
        model_sources([])
    with pytest.raises(ValueError, match=r"non-empty strings \(got 3\)"):
        model_sources({3: "x"})
