"""Local paths and URLs as one kind of location, with credentials kept out of every message.

A location is either a local path (``str`` or ``os.PathLike``, or a ``file://`` URL)
or an object-store URL: ``s3://`` (``s3a://``), ``gs://`` (``gcs://``), ``az://``
(``abfs://``, ``abfss://``) and ``https://`` / ``http://`` (read-only). Remote
locations are opened through fsspec and the filesystem package of their scheme
(s3fs, gcsfs, adlfs; HTTP needs aiohttp), installed with the ``cloud`` extra.

Credentials come the standard way of each cloud (for S3 the ``AWS_*`` environment
variables, profiles and ``AWS_ENDPOINT_URL`` for S3-compatible servers) and from
``storage_options``, passed to the filesystem unchanged. Nothing here ever puts a
credential into a message: :func:`redact` removes user info and signed query
strings from URLs and every secret value it knows of from any text.
"""

from __future__ import annotations

import asyncio
import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "READ_ONLY_SCHEMES",
    "REMOTE_SCHEMES",
    "Location",
    "LocationError",
    "MissingExtraError",
    "check_exists",
    "filesystem",
    "is_remote",
    "is_url",
    "join",
    "location",
    "redact",
    "redact_options",
    "remote_error",
    "zarr_store",
]

# scheme -> (module that fsspec needs for it, what to install)
REMOTE_SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3fs"),
    "s3a": ("s3fs", "s3fs"),
    "gs": ("gcsfs", "gcsfs"),
    "gcs": ("gcsfs", "gcsfs"),
    "az": ("adlfs", "adlfs"),
    "abfs": ("adlfs", "adlfs"),
    "abfss": ("adlfs", "adlfs"),
    "http": ("aiohttp", "aiohttp"),
    "https": ("aiohttp", "aiohttp"),
}
READ_ONLY_SCHEMES = frozenset({"http", "https"})
_EXTRA = "ssim-pipeline[cloud]"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Environment variables whose values are secrets: never printed, whatever the message.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
)
# storage_options keys whose values are secrets (matched case-insensitively, nested too).
_SECRET_KEY = re.compile(r"secret|token|password|passwd|credential|key$|sas|signature", re.I)
# Query parameters of pre-signed URLs (S3, Azure SAS, GCS signed URLs).
_SIGNED_QUERY = re.compile(
    r"([?&](?:X-Amz-[A-Za-z-]+|X-Goog-[A-Za-z-]+|sig|se|sp|sv|st|skoid|sktid|skt|ske|sks|skv"
    r"|Signature|AWSAccessKeyId|Expires|token|access_token)=)[^&#\s'\"]*",
    re.I,
)
# "s3:/bucket/x" (a slash lost, e.g. by a shell or os.path.normpath): a URL gone wrong,
# not a local folder named "s3:".
_BROKEN_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/?(?!/)")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]*@")
_MIN_SECRET_LENGTH = 4


class LocationError(ValueError):
    """A location that cannot be used: unknown scheme, malformed URL, writing to HTTP."""


class MissingExtraError(ImportError):
    """A URL whose scheme needs a package that is not installed (names the extra)."""


def is_url(value: Any) -> bool:
    """True for a string of the form ``scheme://...`` (``file://`` included)."""
    return isinstance(value, str) and _URL.match(value) is not None


def is_remote(value: Any) -> bool:
    """True for a URL that is not ``file://``: read through fsspec, not the local disk."""
    return is_url(value) and _URL.match(value).group(1).lower() != "file"  # type: ignore[union-attr]


