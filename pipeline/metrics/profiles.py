"""SSIM parameters and the named compatibility profiles.

A profile fixes defaults so that our numbers equal a named reference
implementation; explicit parameters override it. Each profile records the
reference it matches and the tolerance the test suite checks it to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from pipeline.kernels.downsample import wang2009_factor
from pipeline.kernels.windows import shared_window_weights, window_weights

__all__ = [
    "CONSTANT_SCALE",
    "COVARIANCES",
    "DOWNSAMPLE_RULES",
    "PARAM_NAMES",
    "PROFILES",
    "WINDOWS",
    "Profile",
    "SSIMParams",
    "get_profile",
    "resolve_params",
]

WINDOWS = ("gaussian", "uniform")
COVARIANCES = ("population", "sample")
# Bounds on k * L: C = (k L)^2 then lies within [1e-300, 1e300], a normal float64 with
# room for the moments added to it (pixels up to 1e150, see pipeline.metrics.checks).
CONSTANT_SCALE = (1e-150, 1e150)
# Pre-filtering rules a profile may apply before SSIM: "ssim.m" is the automatic
# downsampling of Wang's ssim.m (2009), see pipeline.kernels.downsample.
DOWNSAMPLE_RULES = ("ssim.m",)


@dataclass(frozen=True)
class SSIMParams:
    """Validated SSIM parameters (Wang et al. 2004, eqs. 6-13).

    ``k1`` and ``k2`` give ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2`` with ``L`` the
    data range; ``covariance="sample"`` scales the local (co)variances by
    ``N / (N - 1)`` with ``N = win_size ** ndim`` (scikit-image's default).
    """

    window: str = "gaussian"
    win_size: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    covariance: str = "population"

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)} (got {self.window!r})")
        if self.covariance not in COVARIANCES:
            raise ValueError(
                f"covariance must be one of {', '.join(COVARIANCES)} (got {self.covariance!r})"
            )
        if isinstance(self.win_size, bool) or not isinstance(self.win_size, int | np.integer):
            raise TypeError(f"win_size must be an integer (got {self.win_size!r})")
        if self.win_size < 1 or self.win_size % 2 == 0:
            raise ValueError(f"win_size must be a positive odd integer (got {self.win_size})")
        for name in ("sigma", "k1", "k2"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"{name} must be a number (got {value!r})")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number (got {value})")
        object.__setattr__(self, "win_size", int(self.win_size))
        for name in ("sigma", "k1", "k2"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def radius(self) -> int:
        """Overlap depth needed on each side so that a block's map is the 'valid' map."""
        return self.win_size // 2

    def weights(self) -> np.ndarray:
        """The separable 1-D window."""
        return window_weights(self.window, self.win_size, self.sigma)

    def constants(self, data_range: float) -> tuple[float, float]:
        """``(C1, C2)`` for a data range ``L``.

        Raises
        ------
        ValueError
            ``k1 L`` or ``k2 L`` outside ``[1e-150, 1e150]``: the constant would
            overflow float64 (Python raises OverflowError squaring it) or vanish into
            it, and neither the reference nor any other path could score the pair.
        """
        for name, k in (("k1", self.k1), ("k2", self.k2)):
            scale = k * data_range
            if not CONSTANT_SCALE[0] <= scale <= CONSTANT_SCALE[1]:
                label = "C1" if name == "k1" else "C2"
                raise ValueError(
                    f"data_range {data_range:g} with {name} {k:g} gives {label} = ({name} "
                    f"data_range)^2 = ({scale:g})^2, outside what float64 arithmetic holds; "
                    f"{name} * data_range must lie within [{CONSTANT_SCALE[0]:g}, "
                    f"{CONSTANT_SCALE[1]:g}] (rescale the images and data_range by one factor: "
                    "SSIM does not change)"
                )
        return (self.k1 * data_range) ** 2, (self.k2 * data_range) ** 2

    def cov_norm(self, ndim: int) -> float:
        """Factor on local (co)variances: 1 (population) or N/(N-1) (sample)."""
        if self.covariance == "population":
            return 1.0
        n = self.win_size**ndim
        return n / (n - 1)

    def kernel_args(self, data_range: float, ndim: int) -> dict[str, Any]:
        """The keyword arguments every block kernel takes, for ``ndim`` spatial axes.

        ``weights`` is the window's shared read-only array
        (:func:`pipeline.kernels.windows.shared_window_weights`), not a new copy.
        """
        c1, c2 = self.constants(data_range)
        return {
            "window": self.window,
            "weights": shared_window_weights(self.window, self.win_size, self.sigma),
            "c1": c1,
            "c2": c2,
            "cov_norm": self.cov_norm(ndim),
        }

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PARAM_NAMES = tuple(f.name for f in fields(SSIMParams))


@dataclass(frozen=True)
class Profile:
    """A named set of defaults, the reference it reproduces and the tolerance tested."""

    name: str
    params: SSIMParams
    reference: str
    tolerance: float
    downsample: str | None = None
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.downsample is not None and self.downsample not in DOWNSAMPLE_RULES:
            raise ValueError(
                f"downsample must be None or one of {', '.join(DOWNSAMPLE_RULES)} "
                f"(got {self.downsample!r})"
            )

    def downsample_factor(self, spatial_shape: tuple[int, ...]) -> int:
        """The integer factor the profile reduces an image of ``spatial_shape`` by (1: none).

        ``"ssim.m"``: ``f = max(1, round(min(spatial_shape) / 256))`` with MATLAB's
        half-away-from-zero rounding; the reduction itself is
        :func:`pipeline.kernels.downsample.box_downsample` along every spatial axis.
        """
        if self.downsample is None:
            return 1
        return wang2009_factor(spatial_shape)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="wang2004",
            params=SSIMParams(),
            reference=(
                "skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, "
                "use_sample_covariance=False, data_range=L); Wang's ssim_index.m"
            ),
            tolerance=1e-6,
            notes="Gaussian 11x11, sigma 1.5, population covariance, K1=0.01, K2=0.03.",
        ),
        Profile(
            name="skimage",
            params=SSIMParams(window="uniform", win_size=7, covariance="sample"),
            reference="skimage.metrics.structural_similarity defaults (data_range=L)",
            tolerance=1e-6,
            notes="Uniform 7x7 window, sample covariance N/(N-1).",
        ),
        Profile(
            name="wang2009",
            params=SSIMParams(),
            reference=(
                "Wang's ssim.m (2009): f = max(1, round(min(H, W) / 256)); "
                "imfilter(img, ones(f, f) / f^2, 'symmetric', 'same'); img(1:f:end, 1:f:end); "
                "then ssim_index.m"
            ),
            tolerance=1e-6,
            downsample="ssim.m",
            notes=(
                "wang2004 after ssim.m's automatic downsampling, reproduced sample for sample "
                "for every f (MATLAB round half away from zero; imfilter anchor "
                "floor((f + 1) / 2), so for f >= 3 each kept sample averages a block shifted "
                "back by (f - 1) // 2 with mirrored edges). Tested against hand-computed "
                "arrays for f = 1, 2, 3, not against MATLAB itself. N-D input: the factor "
                "comes from the smallest spatial side and every spatial axis is reduced "
                "(ssim.m itself is 2-D)."
            ),
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; the error lists the valid names."""
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def resolve_params(profile: str = "wang2004", **overrides: Any) -> tuple[Profile, SSIMParams]:
    """The profile's parameters with explicit ``overrides`` applied (``None`` keeps the default)."""
    if not overrides:
        chosen = get_profile(profile)
        return chosen, chosen.params
    unknown = sorted(set(overrides) - set(PARAM_NAMES))
    if unknown:
        raise TypeError(
            f"unknown SSIM parameter(s) {', '.join(unknown)}; valid parameters: "
            f"{', '.join(PARAM_NAMES)}"
        )
    chosen = get_profile(profile)
    given = {k: v for k, v in overrides.items() if v is not None}
    return chosen, replace(chosen.params, **given) if given else chosen.params
