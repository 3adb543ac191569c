"""Bad input to the losses: each a clear error naming the argument, before any kernel runs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.nn import MSSSIMLoss, SSIMLoss, ms_ssim, ssim  # noqa: E402


def _images(*shape: int, dtype=None):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(*shape, generator=generator, dtype=dtype or torch.float64)


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if a kernel runs: every check comes first."""
    from pipeline.kernels.cpu import loss

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel ran before the input was checked")

    monkeypatch.setattr(loss, "ssim_forward", refuse)


def test_shapes_differ(no_kernel):
    with pytest.raises(
        ValueError,
        match=r"input and target must have the same shape .*\(1, 1, 20, 20\) and \(1, 1, 20, 21\)",
    ):
        ssim(_images(1, 1, 20, 20), _images(1, 1, 20, 21), data_range=1.0)


@pytest.mark.parametrize("shape", [(20, 20), (3, 20, 20)])
def test_fewer_than_four_dims(no_kernel, shape):
    with pytest.raises(ValueError, match=r"input must be a batch \(N, C, H, W\)"):
        SSIMLoss(data_range=1.0)(_images(*shape), _images(*shape))


def test_ms_ssim_takes_no_volumes(no_kernel):
    with pytest.raises(ValueError, match=r"input must be a batch \(N, C, H, W\) \(got .* 5 dims\)"):
        ms_ssim(_images(1, 1, 4, 170, 170), _images(1, 1, 4, 170, 170), data_range=1.0)


def test_image_smaller_than_the_window(no_kernel):
    with pytest.raises(
        ValueError, match=r"input is smaller than the window: win_size 11 .*got shape"
    ):
        ssim(_images(1, 1, 10, 30), _images(1, 1, 10, 30), data_range=1.0)


def test_image_smaller_than_ms_ssim_needs_says_how_many_scales_fit(no_kernel):
    with pytest.raises(
        ValueError, match=r"MSSSIMLoss: input is too small: .*>= 161 .*at most 3 scale\(s\)"
    ):
        MSSSIMLoss(data_range=1.0)(_images(1, 1, 64, 200), _images(1, 1, 64, 200))


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.uint8])
def test_non_floating_or_half_tensor(no_kernel, dtype):
    image = (_images(1, 1, 20, 20) * 200).to(dtype)
    with pytest.raises(TypeError, match=f"input must be float32 or float64 \\(got {dtype}\\)"):
        ssim(image, image, data_range=1.0)


def test_mixed_dtypes(no_kernel):
    with pytest.raises(TypeError, match="input and target must have one dtype"):
        ssim(_images(1, 1, 20, 20), _images(1, 1, 20, 20, dtype=torch.float32), data_range=1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", ["input", "target"])
def test_nan_or_inf(no_kernel, bad, which):
    images = {"input": _images(1, 2, 20, 20), "target": _images(1, 2, 20, 20)}
    images[which][0, 1, 3, 4] = bad
    with pytest.raises(ValueError, match=f"{which} contains 1 NaN or Inf value"):
        ssim(images["input"], images["target"], data_range=1.0)


def test_data_range_missing():
    with pytest.raises(TypeError, match="SSIMLoss: data_range is required"):
        SSIMLoss(data_range=None)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'data_range'"):
        SSIMLoss()
    with pytest.raises(TypeError, match="ms_ssim: data_range is required"):
        ms_ssim(_images(1, 1, 170, 170), _images(1, 1, 170, 170), data_range=None)


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_data_range_not_positive(value):
    with pytest.raises(ValueError, match="data_range must be a positive finite number"):
        MSSSIMLoss(data_range=value)


def test_two_devices(no_kernel):
    meta = torch.empty(1, 1, 20, 20, device="meta", dtype=torch.float64)
    with pytest.raises(ValueError, match=r"input and target must be on one device .*meta.*cpu"):
        ssim(meta, _images(1, 1, 20, 20), data_range=1.0)


def test_target_that_requires_grad(no_kernel):
    with pytest.raises(ValueError, match=r"target requires grad.*target.detach\(\)"):
        ssim(_images(1, 1, 20, 20), _images(1, 1, 20, 20).requires_grad_(), data_range=1.0)


def test_not_a_tensor(no_kernel):
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor \(got ndarray\)"):
        ssim(_images(1, 1, 20, 20), _images(1, 1, 20, 20).numpy(), data_range=1.0)


def test_options():
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'"):
        SSIMLoss(data_range=1.0, reduction="max")
    with pytest.raises(ValueError, match="does not support profile 'wang2009'"):
        SSIMLoss(data_range=1.0, profile="wang2009")
    with pytest.raises(ValueError, match="win_size must be a positive odd integer"):
        SSIMLoss(data_range=1.0, win_size=8)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        MSSSIMLoss(data_range=1.0, weights=(0.5, -1.0))


def test_a_device_without_kernels():
    from pipeline.nn._fused import kernel_module

    with pytest.raises(ValueError, match=r"the SSIM losses run on CPU and CUDA tensors"):
        kernel_module(torch.empty(1, device="meta"))


def test_huge_finite_pixels_are_not_mistaken_for_inf():
    # Their float32 sum overflows to Inf; the element-wise test then finds no bad pixel.
    images = torch.full((1, 1, 20, 20), 3e38, dtype=torch.float32)
    assert not torch.isfinite(images.sum())
    value = ssim(images, images.clone(), data_range=1.0)
    assert torch.isfinite(value)


def test_volumes_off_the_cpu_are_refused(no_kernel):
    # No GPU here: a "meta" tensor has a device that is not the CPU and holds no data, which
    # is all the check looks at (CUDA volumes are refused the same way).
    volume = torch.empty(1, 1, 12, 12, 12, device="meta")
    with pytest.raises(ValueError, match=r"3-D volumes .* on CPU tensors only \(got input on meta"):
        ssim(volume, volume, data_range=1.0)
