"""MSE and PSNR of the statistics graph, end to end through ``evaluate``.

Reference values: scikit-image's ``skimage.metrics.mean_squared_error`` and
``peak_signal_noise_ratio(..., data_range=L)`` (independent implementations) on
the whole image, and on the pixels of each region (grid tiles by the rule
``tile row = floor(y * R / H)``, label masks by value), over every channel.
The runs tile the images into chunks much smaller than an image, so each value
is the exact merge of per-block sums over each block's own pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from kernel_cases import exact_ssim
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

import pipeline as sp
from pipeline.kernels import window_weights
from pipeline.results.schema import STATUS_OK
from pipeline.testing import degrade, photograph

RTOL = 1e-9


def _grid_masks(shape: tuple[int, int], rows: int, cols: int) -> list[np.ndarray]:
    height, width = shape
    tile_row = np.arange(height) * rows // height
    tile_col = np.arange(width) * cols // width
    return [
        (tile_row[:, None] == i) & (tile_col[None, :] == j)
        for i in range(rows)
        for j in range(cols)
    ]


def _check(ds, x: np.ndarray, y: np.ndarray, data_range: float, masks=()) -> None:
    """Every pair's MSE/PSNR in region ``all`` and in each region mask against skimage."""
    for i in range(x.shape[0]):
        values = [(x[i], y[i])] + [(x[i][m], y[i][m]) for m in masks]
        for region, (a, b) in enumerate(values):
            mse = float(ds.mse.values[i, region])
            np.testing.assert_allclose(mse, mean_squared_error(a, b), rtol=RTOL)
            expected = peak_signal_noise_ratio(a, b, data_range=data_range)
            np.testing.assert_allclose(float(ds.psnr.values[i, region]), expected, rtol=RTOL)


def _photographs(names: tuple[str, ...], rng: np.random.Generator, side: int = 256) -> tuple:
    x = np.stack([photograph(name)[:side, :side] for name in names])
    kinds = ("noise", "jpeg", "blur")
    y = np.stack(
        [degrade(image, kinds[k % 3], strength=10.0, rng=rng) for k, image in enumerate(x)]
    )
    return x, y


@pytest.mark.parametrize("names", [("camera", "moon"), ("astronaut", "coffee")])  # grey, colour
def test_chunked_photographs_with_grid_regions_equal_skimage(names, rng) -> None:
    x, y = _photographs(names, rng)
    colour = {"channel_axis": -1} if x.ndim == 4 else {}
    # Uneven tiles, halo'd blocks; colour: every channel, as skimage's MSE.
    ds = sp.evaluate(x, y, regions="3x2", chunks=(1, 70, 90), **colour)
    assert ds.mse.dims == ds.ssim.dims == ("image", "region")
    _check(ds, x, y, 255.0, _grid_masks(x.shape[1:3], 3, 2))


@pytest.mark.parametrize(
    ("dtype", "data_range"), [(np.uint16, 65535.0), (np.float32, 1.0), (np.float64, 1.0)]
)
def test_uint16_and_float_pairs_use_the_runs_data_range(dtype, data_range, rng) -> None:
    x8, y8 = _photographs(("camera", "moon"), rng, side=128)
    if dtype is np.uint16:
        x, y = x8.astype(np.uint16) * 257, y8.astype(np.uint16) * 257
    else:
        x, y = (x8 / 255.0).astype(dtype), (y8 / 255.0).astype(dtype)
    kwargs = {} if dtype is np.uint16 else {"data_range": data_range}
    ds = sp.evaluate(x, y, chunks=(1, 50, 64), **kwargs)
    _check(ds, x, y, data_range)


def test_large_image_streamed_in_chunks_equals_skimage(rng) -> None:
    """One image tiled into 5 x 4 chunks: per-chunk sums over own pixels, merged exactly."""
    x = np.tile(photograph("camera"), (2, 2))[:900, :1000][None]
    y = degrade(x[0], "noise", strength=20.0, rng=rng)[None]
    ds = sp.evaluate(x, y, chunks=(1, 200, 256), regions="128px")
    masks = _grid_masks_px(x.shape[1:3], 128)
    _check(ds, x, y, 255.0, masks)


