"""pipeline.results.stores: resumable Zarr store, refusal of other configurations, exports.

The Zarr store, its round trip and lazy opening, NetCDF and CSV export. The ``result``
fixture is in conftest.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
import zarr.storage._local as zarr_local
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline as sp
from pipeline.results import stores as sinks
from pipeline.results.schema import (
    COUNT,
    FLOAT_STATISTICS,
    REQUIRED_ATTRS,
    SSIM_HIST,
    build_dataset,
    template_dataset,
)
from pipeline.results.stores import (
    CSV_READ_OPTIONS,
    ZarrSink,
    as_results,
    export_csv,
    export_netcdf,
    maps_groups,
    open_results,
    write_zarr,
)


@pytest.fixture
def pair(rng):
    x = rng.integers(0, 256, (6, 24, 24), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    return x, y


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def _failing_after(array: np.ndarray, first_bad_image: int) -> da.Array:
    """A source whose reads fail from one image on: an interruption mid-run."""

    def read(block, block_info=None):
        start = block_info[0]["array-location"][0][0]
        if start >= first_bad_image:
            raise OSError(f"simulated failure reading image {start}")
        return block

    return da.from_array(array, chunks=(1, 24, 24)).map_blocks(read, dtype=array.dtype)


def test_resume_after_interruption_equals_uninterrupted_run(pair, tmp_path):
    x, y = pair
    settings = {"regions": "2x2", "batch_images": 2, "chunks": (1, 12, 12), "engine": "reference"}
    healthy = da.from_array(y, chunks=(1, 24, 24))
    whole = sp.evaluate(x, healthy, output=str(tmp_path / "whole.zarr"), **settings)

    out = str(tmp_path / "partial.zarr")
    with pytest.raises(OSError, match=r"simulated failure reading image [45]"):
        sp.evaluate(x, _failing_after(y, 4), output=out, **settings)
    partial = open_results(out)
    assert partial["status"].values.tolist() == ["ok", "ok", "ok", "ok", "pending", "pending"]
    assert np.isnan(partial["ssim"].values[4:]).all()  # readable, and visibly pending

    batches = []
    resumed = sp.evaluate(
        x, healthy, output=out, resume=True, on_batch=lambda d, t, n: batches.append(t), **settings
    )
    assert batches == [1]  # only the missing batch was computed
    xr.testing.assert_identical(_without_time(resumed), _without_time(whole))


def test_existing_store_needs_resume_or_overwrite(pair, tmp_path):
    x, y = pair
    out = str(tmp_path / "r.zarr")
    sp.evaluate(x, y, output=out)
    with pytest.raises(
        FileExistsError, match=r"already exists \(same configuration\); pass resume"
    ):
        sp.evaluate(x, y, output=out)
    done = sp.evaluate(x, y, output=out, resume=True)  # nothing left to do
    assert (done["status"].values == "ok").all()


def test_different_configuration_is_refused_naming_both_fingerprints(pair, tmp_path):
    x, y = pair
    out = str(tmp_path / "r.zarr")
    first = sp.evaluate(x, y, output=out)
    other = sp.RunConfig(win_size=7).fingerprint()
    with pytest.raises(
        ValueError,
        match=rf"different configuration \(config_fingerprint "
        rf"'{first.attrs['config_fingerprint']}' in the store, '{other}' for this run\)",
    ):
        sp.evaluate(x, y, output=out, win_size=7, resume=True)
    with pytest.raises(ValueError, match=r"written from different sources \(source_fingerprint"):
        sp.evaluate(x[:5], y[:5], output=out, resume=True)
    replaced = sp.evaluate(x, y, output=out, win_size=7, overwrite=True)
    assert replaced.attrs["ssim_win_size"] == 7


def test_output_that_is_not_a_store_is_refused(pair, tmp_path):
    x, y = pair
    (tmp_path / "notes.zarr").mkdir()
    with pytest.raises(FileExistsError, match=r"exists and is not a Zarr store"):
        sp.evaluate(x, y, output=str(tmp_path / "notes.zarr"), overwrite=True)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_round_trip_through_zarr_is_identical(result, tmp_path, zarr_format):
    path = tmp_path / "results.zarr"
    write_zarr(result, path, zarr_format=zarr_format)
    xr.testing.assert_identical(open_results(path).load(), result)


def test_zarr_format_2_store(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, output=str(tmp_path / "v2.zarr"), zarr_format=2)
    assert (tmp_path / "v2.zarr" / ".zgroup").exists()
    assert ds["ssim"].sel(region="all").notnull().all()


def test_netcdf_export_round_trip(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2", output=str(tmp_path / "r.nc"))
    back = open_results(tmp_path / "r.nc")
    xr.testing.assert_identical(back, ds)
    with pytest.raises(FileExistsError, match=r"r\.nc' already exists; pass overwrite=True"):
        sp.evaluate(x, y, output=str(tmp_path / "r.nc"))
    export_netcdf(ds, tmp_path / "again.nc")


def test_csv_export(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2", output=str(tmp_path / "r.csv"))
    table = pd.read_csv(tmp_path / "r.csv", comment="#")
    assert len(table) == 6 * 5
    assert list(table.columns[:4]) == ["image", "reference", "generated", "region"]
    row = table[(table.image == 3) & (table.region == "r1c0")].iloc[0]
    assert row.ssim == ds["ssim"].sel(image=3, region="r1c0").item()  # printed with %.17g
    assert row.status == "ok"
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert header == "# profile: wang2004"
    export_csv(ds, tmp_path / "again.csv")


def _dataset_named(names: list[str], rng: np.random.Generator) -> xr.Dataset:
    """A small result Dataset whose pair ids, sources and statuses are ``names``."""
    n = len(names)
    statistics = {name: rng.random((n, 2)) for name in FLOAT_STATISTICS}
    statistics[COUNT] = rng.integers(0, 100, (n, 2))
    statistics[SSIM_HIST] = rng.integers(0, 9, (n, 2, 4))
    attrs = {name: "x" for name in REQUIRED_ATTRS} | {"unpaired_reference": names[0]}
    return build_dataset(
        statistics,
        image=np.asarray(names, dtype=object),
        reference=[f"ref/{name}" for name in names],
        generated=[f"gen/{name}" for name in names],
        regions=["all", names[-1]],
        status=["ok", *(f"{name}: file not found" for name in names[1:])],
        attrs=attrs,
    )


# Names as file systems give them: any bytes but NUL, decoded as Python does
# (os.fsdecode: bytes that are not UTF-8 become lone surrogates), and any text.
_FILE_NAMES = st.one_of(
    st.binary(min_size=1, max_size=24).filter(lambda b: b"\0" not in b).map(os.fsdecode),
    st.text(st.characters(exclude_characters="\0", exclude_categories=()), min_size=1),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_FILE_NAMES, min_size=1, max_size=4, unique=True), seed=st.integers(0, 99))
def test_any_file_name_survives_zarr_netcdf_and_csv_exactly(names, seed):
    ds = _dataset_named(names, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory() as where:
        folder = Path(where)
        write_zarr(ds, folder / "r.zarr")
        xr.testing.assert_identical(open_results(folder / "r.zarr").load(), ds)
        export_netcdf(ds, folder / "r.nc")
        xr.testing.assert_identical(open_results(folder / "r.nc"), ds)
        export_csv(ds, folder / "r.csv")
        table = pd.read_csv(folder / "r.csv", dtype={"image": str}, **CSV_READ_OPTIONS)
    assert len(table) == 2 * len(names)
    for column in ("image", "reference", "generated", "region", "status"):
        expected = ds[column].values
        if column in ("image", "reference", "generated", "status"):
            expected = np.repeat(expected, 2)
        else:
            expected = np.tile(expected, len(names))
        assert table[column].tolist() == [str(v) for v in expected], column


def test_awkward_names_through_a_run_store_and_the_documented_csv_reader(pair, tmp_path):
    x, y = pair
    names = ["a#b.png", "c,d.png", 'e"f.png', "g\nh.png", "i\rj.png", "\x1b[31mred.png"]
    ds = sp.evaluate(x, y, output=str(tmp_path / "r.zarr"))
    text = ("image", np.asarray(names, dtype=object))
    named = ds.load().assign_coords(image=text, reference=text)
    export_csv(named, tmp_path / "r.csv")
    table = pd.read_csv(tmp_path / "r.csv", **CSV_READ_OPTIONS)
    assert table["image"].tolist() == names and table["reference"].tolist() == names
    np.testing.assert_array_equal(table["ssim"], named["ssim"].values[:, 0])
    export_netcdf(named, tmp_path / "r.nc")
    assert open_results(tmp_path / "r.nc")["image"].values.tolist() == names


def _fail_midway(monkeypatch: pytest.MonkeyPatch, owner: type, method: str) -> None:
    """``owner.method`` writes part of its file, then fails as on a full disk."""

    def write_half(self, target, *args, **kwargs):
        if hasattr(target, "write"):
            target.write("image,reference\n0,")
        else:
            Path(target).write_bytes(b"CDF\x01\x00\x00")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(owner, method, write_half)


@pytest.mark.parametrize(
    ("suffix", "owner", "method"),
    [
        ("csv", pd.DataFrame, "to_csv"),
        ("nc", xr.Dataset, "to_netcdf"),
    ],
)
def test_export_that_fails_midway_leaves_no_file_and_a_rerun_works(
    pair, tmp_path, monkeypatch, suffix, owner, method
):
    x, y = pair
    out = tmp_path / f"r.{suffix}"
    with monkeypatch.context() as patch:
        _fail_midway(patch, owner, method)
        with pytest.raises(
            OSError,
            match=rf"no space left on the device of output '{out}' while writing the "
            r"(CSV|NetCDF) export .*that path is unchanged \(no partial file\)",
        ):
            sp.evaluate(x, y, output=str(out))
    assert sorted(tmp_path.iterdir()) == []  # neither a truncated file nor a temporary one
    ds = sp.evaluate(x, y, output=str(out))  # the cause fixed: the same command works
    assert (ds["status"].values == "ok").all() and sorted(tmp_path.iterdir()) == [out]
    with monkeypatch.context() as patch:
        _fail_midway(patch, owner, method)
        with pytest.raises(OSError, match="no space left"):
            sp.evaluate(x, y, output=str(out), overwrite=True)
    # The previous export is still whole: a failed overwrite never truncates it.
    if suffix == "nc":
        xr.testing.assert_identical(open_results(out), ds)
    else:
        assert len(pd.read_csv(out, **CSV_READ_OPTIONS)) == len(x)
    assert sorted(tmp_path.iterdir()) == [out]


def test_run_store_keeps_names_and_statuses_that_are_not_utf8(tmp_path):
    # Folder sources give such pair ids (os.fsdecode of the file names) and statuses
    # that name the file; the store is laid out and filled by ZarrSink.
    names = [os.fsdecode(b"bad\xff.png"), "back\\slash\\xff.png", "ok.png"]
    template = template_dataset(
        image=np.asarray(names, dtype=object),
        reference=names,
        generated=names,
        regions=["all"],
        bins=4,
        batch_images=3,
        attrs={name: "x" for name in REQUIRED_ATTRS},
    )
    sink = ZarrSink(tmp_path / "r.zarr", template, batch_images=3)
    try:
        statistics = {name: np.full((3, 1), 0.5) for name in FLOAT_STATISTICS}
        statistics[COUNT] = np.ones((3, 1), dtype=np.int64)
        statistics[SSIM_HIST] = np.ones((3, 1, 4), dtype=np.int64)
        status = [f"{names[0]}: file not found", "ok", "ok"]
        sink.write(0, 3, statistics, status)
    finally:
        sink.close()
    back = open_results(tmp_path / "r.zarr").load()
    assert back["image"].values.tolist() == names
    assert back["reference"].values.tolist() == names
    assert back["status"].values.tolist() == status
    assert "text_escape" not in back["status"].attrs  # a storage detail, not a result attr


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no cleanup of the process' own."""


