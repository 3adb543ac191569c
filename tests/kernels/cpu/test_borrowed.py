"""Views that count no references (``combine.borrowed``), as the row loops pass them.

A borrowed view must read and write its owner's memory, carry no owner of its own
(the reason it is cheap: no atomic count on each call), pass None through, and the
kernels that use it must give the same bits whichever thread ran which chunk, launch
after launch (an owner freed too early would show as other numbers).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from pipeline.kernels.cpu import launch
from pipeline.kernels.cpu.combine import borrowed
from pipeline.kernels.cpu.fused import fused_maps, fused_score
from pipeline.kernels.windows import window_weights


@intrinsic
def _has_owner(typingctx, array):  # type: ignore[no-untyped-def]
    """Whether a compiled array carries an owner (a non-null ``meminfo``)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        meminfo = make_array(array)(context, builder, value=args[0]).meminfo
        return builder.icmp_unsigned("!=", meminfo, cgutils.get_null_value(meminfo.type))

    return types.boolean(array), codegen


@numba.njit
def _write_through(a: np.ndarray) -> tuple[bool, bool, bool, float]:
    b = borrowed(a)
    row = b[1]  # a view of a borrowed array: no owner either
    for j in range(row.shape[0]):
        row[j] = 7.0
    return _has_owner(a), _has_owner(b), _has_owner(row), b.sum()


@numba.njit
def _none_passes(a: np.ndarray | None) -> bool:
    return borrowed(a) is None


def test_a_borrowed_view_reads_and_writes_its_owner_and_has_none_itself() -> None:
    a = np.arange(12.0).reshape(3, 4)
    owned, borrowed_owned, row_owned, total = _write_through(a)
    assert owned and not borrowed_owned and not row_owned
    np.testing.assert_array_equal(a[1], [7.0] * 4)
    assert total == a.sum()


def test_none_is_borrowed_as_none() -> None:
    assert _none_passes(None)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_many_chunks_over_threads_give_the_serial_bits_launch_after_launch(
    window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of a few rows each over two threads, launches of different sizes in a row
    # (freed buffers are reused): every map and score equals the one-thread call's.
    monkeypatch.setattr(launch, "_CHUNK_WINDOWS_GAUSSIAN", 1)
    monkeypatch.setattr(launch, "_CHUNK_WINDOWS_UNIFORM", 1)
    monkeypatch.setattr(launch, "_CHUNKS_PER_THREAD", 16)
    monkeypatch.setattr(launch, "_PARALLEL_MIN_PIXELS", 0)
    monkeypatch.setattr(launch, "_PARALLEL_MIN_PIXELS_UNIFORM", 0)
    uniform = window == "uniform"
    weights = window_weights("uniform", 7, 0.0) if uniform else window_weights("gaussian", 11, 1.5)
    params = dict(weights=weights, uniform=uniform, c1=6.5025, c2=58.5225)
    rng = np.random.default_rng(23)
    for side in (96, 160, 64, 130):
        x = rng.integers(0, 256, (side, side + 7), dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
        serial = fused_maps(x, y, threads=1, components=True, **params)
        threaded = fused_maps(x, y, threads=2, components=True, **params)
        for name in serial:
            np.testing.assert_array_equal(threaded[name], serial[name], err_msg=name)
        # The score sums its chunks in another order: the same number to rounding.
        assert fused_score(x, y, threads=2, **params) == pytest.approx(
            fused_score(x, y, threads=1, **params), rel=1e-14
        )
