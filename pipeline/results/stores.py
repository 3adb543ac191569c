"""Where results go: a resumable Zarr store (default), NetCDF or CSV.

The Zarr store is created first with its final layout (coordinates, attrs,
every statistic as fill values, ``status`` all pending; laid out under a
temporary name and renamed into place, so it is whole or absent) and then filled one
commit batch at a time: the batch's values are written first and its
``status`` entries (``"ok"`` or the failure reason) last. Zarr's local store
writes each chunk file atomically, so a run killed at any moment leaves a
readable store whose pending pairs are exactly those without a status; a
resumed run computes only those. Each commit batch is one chunk of ``image``,
so a batch is never half-marked.

A store remembers the fingerprints of the configuration and of the sources
that made it; another configuration or other sources on the same store are
refused unless ``overwrite=True``.

Every function here takes a local path, a ``file://`` URL or an object-store URL
(``s3://``, ``gs://``, ``az://``/``abfs://``; ``https://`` for reading only) with
``storage_options`` for its filesystem. In an object store the same promises hold
with other means (see :mod:`pipeline.results.object_layout` and
:mod:`pipeline.results.lock`): the root metadata is uploaded last instead of a
rename, each chunk is one atomic PUT, the lock is a conditionally created object.
NetCDF and CSV exports are written to a local temporary file and uploaded in one
PUT (multipart uploads, too, appear only when complete): whole or absent. No
message names a credential: URLs are shown through
:func:`pipeline.storage.locations.redact`.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline.results.lock import results_filesystem, store_lock
from pipeline.results.object_layout import ObjectStore
from pipeline.results.schema import (
    COUNT,
    FLOAT_STATISTICS,
    GENERATED,
    IMAGE,
    MAP_HEIGHT,
    MAP_OFFSET,
    MAP_WIDTH,
    MEAN_MAP_COUNT,
    MEAN_MAP_VARIABLES,
    MODEL,
    MS_SSIM,
    NAN_MASKED,
    PENDING_STATUSES,
    REFERENCE,
    REGION,
    SIZE_GROUP,
    SSIM_HIST,
    STATUS,
    validate_dataset,
)
from pipeline.storage.locations import Location, is_remote, location, redact

__all__ = [
    "CSV_READ_OPTIONS",
    "MAPS_GROUP",
    "TEXT_ESCAPE_ATTR",
    "ZarrSink",
    "as_results",
    "escape_text",
    "export_csv",
    "export_netcdf",
    "maps_groups",
    "open_results",
    "output_exists",
    "stored_attrs",
    "write_zarr",
]

_FINGERPRINTS = ("config_fingerprint", "source_fingerprint")
# Zarr group (beside the result's arrays, not a variable) of the mean maps' per-batch sums.
MEAN_MAP_PARTIALS = "mean_map_partials"
# Integer mean-map variables: int32 in NetCDF-3, int64 when read back.
_MEAN_MAP_INTEGERS = (MEAN_MAP_COUNT, MAP_OFFSET, MAP_HEIGHT, MAP_WIDTH)

#: Attr of one model's results (``model_attrs`` of a run of several models with
#: ``save_maps``): the name of that model's group inside the maps store.
MAPS_GROUP = "maps_group"
# A Zarr group name that means the same on every filesystem and object store.
_PLAIN_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def maps_groups(models: list[str]) -> list[str]:
    """Each model's group in the maps store of a run of several models.

    The model's name when every name is a plain group name (letters, digits, ``_``,
    ``-``, ``.``; first a letter or digit) and no two names differ only in case (one
    folder on a case-insensitive filesystem); otherwise ``model0``, ``model1``, ...
    in the models' order. Either way a group holds the one-model layout (arrays
    ``ssim``, ... shaped ``(image, y, x)``) and its attrs name its model.

    Examples
    --------
    >>> maps_groups(["gan_a", "gan-b"])
    ['gan_a', 'gan-b']
    >>> maps_groups(["GAN outputs", "b"])
    ['model0', 'model1']
    """
    plain = all(_PLAIN_GROUP.fullmatch(name) for name in models)
    if plain and len({name.lower() for name in models}) == len(models):
        return list(models)
    return [f"model{k}" for k in range(len(models))]


# How to read an :func:`export_csv` file back with pandas, every name exactly as written:
# ``#`` starts only the attrs' comment lines (names are quoted), no name is taken for a
# missing value ("NA", "null", "nan" are names), and file-name bytes that are not UTF-8
# come back as os.fsdecode gives them. Folder results may add ``dtype={"image": str}``
# so that a name such as ``001`` stays text.
CSV_READ_OPTIONS: dict[str, Any] = {
    "comment": "#",
    "keep_default_na": False,
    "na_values": [""],
    "encoding": "utf-8",
    "encoding_errors": "surrogateescape",
}


def _is_zarr_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


@contextlib.contextmanager
def _writer_lock(
    path: str | Path, storage_options: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Exclusive right to write ``path`` (``<path>.lock``, see :mod:`pipeline.results.lock`)."""
    with store_lock(path, storage_options=storage_options):
        yield