def _layout_template(n: int = 6) -> xr.Dataset:
    names = [f"img{i}.png" for i in range(n)]
    attrs = {name: "x" for name in REQUIRED_ATTRS} | {
        "config_fingerprint": "c",
        "source_fingerprint": "s",
    }
    return template_dataset(
        image=np.asarray(names, dtype=object),
        reference=names,
        generated=names,
        regions=["all", "r0c0"],
        bins=4,
        batch_images=2,
        attrs=attrs,
    )


def _layout_writes(where: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    written = []
    real_put = zarr_local._put
    with monkeypatch.context() as patch:
        patch.setattr(zarr_local, "_put", lambda *a, **k: written.append(1) or real_put(*a, **k))
        ZarrSink(where, _layout_template(), batch_images=2).close()
    return len(written)


def test_killed_anywhere_in_the_layout_resume_finds_a_whole_store(tmp_path, monkeypatch):
    n_writes = _layout_writes(tmp_path / "count.zarr", monkeypatch)
    assert n_writes > 10  # the layout is many files: many moments to be killed at
    # The first and last file and six seeded ones between (each point takes ~0.7 s).
    rng = np.random.default_rng(4)
    points = {0, n_writes - 1, *rng.choice(np.arange(1, n_writes - 1), 6, replace=False)}
    for kill_at in sorted(int(p) for p in points):
        out = tmp_path / f"r{kill_at}.zarr"
        real_put, seen = zarr_local._put, [0]

        def put(path, value, exclusive=False, real_put=real_put, seen=seen, kill_at=kill_at):
            if seen[0] == kill_at:
                raise _Killed
            seen[0] += 1
            return real_put(path, value, exclusive=exclusive)

        with monkeypatch.context() as patch:
            patch.setattr(zarr_local, "_put", put)
            patch.setattr(sinks, "_remove_settled", lambda path: None)  # a kill cleans nothing
            with pytest.raises(_Killed):
                ZarrSink(out, _layout_template(), batch_images=2)
        assert not out.exists()  # whole or absent: never a half-made store
        sink = ZarrSink(out, _layout_template(), batch_images=2, resume=True)
        try:
            assert sink.pending(((0, 2), (2, 4), (4, 6))) == ([(0, 2), (2, 4), (4, 6)], 0)
        finally:
            sink.close()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".r{kill_at}.")] == []
        assert open_results(out)["status"].values.tolist() == ["pending"] * 6


