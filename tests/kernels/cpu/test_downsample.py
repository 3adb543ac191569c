"""The compiled box filter of pipeline.kernels.cpu.downsample, through box_downsample.

NumPy planes (two axes reduced, in order) take the compiled form; it must give the
generic padded-views form's numbers bit for bit (every dtype it takes, sides shorter
than the factor, stacks of planes, strided views, NaN and Inf), and match an
independent SciPy emulation of MATLAB's ``imfilter`` on real photographs. Its tiled
use (blocks of a larger image) is tested in tests/tiling/test_downsample.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import imfilter_then_sample

from pipeline.kernels import downsample
from pipeline.kernels.cpu import downsample as cpu_downsample
from pipeline.kernels.downsample import box_downsample
from pipeline.testing import photograph


def _generic(monkeypatch: pytest.MonkeyPatch, image: np.ndarray, factor: int, axes=None):
    with monkeypatch.context() as patch:
        patch.setattr(downsample, "compiled_box_downsample", lambda *args, **kwargs: None)
        return box_downsample(image, factor, axes)


def test_numpy_planes_take_the_compiled_form_and_other_arrays_do_not() -> None:
    plane = np.zeros((6, 7), dtype=np.uint8)
    assert downsample.compiled_box_downsample(plane, 2, None) is not None
    assert downsample.compiled_box_downsample(np.zeros((4, 6, 3)), 3, (0, 1)) is not None
    assert downsample.compiled_box_downsample(np.zeros((4, 6, 5)), 2, None) is None  # three axes
    assert downsample.compiled_box_downsample(plane, 2, (1, 0)) is None  # the second axis first
    assert downsample.compiled_box_downsample(plane.astype(np.float16), 2, None) is None
    assert downsample.compiled_box_downsample(plane.astype(">f8"), 2, None) is None
    assert downsample.compiled_box_downsample(np.zeros((0, 5)), 2, None) is None


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.int64, np.float32, np.float64, np.bool_]
)
def test_compiled_planes_equal_the_generic_form_bit_for_bit(monkeypatch, dtype) -> None:
    rng = np.random.default_rng(np.dtype(dtype).num)
    # Sides of one sample, sides shorter than the factor (the mirror wraps more than
    # once) and odd and even sides; factors with and without samples before the anchor.
    for shape in [(1, 1), (1, 6), (2, 5), (3, 3), (7, 9), (24, 25), (33, 16)]:
        for factor in (2, 3, 4, 5, 8, 11):
            if np.dtype(dtype).kind == "f":
                x = rng.uniform(-1e4, 1e4, shape).astype(dtype)
            else:
                x = rng.integers(0, 2 if dtype is np.bool_ else 120, shape).astype(dtype)
            got, want = box_downsample(x, factor), _generic(monkeypatch, x, factor)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} f={factor}")


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2), (-2, -1)])
def test_stacked_and_strided_planes_equal_the_generic_form(monkeypatch, axes) -> None:
    rng = np.random.default_rng(5)
    stack = rng.uniform(0, 255, (19, 4, 23))
    for factor in (2, 3):
        np.testing.assert_array_equal(
            box_downsample(stack, factor, axes), _generic(monkeypatch, stack, factor, axes)
        )
    view = stack[::2, 1, ::-3]  # a plane with negative and non-unit strides
    np.testing.assert_array_equal(box_downsample(view, 2), _generic(monkeypatch, view, 2))


def test_tiles_of_a_padded_buffer_are_read_in_place_and_equal_the_generic_form(monkeypatch) -> None:
    # A tile with room around it (how the streaming engine reads Zarr tiles): rows
    # further apart than their length. It is read where it lies, as one flat view
    # with the rows' stride, not copied; a channel of a channel-last stack likewise.
    rng = np.random.default_rng(11)
    buffer = rng.integers(0, 256, (41, 50, 3), dtype=np.uint8)
    tile = buffer[3:36, 4:45, 1]
    colour = buffer[3:36, 4:45]
    for plane in (tile, buffer[:, :, 2], buffer[5:6, 2:40, 0], buffer[1:30, 7:8, 0]):
        flat, rs, cs = cpu_downsample._flat(plane)
        assert np.shares_memory(flat, buffer) and flat.flags.c_contiguous
        rows, cols = np.indices(plane.shape)
        np.testing.assert_array_equal(flat[rows * rs + cols * cs], plane)
    for factor in (2, 3, 4):
        np.testing.assert_array_equal(
            box_downsample(tile, factor), _generic(monkeypatch, tile, factor)
        )
        np.testing.assert_array_equal(
            box_downsample(colour, factor, (0, 1)), _generic(monkeypatch, colour, factor, (0, 1))
        )


def test_compiled_planes_keep_nan_and_inf_where_the_generic_form_does(monkeypatch) -> None:
    x = np.arange(42.0).reshape(6, 7)
    x[1, 1], x[4, 6] = np.nan, np.inf
    for factor in (2, 3):
        np.testing.assert_array_equal(box_downsample(x, factor), _generic(monkeypatch, x, factor))


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_photographs_match_the_scipy_emulation(monkeypatch, name) -> None:
    # Real photographs (scikit-image's, grey and RGB with its channel axis last), each
    # factor of the wang2009 profile's range, against SciPy's imfilter emulation.
    image = photograph(name)
    for factor in (2, 3, 4):
        got = box_downsample(image, factor, (0, 1))
        planes = image[..., None] if image.ndim == 2 else image
        for c in range(planes.shape[-1]):
            want = imfilter_then_sample(planes[..., c].astype(np.float64), factor)
            plane = got if image.ndim == 2 else got[..., c]
            np.testing.assert_allclose(plane, want, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got, _generic(monkeypatch, image, factor, (0, 1)))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint32, np.int64, np.uint64])
def test_integers_across_their_whole_range_round_as_numpy_does(monkeypatch, dtype) -> None:
    # 64-bit integers beyond 2^53 round on their way to float64: numba's conversion must
    # round them as NumPy's astype does.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(info.bits)
    x = rng.integers(info.min, info.max, (9, 13), dtype=dtype, endpoint=True)
    for factor in (2, 3, 5):
        np.testing.assert_array_equal(box_downsample(x, factor), _generic(monkeypatch, x, factor))