StorageOptions = Mapping[str, Any] | None


def output_exists(path: str | os.PathLike[str], storage_options: StorageOptions = None) -> bool:
    """Whether anything is at ``path`` (a local path or an object-store URL)."""
    where = location(path, what="output")
    if not where.remote:
        return Path(where.path).exists()
    with _remote_errors(where, "reading", storage_options=storage_options):
        return ObjectStore(where, storage_options).exists()


def stored_attrs(path: str | os.PathLike[str], storage_options: StorageOptions = None) -> dict:
    """The attrs of the results store at ``path`` (its root group), nothing else read."""
    import zarr

    where = location(path, what="results")
    if not where.remote:
        return dict(zarr.open_group(where.path, mode="r").attrs)
    with _remote_errors(where, "reading", storage_options=storage_options):
        store = ObjectStore(where, storage_options).zarr(read_only=True)
        return dict(zarr.open_group(store, mode="r").attrs)


@contextlib.contextmanager
def _remote_errors(
    where: Location, doing: str, advice: str = "", storage_options: StorageOptions = None
) -> Iterator[None]:
    """An object store's failure as an error that names the URL (never a credential).

    The secrets of ``storage_options`` and of the environment are removed from the
    client's own words (:func:`pipeline.storage.locations.redact`).
    """

    def shown(error: BaseException) -> str:
        return redact(error, storage_options)

    try:
        yield
    except FileExistsError:
        raise  # this package's own refusal of an existing output: it names the URL
    except PermissionError as error:
        raise PermissionError(
            f"{doing} {where} was refused (access denied: check the credentials and "
            f"what they may access; {shown(error)}){advice}"
        ) from None
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{doing} {where} failed: not found (does the bucket exist? {shown(error)}){advice}"
        ) from None
    except OSError as error:
        raise OSError(error.errno, f"{doing} {where} failed ({shown(error)}){advice}") from None
    except Exception as error:
        # A client library's own error (e.g. botocore's parameter validation) may quote
        # the URL it was given, user info and all: never passed on with a credential.
        if shown(error) == str(error):
            raise
        raise ValueError(
            f"{doing} {where} failed ({type(error).__name__}: {shown(error)}){advice}"
        ) from None


def _remove_settled(path: Path, *, quiet_checks: int = 4, pause: float = 0.05) -> None:
    """Remove a half-made store, and again whatever lands there after the first removal.

    Zarr writes a store's files concurrently; when one write fails, the others are
    not cancelled and may still create their directories and files after a first
    ``rmtree`` (seen: ``region/zarr.json`` written after the removal). Remove until
    the path has stayed absent for ``quiet_checks`` pauses in a row (at most ~5 s).
    """
    quiet = 0
    for _ in range(100):
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(pause)
        quiet = quiet + 1 if not path.exists() else 0
        if quiet >= quiet_checks:
            return