def _grid_masks_px(shape: tuple[int, int], size: int) -> list[np.ndarray]:
    height, width = shape
    rows, cols = -(-height // size), -(-width // size)
    tile_row, tile_col = np.arange(height) // size, np.arange(width) // size
    return [
        (tile_row[:, None] == i) & (tile_col[None, :] == j)
        for i in range(rows)
        for j in range(cols)
    ]


def test_label_regions_count_every_labelled_pixel(rng) -> None:
    x, y = _photographs(("coins", "camera"), rng, side=200)
    labels = np.zeros(x.shape[1:3], dtype=np.int32)
    labels[20:120, 30:160] = 3
    labels[130:, :90] = 7
    ds = sp.evaluate(x, y, regions="labels", labels=labels, chunks=(1, 64, 64))
    assert list(ds.region.values) == ["all", "label3", "label7"]
    _check(ds, x, y, 255.0, [labels == 3, labels == 7])


def test_zarr_stack_run(tmp_path: Path, rng) -> None:
    x, y = _photographs(("astronaut", "chelsea"), rng, side=160)
    paths = []
    for name, stack in (("x.zarr", x), ("y.zarr", y)):
        array = zarr.create_array(
            tmp_path / name, shape=stack.shape, chunks=(1, 64, 64, 3), dtype=stack.dtype
        )
        array[:] = stack
        paths.append(str(tmp_path / name))
    ds = sp.evaluate(*paths, regions="2x2", output=str(tmp_path / "out.zarr"), channel_axis=-1)
    assert ds.psnr.attrs["units"] == "dB"
    _check(ds, x, y, 255.0, _grid_masks(x.shape[1:3], 2, 2))


def test_folder_run_of_png_files(tmp_path: Path, rng) -> None:
    x, y = _photographs(("astronaut", "coffee"), rng, side=96)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    for k in range(2):
        Image.fromarray(x[k]).save(ref / f"p{k}.png")
        Image.fromarray(y[k]).save(gen / f"p{k}.png")
    ds = sp.evaluate(str(ref), str(gen))
    for k in range(2):
        position = list(ds.image.values).index(f"p{k}.png")
        np.testing.assert_allclose(
            float(ds.mse.sel(region="all").values[position]),
            mean_squared_error(x[k], y[k]),
            rtol=RTOL,
        )


def test_identical_pair_has_psnr_inf_and_failed_pair_nan(rng) -> None:
    x = rng.random((3, 40, 40))
    y = x.copy()
    y[1] += 0.01
    y[2, 5, 5] = np.nan  # nan_policy="fail": the pair fails
    ds = sp.evaluate(x, y, data_range=1.0)
    status = list(ds.status.values)
    assert status[:2] == [STATUS_OK, STATUS_OK] and status[2] != STATUS_OK
    assert ds.mse.values[0, 0] == 0.0
    assert ds.psnr.values[0, 0] == np.inf
    np.testing.assert_allclose(ds.psnr.values[1, 0], 40.0, rtol=RTOL)  # 10 log10(1 / 1e-4)
    assert np.isnan(ds.mse.values[2, 0]) and np.isnan(ds.psnr.values[2, 0])


def test_masked_nan_pixels_are_left_out_of_mse(rng) -> None:
    x = rng.random((1, 48, 48))
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    y[0, 10, 12] = np.nan
    x[0, 30, 40] = np.inf
    ds = sp.evaluate(x, y, data_range=1.0, nan_policy="mask", chunks=(1, 20, 20))
    keep = np.isfinite(x[0]) & np.isfinite(y[0])
    np.testing.assert_allclose(
        ds.mse.values[0, 0], mean_squared_error(x[0][keep], y[0][keep]), rtol=RTOL
    )


def test_luma_mode_still_compares_every_channel(rng) -> None:
    x, y = _photographs(("astronaut", "chelsea"), rng, side=120)
    ds = sp.evaluate(x, y, channel_axis=-1, color_mode="luma")
    _check(ds, x, y, 255.0)


def test_size_groups_of_different_bit_depths_use_their_own_data_range(tmp_path: Path, rng) -> None:
    """A folder of a uint8 and a uint16 pair (two groups): PSNR with 255 and 65535."""
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    x8 = photograph("camera")[:64, :80]
    y8 = degrade(x8, "noise", strength=8.0, rng=rng)
    x16 = photograph("moon")[:70, :90].astype(np.uint16) * 257
    y16 = degrade(x16, "noise", strength=8.0, rng=rng, data_range=65535.0)
    for folder, a, b in ((ref, x8, x16), (gen, y8, y16)):
        Image.fromarray(a).save(folder / "a8.png")
        Image.fromarray(b).save(folder / "b16.png")
    ds = sp.evaluate(str(ref), str(gen))
    ids = list(ds.image.values)
    for name, a, b, peak in (("a8.png", x8, y8, 255), ("b16.png", x16, y16, 65535)):
        expected = peak_signal_noise_ratio(a, b, data_range=peak)
        np.testing.assert_allclose(
            float(ds.psnr.sel(region="all").values[ids.index(name)]), expected, rtol=RTOL
        )


def test_mean_map_graph_sums_each_image_chunk_from_chunk_maps(rng) -> None:
    # Reference: pipeline.ssim's whole-image valid maps (float64 reference engine),
    # summed with NumPy over each image chunk; the graph tiles every image 3 x 3.
    from pipeline.engine.graphs import mean_map_graph
    from pipeline.engine.plan import plan_run
    from pipeline.engine.settings import resolve_config
    from pipeline.inputs.opening import open_pair

    x = rng.integers(0, 256, (5, 45, 50), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    config = resolve_config(None, engine="reference", chunks=(2, 15, 17))
    group = plan_run(config, open_pair(x, y, options=config.input_options())).groups[0]
    sums = mean_map_graph(group.pair, group.kernel, group.chunks)
    assert sums.shape == (3, 35, 40, 5) and len(sums.chunks[1]) == 3
    maps = [sp.ssim(x[i], y[i], engine="reference", full=True)[1] for i in range(5)]
    got = sums.compute()
    for k, rows in enumerate(([0, 1], [2, 3], [4])):
        for c, name in enumerate(("ssim", "luminance", "contrast", "structure")):
            expected = np.sum([maps[i][name] for i in rows], axis=0)
            np.testing.assert_allclose(got[k, ..., c], expected, rtol=0, atol=1e-9)
        backdrop = x[rows, 5:-5, 5:-5].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(got[k, ..., 4], backdrop, rtol=0, atol=1e-9)
    only = mean_map_graph(group.pair, group.kernel, group.chunks, rows=np.array([1, 4]))
    expected = maps[1]["ssim"] + maps[4]["ssim"]
    np.testing.assert_allclose(only.sum(axis=0).compute()[..., 0], expected, atol=1e-9)


@pytest.mark.parametrize("engine", ["auto", "reference"])
def test_map_sums_come_from_the_statistics_block_tasks(rng, engine, monkeypatch) -> None:
    # One kernel pass per block: with mean maps on, the blocks' statistics and map sums
    # are computed by the same tasks (whole_statistics or maps called once per block,
    # as with mean maps off), and equal the separate map graph's sums (reference:
    # mean_map_graph, itself checked against pipeline.ssim's maps above).
    from pipeline.engine.graphs import mean_map_graph
    from pipeline.engine.plan import plan_run
    from pipeline.engine.settings import resolve_config
    from pipeline.inputs.opening import open_pair
    from pipeline.reductions.kernel_spec import KernelSpec

    x = rng.integers(0, 256, (5, 45, 50, 3), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    calls = {"whole_statistics": 0, "maps": 0}
    for name in calls:
        real = getattr(KernelSpec, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(KernelSpec, name, counted)
    found = {}
    for mean_maps in (False, True):
        config = resolve_config(
            None, engine=engine, chunks=(2, 15, 17), channel_axis=-1, mean_maps=mean_maps
        )
        plan = plan_run(config, open_pair(x, y, channel_axis=-1, options=config.input_options()))
        (group,) = plan.groups
        assert (group.map_sums is not None) == mean_maps
        for name in calls:
            calls[name] = 0
        wanted = [plan.statistics] + ([] if group.map_sums is None else [group.map_sums])
        found[mean_maps] = _compute_threads(*wanted)
        found[mean_maps, "calls"] = dict(calls)
    n_blocks = 3 * 3 * 3  # 3 image chunks x 3 x 3 tiles
    if engine == "auto":
        assert found[True, "calls"] == {"whole_statistics": n_blocks, "maps": 0}
    else:
        assert found[True, "calls"]["maps"] == n_blocks
    assert found[True, "calls"] == found[False, "calls"]
    np.testing.assert_array_equal(found[True][0], found[False][0])  # statistics unchanged
    separate = mean_map_graph(group.pair, group.kernel, group.chunks).compute()
    np.testing.assert_allclose(found[True][1], separate, rtol=0, atol=1e-9)


def _compute_threads(*arrays: object) -> tuple:
    import dask

    return dask.compute(*arrays, scheduler="threads")


@pytest.mark.parametrize("channels", [1, 3])
def test_grid_regions_keep_the_means_of_a_run_without_regions(rng, channels) -> None:
    # A run with regions reduces stored maps; their SUM and M2 come from the fused
    # kernel's deficits, as the run without regions (packed statistics) makes them:
    # region "all" is the same to the float64 summation order. Flat 255 vs 254 (second
    # pair): the float32 map is 2.9e-8 off the exact SSIM on every pixel, each region's
    # mean is not (wang2004, gaussian 11: the exact value of one window).
    shape = (2, 70, 90, channels)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
    x[1], y[1] = 255, 254
    axis = {"channel_axis": -1} if channels > 1 else {}
    if channels == 1:
        x, y = x[..., 0], y[..., 0]
    plain = sp.evaluate(x, y, chunk_pixels=1600, **axis)
    grid = sp.evaluate(x, y, chunk_pixels=1600, regions="2x2", **axis)
    np.testing.assert_allclose(grid.ssim.values[:, 0], plain.ssim.values[:, 0], rtol=1e-15)
    # atol: the flat pair's std is 0 to its float64 deficits' rounding (~5e-16 both ways).
    np.testing.assert_allclose(
        grid.ssim_std.values[:, 0], plain.ssim_std.values[:, 0], rtol=1e-9, atol=1e-14
    )
    np.testing.assert_array_equal(grid.ssim_hist.values[:, 0], plain.ssim_hist.values[:, 0])
    weights = window_weights("gaussian", 11, 1.5)
    flat = exact_ssim(
        np.full((11, 11), 255), np.full((11, 11), 254), weights=weights, c1=6.5025, c2=58.5225
    )
    np.testing.assert_allclose(grid.ssim.values[1], flat[0, 0], rtol=0, atol=1e-13)