@dataclass(frozen=True)
class Location:
    """A checked location.

    Attributes
    ----------
    url : str
        The URL as given (``file://`` URLs and local paths: the local path as a string).
    scheme : str
        Lower-case scheme, ``"file"`` for local paths.
    path : str
        What fsspec calls the path: ``bucket/key`` for object stores, the local path
        for files.
    """

    url: str
    scheme: str
    path: str

    @property
    def remote(self) -> bool:
        return self.scheme != "file"

    @property
    def local(self) -> Path:
        """The local path (only for local locations)."""
        if self.remote:
            raise LocationError(f"{redact(self.url)} is not a local path")
        return Path(self.path)

    @property
    def name(self) -> str:
        """The last part of the path (a folder's or store's own name)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return redact(self.url)


def location(
    value: str | os.PathLike[str], *, writable: bool = False, what: str = "path"
) -> Location:
    """Check ``value`` and return it as a :class:`Location`.

    Raises
    ------
    LocationError
        An unknown scheme, a URL without a bucket or host, or ``writable`` with a
        read-only scheme; the message names ``what`` and the URL (credentials removed).
    """
    if isinstance(value, os.PathLike) or not is_url(value):
        text = os.fspath(value)
        if not text:
            raise LocationError(f"{what}: an empty path")
        broken = _BROKEN_URL.match(text) if isinstance(value, str) else None
        if broken and broken.group(1).lower() in {*REMOTE_SCHEMES, "file"}:
            scheme = broken.group(1).lower()
            raise LocationError(
                f"{what}: {redact(text)} is a malformed URL (expected {scheme}://bucket/path "
                "with two slashes)"
            )
        return Location(url=text, scheme="file", path=text)
    url = str(value)
    scheme = _URL.match(url).group(1).lower()  # type: ignore[union-attr]
    shown = redact(url)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise LocationError(f"{what}: {shown} names host {parts.netloc!r}; file URLs are local")
        if not parts.path:
            raise LocationError(f"{what}: {shown} has no path")
        return Location(url=parts.path, scheme="file", path=parts.path)
    if scheme not in REMOTE_SCHEMES:
        known = ", ".join(sorted({*REMOTE_SCHEMES, "file"}))
        raise LocationError(f"{what}: unknown URL scheme {scheme!r} in {shown} (known: {known})")
    rest = url[len(scheme) + 3 :]
    if scheme in READ_ONLY_SCHEMES:
        parts = urlsplit(url)
        if not parts.hostname:
            raise LocationError(f"{what}: {shown} has no host")
        if writable:
            raise LocationError(
                f"{what}: {shown} is read-only (HTTP); write to a local path or a bucket"
            )
        return Location(url=url, scheme=scheme, path=url)
    bucket = rest.split("/", 1)[0]
    if "@" in bucket and scheme in ("abfs", "abfss"):  # container@account.dfs.core.windows.net
        bucket = bucket.split("@", 1)[0]
    if not bucket or any(c.isspace() for c in rest):
        raise LocationError(f"{what}: {shown} is malformed (expected {scheme}://bucket/path)")
    return Location(url=url, scheme=scheme, path=rest.rstrip("/") or bucket)


def join(base: Location, *names: str) -> Location:
    """``base`` with path components appended (``/`` for URLs, the OS separator for files)."""
    if not base.remote:
        path = str(Path(base.path, *names))
        return Location(url=path, scheme="file", path=path)
    suffix = "/".join(name.strip("/") for name in names)
    return Location(
        url=f"{base.url.rstrip('/')}/{suffix}", scheme=base.scheme, path=f"{base.path}/{suffix}"
    )


def _require(scheme: str, url: str) -> None:
    module, package = REMOTE_SCHEMES[scheme]
    try:
        __import__(module)
    except ImportError as error:
        raise MissingExtraError(
            f"reading {redact(url)} needs the {package} package: pip install '{_EXTRA}'"
        ) from error


def filesystem(where: Location, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The fsspec filesystem for ``where`` (a local one for local paths).

    ``storage_options`` go to the filesystem as keyword arguments (``anon``,
    ``endpoint_url``, ``client_kwargs``, ``key``/``secret``, ...). Filesystems are
    cached by fsspec per options, so every call with the same options shares one
    connection pool.
    """
    import fsspec

    if not where.remote:
        return fsspec.filesystem("file")
    _require(where.scheme, where.url)
    protocol = "s3" if where.scheme == "s3a" else where.scheme
    options = dict(storage_options or {})
    if protocol in ("http", "https"):
        return fsspec.filesystem(protocol, **options)
    return fsspec.filesystem(protocol, asynchronous=False, **options)


def zarr_store(
    where: Location, storage_options: Mapping[str, Any] | None = None, *, read_only: bool
) -> Any:
    """A Zarr 3 store at ``where``: ``LocalStore`` for files, ``FsspecStore`` for URLs.

    The remote store uses an asynchronous filesystem, so Zarr fetches the chunks of
    one read concurrently (``zarr.config`` ``async.concurrency`` requests in flight).
    """
    from zarr.storage import FsspecStore, LocalStore

    if not where.remote:
        return LocalStore(where.path, read_only=read_only)
    if read_only is False and where.scheme in READ_ONLY_SCHEMES:
        raise LocationError(f"{where} is read-only (HTTP)")
    _require(where.scheme, where.url)
    url = "s3" + where.url[3:] if where.scheme == "s3a" else where.url
    store = FsspecStore.from_url(
        url, storage_options=dict(storage_options or {}), read_only=read_only
    )
    _close_when_dropped(store.fs)
    return store


# The asynchronous filesystems whose connection _close_when_dropped has seen to, by id.
_CLOSED_WHEN_DROPPED: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def _close_when_dropped(fs: Any) -> None:
    """Close an asynchronous filesystem's connections when the filesystem goes, or at exit.

    fsspec closes a synchronous filesystem's connection pool when the filesystem is
    garbage-collected, but not an asynchronous one's (the kind a Zarr ``FsspecStore``
    holds): dropping one from fsspec's cache left an open aiohttp session behind,
    reported as "Unclosed client session" at garbage collection or exit. The
    connection is opened here, in Zarr's event loop where every later request runs,
    and the filesystem's own ``close_session`` is set to run when the filesystem goes
    (as fsspec does for the synchronous kind). Filesystems without that pair
    (``set_session``, ``close_session``) are left as they are.
    """
    close = getattr(type(fs), "close_session", None)
    if close is None or not hasattr(fs, "set_session") or _CLOSED_WHEN_DROPPED.get(id(fs)) is fs:
        return
    from zarr.core.sync import sync

    loop, connection = sync(_connect(fs))
    weakref.finalize(fs, close, loop, connection)
    _CLOSED_WHEN_DROPPED[id(fs)] = fs


