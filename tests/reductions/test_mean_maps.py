"""Mean SSIM maps per size group: exact means of the per-pair maps, resumable, optional.

Reference values: the per-pair valid maps of :func:`pipeline.ssim` (``full=True``,
the float64 ``reference`` engine, one whole image in memory) averaged with NumPy
over the ``ok`` pairs; the SSIM map itself also against scikit-image's
``structural_similarity(full=True)`` (Gaussian window, sigma 1.5, population
covariance: an independent implementation), cropped by the window's half-width 5
to its valid region. The runs tile the images into chunks much smaller than an
image, so each mean map is assembled from chunk maps on each chunk's own pixels.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.reductions.mean_maps import MapSums, mean_maps_enabled
from pipeline.results.schema import MEAN_MAP_VARIABLES, validate_dataset
from pipeline.results.stores import open_results

# Mean maps are on by default ("auto"); said here so that the tests do not depend on it.
evaluate = functools.partial(sp.evaluate, mean_maps="auto")

TOL = 1e-9
NAMES = {
    "ssim": "mean_ssim_map",
    "luminance": "mean_luminance_map",
    "contrast": "mean_contrast_map",
    "structure": "mean_structure_map",
}


def _pairs(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-40, 40, shape)
    y = np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)
    return x, y


def _expected(x: np.ndarray, y: np.ndarray, ok: list[int], colour: bool) -> dict[str, np.ndarray]:
    """Mean over ``ok`` of the in-memory per-pair maps (channel mean for colour)."""
    maps: dict[str, list[np.ndarray]] = {name: [] for name in NAMES}
    for i in ok:
        _, full = sp.ssim(
            x[i], y[i], engine="reference", channel_axis=-1 if colour else None, full=True
        )
        for name in NAMES:
            values = np.asarray(full[name], dtype=np.float64)
            # Colour: the per-channel maps' pixel mean, as the score is the channels' mean.
            maps[name].append(values.mean(axis=-1) if colour else values)
    return {name: np.mean(np.stack(values), axis=0) for name, values in maps.items()}


@pytest.mark.parametrize("colour", [False, True])
def test_chunked_mean_maps_equal_the_mean_of_per_pair_maps(rng, colour: bool) -> None:
    shape = (5, 41, 47, 3) if colour else (5, 41, 47)
    x, y = _pairs(rng, shape)
    ds = evaluate(
        x,
        y,
        engine="reference",
        chunks=(2, 15, 16),
        batch_images=2,
        channel_axis=-1 if colour else None,
    )
    validate_dataset(ds)
    expected = _expected(x, y, list(range(5)), colour)
    assert ds.sizes["map_y"] == 41 - 10 and ds.sizes["map_x"] == 47 - 10  # valid crop, depth 5
    assert int(ds.map_offset[0]) == 5 and int(ds.mean_map_count[0]) == 5
    assert str(ds.size_group.values[0]) == ("41x47x3" if colour else "41x47x1")
    for name, variable in NAMES.items():
        np.testing.assert_allclose(ds[variable].values[0], expected[name], rtol=0, atol=TOL)
    backdrop = x[:, 5:-5, 5:-5].astype(np.float64)
    if colour:
        backdrop = backdrop.mean(axis=-1)
    np.testing.assert_allclose(ds.mean_reference.values[0], backdrop.mean(axis=0), atol=TOL)


def test_mean_ssim_map_equals_skimage_full_maps(rng) -> None:
    x, y = _pairs(rng, (3, 40, 36))
    ds = evaluate(x, y, engine="reference", chunks=(1, 14, 13))
    maps = []
    for i in range(3):
        _, full = structural_similarity(
            x[i].astype(np.float64),
            y[i].astype(np.float64),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            full=True,
        )
        maps.append(full[5:-5, 5:-5])
    np.testing.assert_allclose(ds.mean_ssim_map.values[0], np.mean(maps, axis=0), atol=1e-9)


def test_default_engine_mean_map_matches_the_same_engine_per_pair(rng) -> None:
    # The fused engine computes maps in float32: chunked and whole-image maps agree to it.
    x, y = _pairs(rng, (4, 40, 44))
    ds = evaluate(x, y, chunks=(2, 16, 16))
    maps = [sp.ssim(x[i], y[i], full=True)[1]["ssim"] for i in range(4)]
    np.testing.assert_allclose(ds.mean_ssim_map.values[0], np.mean(maps, axis=0), atol=1e-6)


def test_failed_pairs_are_left_out_of_the_mean(rng) -> None:
    x = rng.random((5, 32, 30))
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    y[2, 10, 10] = np.nan  # nan_policy "fail": pair 2 fails, its map is NaN there
    ds = evaluate(x, y, engine="reference", data_range=1.0, chunks=(5, 16, 16))
    assert list(ds.status.values != "ok") == [False, False, True, False, False]
    ok = [0, 1, 3, 4]
    maps = [sp.ssim(x[i], y[i], engine="reference", data_range=1.0, full=True)[1] for i in ok]
    assert int(ds.mean_map_count[0]) == 4
    for name, variable in NAMES.items():
        expected = np.mean([m[name] for m in maps], axis=0)
        np.testing.assert_allclose(ds[variable].values[0], expected, atol=TOL)


class _Stop(Exception):
    pass


def test_resumed_run_gives_the_uninterrupted_mean_map(rng, tmp_path, monkeypatch) -> None:
    from pipeline.results.stores import ZarrSink

    x, y = _pairs(rng, (7, 36, 40))
    settings = dict(engine="reference", chunks=(1, 18, 20), batch_images=1)
    whole = evaluate(x, y, output=str(tmp_path / "whole.zarr"), **settings)
    out = str(tmp_path / "cut.zarr")

    def stop_after(done, total, n):
        if done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        evaluate(x, y, output=out, on_batch=stop_after, **settings)
    interrupted = open_results(out)
    assert int(interrupted.mean_map_count[0]) == 0  # written when every batch is committed
    assert np.isnan(interrupted.mean_ssim_map.values).all()

    # Killed between a batch's stored sums and its status commit: recomputed, not doubled.
    real_write = ZarrSink.write
    calls = {"n": 0}

    def failing_write(self, start, stop, statistics, status):
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Stop
        return real_write(self, start, stop, statistics, status)

    monkeypatch.setattr(ZarrSink, "write", failing_write)
    with pytest.raises(_Stop):
        evaluate(x, y, output=out, resume=True, **settings)
    monkeypatch.setattr(ZarrSink, "write", real_write)
    resumed = evaluate(x, y, output=out, resume=True, **settings)
    assert int(resumed.mean_map_count[0]) == int(whole.mean_map_count[0]) == 7
    for name in MEAN_MAP_VARIABLES:
        np.testing.assert_allclose(resumed[name].values, whole[name].values, rtol=0, atol=TOL)
    expected = _expected(x, y, list(range(7)), colour=False)
    np.testing.assert_allclose(resumed.mean_ssim_map.values[0], expected["ssim"], atol=TOL)


def test_size_groups_are_nan_padded(rng, tmp_path) -> None:
    from PIL import Image

    for side in ("ref", "gen"):
        (tmp_path / side).mkdir()
    shapes = {"a": (40, 30), "b": (40, 30), "c": (24, 50)}
    images = {}
    for name, shape in shapes.items():
        x, y = _pairs(rng, (1, *shape))
        images[name] = (x[0], y[0])
        Image.fromarray(x[0]).save(tmp_path / "ref" / f"{name}.png")
        Image.fromarray(y[0]).save(tmp_path / "gen" / f"{name}.png")
    ds = evaluate(str(tmp_path / "ref"), str(tmp_path / "gen"), engine="reference")
    validate_dataset(ds)
    by_name = {str(n): k for k, n in enumerate(ds.size_group.values)}
    assert set(by_name) == {"40x30x1", "24x50x1"}
    assert (ds.sizes["map_y"], ds.sizes["map_x"]) == (30, 40)
    small = by_name["40x30x1"]
    assert (int(ds.map_height[small]), int(ds.map_width[small])) == (30, 20)
    assert np.isnan(ds.mean_ssim_map.values[small, :, 20:]).all()
    expected = np.mean(
        [sp.ssim(*images[n], engine="reference", full=True)[1]["ssim"] for n in ("a", "b")], axis=0
    )
    np.testing.assert_allclose(ds.mean_ssim_map.values[small, :30, :20], expected, atol=TOL)
    wide = by_name["24x50x1"]
    assert int(ds.mean_map_count[wide]) == 1
    assert np.isnan(ds.mean_ssim_map.values[wide, 14:, :]).all()


def test_netcdf_round_trip_keeps_the_mean_maps(rng, tmp_path) -> None:
    x, y = _pairs(rng, (2, 30, 30))
    ds = evaluate(x, y, output=str(tmp_path / "r.nc"))
    back = open_results(tmp_path / "r.nc")
    validate_dataset(back)
    assert back.mean_map_count.dtype == np.int64
    xr.testing.assert_allclose(back[list(MEAN_MAP_VARIABLES)], ds[list(MEAN_MAP_VARIABLES)])


def test_mean_maps_off_and_auto(rng) -> None:
    x, y = _pairs(rng, (2, 30, 30))
    off = evaluate(x, y, mean_maps=False)
    assert not any(name in off for name in MEAN_MAP_VARIABLES)
    validate_dataset(off)
    assert "mean_ssim_map" not in evaluate(
        x.astype(float), y.astype(float), data_range=255.0, nan_policy="mask"
    )
    with pytest.raises(ValueError, match="mean_maps=True cannot be combined with nan_policy"):
        evaluate(x, y, mean_maps=True, nan_policy="mask")
    assert mean_maps_enabled("auto", [(512, 512)], volume=False, nan_policy="fail")
    assert not mean_maps_enabled("auto", [(64, 64), (513, 512)], volume=False, nan_policy="fail")
    assert not mean_maps_enabled("auto", [(1024, 1024)], volume=False, nan_policy="fail")
    assert mean_maps_enabled(True, [(8000, 8000)], volume=False, nan_policy="fail")
    assert not mean_maps_enabled("auto", [(64, 64)], volume=True, nan_policy="fail")
    assert not mean_maps_enabled(
        "auto", [(64, 64)], volume=False, nan_policy="fail", output_format="csv"
    )


def test_default_is_auto_on_for_small_images_and_off_above_the_limit(rng, monkeypatch) -> None:
    import pipeline.reductions.mean_maps

    x, y = _pairs(rng, (2, 30, 32))
    assert sp.RunConfig().mean_maps == "auto"
    on = sp.evaluate(x, y)  # no setting: the default
    assert int(on.mean_map_count[0]) == 2 and "mean_ssim_map" in on
    # Above the limit (here lowered to 30 x 31 pixels, the images being 30 x 32): off.
    monkeypatch.setattr(pipeline.reductions.mean_maps, "AUTO_MAX_PIXELS", 30 * 31)
    off = sp.evaluate(x, y)
    assert not any(name in off for name in MEAN_MAP_VARIABLES)
    np.testing.assert_array_equal(off.ssim.values, on.ssim.values)  # scores unchanged
    assert "mean_ssim_map" in sp.evaluate(x, y, mean_maps=True)  # forced on: still there
    two = sp.evaluate(x, [y, x])
    assert not any(name in two for name in MEAN_MAP_VARIABLES)


def test_map_sums_add_and_mean() -> None:
    total = MapSums.zeros((2, 2))
    assert np.isnan(total.means()).all()  # no pair: NaN, never 0/0 warnings
    total.add(MapSums(np.ones((5, 2, 2)), 2))
    total.add(MapSums(np.zeros((5, 2, 2)), 0))  # a batch with no ok pair
    total.add(MapSums(2 * np.ones((5, 2, 2)), 1))
    assert total.count == 3
    np.testing.assert_array_equal(total.means(), np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="cannot be added"):
        total.add(MapSums(np.ones((5, 3, 2)), 1))


def test_resume_in_other_batches_and_a_cut_slot_give_the_same_mean(
    rng, tmp_path, monkeypatch
) -> None:
    # Stores interrupted under one batch layout resume in another (the planned budget
    # changed): each batch of the resumed plan is added once, from its own slot or
    # summed again from the stored statuses.
    import zarr

    import pipeline.tiling.chunks
    from pipeline.tiling.chunks import statistics_bytes_per_image

    x, y = _pairs(rng, (30, 24, 24))
    whole = evaluate(x, y, engine="reference")
    out = str(tmp_path / "r.zarr")
    per_image = statistics_bytes_per_image(1, 100)

    def stop_after_the_first(done, total, n):
        raise _Stop

    monkeypatch.setattr(pipeline.tiling.chunks, "BATCH_STATISTICS_BYTES", 12 * per_image)
    with pytest.raises(_Stop):
        evaluate(x, y, engine="reference", output=out, on_batch=stop_after_the_first)
    monkeypatch.setattr(pipeline.tiling.chunks, "BATCH_STATISTICS_BYTES", 8 * per_image)
    committed: list[int] = []
    resumed = evaluate(
        x,
        y,
        engine="reference",
        output=out,
        resume=True,
        on_batch=lambda done, total, n: committed.append(n),
    )
    assert committed == [8, 8, 6]  # rows 0..11 were committed in the old batch of 12
    slots = sorted(zarr.open_group(out, mode="r")["mean_map_partials/0"].array_keys())
    assert slots == ["0-12", "16-24", "24-30", "8-16"]  # the old slot 0-12 is not the plan's
    assert int(resumed.mean_map_count[0]) == 30
    for name in MEAN_MAP_VARIABLES:
        np.testing.assert_allclose(resumed[name].values, whole[name].values, rtol=0, atol=TOL)

    # A slot whose write was cut short (no count) is summed again, not left out.
    zarr.open_group(out, mode="r+")["mean_map_partials/0/16-24"].attrs["count"] = -1
    again = evaluate(x, y, engine="reference", output=out, resume=True)
    assert int(again.mean_map_count[0]) == 30
    np.testing.assert_allclose(again.mean_ssim_map.values, whole.mean_ssim_map.values, atol=TOL)


def test_csv_output_computes_no_mean_map(rng, tmp_path) -> None:
    x, y = _pairs(rng, (2, 30, 30))
    ds = evaluate(x, y, output=str(tmp_path / "r.csv"))
    assert "mean_ssim_map" not in ds
    with pytest.raises(ValueError, match="mean_maps=True needs an output that holds maps"):
        evaluate(x, y, output=str(tmp_path / "s.csv"), mean_maps=True)


def _model_expected(x: np.ndarray, y: np.ndarray, ok: list[int]) -> dict[str, np.ndarray]:
    return _expected(x, y, ok, colour=False)


@pytest.mark.parametrize("output", [None, "r.zarr", "r.nc"])
def test_two_models_have_one_exact_mean_map_each(rng, tmp_path, output) -> None:
    x, a = _pairs(rng, (5, 36, 41))
    _, b = _pairs(rng, (5, 36, 41))
    b = np.clip(b.astype(int) - 30, 0, 255).astype(np.uint8)
    ds = evaluate(
        x,
        {"a": a, "b": b},
        engine="reference",
        chunks=(2, 15, 17),
        batch_images=2,
        output=None if output is None else str(tmp_path / output),
    )
    validate_dataset(ds)
    assert ds.mean_ssim_map.dims == ("model", "size_group", "map_y", "map_x")
    assert ds.mean_map_count.values.tolist() == [[5], [5]]
    for name, generated in (("a", a), ("b", b)):
        expected = _model_expected(x, generated, list(range(5)))
        for component, variable in NAMES.items():
            got = ds[variable].sel(model=name).values[0]
            np.testing.assert_allclose(got, expected[component], rtol=0, atol=TOL)
        backdrop = x[:, 5:-5, 5:-5].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(ds.mean_reference.sel(model=name).values[0], backdrop, atol=TOL)
        # Each model's map is that of its own run.
        alone = evaluate(x, generated, engine="reference", chunks=(2, 15, 17), batch_images=2)
        for variable in MEAN_MAP_VARIABLES:
            np.testing.assert_allclose(
                ds[variable].sel(model=name).values, alone[variable].values, rtol=0, atol=TOL
            )


def test_a_failed_pair_leaves_only_its_own_model_s_mean(rng) -> None:
    x = rng.random((5, 32, 30))
    a = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    b = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    b[2, 10, 10] = np.nan  # fails pair 2 of model b only
    ds = evaluate(x, {"a": a, "b": b}, engine="reference", data_range=1.0, chunks=(5, 16, 16))
    assert (ds.status.sel(model="a") == "ok").all()
    assert list(ds.status.sel(model="b").values != "ok") == [False, False, True, False, False]
    assert ds.mean_map_count.values.tolist() == [[5], [4]]
    for name, generated, ok in (("a", a, [0, 1, 2, 3, 4]), ("b", b, [0, 1, 3, 4])):
        maps = [
            sp.ssim(x[i], generated[i], engine="reference", data_range=1.0, full=True)[1]
            for i in ok
        ]
        for component, variable in NAMES.items():
            expected = np.mean([m[component] for m in maps], axis=0)
            got = ds[variable].sel(model=name).values[0]
            np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)


def test_resumed_run_of_two_models_gives_the_uninterrupted_mean_maps(rng, tmp_path) -> None:
    x, a = _pairs(rng, (6, 30, 34))
    b = 255 - a
    settings = dict(engine="reference", chunks=(1, 15, 17), batch_images=1)
    whole = evaluate(x, {"a": a, "b": b}, output=str(tmp_path / "whole.zarr"), **settings)
    out = str(tmp_path / "cut.zarr")

    def stop_after(done, total, n):
        if done == 2:
            raise _Stop

    with pytest.raises(_Stop):
        evaluate(x, {"a": a, "b": b}, output=out, on_batch=stop_after, **settings)
    interrupted = open_results(out)
    assert interrupted.mean_map_count.values.tolist() == [[0], [0]]  # not computed yet
    resumed = evaluate(x, {"a": a, "b": b}, output=out, resume=True, **settings)
    assert resumed.mean_map_count.values.tolist() == [[6], [6]]
    for name in MEAN_MAP_VARIABLES:
        np.testing.assert_allclose(resumed[name].values, whole[name].values, rtol=0, atol=TOL)
    expected = _model_expected(x, b, list(range(6)))
    got = resumed.mean_ssim_map.sel(model="b").values[0]
    np.testing.assert_allclose(got, expected["ssim"], rtol=0, atol=TOL)


def test_default_engine_sums_equal_the_fused_kernel_s_own_maps(rng) -> None:
    # The statistics kernel adds its float32 map rows in float64: the mean equals
    # NumPy's mean of the same kernel's per-pair maps (fused_maps) to 1e-9, chunked,
    # grey and colour.
    from pipeline.kernels import window_weights
    from pipeline.kernels.cpu.fused import fused_maps

    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    for shape in ((4, 40, 44), (3, 38, 40, 3)):
        x, y = _pairs(rng, shape)
        colour = len(shape) == 4
        ds = evaluate(x, y, chunks=(2, 16, 16), channel_axis=-1 if colour else None)
        for component, variable in NAMES.items():
            per_pair = []
            for i in range(shape[0]):
                xs = x[i][..., None] if not colour else x[i]
                ys = y[i][..., None] if not colour else y[i]
                channels = [
                    fused_maps(
                        xs[..., c], ys[..., c], weights=weights, uniform=False, c1=c1, c2=c2
                    )[component]
                    for c in range(xs.shape[-1])
                ]
                total = channels[0].copy()
                for more in channels[1:]:
                    total += more  # float32, in channel order, as the kernels average
                per_pair.append((total / np.float32(len(channels))).astype(np.float64))
            expected = np.mean(per_pair, axis=0)
            np.testing.assert_allclose(ds[variable].values[0], expected, rtol=0, atol=TOL)


def test_pairs_known_to_fail_before_reading_are_left_out_in_the_one_pass(
    rng, tmp_path, monkeypatch
) -> None:
    # A generated file of another size fails from its header: the block tasks leave it
    # out of the sums, so no map is computed a second time (no KernelSpec.maps call).
    from PIL import Image

    from pipeline.reductions.kernel_spec import KernelSpec

    x, y = _pairs(rng, (4, 36, 40))
    for side, images in (("ref", x), ("gen", y)):
        (tmp_path / side).mkdir()
        for i, image in enumerate(images):
            shown = image[:30, :30] if side == "gen" and i == 1 else image
            Image.fromarray(shown).save(tmp_path / side / f"im{i}.png")
    calls = []
    real = KernelSpec.maps
    monkeypatch.setattr(
        KernelSpec, "maps", lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
    )
    ds = evaluate(str(tmp_path / "ref"), str(tmp_path / "gen"))
    assert list(ds.status.values == "ok") == [True, False, True, True]
    assert calls == [] and int(ds.mean_map_count[0]) == 3
    from pipeline.kernels import window_weights
    from pipeline.kernels.cpu.fused import fused_maps

    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    per_pair = [
        fused_maps(x[i], y[i], weights=weights, uniform=False, c1=c1, c2=c2)["ssim"]
        for i in (0, 2, 3)
    ]
    expected = np.mean(np.asarray(per_pair, dtype=np.float64), axis=0)
    np.testing.assert_allclose(ds.mean_ssim_map.values[0], expected, rtol=0, atol=TOL)
    backdrop = x[[0, 2, 3], 5:-5, 5:-5].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(ds.mean_reference.values[0], backdrop, rtol=0, atol=TOL)


def test_two_models_with_regions_into_an_object_store_resume_to_the_same_maps(
    rng, s3_bucket
) -> None:
    # moto's real S3 server (tests/s3_server.py): the slots and the means live in the
    # bucket; grid regions do not change the map (the statistics path with maps).
    x, a = _pairs(rng, (4, 30, 34))
    b = np.clip(a.astype(int) + 25, 0, 255).astype(np.uint8)
    settings = dict(engine="reference", chunks=(1, 15, 17), batch_images=1, regions="2x2")
    url = f"s3://{s3_bucket}/r.zarr"

    def stop_after(done, total, n):
        if done == 2:
            raise _Stop

    with pytest.raises(_Stop):
        evaluate(x, {"a": a, "b": b}, output=url, on_batch=stop_after, **settings)
    resumed = evaluate(x, {"a": a, "b": b}, output=url, resume=True, **settings)
    assert resumed.mean_map_count.values.tolist() == [[4], [4]]
    for name, generated in (("a", a), ("b", b)):
        expected = _model_expected(x, generated, list(range(4)))
        for component, variable in NAMES.items():
            got = resumed[variable].sel(model=name).values[0]
            np.testing.assert_allclose(got, expected[component], rtol=0, atol=TOL)


def test_empty_map_sums_take_over_the_first_batch_s_array() -> None:
    # Zeros plus a batch's sums are those sums: the array is taken over, not added.
    batch = np.arange(20, dtype=np.float64).reshape(5, 2, 2)
    total = MapSums.zeros((2, 2))
    total.add(MapSums(np.zeros((5, 2, 2)), 0))  # a batch without an ok pair adds nothing
    total.add(MapSums(batch, 2))
    assert total.sums is batch and total.count == 2
    total.add(MapSums(np.ones((5, 2, 2)), 1))
    np.testing.assert_array_equal(total.means(), (np.arange(20).reshape(5, 2, 2) + 1) / 3)
    # A strided batch (a (y, x, component) layout) is made C-contiguous, values unchanged.
    strided = np.moveaxis(np.arange(20, dtype=np.float64).reshape(2, 2, 5), -1, 0)
    other = MapSums.zeros((2, 2))
    other.add(MapSums(strided, 1))
    assert other.sums.flags.c_contiguous
    np.testing.assert_array_equal(other.sums, strided)
