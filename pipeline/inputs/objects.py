"""Image files in object stores: listed with the filesystem, fetched many at a time.

A folder of images behind a URL (``s3://bucket/photos``) is a prefix: every object
under it is a file, its key after the prefix the relative path. :func:`list_objects`
lists it once (one paginated listing, no request per file) with each object's size
and modification time, which make its :class:`~pipeline.inputs.files.FileStamp`
(inode 0: objects have none). The pairing and discovery rules are those of local
folders (:mod:`pipeline.inputs.pairing`).

Bytes are fetched through fsspec's asynchronous filesystems: :func:`fetch_objects`
asks for a whole batch of objects with one ``fs.cat([...])`` call, which keeps up
to fsspec's ``gather_batch_size`` requests in flight at once (the objects of one
decode task, both sides), and :func:`fetch_heads` the first :data:`HEAD_BYTES` of
each object for the headers with one ``fs.cat_ranges``. Nothing here decodes: the
decoders of :mod:`pipeline.inputs.formats` read the fetched bytes as a file.

A failure is the object's, never the run's: a missing object (deleted after it was
listed) or a refused or failed request becomes an
:class:`~pipeline.inputs.files.ImageDecodeError` that names the URL (credentials
removed) and is marked transient, so that ``--resume`` retries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline.inputs.files import FileStamp, ImageDecodeError
from pipeline.storage.locations import Location, filesystem, location, redact

__all__ = [
    "HEAD_BYTES",
    "ObjectEntry",
    "fetch_heads",
    "fetch_objects",
    "list_objects",
    "mtime_ns",
    "object_failure",
]

# Bytes fetched for a header: enough for the headers of PNG, JPEG (with EXIF), WebP,
# TIFF's first IFD; a header that needs more is read again from the whole object.
HEAD_BYTES = 64 * 1024


class ObjectEntry(tuple[str, int, int]):
    """``(relative key, size, mtime_ns)`` of one listed object."""

    __slots__ = ()

    @property
    def relative(self) -> str:
        return self[0]

    @property
    def stamp(self) -> FileStamp:
        return FileStamp(size=self[1], mtime_ns=self[2], inode=0)


def mtime_ns(info: Mapping[str, Any]) -> int:
    for name in ("LastModified", "mtime", "updated", "last_modified", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, int | float):
            return int(value * 1e9)
        if isinstance(value, str) and value:
            try:
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
            except ValueError:
                continue
    return 0


def list_objects(where: Location, storage_options: Mapping[str, Any] | None) -> list[ObjectEntry]:
    """Every object under the prefix ``where``, sorted by relative key, with size and mtime.

    "Folder" marker objects (keys ending in ``/``, empty) are left out.
    """
    fs = filesystem(where, storage_options)
    prefix = where.path.rstrip("/")
    found = fs.find(prefix, withdirs=False, detail=True)
    entries = []
    for name, info in found.items():
        key = str(name)
        if info.get("type") == "directory" or key.endswith("/") or not key.startswith(prefix + "/"):
            continue
        entries.append(
            ObjectEntry((key[len(prefix) + 1 :], int(info.get("size") or 0), mtime_ns(info)))
        )
    return sorted(entries)


def object_failure(
    url: str, error: BaseException, storage_options: Mapping[str, Any] | None
) -> ImageDecodeError:
    """The :class:`ImageDecodeError` of an object that could not be fetched (transient)."""
    shown = redact(url, storage_options)
    if isinstance(error, FileNotFoundError):
        return ImageDecodeError(shown, "object not found", transient=True)
    if isinstance(error, PermissionError):
        return ImageDecodeError(shown, "access refused (check the credentials)", transient=True)
    detail = redact(str(error) or type(error).__name__, storage_options)
    return ImageDecodeError(
        shown, f"could not be fetched ({type(error).__name__}: {detail})", transient=True
    )


def _group(urls: Sequence[str]) -> dict[str, list[int]]:
    """Positions of ``urls`` per scheme (one filesystem, so one concurrent call each)."""
    groups: dict[str, list[int]] = {}
    for k, url in enumerate(urls):
        groups.setdefault(location(url).scheme, []).append(k)
    return groups


def fetch_objects(
    urls: Sequence[str], storage_options: Mapping[str, Any] | None
) -> list[bytes | ImageDecodeError]:
    """The bytes of every object of ``urls``, fetched concurrently; a failure per object.

    One ``fs.cat`` call per filesystem: fsspec gathers the requests, many in flight.
    """
    out: list[bytes | ImageDecodeError] = [b""] * len(urls)
    for positions in _group(urls).values():
        where = [location(urls[k]) for k in positions]
        fs = filesystem(where[0], storage_options)
        paths = [w.path for w in where]
        try:
            found = fs.cat(paths, on_error="return")
        except Exception as error:  # the whole call failed (connection, credentials)
            for k in positions:
                out[k] = object_failure(urls[k], error, storage_options)
            continue
        for k, path in zip(positions, paths, strict=True):
            value = found.get(path, found.get(fs._strip_protocol(path)))
            if isinstance(value, bytes | bytearray | memoryview):
                out[k] = bytes(value)
            else:
                failure = value if isinstance(value, BaseException) else FileNotFoundError(path)
                out[k] = object_failure(urls[k], failure, storage_options)
    return out


def fetch_heads(
    urls: Sequence[str], storage_options: Mapping[str, Any] | None, size: int = HEAD_BYTES
) -> list[bytes | ImageDecodeError]:
    """The first ``size`` bytes of every object of ``urls``, fetched concurrently."""
    out: list[bytes | ImageDecodeError] = [b""] * len(urls)
    for positions in _group(urls).values():
        where = [location(urls[k]) for k in positions]
        fs = filesystem(where[0], storage_options)
        paths = [w.path for w in where]
        try:
            found = fs.cat_ranges(paths, [0] * len(paths), [size] * len(paths), on_error="return")
        except Exception as error:
            for k in positions:
                out[k] = object_failure(urls[k], error, storage_options)
            continue
        for k, value in zip(positions, found, strict=True):
            if isinstance(value, bytes | bytearray | memoryview):
                out[k] = bytes(value)
            else:
                failure = value if isinstance(value, BaseException) else FileNotFoundError(urls[k])
                out[k] = object_failure(urls[k], failure, storage_options)
    return out