class ZarrSink:
    """A results store filled batch by batch, resumable after any interruption.

    Parameters
    ----------
    path : str or Path
        The ``.zarr`` directory, or its URL (``s3://``, ``gs://``, ``az://``, ``file://``).
    template : xarray.Dataset
        The final layout, lazy (see :func:`pipeline.results.schema.template_dataset`);
        its attrs carry ``config_fingerprint`` and ``source_fingerprint``.
    batch_images : int
        Images per commit batch (the chunk length along ``image``).
    zarr_format : int
        2 or 3, for a new store.
    resume, overwrite : bool
        Continue a store of the same configuration, or replace an existing store.
    storage_options : mapping, optional
        Options of the object store's filesystem when ``path`` is a URL.
    """

    def __init__(
        self,
        path: str | Path,
        template: xr.Dataset,
        *,
        batch_images: int,
        zarr_format: int = 3,
        resume: bool = False,
        overwrite: bool = False,
        storage_options: StorageOptions = None,
    ) -> None:
        self.where = location(path, writable=True, what="output")
        self.path = Path(self.where.path)
        self._shown = str(self.where) if self.where.remote else str(self.path)
        # Where the store is on disk: the output may name it through a symlink (kept, and
        # pointing at the store), also a dangling one before the store exists.
        self.store = Path(os.path.realpath(self.path))
        self._objects = ObjectStore(self.where, storage_options) if self.where.remote else None
        self._arrays: dict[str, Any] | None = None
        self._lock = _writer_lock(
            self.where.url if self.where.remote else self.path, storage_options
        )
        self._lock.__enter__()
        try:
            with self._remote_errors("opening output"):
                # Left by a run killed while it laid out or replaced this store; we hold the
                # lock, so no live run is using them.
                self._remove_leftovers()
                if self._exists():
                    self._check_existing(template, resume=resume, overwrite=overwrite)
                if not self._exists():
                    self._create(template, batch_images, zarr_format)
        except BaseException:
            self.close()
            raise

    def _remote_errors(self, doing: str, advice: str = "") -> contextlib.AbstractContextManager:
        if self._objects is None:
            return contextlib.nullcontext()
        return _remote_errors(self.where, doing, advice, self._objects.options)

    def _exists(self) -> bool:
        return self._objects.exists() if self._objects is not None else self.store.exists()

    def _zarr(self, *, read_only: bool) -> Any:
        """What xarray opens: the local folder, or the object store's Zarr store."""
        if self._objects is None:
            return self.store
        return self._objects.zarr(read_only=read_only)

    def _check_existing(self, template: xr.Dataset, *, resume: bool, overwrite: bool) -> None:
        is_store = (
            self._objects.is_zarr() if self._objects is not None else _is_zarr_store(self.store)
        )
        if not is_store:
            raise FileExistsError(
                f"output {self._shown!r} exists and is not a Zarr store; choose another output path"
            )
        if overwrite:
            if self._objects is not None:
                self._objects.remove()  # marked first: see pipeline.results.object_layout
                return
            # Moved aside in one rename, then deleted: a kill midway leaves the old store
            # whole or gone, never half-deleted under the output's name.
            old = self._sibling("old")
            os.rename(self.store, old)
            shutil.rmtree(old)
            return
        try:
            existing = xr.open_zarr(self._zarr(read_only=True), consolidated=False)
        except Exception as error:  # any failure to open means: not our store
            raise ValueError(
                f"output {self._shown!r} is a Zarr store but not readable as results "
                f"({redact(error, self._objects.options if self._objects else None)}); "
                "pass overwrite=True to replace it"
            ) from None
        for key in _FINGERPRINTS:
            ours, theirs = template.attrs.get(key), existing.attrs.get(key)
            if ours != theirs:
                what = (
                    "with a different configuration"
                    if key == "config_fingerprint"
                    else ("from different sources")
                )
                raise ValueError(
                    f"output {self._shown!r} was written {what} "
                    f"({key} {theirs!r} in the store, {ours!r} for this run); "
                    "pass overwrite=True to replace it or choose another output"
                )
        missing = sorted(str(name) for name in set(template.data_vars) - set(existing.data_vars))
        if missing:
            # Written by an earlier version (no mse/psnr): its finished pairs lack them.
            raise ValueError(
                f"output {str(self.path)!r} was written by ssim-pipeline "
                f"{existing.attrs.get('package_version', '?')}, without the variable(s) "
                f"{', '.join(missing)} this version computes, so it cannot be resumed; it "
                "still opens and reports as it is: pass overwrite=True to compute it again"
            )
        same_layout = (
            existing.sizes.get(IMAGE) == template.sizes[IMAGE]
            and existing.sizes.get(REGION) == template.sizes[REGION]
            and existing.sizes.get(MODEL) == template.sizes.get(MODEL)
        )
        if same_layout and MODEL in template.dims:
            ours = [str(v) for v in template[MODEL].values]
            same_layout = [str(v) for v in existing[MODEL].values] == ours
        if not same_layout:
            raise ValueError(
                f"output {self._shown!r} has {dict(existing.sizes)} but this run needs "
                f"{dict(template.sizes)}; pass overwrite=True to replace it"
            )
        if not resume:
            raise FileExistsError(
                f"output {self._shown!r} already exists (same configuration); "
                "pass resume=True to finish it or overwrite=True to start again"
            )

    def _create(self, template: xr.Dataset, batch_images: int, zarr_format: int) -> None:
        encoding: dict[str, Any] = {STATUS: {"chunks": (batch_images,)}}
        for name in (REFERENCE, GENERATED):
            encoding[name] = {"chunks": (template.sizes[IMAGE],)}
        if MODEL in template.dims:
            # Several models: one chunk holds every model's rows of a batch, so one
            # batch commits all models at once.
            models = template.sizes[MODEL]
            encoding[STATUS] = {"chunks": (models, batch_images)}
            encoding[GENERATED] = {"chunks": (models, template.sizes[IMAGE])}
        if self._objects is not None:
            # No rename in an object store: laid out locally and uploaded with the root
            # metadata last (see pipeline.results.object_layout).
            self._objects.create(
                lambda where: self._write_template(where, template, encoding, zarr_format)
            )
            return
        # Laid out under a temporary name and renamed into place (atomic for a folder on
        # one file system): killed at any moment, the output is a whole store or absent,
        # so --resume never meets a half-made layout.
        layout = self._sibling("layout")
        try:
            with self._out_of_space("the new store's layout"):
                self._write_template(layout, template, encoding, zarr_format)
            os.rename(layout, self.store)
        except BaseException:
            _remove_settled(layout)
            raise

    def _sibling(self, role: str) -> Path:
        """A fresh hidden name beside the store, found and removed by _remove_leftovers."""
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        return self.store.with_name(f".{self.store.name}.{role}-{token}")

    def _remove_leftovers(self) -> None:
        if self._objects is not None:
            self._objects.remove_leftovers()
            return
        prefixes = tuple(f".{self.store.name}.{role}-" for role in ("layout", "old"))
        with contextlib.suppress(FileNotFoundError):
            for entry in self.store.parent.iterdir():
                if entry.name.startswith(prefixes):
                    shutil.rmtree(entry, ignore_errors=True)

    def _write_template(
        self, where: Path, template: xr.Dataset, encoding: Any, zarr_format: int
    ) -> None:
        _escape_dataset(template).to_zarr(
            where,
            mode="w-",
            compute=False,
            zarr_format=zarr_format,
            consolidated=False,
            encoding=encoding,
        )

    def pending(
        self,
        batches: tuple[tuple[int, int], ...],
        retry: Callable[[str], bool] | None = None,
    ) -> tuple[list[tuple[int, int]], int]:
        """The batches still to compute, and how many committed pairs are retried.

        A batch is to compute when it holds a pending pair, or a pair whose status
        ``retry`` accepts (a resumed run retries transient failures). ``retry`` sees
        the status as stored (text escaped, see :func:`open_results`); the end of a
        status, where the transient marker is, is never changed by that.
        """
        status = self.stored_status()
        todo = np.isin(status, PENDING_STATUSES)
        retried = np.zeros(status.shape, dtype=bool)
        if retry is not None:
            flat = status.ravel()
            retried = np.fromiter((retry(str(text)) for text in flat), bool, len(flat))
            retried = np.logical_and(retried.reshape(status.shape), ~todo)
        todo |= retried
        # (model, image): a batch is computed again, for every model, if any model needs it.
        rows = np.asarray(todo.any(axis=0) if todo.ndim == 2 else todo)
        return [(a, b) for a, b in batches if bool(rows[a:b].any())], int(retried.sum())

    def write(
        self, start: int, stop: int, statistics: Mapping[str, np.ndarray], status: Any
    ) -> None:
        """Commit pairs ``[start, stop)``: values first, then their status.

        In a store of several models the values and statuses lead with ``model``
        (every model's rows of the batch, committed together).
        """
        lead: tuple[str, ...] = (MODEL,) if np.asarray(status).ndim == 2 else ()
        values = xr.Dataset(
            {
                name: (
                    (*lead, IMAGE, REGION, "bin") if name == SSIM_HIST else (*lead, IMAGE, REGION),
                    value,
                )
                for name, value in statistics.items()
                if name in (*FLOAT_STATISTICS, COUNT, SSIM_HIST)
            }
        )
        if MS_SSIM in statistics:
            values[MS_SSIM] = ((*lead, IMAGE), np.asarray(statistics[MS_SSIM]))
        if NAN_MASKED in statistics:
            values[NAN_MASKED] = ((*lead, IMAGE), np.asarray(statistics[NAN_MASKED]))
        marks = xr.Dataset(
            {STATUS: ((*lead, IMAGE), escape_text(np.asarray(status, dtype=object)))}
        )
        advice = (
            "; the store keeps every batch committed before: fix the cause and rerun "
            "with --resume (resume=True) to finish it"
        )
        with (
            self._out_of_space(f"pairs {start}..{stop - 1}"),
            self._remote_errors(f"committing pairs {start}..{stop - 1} to output", advice),
        ):
            self._write_arrays(start, stop, values, marks)

    def _write_arrays(self, start: int, stop: int, values: xr.Dataset, marks: xr.Dataset) -> None:
        """A batch written into the store's arrays, opened once per run.

        ``to_zarr(region=...)`` reads the group's listing and every array's metadata
        again on each call: a hundred requests per batch to an object store, and ~45 ms
        a batch on a local disk (against ~20 ms this way, 144 pairs a batch). The
        arrays' encoding is the identity (numbers as they are, NaN as the fill value,
        text as Zarr strings), so writing them directly stores the same bytes. Values
        first, ``status`` last, as with ``to_zarr``.
        """
        import zarr

        if self._arrays is None:
            group = zarr.open_group(self._zarr(read_only=False), mode="r+")
            self._arrays = {name: array for name, array in group.arrays()}
        rows: Any = slice(start, stop)
        if MODEL in marks.dims:
            rows = (slice(None), rows)
        for name, variable in values.data_vars.items():
            self._arrays[str(name)][rows] = variable.values
        self._arrays[STATUS][rows] = marks[STATUS].values

    @contextlib.contextmanager
    def _out_of_space(self, what: str) -> Iterator[None]:
        """A full disk as a clear error; the store stays readable (chunk writes are atomic)."""
        try:
            yield
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise OSError(
                error.errno,
                f"no space left on the device of output {self._shown!r} while writing "
                f"{what} ({error.strerror}); the store is readable and keeps every finished "
                "batch: free some space and rerun with --resume (resume=True) to finish it",
            ) from error

    def _group(self) -> Any:
        import zarr

        return zarr.open_group(self._zarr(read_only=False), mode="r+")

    def write_mean_map_partial(
        self, group: int | str, start: int, stop: int, sums: np.ndarray, count: int
    ) -> None:
        """Store the mean-map sums of the commit batch of rows ``[start, stop)``.

        ``group`` names the slot group: a size group's position, or any key that
        tells sums apart (a model and a size group, in a run of several models).
        Call it before :meth:`write` commits the batch's status: a committed batch
        always has its sums stored. The slot is named by the batch's rows; a batch
        computed again (resumed after a kill between the two, a transient failure
        retried) overwrites its own slot, so no batch is counted twice. The slot's
        count is cleared first and written last: a slot killed midway has none and
        is never read as sums (see :meth:`mean_map_partials`).
        """
        with (
            self._out_of_space(f"the mean-map sums of pairs {start}..{stop - 1}"),
            self._remote_errors("writing mean-map sums to output"),
        ):
            root = self._group().require_group(MEAN_MAP_PARTIALS).require_group(str(group))
            name = f"{start}-{stop}"
            if name in root:
                slot = root[name]
                slot.attrs.update({"count": -1})
            else:
                # One uncompressed chunk: float64 sums barely compress, and the slot
                # is written once per batch and read once per run.
                slot = root.create_array(
                    name, shape=sums.shape, chunks=sums.shape, dtype="float64", compressors=None
                )
            slot[...] = sums
            slot.attrs.update({"count": int(count)})

    def mean_map_partials(self, group: int | str) -> dict[tuple[int, int], tuple[np.ndarray, int]]:
        """Size group ``group``'s stored slots: ``{(start, stop): (sums, count)}``.

        Only slots whose count was written (a whole write) are listed.
        """
        with self._remote_errors("reading mean-map sums of output"):
            root = self._group()
            path = f"{MEAN_MAP_PARTIALS}/{group}"
            if path not in root:
                return {}
            slots = {}
            for name, slot in root[path].arrays():
                count = int(slot.attrs.get("count", -1))
                if count >= 0:
                    start, stop = (int(part) for part in str(name).split("-"))
                    slots[(start, stop)] = (np.asarray(slot[...]), count)
            return slots

    def stored_status(self) -> np.ndarray:
        """Every pair's status as stored (text escaped, see :func:`open_results`)."""
        import zarr

        # The status array alone: one metadata object and its chunks, not the listing and
        # metadata of the whole group (each a request to an object store's server; 30-50 ms
        # per run locally, more with the mean maps' arrays).
        with self._remote_errors("reading the status of output"):
            array = zarr.open_array(self._zarr(read_only=True), path=STATUS, mode="r")
            return np.asarray(array[:], dtype=object)

    def write_mean_maps(self, maps: xr.Dataset) -> None:
        """Write the reduced mean maps into the result's (template) variables."""
        with (
            self._out_of_space("the mean maps"),
            self._remote_errors("writing the mean maps to output"),
        ):
            root = self._group()
            for name in MEAN_MAP_VARIABLES:
                root[name][...] = maps[name].values

    def close(self) -> None:
        self._lock.__exit__(None, None, None)


