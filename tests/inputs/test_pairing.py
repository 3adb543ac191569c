"""Pairing two folders: by path, by stem, ambiguity, unpaired, skipped, size groups, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.inputs.pairing import AmbiguousStem, FailedPair, SizeGroup, SkippedFile, pair_folders


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
        "shape mismatch: reference (8, 10, 3) uint8, generated (8, 12, 3) uint8 "
        f"(generated file {gen / 'size.png'})"
    )
    assert failed["depth.png"] == (
        "dtype mismatch: reference (8, 10) uint16, generated (8, 10) uint8 "
        f"(generated file {gen / 'depth.png'})"
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
    from pipeline.inputs.pairing import find_images

    with pytest.raises(ValueError, match=r"side must be one of reference, generated \(got 'x'\)"):
        find_images(folders[0], side="x")


# ---------------------------------------------------------------------------
# special files, names, formats, limits


def _pair_folders_with_timeout(*args, seconds: float = 10.0, **kwargs):
    """pair_folders in a thread: a FIFO opened for reading would block it for ever."""
    import threading

    outcome: list = []

    def work() -> None:
        try:
            outcome.append(pair_folders(*args, **kwargs))
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "pairing blocked: a special file was opened"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and UNIX sockets")
def test_fifos_sockets_and_devices_are_skipped_unopened(folders, monkeypatch):
    import socket

    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    os.mkfifo(ref / "pipe.png")
    os.mkfifo(gen / "pipe.png")
    os.symlink("/dev/zero", ref / "x.png")
    os.symlink("/dev/zero", gen / "x.png")
    opened: list[str] = []
    real_open = os.open

    def watching(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", watching)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(gen / "s.png"))
        plan = _pair_folders_with_timeout(ref, gen)
    assert plan.ids == ("a.png",)
    assert plan.failed == ()
    skipped = {(s.side, s.path): s.reason for s in plan.skipped}
    never = "not a regular file (never opened)"
    assert skipped == {
        ("reference", "pipe.png"): f"a named pipe (FIFO), {never}",
        ("generated", "pipe.png"): f"a named pipe (FIFO), {never}",
        ("reference", "x.png"): f"a character device, {never}",
        ("generated", "x.png"): f"a character device, {never}",
        ("generated", "s.png"): f"a socket, {never}",
    }
    assert not [p for p in opened if p.endswith(("pipe.png", "x.png", "s.png"))]


def test_skipped_entries_name_the_folder_as_typed(folders, monkeypatch):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    (gen / "sub").mkdir()
    (gen / "sub/notes.txt").write_text("x")
    monkeypatch.chdir(gen.parent)
    plan = pair_folders(ref, "./fake/")
    (entry,) = plan.skipped
    assert entry.path == "sub/notes.txt"
    assert entry.location == "./fake/sub/notes.txt"


@pytest.mark.parametrize("suffix", [".avif", ".jp2", ".gif", ".qoi", ".ppm", ".tga"])
def test_formats_pillow_reads_are_paired_not_skipped(folders, suffix):
    from PIL import features

    if suffix == ".avif" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    ref, gen = folders
    _image(ref / "a.png", (8, 10, 3))
    _image(gen / f"a{suffix}", (8, 10, 3))
    plan = pair_folders(ref, gen)
    assert plan.ids == ("a.png",) and plan.skipped == ()
    assert plan.pair("a.png").generated == gen / f"a{suffix}"
    assert plan.size_groups == (SizeGroup((8, 10, 3), "uint8", ("a.png",)),)


def test_pixel_limit_fails_the_pair_at_pairing(folders):
    ref, gen = folders
    _image(ref / "big.png", (8, 10))
    _image(gen / "big.png", (8, 10))
    _image(ref / "small.png", (4, 5))
    _image(gen / "small.png", (4, 5))
    plan = pair_folders(ref, gen, max_image_pixels=20)
    assert plan.size_groups == (SizeGroup((4, 5), "uint8", ("small.png",)),)
    (failed,) = plan.failed
    assert failed.id == "big.png"
    assert "big.png: declares 10x8 pixels (80), more than max_image_pixels (20)" in failed.reason


def test_stamps_are_recorded_when_headers_are_read(folders):
    ref, gen = folders
    _image(ref / "a.png")
    _image(gen / "a.png")
    pair = pair_folders(ref, gen).pair("a.png")
    info = (gen / "a.png").stat()
    assert pair.generated_stamp is not None
    assert (pair.generated_stamp.size, pair.generated_stamp.mtime_ns) == (
        info.st_size,
        info.st_mtime_ns,
    )
    assert pair_folders(ref, gen, read_headers=False).pair("a.png").reference_stamp is None


_ODD_NAMES = [
    b"caf\xe9.png",  # Latin-1, not UTF-8
    b"\xff\xfe.png",
    b"line\nbreak.png",
    b"esc\x1b[31mred\x1b[0m.png",
    b"tab\tand\rcr.png",
    b"$HOME #1 'q' \"dq\".png",
    b"\xe6\x97\xa5\xe6\x9c\xac.png",  # valid UTF-8 (Japanese): kept as is
    b"x" * 250 + b".png",
]


def test_any_bytes_in_names_pair_and_ids_are_valid_unicode(folders):
    ref, gen = folders
    try:
        for raw in _ODD_NAMES:
            for side in (ref, gen):
                _image(Path(os.fsdecode(os.fsencode(side) + b"/" + raw)))
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses some of these names")
    (gen / "orphan\udcff.png").write_bytes(b"")  # surrogate escape of byte 0xff
    (gen / "notes\udcfe.txt").write_text("x")
    plan = pair_folders(ref, gen)
    assert len(plan.ids) == len(_ODD_NAMES)
    assert plan.failed == ()
    texts = [
        *plan.ids,
        *plan.unpaired_generated,
        *(s.path for s in plan.skipped),
        *(s.location for s in plan.skipped),
    ]
    for text in texts:
        text.encode("utf-8")  # no lone surrogates
    assert "caf\\xe9.png" in plan.ids and "\\xff\\xfe.png" in plan.ids
    assert "\u65e5\u672c.png" in plan.ids and "line\nbreak.png" in plan.ids
    assert plan.unpaired_generated == ("orphan\\xff.png",)
    # The real path is kept for reading: the file opens under it.
    assert plan.pair("caf\\xe9.png").reference.is_file()
    assert os.fsencode(plan.pair("caf\\xe9.png").reference).endswith(b"/caf\xe9.png")


def test_any_exception_reading_one_header_fails_that_pair_only(folders, monkeypatch):
    import pipeline.inputs.pairing as pairing

    ref, gen = folders
    for name in ("a.png", "b.png"):
        _image(ref / name)
        _image(gen / name)
    real = pairing.inspect_image

    def flaky(path, **kwargs):
        if Path(path) == gen / "b.png":
            raise RuntimeError("a bug far below")
        return real(path, **kwargs)

    monkeypatch.setattr(pairing, "inspect_image", flaky)
    plan = pair_folders(ref, gen)
    assert plan.size_groups == (SizeGroup((8, 10), "uint8", ("a.png",)),)
    (failed,) = plan.failed
    assert failed.id == "b.png"
    assert failed.reason.endswith("b.png: header could not be read (RuntimeError: a bug far below)")


def test_local_headers_use_threads_only_where_reads_wait(folders, monkeypatch):
    import threading
    import time
    import types

    import pipeline.inputs.pairing as pairing

    ref, _ = folders
    paths = [_image(ref / f"{k:02d}.png", shape=(8, 10 + k)) for k in range(40)]
    real = pairing.inspect_image
    readers: set[int] = set()

    def reading(path, **kwargs):
        readers.add(threading.get_ident())
        return real(path, **kwargs)

    monkeypatch.setattr(pairing, "inspect_image", reading)
    # Reads that do not wait: their wall time is their CPU time. Timed with the real
    # clocks, a busy machine (the suite's other workers) preempts this thread during the
    # probe and its reads look like waiting ones; the thread's CPU clock stands for both.
    with monkeypatch.context() as patched:
        cpu_only = types.SimpleNamespace(
            perf_counter=time.thread_time, thread_time=time.thread_time
        )
        patched.setattr(pairing, "time", cpu_only)
        quick = pairing._local_headers(paths, 10**6)
    assert readers == {threading.get_ident()}  # reads that do not wait: this thread only
    assert [header.shape for header in quick] == [(8, 10 + k) for k in range(40)]

    def waiting(path, **kwargs):
        time.sleep(0.002)  # a network file system's round trip
        return reading(path, **kwargs)

    readers.clear()
    monkeypatch.setattr(pairing, "inspect_image", waiting)
    slow = pairing._local_headers(paths, 10**6)
    assert len(readers) > 1  # the probe waited: the rest went to the threads
    assert slow == quick  # the same headers, in the same order
