"""Pairing two folders: by path, by stem, ambiguity, unpaired, skipped, size groups, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.pairing import AmbiguousStem, FailedPair, SizeGroup, SkippedFile, pair_folders


def _image(path: Path, shape: tuple[int, ...] = (8, 10), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, 7, dtype=dtype)).save(path)  # format from the extension
    return path


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    ref, gen = tmp_path / "real", tmp_path / "fake"
    ref.mkdir()
    gen.mkdir()
    return ref, gen


def test_pairs_by_relative_path_in_nested_folders(folders):
    ref, gen = folders
    for name in ("a.png", "sub/b.png", "sub/deeper/c.png"):
        _image(ref / name)
        _image(gen / name)
    plan = pair_folders(ref, gen)
    assert plan.ids == ("a.png", "sub/b.png", "sub/deeper/c.png")
    pair = plan.pair("sub/deeper/c.png")
    assert pair.reference == ref / "sub/deeper/c.png"
    assert pair.generated == gen / "sub/deeper/c.png"
    assert plan.unpaired_reference == plan.unpaired_generated == ()
    assert plan.ambiguous == plan.skipped == plan.failed == ()


def test_pairs_by_stem_when_extensions_differ(folders):
    ref, gen = folders
    _image(ref / "x/photo.png")
    _image(gen / "x/photo.jpg")
    _image(ref / "upper.PNG")
    _image(gen / "upper.webp")
    plan = pair_folders(ref, gen)
    assert plan.ids == ("upper.PNG", "x/photo.png")  # the id is the reference's path
    assert plan.pair("x/photo.png").generated == gen / "x/photo.jpg"
    assert plan.pair("upper.PNG").generated == gen / "upper.webp"


def test_exact_path_wins_over_stem(folders):
    ref, gen = folders
    _image(ref / "a.png")
    _image(ref / "a.jpg")
    _image(gen / "a.png")
    plan = pair_folders(ref, gen)
    assert plan.ids == ("a.png",)
    assert plan.unpaired_reference == ("a.jpg",)
    assert plan.ambiguous == ()


def test_same_stem_twice_on_one_side_is_ambiguous(folders):
    ref, gen = folders
    _image(ref / "d/a.png")
    _image(gen / "d/a.jpg")
    _image(gen / "d/a.webp")
    _image(ref / "ok.png")
    _image(gen / "ok.png")
    plan = pair_folders(ref, gen)
    assert plan.ids == ("ok.png",)
    assert plan.ambiguous == (AmbiguousStem("d/a", ("d/a.png",), ("d/a.jpg", "d/a.webp")),)
    assert plan.unpaired_reference == plan.unpaired_generated == ()


def test_unpaired_files_are_listed_on_each_side(folders):
    ref, gen = folders
    _image(ref / "both.png")
    _image(gen / "both.png")
    _image(ref / "only_real.png")
    _image(gen / "sub/only_fake.jpg")
    plan = pair_folders(ref, gen)
    assert plan.unpaired_reference == ("only_real.png",)
    assert plan.unpaired_generated == ("sub/only_fake.jpg",)


def test_hidden_and_non_image_files_are_skipped_and_reported(folders):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    _image(ref / ".hidden.png")
    _image(ref / ".cache/b.png")
    (ref / "notes.txt").write_text("hello")
    (gen / "README").write_text("hello")
    (gen / "drawing.svg").write_text("<svg/>")
    _image(gen / "still.gif")  # a format Pillow reads: an image, here without a partner
    plan = pair_folders(ref, gen)
    assert plan.ids == ("a.png",)
    assert set(plan.skipped) == {
        SkippedFile("reference", ".cache", "hidden folder"),
        SkippedFile("reference", ".hidden.png", "hidden file"),
        SkippedFile("reference", "notes.txt", "extension '.txt' is not an image type"),
        SkippedFile("generated", "README", "no extension"),
        SkippedFile("generated", "drawing.svg", "extension '.svg' is not an image type"),
    }
    assert plan.unpaired_generated == ("still.gif",)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlinked_folder_is_not_followed(folders, tmp_path):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    os.symlink(ref, ref / "loop")
    plan = pair_folders(ref, gen)
    assert plan.ids == ("a.png",)
    assert SkippedFile("reference", "loop", "symbolic link to a folder (not followed)") in (
        plan.skipped
    )


def test_size_groups_from_headers(folders):
    ref, gen = folders
    for name, shape in (
        ("rgb1.png", (8, 10, 3)),
        ("grey.png", (8, 10)),
        ("rgb2.png", (8, 10, 3)),
        ("wide.png", (8, 20, 3)),
    ):
        _image(ref / name, shape)
        _image(gen / name.replace(".png", ".jpg"), shape)
    _image(ref / "deep.png", (8, 10), np.uint16)
    _image(gen / "deep.png", (8, 10), np.uint16)
    plan = pair_folders(ref, gen)
    assert plan.size_groups == (
        SizeGroup((8, 10), "uint16", ("deep.png",)),
        SizeGroup((8, 10), "uint8", ("grey.png",)),
        SizeGroup((8, 10, 3), "uint8", ("rgb1.png", "rgb2.png")),
        SizeGroup((8, 20, 3), "uint8", ("wide.png",)),
    )
    assert plan.failed == ()


def test_shape_mismatch_and_bad_header_fail_the_pair_only(folders):
    ref, gen = folders
    _image(ref / "good.png")
    _image(gen / "good.png")
    _image(ref / "size.png", (8, 10, 3))
    _image(gen / "size.png", (8, 12, 3))
    _image(ref / "depth.png", (8, 10), np.uint16)
    _image(gen / "depth.png", (8, 10), np.uint8)
    _image(ref / "empty.png")
    (gen / "empty.png").write_bytes(b"")
    plan = pair_folders(ref, gen)
    assert plan.ids == ("depth.png", "empty.png", "good.png", "size.png")
    assert plan.size_groups == (SizeGroup((8, 10), "uint8", ("good.png",)),)
    failed = {f.id: f.reason for f in plan.failed}
    assert failed["size.png"] == (
        "shape mismatch: reference (8, 10, 3) uint8, generated (8, 12, 3) uint8"
    )
    assert (
        failed["depth.png"] == "dtype mismatch: reference (8, 10) uint16, generated (8, 10) uint8"
    )
    assert failed["empty.png"].endswith("empty.png: empty file (0 bytes)")
    assert all(isinstance(f, FailedPair) for f in plan.failed)


def test_read_headers_false_skips_grouping(folders):
    ref, gen = folders
    _image(ref / "a.png")
    (gen / "a.png").write_bytes(b"")
    plan = pair_folders(ref, gen, read_headers=False)
    assert plan.ids == ("a.png",)
    assert plan.size_groups == plan.failed == ()


def test_plan_is_frozen(folders):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    plan = pair_folders(ref, gen)
    with pytest.raises(AttributeError):
        plan.pairs = ()  # type: ignore[misc]
    with pytest.raises(KeyError, match=r"no pair with id 'b.png' \(the plan has 1 pairs\)"):
        plan.pair("b.png")


# ---------------------------------------------------------------------------
# errors before any work


def test_missing_folder(folders, tmp_path):
    ref, _ = folders
    _image(ref / "a.png")
    with pytest.raises(FileNotFoundError, match=r"generated folder not found: .*nowhere"):
        pair_folders(ref, tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"reference folder not found: .*nowhere"):
        pair_folders(tmp_path / "nowhere", ref)


def test_path_is_a_file(folders):
    ref, gen = folders
    file = _image(ref / "a.png")
    with pytest.raises(NotADirectoryError, match=r"reference must be a folder of images, got a"):
        pair_folders(file, gen)


def test_empty_folder(folders):
    ref, gen = folders
    _image(ref / "a.png")
    (gen / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"generated folder .*fake contains no images.*notes\.txt"):
        pair_folders(ref, gen)
    with pytest.raises(ValueError, match=r"reference folder .*fake contains no images"):
        pair_folders(gen, ref)


def test_no_pairs_at_all(folders):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "b.png")
    with pytest.raises(ValueError, match=r"no image pairs: .*'a\.png' and 'b\.png'"):
        pair_folders(ref, gen)


def test_bad_side_name(folders):
    from pipeline.pairing import find_images

    with pytest.raises(ValueError, match=r"side must be one of reference, generated \(got 'x'\)"):
        find_images(folders[0], side="x")
