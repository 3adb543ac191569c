"""A results store in an object store: its layout committed last, its removal marked first.

An object store has no rename, so the local way of making a new store appear
whole (lay it out under a temporary name, then one ``rename``) has no
equivalent. Instead the store's *root metadata* is the commit marker:

* creating: the layout (every array's metadata and the coordinates, written to a
  local temporary folder by xarray) is uploaded with the group's root metadata
  (``zarr.json``; ``.zattrs`` then ``.zgroup`` for Zarr 2) **last**. Until that
  last object lands the prefix is not a Zarr store for any reader. Each upload is
  one object PUT, which an object store makes visible whole or not at all;
* a prefix being laid out or deleted by this package holds the object
  :data:`INCOMPLETE_MARKER` (written first, removed last). A prefix holding it and
  no root metadata is a half-made layout or a half-deleted store of a run that
  was killed: the next writer (which holds the store's lock) removes it and
  starts again. A prefix without root metadata and without the marker is someone
  else's data and is never deleted;
* deleting (``overwrite``): the marker first, then the root metadata, then every
  other object, the marker last. Killed at any point, the prefix is either the
  old store (root metadata still there) or a marked remnant;
* committing a batch: values first, ``status`` last, each chunk one PUT: a kill
  leaves whole chunks only, exactly as on a local disk.

S3, GCS and Azure Blob Storage give read-after-write consistency for new and
overwritten objects and for listings, which is what a resumed run relies on to
see every batch committed before the kill.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.results.lock import results_filesystem
from pipeline.storage.locations import Location, zarr_store

__all__ = ["INCOMPLETE_MARKER", "ObjectStore"]

INCOMPLETE_MARKER = ".ssim-pipeline-incomplete"
# Root metadata of a Zarr group, in the order they are uploaded (the last one makes
# the prefix a store); .zmetadata is never written (no consolidated metadata).
_ROOT_METADATA = (".zattrs", "zarr.json", ".zgroup")
_STORE_MARKERS = ("zarr.json", ".zgroup")


class ObjectStore:
    """The objects of one results store under a prefix of a bucket (or container).

    Parameters
    ----------
    where : Location
        The store's URL (a remote location).
    storage_options : mapping, optional
        Options of the filesystem (credentials, endpoint).
    """

    def __init__(self, where: Location, storage_options: Mapping[str, Any] | None) -> None:
        self.where = where
        self.options: dict[str, Any] = {"use_listings_cache": False, **(storage_options or {})}
        self.fs = results_filesystem(where, storage_options)

    def key(self, name: str) -> str:
        return f"{self.where.path}/{name}"

    def is_zarr(self) -> bool:
        """Whether the root metadata is there: a whole store (whatever else it holds)."""
        return any(self.fs.exists(self.key(name)) for name in _STORE_MARKERS)

    def exists(self) -> bool:
        """Whether anything is stored at or under the prefix."""
        return bool(self.fs.exists(self.where.path))

    def is_marked_incomplete(self) -> bool:
        return bool(self.fs.exists(self.key(INCOMPLETE_MARKER)))

    def remove_leftovers(self) -> None:
        """Remove a marked half-made layout; a marker left in a whole store just goes."""
        if not self.is_marked_incomplete():
            return
        if self.is_zarr():
            self.fs.rm_file(self.key(INCOMPLETE_MARKER))
        else:
            self.remove()

    def remove(self) -> None:
        """Delete the store: marked first, root metadata next, the marker last."""
        marker = self.key(INCOMPLETE_MARKER)
        self.fs.pipe_file(marker, b"")
        for name in reversed(_ROOT_METADATA):
            if self.fs.exists(self.key(name)):
                self.fs.rm_file(self.key(name))
        others = [key for key in self.fs.find(self.where.path) if key != marker]
        if others:
            self.fs.rm(others)
        self.fs.rm_file(marker)

    def create(self, write_layout: Callable[[Path], None]) -> None:
        """Lay the store out locally with ``write_layout(folder)``, then upload it.

        The root metadata goes last (see the module docstring); a failure leaves a
        marked remnant that the next writer removes.
        """
        with tempfile.TemporaryDirectory(prefix="ssim-layout-") as folder:
            layout = Path(folder) / "store.zarr"
            write_layout(layout)
            files = sorted(p for p in layout.rglob("*") if p.is_file())
            names = {p: p.relative_to(layout).as_posix() for p in files}
            root = sorted(
                (p for p in files if names[p] in _ROOT_METADATA),
                key=lambda p: _ROOT_METADATA.index(names[p]),
            )
            rest = [p for p in files if p not in root]
            self.fs.pipe_file(self.key(INCOMPLETE_MARKER), b"")
            if rest:
                self.fs.put([str(p) for p in rest], [self.key(names[p]) for p in rest])
            for path in root:
                self.fs.put_file(str(path), self.key(names[path]))
        self.fs.rm_file(self.key(INCOMPLETE_MARKER))

    def zarr(self, *, read_only: bool) -> Any:
        """The store as a Zarr store (``FsspecStore``), with no cache of listings."""
        return zarr_store(self.where, self.options, read_only=read_only)