def open_results(
    path: str | os.PathLike[str], *, dask: bool = True, storage_options: StorageOptions = None
) -> xr.Dataset:
    """Open a results store (Zarr, lazily) or NetCDF file (loaded) as the result Dataset.

    ``path`` is a local path, a ``file://`` URL or an object-store URL (``s3://``,
    ``gs://``, ``az://``, ``https://``); ``storage_options`` go to its filesystem.
    An HTTP server must list the store's folders (Zarr finds the arrays by listing).

    Opening reads the metadata and the pair ids (xarray's index of ``image``);
    every variable, histograms and per-pair text included, is a Dask array read
    chunk by chunk when used. With ``dask=False`` a Zarr store's variables are
    xarray's lazily indexed arrays instead: reading a slice reads just that slice,
    with no graph; the text coordinates are then read whole.

    Text (names, statuses) comes back exactly as it was written: the store keeps
    it escaped (attr ``text_escape``) so that any file name, also one that is not
    UTF-8, survives every format.

    Examples
    --------
    >>> ds = open_results("results.zarr")  # doctest: +SKIP
    >>> ds.ssim.sel(region="all").mean()  # doctest: +SKIP
    """
    where = location(path, what="results")
    if where.remote:
        return _open_remote_results(where, storage_options, dask=dask)
    path = Path(where.path)
    if not path.exists():
        raise FileNotFoundError(f"results path {str(path)!r} does not exist")
    if path.is_dir():
        chunks: Any = {} if dask else None
        return _unescape_dataset(xr.open_zarr(path, consolidated=False, chunks=chunks))
    if path.suffix.lower() in (".nc", ".nc4"):
        with xr.open_dataset(path, engine="scipy") as ds:
            loaded = ds.load()
        return _unescape_dataset(_from_netcdf3(loaded))
    raise ValueError(f"results path {str(path)!r} is neither a Zarr store nor a NetCDF file")