def test_temporary_files_of_killed_exports_are_removed_by_the_next_one(pair, tmp_path):
    x, y = pair
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # a pid that no longer runs: an export killed mid-write
    dead = tmp_path / f".r.csv.{process.pid}.0badc0de.partial"
    alive = tmp_path / f".r.csv.{os.getpid()}.0badc0de.partial"
    recent = tmp_path / f".r.csv.{process.pid}.1badc0de.partial"
    for leftover in (dead, alive, recent):
        leftover.write_text("image,reference\n0,")
    for leftover in (dead, alive):
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    sp.evaluate(x, y, output=str(tmp_path / "r.csv"))
    assert not dead.exists()
    assert alive.exists()  # its writer still runs
    assert recent.exists()  # touched lately: maybe another host's export in progress


def test_a_store_whose_pending_pairs_have_an_empty_status_still_resumes(tmp_path):
    # Stores written before pending pairs read "pending" marked them with "".
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (6, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 256, (6, 32, 32), dtype=np.uint8)
    out = str(tmp_path / "old.zarr")
    full = sp.evaluate(x, y, output=out, batch_images=2)
    expected = full["ssim"].values.copy()
    store = zarr.open_group(out, mode="r+")
    status = store["status"][:]
    status[2:] = ""
    store["status"][:] = status
    resumed = sp.evaluate(x, y, output=out, batch_images=2, resume=True)
    assert resumed["status"].values.tolist() == ["ok"] * 6
    np.testing.assert_array_equal(resumed["ssim"].values, expected)


