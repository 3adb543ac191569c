"""The batch sums of the mean maps: :func:`pipeline.engine.mean_maps.sum_chunks`.

Reference values: NumPy's float64 sum over the image axis of the same blocks
(``numpy.sum``; the tree adds in another order, so within 1e-12 of it), and the
synchronous scheduler's result, which the threaded one must equal bit for bit.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

import pipeline as sp
from pipeline.engine.mean_maps import computed_sums, sum_chunks


def _sums(data: np.ndarray, ys: tuple[int, ...], xs: tuple[int, ...]) -> da.Array:
    # A fresh copy per graph: sum_chunks adds into its blocks in place.
    return da.from_array(data.copy(), chunks=((1,) * data.shape[0], ys, xs, (5,)))


@pytest.mark.parametrize(
    ("n", "ys", "xs"),
    [
        (1, (9,), (7,)),
        (2, (9,), (7,)),
        (7, (4, 5), (7,)),
        (16, (9,), (3, 4)),
        (5, (2, 3, 4), (1, 6)),
    ],
)
def test_sum_chunks_is_the_sum_over_image_chunks_whatever_the_scheduler(rng, n, ys, xs) -> None:
    data = rng.normal(size=(n, sum(ys), sum(xs), 5))
    expected = np.moveaxis(data.sum(axis=0), -1, 0)
    (held,) = dask.compute(sum_chunks(_sums(data, ys, xs)), scheduler="threads")
    assert held.shape == () and held.dtype == object
    got = computed_sums(held)
    assert got.shape == (5, sum(ys), sum(xs)) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    (again,) = dask.compute(sum_chunks(_sums(data, ys, xs)), scheduler="synchronous")
    np.testing.assert_array_equal(computed_sums(again), got)  # the same tree of adds


def test_sum_chunks_of_one_whole_block_hands_back_the_block_s_own_array() -> None:
    # The block tasks' sums are (component, y, x) arrays seen as (1, y, x, component):
    # the batch's sum of one such block is that array itself, not a copy of it.
    own = np.arange(5 * 3 * 4, dtype=np.float64).reshape(5, 3, 4)
    block = np.moveaxis(own, 0, -1)[None]
    sums = da.from_delayed(dask.delayed(lambda: block)(), block.shape, dtype=np.float64)
    (held,) = dask.compute(sum_chunks(sums), scheduler="synchronous")
    got = computed_sums(held)
    assert np.shares_memory(got, own) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, own)


def test_computed_sums_reads_an_array_sum_too(rng) -> None:
    # A batch summed again over its ok pairs (dask's own sum: (y, x, component)).
    values = rng.normal(size=(3, 4, 5))
    np.testing.assert_array_equal(computed_sums(values), np.moveaxis(values, -1, 0))


def test_threaded_and_synchronous_runs_give_equal_mean_maps(rng) -> None:
    # Several batches of several image chunks, tiled: the same Dataset on both schedulers.
    x = rng.integers(0, 256, (9, 40, 44, 3), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-30, 30, x.shape), 0, 255).astype(np.uint8)
    settings = dict(channel_axis=-1, chunks=(2, 20, 22), batch_images=4, mean_maps=True)
    threaded = sp.evaluate(x, y, scheduler="threads", **settings)
    synchronous = sp.evaluate(x, y, scheduler="synchronous", **settings)
    assert int(threaded.mean_map_count[0]) == 9
    for name in ("mean_ssim_map", "mean_structure_map", "mean_reference"):
        np.testing.assert_array_equal(threaded[name].values, synchronous[name].values)
    backdrop = x[:, 5:-5, 5:-5].astype(np.float64).mean(axis=(0, 3))
    np.testing.assert_allclose(threaded.mean_reference.values[0], backdrop, rtol=0, atol=1e-9)