def _open_remote_results(
    where: Location, storage_options: StorageOptions, *, dask: bool
) -> xr.Dataset:
    objects = ObjectStore(where, storage_options)
    with _remote_errors(where, "opening results", storage_options=storage_options):
        if where.path.lower().endswith((".nc", ".nc4")):
            data = objects.fs.cat_file(where.path)
            with xr.open_dataset(io.BytesIO(data), engine="scipy") as ds:
                loaded = ds.load()
            return _unescape_dataset(_from_netcdf3(loaded))
        is_store = objects.is_zarr()
        exists = is_store or objects.exists()
        if is_store:
            chunks: Any = {} if dask else None
            store = objects.zarr(read_only=True)
            return _unescape_dataset(xr.open_zarr(store, consolidated=False, chunks=chunks))
    if exists:
        raise ValueError(
            f"results {where} exist but are neither a Zarr store (no zarr.json or .zgroup) "
            "nor a .nc file"
        )
    raise FileNotFoundError(f"results {where} do not exist")


def as_results(
    ds_or_path: xr.Dataset | str | os.PathLike[str], *, storage_options: StorageOptions = None
) -> xr.Dataset:
    """A results Dataset as it is, or the store or file at a path opened lazily.

    How the report, the summary of a saved run and ``ds.review`` get their results:
    a path goes through :func:`open_results` (Dask-backed, nothing but the pair ids
    read), to be read a batch of pairs at a time
    (:func:`pipeline.results.summary.scan_results`).

    Raises
    ------
    TypeError
        ``ds_or_path`` is neither a Dataset nor a path.
    FileNotFoundError
        The path does not exist.
    ValueError
        The path is neither a Zarr store (a folder) nor a ``.nc`` file.
    """
    if isinstance(ds_or_path, xr.Dataset):
        return ds_or_path
    if is_remote(ds_or_path):
        return open_results(str(ds_or_path), storage_options=storage_options)
    if not isinstance(ds_or_path, str | os.PathLike):
        raise TypeError(
            f"ds_or_path must be an xarray.Dataset or a path to results "
            f"(got {type(ds_or_path).__name__})"
        )
    path = Path(location(ds_or_path, what="results").path)
    if not path.exists():
        raise FileNotFoundError(f"results not found: {path}")
    if path.suffix not in (".nc", ".nc4") and not path.is_dir():
        raise ValueError(f"results must be a Zarr store (a folder) or a .nc file (got {path})")
    return open_results(path)