def test_as_results_opens_a_store_lazily_and_takes_a_dataset_as_it_is(pair, tmp_path):
    x, y = pair
    out = tmp_path / "r.zarr"
    ds = sp.evaluate(x, y, output=str(out), regions="2x2", batch_images=2)
    assert sinks.as_results(ds) is ds
    lazy = sinks.as_results(out)
    # Nothing per pair is read at open but the ids: histograms and names stay on disk.
    for name in ("ssim", "ssim_hist", "status", "reference", "generated"):
        assert isinstance(lazy[name].data, da.Array), name
    xr.testing.assert_identical(lazy.load(), open_results(out).load())
    with pytest.raises(FileNotFoundError, match="results not found"):
        sinks.as_results(tmp_path / "missing.zarr")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"a Zarr store \(a folder\) or a \.nc file"):
        sinks.as_results(tmp_path / "notes.txt")
    with pytest.raises(TypeError, match=r"ds_or_path must be an xarray\.Dataset or a path"):
        sinks.as_results(3)  # type: ignore[arg-type]


def _as_earlier_version(out: str) -> None:
    """Remove mse/psnr from a store: the layout an earlier version wrote."""
    store = zarr.open_group(out, mode="r+")
    for name in ("mse", "psnr"):
        del store[name]


def test_a_store_without_mse_and_psnr_opens_but_is_not_resumed(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    out = str(tmp_path / "old.zarr")
    sp.evaluate(x, y, output=out, batch_images=2)
    _as_earlier_version(out)
    store = zarr.open_group(out, mode="r+")
    status = store["status"][:]
    status[2:] = "pending"
    store["status"][:] = status
    ds = open_results(out)
    assert "mse" not in ds and "psnr" not in ds
    assert ds["status"].values.tolist()[:2] == ["ok", "ok"]
    with pytest.raises(
        ValueError,
        match=r"written by ssim-pipeline .*without the variable\(s\) mse, psnr .*cannot be "
        r"resumed.*overwrite=True",
    ):
        sp.evaluate(x, y, output=out, batch_images=2, resume=True)
    redone = sp.evaluate(x, y, output=out, batch_images=2, overwrite=True)
    assert np.isfinite(redone["psnr"].values).all()


# -- results in an object store (moto's real S3 server, tests/s3_server.py) -------------


def _objects(bucket: str) -> dict[str, bytes]:
    """Every object of the bucket and its bytes (read fresh, no cached listing)."""
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    return {key: fs.cat_file(key) for key in fs.find(bucket)}


def test_object_store_run_resumes_after_interruption_and_equals_a_local_run(
    pair, s3_bucket, tmp_path
):
    from s3_server import SECRET_KEY

    x, y = pair
    settings = {"regions": "2x2", "batch_images": 2, "chunks": (1, 12, 12), "engine": "reference"}
    healthy = da.from_array(y, chunks=(1, 24, 24))
    local = sp.evaluate(x, healthy, output=str(tmp_path / "whole.zarr"), **settings)

    url = f"s3://{s3_bucket}/runs/r.zarr"
    with pytest.raises(OSError, match=r"simulated failure reading image [45]"):
        sp.evaluate(x, _failing_after(y, 4), output=url, **settings)
    partial = open_results(url)
    assert partial["status"].values.tolist() == ["ok", "ok", "ok", "ok", "pending", "pending"]
    assert f"{s3_bucket}/runs/r.zarr.lock" not in _objects(s3_bucket)  # released on the error

    with pytest.raises(FileExistsError, match=rf"output 's3://{s3_bucket}/runs/r.zarr' already"):
        sp.evaluate(x, healthy, output=url, **settings)
    batches = []
    resumed = sp.evaluate(
        x, healthy, output=url, resume=True, on_batch=lambda d, t, n: batches.append(t), **settings
    )
    assert batches == [1]  # only the missing batch was computed
    xr.testing.assert_identical(_without_time(resumed), _without_time(local))
    xr.testing.assert_identical(_without_time(open_results(url)), _without_time(local))
    stored = _objects(s3_bucket)
    assert f"{s3_bucket}/runs/r.zarr/zarr.json" in stored
    assert not any(SECRET_KEY.encode() in data for data in stored.values())


def test_object_store_layout_killed_anywhere_is_redone_by_the_next_writer(s3_bucket, monkeypatch):
    from pipeline.results.object_layout import INCOMPLETE_MARKER, ObjectStore

    url = f"s3://{s3_bucket}/r.zarr"
    prefix = f"{s3_bucket}/r.zarr"
    # Killed in the upload's bulk, or as the root metadata goes (the last step, the
    # marker's removal, leaves a whole store: it is removed by the next writer too).
    for step in ("put", "put_file"):
        real_init = ObjectStore.__init__
        with monkeypatch.context() as patch:

            def init(self, *args, step=step, real_init=real_init, patch=patch, **kwargs):
                real_init(self, *args, **kwargs)

                real_step = getattr(self.fs, step)

                def killed(path, *a, real_step=real_step, **k):
                    # The lock's own removal still works (a real kill would leave a stale
                    # lock, broken by pid: tested in test_lock.py).
                    if str(path).endswith(".lock"):
                        return real_step(path, *a, **k)
                    raise _Killed

                patch.setattr(self.fs, step, killed)

            patch.setattr(ObjectStore, "__init__", init)
            with pytest.raises(_Killed):
                ZarrSink(url, _layout_template(), batch_images=2)
        left = _objects(s3_bucket)
        assert f"{prefix}/{INCOMPLETE_MARKER}" in left
        # Until the root metadata lands, no reader takes the prefix for a store.
        assert f"{prefix}/zarr.json" not in left
        with pytest.raises(ValueError, match=rf"results s3://{prefix} exist but are neither"):
            open_results(url)
        sink = ZarrSink(url, _layout_template(), batch_images=2, resume=True)
        try:
            assert sink.pending(((0, 2), (2, 4), (4, 6))) == ([(0, 2), (2, 4), (4, 6)], 0)
        finally:
            sink.close()
        assert f"{prefix}/{INCOMPLETE_MARKER}" not in _objects(s3_bucket)
        assert open_results(url)["status"].values.tolist() == ["pending"] * 6
        ObjectStore(sinks.location(url), None).remove()
        assert not any(key.startswith(prefix + "/") for key in _objects(s3_bucket))


def test_object_store_overwrite_killed_midway_leaves_the_old_store_or_a_marked_remnant(
    pair, s3_bucket, monkeypatch
):
    from pipeline.results.object_layout import ObjectStore

    x, y = pair
    url = f"s3://{s3_bucket}/r.zarr"
    sp.evaluate(x, y, output=url, batch_images=3)
    real_remove = ObjectStore.remove

    def killed_after_marking(self):
        real_init_rm = self.fs.rm
        self.fs.rm = lambda *a, **k: (_ for _ in ()).throw(_Killed())
        try:
            real_remove(self)
        finally:
            self.fs.rm = real_init_rm

    with monkeypatch.context() as patch:
        patch.setattr(ObjectStore, "remove", killed_after_marking)
        with pytest.raises(_Killed):
            sp.evaluate(x, y, output=url, batch_images=3, regions="2x2", overwrite=True)
    # The root metadata went first: the remnant is not a store, and it is ours to remove.
    with pytest.raises(ValueError, match=r"neither a Zarr store"):
        open_results(url)
    ds = sp.evaluate(x, y, output=url, batch_images=3, regions="2x2")
    assert ds.sizes["region"] == 5 and (ds["status"].values == "ok").all()


def test_object_store_prefix_holding_other_data_is_refused_and_kept(pair, s3_bucket):
    import fsspec

    x, y = pair
    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    fs.pipe_file(f"{s3_bucket}/r.zarr/notes.txt", b"someone's data")
    url = f"s3://{s3_bucket}/r.zarr"
    with pytest.raises(FileExistsError, match=rf"output '{url}' exists and is not a Zarr store"):
        sp.evaluate(x, y, output=url)
    with pytest.raises(FileExistsError, match=r"is not a Zarr store"):
        sp.evaluate(x, y, output=url, overwrite=True)
    assert fs.cat_file(f"{s3_bucket}/r.zarr/notes.txt") == b"someone's data"


def test_object_store_errors_name_the_url_without_credentials(pair, s3_bucket):
    from s3_server import SECRET_KEY

    x, y = pair
    missing = "s3://no-such-bucket-ssim/r.zarr"
    with pytest.raises(
        FileNotFoundError,
        match=r"lock s3://no-such-bucket-ssim/r.zarr.lock .*"
        r"bucket or container does not exist",
    ) as error:
        sp.evaluate(x, y, output=missing)
    assert SECRET_KEY not in str(error.value)
    with pytest.raises(FileNotFoundError, match=rf"^results s3://{s3_bucket}/nothing.zarr do not"):
        open_results(f"s3://{s3_bucket}/nothing.zarr")
    with pytest.raises(FileNotFoundError, match=r"no-such-bucket-ssim"):
        open_results(missing)
    with_userinfo = f"s3://user:{SECRET_KEY}@{s3_bucket}/r.zarr"
    with pytest.raises(Exception) as error:
        open_results(with_userinfo)
    assert SECRET_KEY not in str(error.value)
    with pytest.raises(ValueError, match=r"https://example.org/r.zarr is read-only"):
        sp.evaluate(x, y, output="https://example.org/r.zarr")
    with pytest.raises(ValueError, match=rf"output s3://{s3_bucket} is a whole bucket; name a"):
        sp.evaluate(x, y, output=f"s3://{s3_bucket}", output_format="zarr")


def test_object_store_exports_and_file_urls_round_trip(pair, s3_bucket, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2")
    export_netcdf(ds, f"s3://{s3_bucket}/r.nc")
    xr.testing.assert_identical(open_results(f"s3://{s3_bucket}/r.nc"), ds.load())
    export_csv(ds, f"s3://{s3_bucket}/r.csv")
    local = tmp_path / "r.csv"
    export_csv(ds, local)
    assert _objects(s3_bucket)[f"{s3_bucket}/r.csv"] == local.read_bytes()
    with pytest.raises(FileExistsError, match=rf"output 's3://{s3_bucket}/r.nc' already exists"):
        sp.evaluate(x, y, regions="2x2", output=f"s3://{s3_bucket}/r.nc")
    write_zarr(ds, f"s3://{s3_bucket}/copy.zarr")
    xr.testing.assert_identical(as_results(f"s3://{s3_bucket}/copy.zarr").load(), ds.load())
    # Zarr 2: the root's .zattrs then .zgroup go last
    v2 = sp.evaluate(x, y, regions="2x2", output=f"s3://{s3_bucket}/v2.zarr", zarr_format=2)
    assert f"{s3_bucket}/v2.zarr/.zgroup" in _objects(s3_bucket)
    xr.testing.assert_equal(v2.load(), ds.load())  # the same values (zarr_format is in attrs)
    # file:// URLs are local paths
    url = f"file://{tmp_path}/f.zarr"
    sp.evaluate(x, y, regions="2x2", output=url)
    assert (tmp_path / "f.zarr" / "zarr.json").is_file()
    xr.testing.assert_identical(open_results(url).load(), open_results(tmp_path / "f.zarr").load())


def test_results_over_http_are_read_and_writing_there_is_refused(pair, tmp_path):
    import functools
    import http.server
    import threading

    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2", output=str(tmp_path / "r.zarr"), batch_images=2)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    # Python's file server on the loopback interface: it lists folders, as Zarr needs.
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/r.zarr"
        xr.testing.assert_identical(as_results(url).load(), ds.load())
        with pytest.raises(ValueError, match=rf"output: {url} is read-only \(HTTP\)"):
            sp.evaluate(x, y, regions="2x2", output=url)
        with pytest.raises(ValueError, match=r"is read-only \(HTTP\)"):
            export_csv(ds, url.replace("r.zarr", "r.csv"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_object_store_output_with_credentials_in_storage_options_only(
    pair, s3_server, s3_bucket, monkeypatch
):
    import json

    import s3fs
    from s3_server import ACCESS_KEY, SECRET_KEY

    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    s3fs.S3FileSystem.clear_instance_cache()
    options = {"endpoint_url": s3_server.endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}
    x, y = pair
    url = f"s3://{s3_bucket}/r.zarr"
    ds = sp.evaluate(x, y, regions="2x2", output=url, batch_images=3, storage_options=options)
    assert (ds["status"].values == "ok").all()
    assert SECRET_KEY not in json.dumps(ds.attrs, default=str)  # never stored
    back = open_results(url, storage_options=options)
    xr.testing.assert_identical(back.load(), ds.load())
    with pytest.raises(FileExistsError, match=rf"output '{url}' already exists") as error:
        sp.evaluate(x, y, regions="2x2", output=url, batch_images=3, storage_options=options)
    assert SECRET_KEY not in str(error.value)


@pytest.mark.parametrize(
    ("models", "groups"),
    [
        (["gan_a", "gan-b", "v1.2"], ["gan_a", "gan-b", "v1.2"]),
        (["GAN outputs", "b"], ["model0", "model1"]),  # a space: not a plain folder name
        (["run/1", "b"], ["model0", "model1"]),
        (["Gan", "gan"], ["model0", "model1"]),  # one folder on a case-insensitive disk
        ([".hidden", "b"], ["model0", "model1"]),
        (["__zarr", "b"], ["model0", "model1"]),
    ],
)
def test_maps_groups_are_model_names_only_when_every_name_is_a_plain_folder_name(models, groups):
    assert maps_groups(models) == groups