async def _connect(fs: Any) -> tuple[asyncio.AbstractEventLoop, Any]:
    """Open ``fs``'s connection in the running loop: the loop, and what closes it.

    s3fs closes through the creator of its clients (every region's client);
    the other filesystems close the session ``set_session`` returns.
    """
    opened = await fs.set_session()
    return asyncio.get_running_loop(), getattr(fs, "_s3creator", opened)


def _secret_values(storage_options: Mapping[str, Any] | None) -> list[str]:
    found = [os.environ.get(name, "") for name in _SECRET_ENV]

    def walk(options: Any) -> None:
        if isinstance(options, Mapping):
            for key, value in options.items():
                if isinstance(value, Mapping | list | tuple):
                    walk(value)
                elif isinstance(value, str) and _SECRET_KEY.search(str(key)):
                    found.append(value)
        elif isinstance(options, list | tuple):
            for value in options:
                walk(value)

    walk(storage_options)
    return sorted((v for v in found if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: Any, storage_options: Mapping[str, Any] | None = None) -> str:
    """``text`` with credentials removed: URL user info, signed query values, known secrets.

    Known secrets are the values of the secret ``AWS_*``/``AZURE_*`` environment
    variables and of secret-looking keys in ``storage_options`` (``secret``,
    ``token``, ``password``, ``key``, ...), each replaced by ``***``.
    """
    result = str(text)
    result = _USERINFO.sub(r"\1***@", result)
    result = _SIGNED_QUERY.sub(r"\1***", result)
    for secret in _secret_values(storage_options):
        result = result.replace(secret, "***")
    return result


def redact_options(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``storage_options`` fit to show: secret-looking values become ``***``.

    Keys such as ``secret``, ``token``, ``password``, ``key``, ``sas_token`` (nested
    mappings too) are replaced, whatever their value; the others are kept, so that an
    ``endpoint_url`` or ``anon`` still shows.
    """

    def clean(options: Any) -> Any:
        if isinstance(options, Mapping):
            return {
                str(key): "***"
                if _SECRET_KEY.search(str(key)) and not isinstance(value, Mapping)
                else clean(value)
                for key, value in options.items()
            }
        if isinstance(options, list | tuple):
            return [clean(value) for value in options]
        return options

    return clean(dict(storage_options or {}))


def remote_error(
    error: BaseException,
    where: Location,
    *,
    what: str,
    storage_options: Mapping[str, Any] | None = None,
) -> OSError:
    """A clear error for a failure to reach ``where``, naming ``what`` and the URL (redacted).

    Missing buckets, objects and prefixes become ``FileNotFoundError``, refused
    credentials ``PermissionError``, anything else (no credentials found, a lost
    connection, an unknown host) an ``OSError`` that says what the filesystem said.
    The filesystem's own text goes through :func:`redact`: some quote a request.
    """
    shown = redact(where.url, storage_options)
    detail = redact(str(error) or type(error).__name__, storage_options)
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f"{what}: {shown} not found ({detail})")
    if isinstance(error, PermissionError):
        return PermissionError(
            f"{what}: access to {shown} was refused ({detail}); check the credentials "
            "(AWS_* / GOOGLE_* / AZURE_* variables, a profile, or storage_options)"
        )
    return OSError(f"{what}: cannot read {shown} ({type(error).__name__}: {detail})")


def check_exists(
    where: Location, storage_options: Mapping[str, Any] | None = None, *, what: str
) -> Any:
    """Refuse, before any work, a remote location whose bucket or object/prefix is missing.

    Returns the filesystem (fsspec's, for local paths too). A local path is not
    checked here: the readers name what is missing in their own words.

    Raises
    ------
    FileNotFoundError
        The bucket (container) does not exist, or nothing is stored at the path.
    PermissionError
        The credentials were refused.
    OSError
        The store could not be reached (no credentials, connection, host).
    MissingExtraError
        The scheme's filesystem package is not installed.
    """
    fs = filesystem(where, storage_options)
    if not where.remote or where.scheme in READ_ONLY_SCHEMES:
        return fs
    bucket = where.path.split("/", 1)[0]
    shown = redact(where.url, storage_options)
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{what}: bucket {bucket!r} of {shown} does not exist (or is not visible with "
            "these credentials)"
        ) from None
    except Exception as error:  # botocore / gcsfs / adlfs raise their own types
        raise remote_error(error, where, what=what, storage_options=storage_options) from None
    if where.path == bucket:
        return fs
    try:
        found = fs.exists(where.path)
    except Exception as error:
        raise remote_error(error, where, what=what, storage_options=storage_options) from None
    if not found:
        raise FileNotFoundError(f"{what}: no object or prefix at {shown}")
    return fs