def write_zarr(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    zarr_format: int = 3,
    storage_options: StorageOptions = None,
) -> None:
    """Write a whole result Dataset to a new Zarr store (a local path or a URL).

    Without consolidated metadata: every reader of a store that is still being filled
    sees the arrays as they are on disk, never a stale summary of them.
    """
    validate_dataset(ds)
    where = location(path, writable=True, what="output")
    target: Any = Path(where.path)
    if where.remote:
        objects = ObjectStore(where, storage_options)
        if objects.exists():
            raise FileExistsError(f"output {where} already exists")
        target = objects.zarr(read_only=False)
    remote = _remote_errors(where, "writing", storage_options=storage_options)
    with remote if where.remote else contextlib.nullcontext():
        _escape_dataset(ds).to_zarr(target, mode="w-", zarr_format=zarr_format, consolidated=False)


def export_netcdf(
    ds: xr.Dataset, path: str | os.PathLike[str], *, storage_options: StorageOptions = None
) -> None:
    """Write the result Dataset as NetCDF (classic format, through SciPy).

    NetCDF-3 has no 64-bit integers: ``count`` and ``ssim_hist`` are stored as
    int32 when they fit (else refused) and read back as int64 by :func:`open_results`.
    Text is UTF-8; names that are not (file-name bytes) are escaped as described in
    :func:`open_results`, which reads them back exactly. The file is written under a
    temporary name beside ``path`` and renamed into place: whole or absent.
    """
    validate_dataset(ds)
    out = _escape_dataset(ds.load(), attrs=True)
    for name in (COUNT, SSIM_HIST):
        values = out[name].values
        if values.size and values.max() > np.iinfo(np.int32).max:
            raise ValueError(
                f"{name} exceeds the int32 range of NetCDF-3 (max {values.max()}); use Zarr"
            )
        out[name] = out[name].astype(np.int32)
    for name in _MEAN_MAP_INTEGERS:
        if name in out.variables:
            out[name] = out[name].astype(np.int32)
    if SIZE_GROUP in out.coords:
        out[SIZE_GROUP] = out[SIZE_GROUP].astype(object).astype(str)
    for name in (STATUS, REFERENCE, GENERATED, REGION):
        # Through object: a store read back gives NumPy's StringDType, which astype(str)
        # refuses.
        out[name] = out[name].astype(object).astype(str)
    if out[IMAGE].dtype.kind in "OT":
        out[IMAGE] = out[IMAGE].astype(object).astype(str)
    for key, value in out.attrs.items():
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            # NetCDF-3 attributes hold no list of strings (e.g. unpaired files): one per line.
            out.attrs[key] = "\n".join(value)
    with _replaced_whole(path, "the NetCDF export", storage_options) as partial:
        out.to_netcdf(partial, engine="scipy")


