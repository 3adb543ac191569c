"""The input checks of pipeline.metrics.checks, through pipeline.ssim, and its range lookup.

Every user-facing error of pipeline.ssim: raised before arithmetic, naming what is wrong.
The color_mode checks are in tests/metrics/test_colour.py. ``lookup_data_range``, the
data range of one pair (``data_ranges`` per dtype, then a scalar, then an integer dtype's
own range), is called directly; its use over folders that mix dtypes is tested end to
end in tests/end_to_end/test_data_ranges.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import ssim
from pipeline.metrics.checks import resolve_data_range

# The result attr naming each dtype's data range (pipeline.engine.plan.DATA_RANGE_BY_DTYPE).
DATA_RANGE_BY_DTYPE = "data_range_by_dtype"


@pytest.fixture
def pair(rng):
    x = rng.integers(0, 256, (24, 30), dtype=np.uint8)
    return x, rng.integers(0, 256, (24, 30), dtype=np.uint8)


def test_shape_mismatch_names_both_shapes(pair):
    x, _ = pair
    with pytest.raises(ValueError, match=r"same shape \(got \(24, 30\) and \(24, 29\)\)"):
        ssim(x, x[:, :29])


def test_window_larger_than_image_names_both():
    x = np.zeros((10, 64), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"win_size 11 is larger .* \(image shape \(10, 64\)\)"):
        ssim(x, x)


def test_window_must_fit_every_spatial_axis_but_not_channels():
    x = np.zeros((20, 20, 3), dtype=np.uint8)
    assert ssim(x, x, channel_axis=-1) == 1.0
    # Without channel_axis the colour image is a volume 3 deep: the message says so.
    with pytest.raises(ValueError, match=r"x has shape \(20, 20, 3\): for a colour image pass"):
        ssim(x, x)


@pytest.mark.parametrize("win_size", [12, 0, -3])
def test_win_size_must_be_positive_odd(pair, win_size):
    with pytest.raises(
        ValueError, match=rf"win_size must be a positive odd integer \(got {win_size}\)"
    ):
        ssim(*pair, win_size=win_size)


def test_win_size_must_be_integer(pair):
    with pytest.raises(TypeError, match=r"win_size must be an integer \(got 7.0\)"):
        ssim(*pair, win_size=7.0)


@pytest.mark.parametrize("name", ["k1", "k2", "sigma"])
@pytest.mark.parametrize("value", [-0.01, 0.0, float("nan"), float("inf")])
def test_constants_must_be_positive_finite(pair, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a positive finite number"):
        ssim(*pair, **{name: value})


def test_unknown_profile_lists_valid_ones(pair):
    with pytest.raises(ValueError, match=r"unknown profile 'wang2005'; valid profiles: wang2004"):
        ssim(*pair, profile="wang2005")


def test_unknown_window_lists_valid_ones(pair):
    with pytest.raises(ValueError, match=r"window must be one of gaussian, uniform \(got 'box'\)"):
        ssim(*pair, window="box")


def test_unknown_covariance_lists_valid_ones(pair):
    with pytest.raises(ValueError, match=r"covariance must be one of population, sample"):
        ssim(*pair, covariance="unbiased")


def test_unknown_parameter_lists_valid_ones(pair):
    with pytest.raises(
        TypeError, match=r"unknown SSIM parameter\(s\) K1; valid parameters: window"
    ):
        ssim(*pair, K1=0.01)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(bad):
    x = np.ones((16, 16))
    y = x.copy()
    y[3, 4] = bad
    with pytest.raises(ValueError, match=r"y contains 1 NaN or Inf value\(s\)"):
        ssim(x, y, data_range=1.0)


def test_float_without_data_range_says_what_to_pass():
    x = np.zeros((16, 16), dtype=np.float32)
    with pytest.raises(ValueError, match=r"data_range is required .* pass data_range=1.0"):
        ssim(x, x)


def test_mismatched_integer_dtypes_need_data_range():
    x = np.zeros((16, 16), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"mismatched dtypes uint8 and uint16"):
        ssim(x, x.astype(np.uint16))


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_data_range_must_be_positive(value):
    with pytest.raises(ValueError, match=r"data_range must be a positive finite number"):
        resolve_data_range(value, np.dtype(np.uint8), np.dtype(np.uint8))


def test_data_range_must_be_number():
    with pytest.raises(TypeError, match=r"data_range must be a number \(got '255'\)"):
        resolve_data_range("255", np.dtype(np.uint8), np.dtype(np.uint8))  # type: ignore[arg-type]


def test_complex_dtype_is_refused():
    x = np.zeros((16, 16), dtype=np.complex128)
    with pytest.raises(TypeError, match=r"x must be real-valued; complex dtype complex128"):
        ssim(x, x, data_range=1.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((16, 16), dtype=bool), r"x has dtype bool; convert it to uint8"),
        (np.full((16, 16), "a"), r"x must have an integer or floating dtype \(got <U1\)"),
        (
            np.empty((16, 16), dtype=object),
            r"x must have an integer or floating dtype \(got object\)",
        ),
    ],
)
def test_non_numeric_dtypes_are_refused(value, message):
    with pytest.raises(TypeError, match=message):
        ssim(value, value)


def test_scalar_is_refused():
    with pytest.raises(ValueError, match=r"x must be an image array, not a scalar"):
        ssim(3, 3)


def test_channel_axis_out_of_range(pair):
    with pytest.raises(ValueError, match=r"channel_axis 2 is out of range for an array of 2 axes"):
        ssim(*pair, channel_axis=2)


def test_channel_axis_must_be_integer(pair):
    with pytest.raises(TypeError, match=r"channel_axis must be an integer or None \(got 'last'\)"):
        ssim(*pair, channel_axis="last")


def test_engine_is_checked(pair):
    with pytest.raises(ValueError, match=r"engine must be one of auto, reference"):
        ssim(*pair, engine="magic")


def test_lookup_precedence_per_dtype_then_scalar_then_integer_dtype():
    from pipeline.engine.plan import DATA_RANGE_BY_DTYPE as name
    from pipeline.metrics.checks import lookup_data_range

    assert name == DATA_RANGE_BY_DTYPE
    ranges = {"float32": 1.0, "uint16": 4095.0}
    assert lookup_data_range(2.0, np.uint16, np.uint16, ranges) == (4095.0, "data_ranges[uint16]")
    assert lookup_data_range(2.0, np.uint8, np.uint8, ranges) == (2.0, "given")
    assert lookup_data_range(None, np.uint8, np.uint8, ranges) == (255.0, "dtype uint8")
    assert lookup_data_range(None, np.float64, np.float64, ranges) == (None, "missing")
    assert resolve_data_range(None, np.uint64, np.uint64) == (2.0**64, "dtype uint64")


def test_lookup_refuses_two_ranges_for_one_pair():
    from pipeline.metrics.checks import lookup_data_range

    with pytest.raises(
        ValueError, match=r"data_ranges gives the two sides different ranges \(\{'uint8': 255.0"
    ):
        lookup_data_range(None, np.uint8, np.float32, {"uint8": 255.0, "float32": 1.0})


def test_dtype_ranges_are_looked_up_every_time_errors_included():
    # The integer ranges are cached per dtype pair; a refusal is not, so it repeats.
    for _ in range(2):
        with pytest.raises(
            ValueError, match=r"data_range cannot be taken from mismatched dtypes uint8 and uint16"
        ):
            resolve_data_range(None, np.dtype(np.uint8), np.dtype(np.uint16))
        with pytest.raises(ValueError, match=r"data_range is required for floating-point images"):
            resolve_data_range(None, np.dtype(np.float32), np.dtype(np.uint8))
    assert resolve_data_range(None, np.dtype(">u2"), np.dtype(">u2")) == (65535.0, "dtype >u2")
    assert resolve_data_range(None, np.int16, np.int16) == (65535.0, "dtype int16")
    assert resolve_data_range(np.float32(2.0), np.uint8, np.uint8) == (2.0, "given")
    assert type(resolve_data_range(np.float32(2.0), np.uint8, np.uint8)[0]) is float


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_pixels_are_refused_on_every_call(dtype, pair):
    # Nothing about the pixels is cached: a clean call does not clear the next one.
    x, y = (a.astype(dtype) for a in pair)
    assert ssim(x, y, data_range=255.0) == pytest.approx(ssim(*pair))
    y[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"y contains 1 NaN or Inf value\(s\)"):
        ssim(x, y, data_range=255.0)
