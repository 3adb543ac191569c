"""pipeline.inputs.files: decode errors, special files refused unread, changed files, names.

Files are opened through :func:`pipeline.inputs.images.decode_image`, as every reader
opens them: a FIFO, socket or device named like an image is refused without blocking,
a file changed since its header was read (or while it was read) fails transiently, and
names that are not UTF-8 are shown escaped and lead back to the real file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.inputs.images import ImageDecodeError, decode_batch, decode_image, read_header


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240605)


def _rgb(rng: np.random.Generator, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_decode_error_pickles_with_its_fields(tmp_path):
    error = ImageDecodeError(tmp_path / "a.png", "empty file (0 bytes)")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))
    assert isinstance(copy, ValueError)


def _decode_with_timeout(path: Path, seconds: float = 5.0) -> BaseException | np.ndarray | None:
    import threading

    outcome: list[BaseException | np.ndarray] = []

    def work() -> None:
        try:
            outcome.append(decode_image(path))
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        # Blocked opening a FIFO: give it a writer so the thread can end.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(seconds)
        return None
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_an_image_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    outcome = _decode_with_timeout(path)
    assert outcome is not None, "decode_image blocked on a FIFO"
    assert isinstance(outcome, ImageDecodeError)
    assert "pipe.png: is a named pipe (FIFO), not a regular file; it is not read" in str(outcome)
    assert not outcome.transient


def test_socket_named_like_an_image_is_refused(tmp_path):
    import socket

    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("needs UNIX sockets")
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ImageDecodeError, match=r"s\.png: is a socket, not a regular file"):
            decode_image(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_link_to_a_device_is_refused_unread(tmp_path):
    path = tmp_path / "x.png"
    os.symlink("/dev/zero", path)
    with pytest.raises(ImageDecodeError, match=r"x\.png: is a character device, not a regular"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"is a character device"):
        read_header(path)


def test_file_rewritten_after_its_header_was_read(tmp_path, rng):
    from pipeline.inputs.images import inspect_image

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    header = inspect_image(path)
    assert header.stamp.size == path.stat().st_size
    Image.fromarray(_rgb(rng, (12, 12))).save(path)  # same name, other pixels
    with pytest.raises(
        ImageDecodeError,
        match=r"a\.png: changed size from \d+ to \d+ bytes since its header was read.*transient",
    ) as info:
        decode_image(path, expected=header.stamp)
    assert info.value.transient
    stack, statuses = decode_batch([path], shape=(12, 12, 3), dtype="uint8", stamps=[header.stamp])
    assert "changed size" in statuses[0] and not stack.any()


def test_file_replaced_by_another_of_the_same_size(tmp_path, rng):
    from pipeline.inputs.images import inspect_image

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    header = inspect_image(path)
    data = path.read_bytes()
    other = tmp_path / "b.png"
    other.write_bytes(data)
    os.utime(other, ns=(header.stamp.mtime_ns, header.stamp.mtime_ns))
    os.replace(other, path)  # an atomic replacement keeping size and time: only the inode differs
    with pytest.raises(ImageDecodeError, match=r"a\.png: was replaced by another file since"):
        decode_image(path, expected=header.stamp)


def test_file_that_grows_while_it_is_decoded(tmp_path, rng, monkeypatch):
    import pipeline.inputs.images as images

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    real = images.decode_pillow

    def appending(file, handle, *args):
        with open(path, "ab") as writer:
            writer.write(b"more")
        return real(file, handle, *args)

    monkeypatch.setattr(images, "decode_pillow", appending)
    with pytest.raises(
        ImageDecodeError, match=r"a\.png: grew from (\d+) to \d+ bytes while it was read.*transient"
    ):
        decode_image(path)


def test_names_that_are_not_utf8_decode_and_are_shown_escaped(tmp_path, rng):
    folder = os.fsencode(tmp_path)
    good = os.fsdecode(folder + b"/caf\xe9 $HOME #1\n\x1b[31m.png")
    bad = os.fsdecode(folder + b"/bro\xffken.png")
    try:
        Image.fromarray(_rgb(rng, (8, 8))).save(good, format="PNG")
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    Path(bad).write_bytes(b"not an image")
    assert decode_image(good).shape == (8, 8, 3)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(bad)
    text = str(info.value)
    text.encode("utf-8")  # no lone surrogates: storable in Zarr, NetCDF and CSV
    assert "bro\\xffken.png: not a supported image file" in text
    _, statuses = decode_batch([bad], shape=(8, 8, 3), dtype="uint8")
    statuses[0].encode("utf-8")


def test_shown_names_lead_back_to_the_real_files(tmp_path, rng):
    from pipeline.inputs.files import display_path, path_from_display

    folder = os.fsencode(tmp_path)
    names = [
        b"caf\xe9.png",
        b"\xff\xfe\xfd.png",
        b"plain.png",
        b"new\nline.png",
        b"\xe6\x97\xa5.png",
    ]
    try:
        for raw in names:
            Path(os.fsdecode(folder + b"/" + raw)).write_bytes(b"x")
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    literal = tmp_path / "back\\x41slash.png"  # a UTF-8 name holding a literal \x41
    literal.write_bytes(b"x")
    for entry in os.listdir(folder):
        real = os.path.join(folder, entry)
        shown = display_path(os.fsdecode(real))
        shown.encode("utf-8")
        assert os.fsencode(path_from_display(shown)) == real
    assert display_path(b"/d/caf\xe9.png") == "/d/caf\\xe9.png"