_PARTIAL_STALE_S = 600.0


def _remove_dead_partials(path: Path) -> None:
    """Remove ``path``'s temporary files whose writer (the pid in their name) is gone.

    Only files untouched for :data:`_PARTIAL_STALE_S`: a pid names a process of this
    host, and a folder shared with other hosts may hold another host's export in progress
    (written continuously, so recently modified).
    """
    prefix = f".{path.name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            parts = entry.name[len(prefix) :].split(".")
            if not entry.name.startswith(prefix) or len(parts) != 3 or parts[2] != "partial":
                continue
            if not parts[0].isdigit():
                continue
            with contextlib.suppress(FileNotFoundError):
                if time.time() - entry.stat().st_mtime < _PARTIAL_STALE_S:
                    continue
            try:
                os.kill(int(parts[0]), 0)
            except ProcessLookupError:
                entry.unlink(missing_ok=True)
            except PermissionError:  # alive, another user's
                pass


@contextlib.contextmanager
def _replaced_whole(
    target: str | os.PathLike[str], what: str, storage_options: StorageOptions = None
) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed to ``path`` once the block has written it.

    A rename within a folder is atomic: a reader, a kill or a full disk never sees a
    truncated file at ``path``; on any failure the temporary file is removed, and the
    ones that killed processes of this host left are removed by the next export.
    For a URL the file is written in a local temporary folder and uploaded in one PUT
    (an object appears whole or not at all).
    """
    where = location(target, writable=True, what="output")
    if where.remote:
        with tempfile.TemporaryDirectory(prefix="ssim-export-") as folder:
            partial = Path(folder) / where.name
            yield partial
            fs = results_filesystem(where, storage_options)
            with _remote_errors(where, f"uploading {what} to", storage_options=storage_options):
                fs.put_file(str(partial), where.path)
        return
    path = Path(where.path)
    _remove_dead_partials(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                error.errno,
                f"no space left on the device of output {str(path)!r} while writing {what} "
                f"({error.strerror}); that path is unchanged (no partial file): free some space "
                "and run again",
            ) from error
        raise


# Text in a store or NetCDF file is UTF-8, but a file name is bytes: those that are not
# UTF-8 reach Python as lone surrogates (os.fsdecode's surrogateescape) and no UTF-8
# writer takes them. The text variables are stored escaped -- a backslash doubled, such
# a byte as \xNN -- and marked with this attribute; open_results undoes it.
TEXT_ESCAPE_ATTR = "text_escape"
_TEXT_ESCAPE = r"'\\' is a backslash, '\xNN' a file-name byte that is not UTF-8"
_TEXT_VARIABLES = (IMAGE, REFERENCE, GENERATED, REGION, STATUS)
_TO_ESCAPE = re.compile("[\\\\\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == ord("\\"):
        return "\\\\"
    # surrogateescape maps byte 0xNN (>= 0x80) to U+DCNN; any other surrogate as \uXXXX.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    return chr(0xDC00 + int(code[1:], 16)) if code[0] == "x" else chr(int(code[1:], 16))


def escape_text(values: Any) -> np.ndarray:
    """Text values as stored (see :data:`TEXT_ESCAPE_ATTR`); other values unchanged."""
    array = np.asarray(values)
    if array.dtype.kind not in "OUT":
        return array
    if not any(_TO_ESCAPE.search(str(v)) for v in array.ravel()):
        return array  # the usual case: no copy of a million names
    flat = [_TO_ESCAPE.sub(_escape_one, str(v)) for v in array.ravel()]
    return np.asarray(flat, dtype=object).reshape(array.shape)


def _has_escapes(values: np.ndarray) -> bool:
    """Whether any of ``values`` holds a backslash (what every escape starts with)."""
    if values.dtype.kind in "UT":  # NumPy strings: searched without a Python str apiece
        return bool((np.strings.find(values, "\\") >= 0).any())
    return any("\\" in str(v) for v in values.ravel())


def _unescape_values(values: np.ndarray) -> np.ndarray:
    if not _has_escapes(values):
        return values  # nothing was escaped in these
    flat = [_ESCAPED.sub(_unescape_one, str(v)) for v in values.ravel()]
    return np.asarray(flat, dtype=object).reshape(values.shape)


def _escape_dataset(ds: xr.Dataset, *, attrs: bool = False) -> xr.Dataset:
    """A shallow copy of ``ds`` with its text variables (and, for NetCDF, attrs) escaped."""
    out = ds.copy()
    for name in _TEXT_VARIABLES:
        if name in out.variables and out[name].dtype.kind in "OUT":
            variable = out[name].variable
            escaped = xr.Variable(
                variable.dims,
                variable.data
                if not isinstance(variable.data, np.ndarray)
                else escape_text(variable.data),
                {**variable.attrs, TEXT_ESCAPE_ATTR: _TEXT_ESCAPE},
                variable.encoding,
            )
            if name in out.coords:
                out = out.assign_coords({name: escaped})
            else:
                out[name] = escaped
    if attrs and any(_TO_ESCAPE.search(str(v)) for v in out.attrs.values()):
        out.attrs = {
            k: _TO_ESCAPE.sub(_escape_one, v) if isinstance(v, str) else v
            for k, v in out.attrs.items()
        }
        out.attrs[TEXT_ESCAPE_ATTR] = _TEXT_ESCAPE
    return out


def _unescape_dataset(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`_escape_dataset`: the text exactly as it was, markers removed."""
    for name in _TEXT_VARIABLES:
        if name not in ds.variables or TEXT_ESCAPE_ATTR not in ds[name].attrs:
            continue
        variable = ds[name].variable
        attrs = {k: v for k, v in variable.attrs.items() if k != TEXT_ESCAPE_ATTR}
        data = variable.data
        if hasattr(data, "map_blocks"):  # Dask (Zarr): undone chunk by chunk when read
            data = data.map_blocks(_unescape_values, dtype=object)
        else:  # in memory (an index too) or a lazily indexed backend array: read whole
            values = data if isinstance(data, np.ndarray) else np.asarray(data)
            if not _has_escapes(values):
                # The usual case: only the marker goes, and an index (the pair ids of a
                # million pairs) is kept as it is rather than built again.
                ds.variables[name].attrs.pop(TEXT_ESCAPE_ATTR, None)
                continue
            data = _unescape_values(values)
        unescaped = xr.Variable(variable.dims, data, attrs, variable.encoding)
        if name in ds.coords:
            ds = ds.assign_coords({name: unescaped})
        else:
            ds[name] = unescaped
    if TEXT_ESCAPE_ATTR in ds.attrs:
        ds.attrs = {
            k: _ESCAPED.sub(_unescape_one, v) if isinstance(v, str) else v
            for k, v in ds.attrs.items()
            if k != TEXT_ESCAPE_ATTR
        }
    return ds


