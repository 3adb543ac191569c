"""The batch sums of the mean maps: :func:`pipeline.engine.mean_maps.sum_chunks`.

Reference values: NumPy's float64 sum over the image axis of the same blocks
(``numpy.sum``; the tree adds in another order, so within 1e-12 of it), the
tree's pairwise order written out with NumPy adds (equal bit for bit), the
per-pair valid maps of :func:`pipeline.ssim` (``engine="reference"``, itself
checked against scikit-image in ``tests/reductions/test_mean_maps.py``), and the
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


def test_computed_sums_reads_only_the_holder_of_sum_chunks(rng) -> None:
    # One form: a batch summed again over its ok pairs is a sum_chunks too, so an
    # array (e.g. dask's own sum(axis=0), (y, x, component)) is refused, not guessed at.
    values = rng.normal(size=(3, 4, 5))
    with pytest.raises(TypeError, match=r"0-d object holder .* \(got shape \(3, 4, 5\)"):
        computed_sums(values)
    holder = np.empty((), dtype=object)
    holder[()] = values
    assert computed_sums(holder) is values


def test_sum_chunks_adds_in_the_written_pairwise_order(rng) -> None:
    # Values of mixed magnitudes, so float64 addition order shows in the last bits:
    # the tree is chunks ((0 + 1) + (2 + 3)) + 4 (the odd one carried up), written out.
    data = rng.normal(size=(5, 6, 7, 5)) * 10.0 ** rng.integers(-8, 9, size=(5, 6, 7, 5))
    d = [data[k] for k in range(5)]
    written = ((d[0] + d[1]) + (d[2] + d[3])) + d[4]
    in_order = (((d[0] + d[1]) + d[2]) + d[3]) + d[4]
    assert not np.array_equal(written, in_order)  # the order matters on these values
    (held,) = dask.compute(sum_chunks(_sums(data, (2, 4), (7,))), scheduler="threads")
    np.testing.assert_array_equal(computed_sums(held), np.moveaxis(written, -1, 0))


def test_a_batch_with_a_failed_pair_is_summed_by_the_same_tree(rng) -> None:
    # A pair that fails while computed (a NaN pixel): its batch is summed again over
    # its ok pairs with sum_chunks (three image chunks left, tiled), the same bits on
    # either scheduler, and the mean of the ok pairs' own maps.
    x = rng.random((8, 40, 44))
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    y[3, 10, 10] = np.nan
    settings = dict(
        engine="reference", data_range=1.0, chunks=(2, 20, 22), batch_images=8, mean_maps=True
    )
    threaded = sp.evaluate(x, y, scheduler="threads", **settings)
    synchronous = sp.evaluate(x, y, scheduler="synchronous", **settings)
    assert list(threaded.status.values == "ok") == [True] * 3 + [False] + [True] * 4
    assert int(threaded.mean_map_count[0]) == 7
    ok = [0, 1, 2, 4, 5, 6, 7]
    maps = [
        sp.ssim(x[i], y[i], engine="reference", data_range=1.0, full=True)[1]["ssim"] for i in ok
    ]
    np.testing.assert_allclose(
        threaded.mean_ssim_map.values[0], np.mean(maps, axis=0), rtol=0, atol=1e-9
    )
    for name in ("mean_ssim_map", "mean_structure_map", "mean_reference"):
        np.testing.assert_array_equal(threaded[name].values, synchronous[name].values)


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
