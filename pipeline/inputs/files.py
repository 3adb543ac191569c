"""Input files on disk: names as valid Unicode, stamps, safe opening, and their failures.

* :func:`display_path` writes a path as valid Unicode (bytes that are not UTF-8 as
  ``\\xNN`` escapes) for ids, coordinates and statuses; :func:`path_from_display`
  gives the real path back.
* :class:`FileStamp` is what a file was when its header was read (size,
  modification time, inode); :func:`open_image_file` opens a file without blocking
  (a FIFO is refused, not waited on), only a regular non-empty one, unchanged since
  its stamp, and :func:`check_unchanged` refuses pixels of a file that changed
  while it was read.
* :class:`ImageDecodeError` names the file and the reason; a failure that a
  resumed run retries ends its status with :data:`TRANSIENT_SUFFIX`
  (:func:`is_transient_status`), for image files and Zarr chunks alike.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.storage.locations import is_url

__all__ = [
    "TRANSIENT_SUFFIX",
    "FileStamp",
    "ImageDecodeError",
    "check_unchanged",
    "display_path",
    "is_transient_status",
    "open_image_file",
    "path_from_display",
    "special_file_kind",
]

# Ends the status of a failure that a resumed run retries (see is_transient_status).
TRANSIENT_SUFFIX = " (transient: retried by --resume)"


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as valid Unicode text, for ids, coordinates, statuses and listings.

    A name that is valid UTF-8 is kept exactly. Bytes that are not UTF-8 (which
    Python carries as lone surrogates, not storable in Zarr, NetCDF or CSV) are
    written as backslash escapes: ``b"caf\\xe9.png"`` -> ``"caf\\xe9.png"``.
    :func:`path_from_display` reverses it, except for a UTF-8 name that itself holds
    a backslash followed by ``x`` and two hex digits where the file no longer exists.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def path_from_display(text: str) -> str:
    """The real path behind a :func:`display_path` text (an id or coordinate), for opening.

    ``\\xNN`` escapes become the bytes they stand for, unless ``text`` already names
    an existing file as it is (a UTF-8 name that holds a literal backslash).

    Examples
    --------
    >>> os.fsencode(path_from_display("caf\\\\xe9.png"))
    b'caf\\xe9.png'
    """
    if "\\x" not in text or os.path.lexists(text):
        return text
    raw = _ESCAPED_BYTE.sub(lambda match: bytes([int(match.group(1), 16)]), text.encode())
    return os.fsdecode(raw)


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason.

    Attributes
    ----------
    path : pathlib.Path or str
        The file at fault (the real path, for reading; the message shows it with
        :func:`display_path`), or the object's URL (credentials removed).
    reason : str
        Why it failed, in words fit for a ``status`` entry.
    transient : bool
        Whether a retry may succeed (the file was missing, unreadable or changed).
    """

    def __init__(
        self, path: str | os.PathLike[str], reason: str, *, transient: bool = False
    ) -> None:
        # A URL stays as it is (Path would fold its "//").
        self.path: Path | str = str(path) if is_url(path) else Path(path)
        self.reason = reason
        self.transient = transient
        shown = display_path(self.path)
        super().__init__(f"{shown}: {reason}{TRANSIENT_SUFFIX if transient else ''}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps (path, reason, transient) across pickling, e.g. from a distributed worker.
        return (_rebuild_decode_error, (self.path, self.reason, self.transient))


def _rebuild_decode_error(path: Path | str, reason: str, transient: bool) -> ImageDecodeError:
    return ImageDecodeError(path, reason, transient=transient)


def is_transient_status(status: str) -> bool:
    """Whether a pair's ``status`` records a failure that may pass on a retry.

    A file that was missing, unreadable for permissions, failed with an I/O error
    or changed while the run was reading it may be there, readable and settled on
    a later ``--resume``; a file that was read and did not decode fails again, so
    it is not retried.
    """
    return status.endswith(TRANSIENT_SUFFIX)


@dataclass(frozen=True)
class FileStamp:
    """What a file was when its header was read: size, modification time, inode.

    A file whose stamp differs when it is decoded was replaced, rewritten or grown
    in between, so its pixels are not the ones its header described.
    """

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileStamp:
        """The stamp of a ``stat`` result."""
        return cls(int(info.st_size), int(info.st_mtime_ns), int(info.st_ino))


def special_file_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


# O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting
# forever; on a regular file it changes nothing. (Absent on Windows, which has no FIFOs.)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def open_image_file(
    path: Path, expected: FileStamp | None = None
) -> tuple[IO[bytes], os.stat_result]:
    """Open an image file for reading: a regular, non-empty file, unchanged since ``expected``.

    Raises
    ------
    ImageDecodeError
        Missing, unreadable (both transient), changed since ``expected`` (transient),
        a folder, FIFO, socket or device (never read), or empty.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found", transient=True) from None
    except PermissionError:
        raise ImageDecodeError(
            path, "permission denied (the file is not readable)", transient=True
        ) from None
    except OSError as error:
        # A socket cannot be opened at all (ENXIO): say what it is, not "cannot read".
        try:
            kind = special_file_kind(os.stat(path).st_mode)
        except OSError:
            kind = None
        if kind is not None and kind != "a directory":
            raise ImageDecodeError(path, f"is {kind}, not a regular file; it is not read") from None
        raise ImageDecodeError(
            path, f"cannot read the file ({error.strerror or error})", transient=True
        ) from None
    try:
        info = os.fstat(fd)
        kind = special_file_kind(info.st_mode)
        if kind == "a directory":
            raise ImageDecodeError(path, "is a directory, not an image file")
        if kind is not None:
            raise ImageDecodeError(path, f"is {kind}, not a regular file; it is not read")
        if expected is not None and FileStamp.of(info) != expected:
            raise ImageDecodeError(path, _change(expected, FileStamp.of(info)), transient=True)
        if info.st_size == 0:
            raise ImageDecodeError(path, "empty file (0 bytes)")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle, info


def _change(before: FileStamp, after: FileStamp) -> str:
    if before.inode != after.inode:
        what = "was replaced by another file"
    elif before.size != after.size:
        what = f"changed size from {before.size} to {after.size} bytes"
    else:
        what = "was modified (its modification time changed)"
    return f"{what} since its header was read; its pixels are not the ones paired"


def check_unchanged(path: Path, handle: IO[bytes], info: os.stat_result) -> None:
    """Refuse pixels read from a file that changed while it was read (transient)."""
    try:
        after = os.fstat(handle.fileno())
    except OSError as error:
        raise ImageDecodeError(
            path, f"cannot read the file ({error.strerror or error})", transient=True
        ) from None
    if FileStamp.of(after) != FileStamp.of(info):
        before, now = FileStamp.of(info), FileStamp.of(after)
        what = (
            f"grew from {before.size} to {now.size} bytes"
            if now.size > before.size
            else f"changed (size {before.size} -> {now.size} bytes, or its modification time)"
        )
        raise ImageDecodeError(
            path, f"{what} while it was read; its pixels are not trusted", transient=True
        )