def _from_netcdf3(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    for name in (COUNT, SSIM_HIST):
        out[name] = out[name].astype(np.int64)
    for name in _MEAN_MAP_INTEGERS:
        if name in out.variables:
            out[name] = out[name].astype(np.int64)
    for name in (STATUS, REFERENCE, GENERATED, REGION):
        out[name] = out[name].astype(object)
    if SIZE_GROUP in out.coords:
        out[SIZE_GROUP] = out[SIZE_GROUP].astype(object)
    return out


def export_csv(
    ds: xr.Dataset, path: str | os.PathLike[str], *, storage_options: StorageOptions = None
) -> None:
    """One row per (image, region) with every scalar statistic and the status.

    The histogram is left out (it lives in Zarr/NetCDF); the attrs go first as
    ``# key: value`` comment lines. Every text field is quoted, so names holding
    ``#``, commas, quotes or line breaks stay one field; the file is UTF-8, and
    file-name bytes that are not UTF-8 are written as they are. Read it back with
    :data:`CSV_READ_OPTIONS`: ``pandas.read_csv(path, **CSV_READ_OPTIONS)``. The file
    is written under a temporary name beside ``path`` and renamed into place.
    """
    validate_dataset(ds)
    table = (
        ds[[*FLOAT_STATISTICS, COUNT]]
        .reset_coords([REFERENCE, GENERATED])
        .to_dataframe()
        .reset_index()
    )
    # Rows are (image, region), or (model, image, region) for several models: the
    # status of a pair repeats over its regions.
    table[STATUS] = np.repeat(ds[STATUS].values.astype(object).ravel(), ds.sizes[REGION])
    columns = [IMAGE, REFERENCE, GENERATED, REGION, *FLOAT_STATISTICS, COUNT, STATUS]
    if MODEL in ds.dims:
        columns.insert(0, MODEL)
    with (
        _replaced_whole(path, "the CSV export", storage_options) as partial,
        partial.open("w", newline="", encoding="utf-8", errors="surrogateescape") as handle,
    ):
        for key, value in ds.attrs.items():
            text = " ".join(str(value).splitlines())
            handle.write(f"# {key}: {text}\n")
        table[columns].to_csv(
            handle, index=False, float_format="%.17g", quoting=csv.QUOTE_NONNUMERIC
        )
