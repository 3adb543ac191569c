"""``KernelSpec``: what one block needs to compute its SSIM maps and statistics.

The kernels step of the data flow (sources -> tiling -> **kernels** -> reductions)
as the Dask graphs see it: :func:`pipeline.engine.plan.plan_run` fixes the window,
constants, engine, colour mode and device once, and every block task of the
statistics, MS-SSIM, volume and saved-maps graphs calls this frozen spec on its
NumPy (or CuPy) block. It holds no graph itself and never imports Dask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from pipeline.kernels import block_maps
from pipeline.kernels.backend import to_device, to_host
from pipeline.kernels.cpu.combine import float32_holds
from pipeline.kernels.statistics import FIELDS
from pipeline.metrics.checks import pixel_magnitude
from pipeline.metrics.colour import to_luma

__all__ = ["KernelSpec"]

_MAP_NAMES = ("ssim", "luminance", "contrast", "structure")


@dataclass(frozen=True)
class KernelSpec:
    """What a block needs: window, constants, engine, colour, device, and PSNR's data range."""

    window: str
    weights: tuple[float, ...]
    c1: float
    c2: float
    cov_norm: float
    depth: int
    engine: str
    color_mode: str
    device: str
    # Threads of the compiled kernel inside one task: 1 when Dask's workers already
    # use every core (numba's setting is per thread), None to leave it alone.
    kernel_threads: int | None = None
    # The pair's data range L: PSNR is 10 log10(L^2 / MSE). None: no PSNR (NaN).
    data_range: float | None = None

    @property
    def peak_squared(self) -> float:
        """``data_range**2`` for the packed rows (0 when there is none: PSNR is NaN)."""
        return 0.0 if self.data_range is None else float(self.data_range) ** 2

    def whole_statistics(
        self,
        x: np.ndarray,
        y: np.ndarray,
        bins: int,
        map_sums: np.ndarray | None = None,
        summed: Sequence[bool] | np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Packed region-``all`` statistics ``(images, 1, len(FIELDS) + bins)`` from the kernel.

        The fused CPU kernels reduce each map row while it is in cache, so the four
        maps are never stored (the same numbers as :func:`block_statistics` of
        :meth:`maps`, to ~1e-12): grey or luma blocks through
        :func:`~pipeline.kernels.cpu.fused.fused_packed_stats`, several channels averaged
        per pixel through :func:`~pipeline.kernels.cpu.colour.fused_colour_packed_stats`
        (with ``map_sums``, the serial kernel of a Dask task and a Gaussian window: the
        block's images in one call,
        :func:`~pipeline.kernels.cpu.colour.fused_colour_packed_stats_stack`, the same bits).
        On ``device="gpu"`` the same packed rows come from the device
        (:meth:`_device_statistics`). None where no such path applies (another
        engine, a block without valid windows): use :meth:`maps`.

        ``map_sums``, a zeroed ``(k >= 4, h - 2 depth, w - 2 depth)`` float64 array,
        also receives in its first four components the sum over the block's images of
        their valid ``ssim``, ``luminance``, ``contrast`` and ``structure`` maps
        (channel mean), from the
        same kernel pass (the mean maps of a run, never a second kernel call); it is
        left untouched when None is returned. ``summed`` (one flag per image) leaves
        the images flagged False out of ``map_sums``.
        """
        if self.device == "gpu":
            return self._device_statistics(x, y, bins, map_sums, summed)
        n, h, w, _ = x.shape
        if (
            self.engine_for(x, y) not in ("auto", "fused")
            or not isinstance(x, np.ndarray)
            or not isinstance(y, np.ndarray)
            or min(h, w) <= 2 * self.depth
        ):
            return None
        from pipeline.kernels.cpu.colour import (
            fused_colour_packed_stats,
            fused_colour_packed_stats_stack,
        )
        from pipeline.kernels.cpu.fused import fused_packed_stats

        x, y = self._prepared(x, y)
        window: dict[str, Any] = {
            "weights": np.asarray(self.weights),
            "c1": self.c1,
            "c2": self.c2,
            "bins": bins,
            "cov_norm": self.cov_norm,
        }
        if (
            map_sums is not None
            and n > 1
            and x.shape[3] > 1
            and self.kernel_threads == 1
            and self.window != "uniform"
        ):
            # A Dask task's colour images with the mean maps: one serial call for the
            # stack, whose images add to the sums row by row together (the same bits as
            # image by image, below).
            stacked = fused_colour_packed_stats_stack(
                x, y, **window, map_sums=map_sums, summed=summed
            )
            if stacked is not None:
                return stacked[:, None, :]
        args: dict[str, Any] = {
            **window,
            "uniform": self.window == "uniform",
            "threads": self.kernel_threads,
        }
        out = np.empty((n, 1, len(FIELDS) + bins))
        for i in range(n):
            args["map_sums"] = map_sums if summed is None or summed[i] else None
            if x.shape[3] == 1:
                out[i, 0] = fused_packed_stats(x[i, :, :, 0], y[i, :, :, 0], **args)
            else:
                out[i, 0] = fused_colour_packed_stats(x[i], y[i], **args)
        return out

    def _device_statistics(
        self,
        x: Any,
        y: Any,
        bins: int,
        map_sums: np.ndarray | None = None,
        summed: Sequence[bool] | np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Region-``all`` statistics reduced on the GPU: only packed rows reach the host.

        The block moves to the device once; each image's channel-averaged maps
        stay there (:mod:`pipeline.kernels.gpu.statistics`). None for an engine other
        than ``gpu``/``auto`` or a block too small for one window.
        """
        n, h, w, _ = x.shape
        if self.engine not in ("auto", "gpu") or min(h, w) <= 2 * self.depth:
            return None
        from pipeline.kernels.gpu.statistics import device_whole_statistics

        engine = self.engine_for(x, y)
        x, y = self._prepared(x, y)
        out = np.empty((n, 1, len(FIELDS) + bins))
        total: list[Any] = []
        for i in range(n):
            maps = self._image_maps(x, y, i, engine)
            out[i, 0] = device_whole_statistics(maps, bins)
            if map_sums is not None and (summed is None or summed[i]):
                # Summed on the device in float64: one small copy to the host per block.
                planes = [maps[name].astype("float64") for name in _MAP_NAMES]
                total = planes if not total else [a + b for a, b in zip(total, planes, strict=True)]
        for k, plane in enumerate(total):
            assert map_sums is not None
            map_sums[k] += to_host(plane)
        return out

    def engine_for(self, x: Any, y: Any) -> str:
        """The engine for this block: :attr:`engine`, or ``"reference"`` where float32 fails.

        The fused and GPU kernels compute in float32; a block whose pixels or
        constants float32 cannot hold (:func:`~pipeline.kernels.cpu.combine.float32_holds`:
        float32 pixels near its limit, 64-bit integers with high bits set, a huge or
        tiny data range) is computed by the float64 reference instead, so that its
        numbers are the reference's and never NaN. Small integer dtypes are decided
        from the dtype alone; other blocks cost one max/min pass.
        """
        if self.engine == "reference":
            return self.engine
        if float32_holds(self.c1, self.c2, pixel_magnitude(x, y)):
            return self.engine
        return "reference"

    def _prepared(self, x: Any, y: Any) -> tuple[Any, Any]:
        """The block where its kernel runs: on the GPU for ``device="gpu"``, luma applied.

        Also sets numba's threads for this thread when ``kernel_threads`` says so.
        """
        if self.device == "gpu":
            x, y = to_device(x, y)
        if self.color_mode == "luma" and x.shape[3] == 3:
            x, y = to_luma(x, 3)[..., None], to_luma(y, 3)[..., None]
        if self.kernel_threads is not None:
            numba.set_num_threads(self.kernel_threads)
        return x, y

    def _image_maps(
        self, x: Any, y: Any, i: int, engine: str, deficit: bool = False
    ) -> dict[str, Any]:
        """Channel-mean maps of image ``i`` of a prepared block, where the kernel made them.

        Channels are summed in the kernel's own precision: float64 for the reference
        engine (exact to 1e-9), float32 for the fused and GPU ones, whose maps are
        already rounded to float32 (a 3-term sum adds ~1e-7). With ``deficit`` the
        fused engine also gives ``deficit`` (``1 - ssim``, see :meth:`maps`): one
        channel's float32 map, or the channels' mean in float64, as the colour kernel
        averages them (a float32 mean would round by up to 6e-8 of itself, the same
        way on every pixel of a flat pair).
        """
        channels = x.shape[3]
        total: dict[str, Any] = {}
        deficits: Any = None
        for c in range(channels):
            maps = block_maps(
                x[i, :, :, c],
                y[i, :, :, c],
                window=self.window,
                weights=np.asarray(self.weights),
                c1=self.c1,
                c2=self.c2,
                cov_norm=self.cov_norm,
                components=True,
                engine=engine,
                threads=self.kernel_threads,
                deficit=deficit,
            )
            if "deficit" in maps:
                if deficits is None:
                    # Each call's deficit map is a fresh float64 array: the channels are
                    # summed into the first one's, in place.
                    deficits = maps["deficit"]
                else:
                    deficits += maps["deficit"]
            for name in _MAP_NAMES:
                total[name] = maps[name] if c == 0 else total[name] + maps[name]
        if channels > 1:
            total = {name: value / channels for name, value in total.items()}
            if deficits is not None:
                deficits /= channels
        if deficits is not None:
            total["deficit"] = deficits
        return total

    def maps(self, x: np.ndarray, y: np.ndarray, deficit: bool = False) -> dict[str, np.ndarray]:
        """Valid ``ssim``/``luminance``/``contrast``/``structure`` maps of a block.

        ``x``, ``y`` are ``(images, h, w, channels)``; the result is
        ``(images, h - 2 depth, w - 2 depth)`` on the host in the kernel's
        precision, averaged over channels (the pixel's mean of per-channel SSIM,
        so its mean is skimage's score).

        ``deficit``: where the fused CPU kernel makes the maps, also return
        ``deficit``, its ``1 - ssim`` before the float32 ``ssim`` map rounds it (float64;
        the channels' mean for several), from which
        :func:`pipeline.reductions.statistics.block_statistics` sums ``SUM`` and
        ``M2``: the means of stored maps are then the packed path's
        (:meth:`whole_statistics`). One map more per block, only when asked. The
        reference engine's float64 maps need none, and the GPU kernels keep none:
        no ``deficit`` there.
        """
        n, h, w, _ = x.shape
        shape = (n, max(h - 2 * self.depth, 0), max(w - 2 * self.depth, 0))
        if 0 in shape:
            return {name: np.zeros(shape) for name in _MAP_NAMES}
        engine = self.engine_for(x, y)
        x, y = self._prepared(x, y)
        out: dict[str, np.ndarray] = {}
        for i in range(n):
            maps = self._image_maps(x, y, i, engine, deficit)
            maps = {name: to_host(value) for name, value in maps.items()}
            # Copied into C-contiguous stacks in the kernel's dtype, one image too (the
            # fused maps are strided views): the compiled statistics then run the same
            # loops whatever the block's image count, and so give the same numbers.
            for name, value in maps.items():
                out.setdefault(name, np.empty(shape, dtype=value.dtype))[i] = value
        return out
