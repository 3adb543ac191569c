"""Checks and thread planning of the fused CPU kernels, on the Python side.

Shared by :mod:`pipeline.kernels.cpu.fused` and :mod:`pipeline.kernels.cpu.colour`:
the checks of the window and of ``threads``, the dtype both images are read as
(as read-only arrays), how many threads a block gets and which output rows
each chunk covers, and the launch of the kernel on the calling thread or over
a pool of threads (such launches take turns).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from pipeline.kernels.cpu.combine import MAX_TAPS

__all__ = [
    "FUSED_DTYPES",
    "aligned_empty",
    "check_map_sums",
    "check_weights",
    "kernel_dtype",
    "plan_threads",
    "prepare_pair",
    "read_only",
    "ring_width",
    "row_bounds",
    "run_kernel",
    "take_chunk",
]

#: Input dtypes the compiled kernels read directly; anything else is cast to float64 first.
FUSED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))

# Launches over several threads take turns: two at once would oversubscribe the cores.
_PARALLEL_LOCK = threading.Lock()

# Below this many output pixels a call stays serial: the second thread starts 25-40 us
# after the launch even with the pool awake, plus the hand-over at the end. Measured
# (score, uint8, two threads against one, medians of 400 interleaved calls on 2 cores,
# load 0.4): under the Gaussian 11 window two threads break even near 128^2 input
# pixels (1.08x the serial time; 0.90x at 192^2, 0.74x at 256^2); re-measured with the
# second core idle (load 1.0-1.4): 1.19x at 96^2, 0.86x at 128^2, 0.90x at 160^2.
_PARALLEL_MIN_PIXELS = 128 * 128
# The uniform 7x7 window's serial pixel costs a third of the Gaussian's, so it has its
# own threshold (plan_threads(uniform=True)): with the second core idle, two threads
# against one were 1.08-1.26x at 192^2 input pixels, 0.77-1.16x from 224^2 to 272^2
# and 0.75-0.94x from 288^2 to 448^2 (medians of 400 interleaved calls, four runs,
# load 0.9-2.1; one run's 288^2: 1.75x); at load 2.5-2.8, the cores shared with other
# work, two threads lost at every side up to 512^2. The grey and the
# colour kernels must plan alike (the colour kernel's rows equal the grey one's bit
# for bit), so both pass the window's kind.
_PARALLEL_MIN_PIXELS_UNIFORM = 256 * 256
# Output rows per chunk, at least, in windows (win_size rows): a chunk restarts
# its window's state (the uniform path's running column sums, the Gaussian
# path's ring of win_size - 1 input rows), a cost of win_size rows or less. The
# kernels take their chunks without returning to Python, so a chunk more costs its
# restart only: at 512^2 under the uniform 7x7 window, eight chunks of ~63 rows over
# two threads took 256-281 us (best of 300 calls, three rounds) against 278-294 us
# in four of ~126, the pool thread's last chunk ending nearer the caller's.
_CHUNK_WINDOWS_UNIFORM = 8
_CHUNK_WINDOWS_GAUSSIAN = 4
# Chunks per thread, at most: more even out uneven progress (a thread that falls
# behind on shared cores takes fewer).
_CHUNKS_PER_THREAD = 4
# One thread, uniform window: the running sums restart every this many rows, which
# bounds their drift over float input.
_SERIAL_UNIFORM_ROWS = 256


def _check_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise TypeError(f"threads must be a positive integer or None (got {threads!r})")
    if threads < 1:
        raise ValueError(f"threads must be a positive integer or None (got {threads})")
    return int(threads)


def check_weights(weights: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The window's taps as float64, checked against the block's spatial ``shape``."""
    flags = weights.flags if type(weights) is np.ndarray else None
    if flags is not None and weights.ndim == 1 and weights.dtype == np.float64 and flags.carray:
        g = weights  # the shared window (the usual case): no conversion to make
    else:
        g = np.ascontiguousarray(weights, dtype=np.float64)
    if g.ndim != 1 or g.shape[0] > min(shape):
        raise ValueError(
            f"weights must be 1-D with at most min(shape) taps (got {g.shape} for shape {shape})"
        )
    if g.shape[0] > MAX_TAPS:
        raise ValueError(f"weights must have at most {MAX_TAPS} taps (got {g.shape[0]})")
    if not _is_symmetric(g.tobytes()):
        # The Gaussian path adds taps k and win_size - 1 - k with one weight.
        raise ValueError(f"weights must be symmetric (got {np.array2string(g, precision=4)})")
    return read_only(g) if g.flags.writeable else g


@functools.lru_cache(maxsize=64)
def _is_symmetric(taps: bytes) -> bool:
    """Whether float64 ``taps`` (raw bytes) read the same backwards, decided once per window.

    Every call of one window passes the same few taps; the comparison itself
    costs more than the rest of the checks on a small block.
    """
    g = np.frombuffer(taps, dtype=np.float64)
    return bool(np.array_equal(g, g[::-1]))


def check_map_sums(map_sums: np.ndarray | None, shape: tuple[int, int]) -> None:
    """Refuse a ``map_sums`` accumulator the kernel cannot add a block's valid maps to.

    It must be a writable C-contiguous float64 ``(components, rows, cols)`` array of
    the valid map's ``shape``, with at least the four components the kernel adds.
    """
    if map_sums is None:
        return
    if not isinstance(map_sums, np.ndarray):
        raise TypeError(f"map_sums must be a numpy array or None (got {type(map_sums).__name__})")
    if (
        map_sums.ndim != 3
        or map_sums.shape[1:] != tuple(shape)
        or map_sums.shape[0] < 4
        or map_sums.dtype != np.float64
        or not map_sums.flags.c_contiguous
        or not map_sums.flags.writeable
    ):
        raise ValueError(
            "map_sums must be a writable C-contiguous float64 array of shape "
            f"(k >= 4, {shape[0]}, {shape[1]}) (got {map_sums.dtype} {map_sums.shape})"
        )


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: the kernels only read their inputs.

    numba types a writable and a read-only array differently and compiles the
    kernel once for each; inputs arrive both ways (decoded images are often
    read-only, copies writable), so every input is passed read-only and one
    compilation serves both. An array that is read-only already is returned as it is.
    """
    if not a.flags.writeable:
        return a
    view = a.view()
    view.setflags(write=False)
    return view


def kernel_dtype(x: np.ndarray, y: np.ndarray) -> np.dtype:
    """The dtype both images are read as."""
    return _kernel_dtype(x.dtype, y.dtype)


@functools.lru_cache(maxsize=64)
def _kernel_dtype(dtype_x: np.dtype, dtype_y: np.dtype) -> np.dtype:
    dtype = np.result_type(dtype_x, dtype_y)
    # Integer images are read as they are (no float copy: half the memory of a
    # float32 cast and an eighth of float64); other dtypes go to float64 so
    # that the value the kernel sees is exactly the reference's.
    return dtype if dtype in FUSED_DTYPES else np.dtype(np.float64)


def check_bins(bins: Any) -> None:
    """Refuse a histogram bin count that is not a positive integer."""
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer (got {bins!r})")


def kernel_inputs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images read-only and C-contiguous in :func:`kernel_dtype`, as the kernels read them."""
    dtype = kernel_dtype(x, y)
    x = read_only(np.ascontiguousarray(x, dtype=dtype))
    y = read_only(np.ascontiguousarray(y, dtype=dtype))
    return x, y


def prepare_pair(x: Any, y: Any, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two 2-D images of one shape, read-only in :func:`kernel_dtype`, and the checked taps."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"the fused kernel needs two 2-D arrays of the same shape (got {x.shape} and {y.shape})"
        )
    g = check_weights(weights, x.shape)
    x, y = kernel_inputs(x, y)
    return x, y, g


def plan_threads(
    threads: int | None, shape: tuple[int, ...], win_size: int, *, uniform: bool = False
) -> int:
    """How many threads a block of spatial ``shape`` is split over (``threads`` checked).

    One for a block too small to gain from the pool (output pixels below
    ``_PARALLEL_MIN_PIXELS``, or ``_PARALLEL_MIN_PIXELS_UNIFORM`` for a ``uniform``
    window, whose pixels cost less); else ``threads``, capped at numba's thread
    count, or with ``threads=None`` numba's current thread count. The grey and the
    colour kernels must pass the same ``uniform`` for one window (their rows are
    equal bit for bit only over the same chunks).
    """
    threads = _check_threads(threads)
    n_pixels = (shape[0] - win_size + 1) * (shape[1] - win_size + 1)
    threshold = _PARALLEL_MIN_PIXELS_UNIFORM if uniform else _PARALLEL_MIN_PIXELS
    if threads == 1 or n_pixels < threshold:
        # Waking the thread pool costs more than it saves on a small block.
        return 1
    if threads is None:
        # NUMBA_NUM_THREADS, or what numba.set_num_threads set on this thread.
        return int(numba.get_num_threads())
    pool_size: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    return min(threads, pool_size)


def row_bounds(n_rows: int, n_threads: int, win_size: int, uniform: bool) -> np.ndarray:
    """Edges ``[0, ..., n_rows]`` of the chunks of output rows a launch shares out.

    One thread: one chunk (uniform window: one per 256 rows). Several: rows split
    evenly into between one and four chunks per thread, as many as keep each
    chunk at least 8 windows long (uniform) or 4 (Gaussian), so that restarting
    a chunk's running sums or ring stays a small part of its work: at 512^2 and
    a 7-wide uniform window, eight chunks of ~63 rows over two threads.
    """
    if n_threads == 1:
        if not uniform:
            return np.array([0, n_rows], dtype=np.int64)
        rows_per_chunk = max(_SERIAL_UNIFORM_ROWS, 4 * win_size)
        return np.asarray([*range(0, n_rows, rows_per_chunk), n_rows], dtype=np.int64)
    min_rows = win_size * (_CHUNK_WINDOWS_UNIFORM if uniform else _CHUNK_WINDOWS_GAUSSIAN)
    n_chunks = min(_CHUNKS_PER_THREAD * n_threads, max(n_threads, n_rows // min_rows), n_rows)
    return np.asarray([n_rows * k // n_chunks for k in range(n_chunks + 1)], dtype=np.int64)


def ring_width(width: int, itemsize: int) -> int:
    """Row length (elements) of a Gaussian ring buffer holding input rows of ``width`` pixels.

    The vertical pass reads all ``win_size`` rows of both rings at once, column
    by column. Rows a multiple of 4 KiB apart (2048 float32 pixels, say) map to
    the same sets of the L1 cache and collide there (22 rows of an 11-tap
    window over 8 ways), which made the pass up to twice as slow. Rows are
    padded so that consecutive ones start one cache line (64 bytes) further
    round the 4 KiB page than the previous one; the padding is never read.
    """
    line, page = 64, 4096
    row_bytes = -(-width * itemsize // line) * line
    row_bytes += (line - row_bytes % page) % page
    return row_bytes // itemsize


# A cache line: where the rings' rows start (see aligned_empty).
_LINE = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose first element starts a 64-byte cache line.

    For the Gaussian rings, whose rows (:func:`ring_width`: a multiple of 64 bytes
    long) the vertical sweeps read 16 float32 columns at a time: NumPy aligns its
    buffers to 16 bytes, so such a read of a row that starts elsewhere in a line
    spans two lines. The score's vertical sweep took 1.28 ns per output pixel on
    aligned rows against 1.36-1.45 on rows 16, 32 or 48 bytes past a line (one
    thread, a Zen 4 core, its ring in L2).
    """
    kind = np.dtype(dtype)
    size = int(np.prod(shape)) * kind.itemsize
    raw = np.empty(size + _LINE, dtype=np.uint8)
    start = -raw.ctypes.data % _LINE
    return raw[start : start + size].view(kind).reshape(shape)


def run_kernel(kernel: Any, n_threads: int, n_chunks: int, args: tuple[Any, ...]) -> None:
    """``kernel(*args, taken)`` over row chunks ``0:n_chunks`` on ``n_threads`` threads.

    The kernel takes its chunks itself, one at a time, with :func:`take_chunk` on
    ``taken`` (a counter shared by the threads of the launch), until none is left.
    One thread: a single call on the calling thread. More: the calling thread and up
    to ``n_threads - 1`` pool threads each make one call (so a thread that falls
    behind takes fewer chunks, a pool thread that has not woken by then is not
    waited for, and no thread returns to Python between chunks); the kernel releases
    the GIL, and each chunk writes only its own rows and partials, so the result
    does not depend on which thread ran which chunk. A pool thread's exception is
    raised here, once every chunk under way has ended.
    """
    taken = np.zeros(1, dtype=np.int64)
    if n_threads == 1 or n_chunks == 1:
        kernel(*args, taken)
        return
    with _PARALLEL_LOCK:
        launch = _Launch(kernel, args, taken, n_chunks, min(n_threads, n_chunks) - 1)
        _hot_pool().post(launch)
        launch.run_and_wait()


# ---------------------------------------------------------------------------
# The pool behind run_kernel
#
# A launch over two threads of a 512^2 image is ~0.3 ms of work per thread. A
# pool thread asleep on a lock takes 50-100 us to be woken on these shared
# virtual cores, and the caller as long again to be woken when the pool thread
# ends last: a third of the call. So each pool thread, once it has helped a
# launch, waits for the next one in compiled code for a while (``_SPIN_S``,
# GIL released) before it sleeps, and the caller waits for the chunks still
# under way the same way. Calls one after another (a loop over images) thus
# find their helper awake. The waits read a counter with an atomic load, which
# LLVM may not hoist out of the loop, and are bounded: a helper that is not
# needed sleeps after ``_SPIN_S`` and costs nothing more.

_SPIN_S = 300e-6
# A pool thread that sees a launch posted returns to Python, which needs the GIL; the
# caller still holds it until it enters its first chunk's kernel a few microseconds
# later. A thread that asks for the GIL then sleeps until it is handed over, and on these
# virtual cores waking it took ~30 us (a trace of 400 two-thread calls at 512^2: the pool
# thread began its first chunk a median 32 us after the caller's). It therefore spins
# ``_SETTLE_S`` more, GIL released, and finds the GIL free: a median 13 us.
_SETTLE_S = 10e-6


@intrinsic
def _load_acquire(typingctx: Any, counter: Any) -> Any:
    """``counter[0]`` (a 1-D int64 array) read with an atomic acquire load."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        return builder.load_atomic(array.data, "acquire", 8)

    return sig, codegen


@intrinsic
def _fetch_add(typingctx: Any, counter: Any, delta: Any) -> Any:
    """``counter[0] += delta`` as one atomic operation; the value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter, types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        return builder.atomic_rmw("add", array.data, args[1], "acq_rel")

    return sig, codegen


# numba passes the typing context to an intrinsic itself: mypy sees one argument
# too few in the calls below.


@numba.njit(nogil=True, cache=True)
def _add(counter: np.ndarray, delta: int) -> int:  # pragma: no cover - compiled
    """``counter[0] += delta`` atomically (the GIL released or not, any thread)."""
    return _fetch_add(counter, delta)  # type: ignore[call-arg]


@numba.njit(nogil=True, cache=True)
def take_chunk(taken: np.ndarray) -> int:  # pragma: no cover - compiled
    """The next chunk of a launch: ``taken[0]``, then one more, atomically.

    The threads of a launch share ``taken`` (from 0); a kernel stops at the first
    chunk past its last.
    """
    return _fetch_add(taken, 1)  # type: ignore[call-arg]


@numba.njit(nogil=True, cache=True)
def _wait_while_equal(
    counter: np.ndarray, value: int, spins: int, settle: int
) -> bool:  # pragma: no cover - compiled
    """Spin while ``counter[0] == value``, at most ``spins`` reads; whether it changed.

    Once it has changed, ``settle`` more reads before returning (see ``_SETTLE_S``).
    """
    for _ in range(spins):
        if _load_acquire(counter) != value:  # type: ignore[call-arg]
            seen = 0
            for _ in range(settle):
                seen += _load_acquire(counter)
            # Always true: a use of the reads, so that LLVM keeps the loop.
            return seen != -1
    return False


@numba.njit(nogil=True, cache=True)
def _leave_and_wait(
    busy: np.ndarray, counter: np.ndarray, value: int, spins: int, settle: int
) -> bool:  # pragma: no cover - compiled
    """``busy[0] -= 1``, then :func:`_wait_while_equal`.

    The GIL is released before the decrement, so a caller waiting for ``busy``
    to reach 0 finds the GIL free at once (it is not woken a second time).
    """
    _fetch_add(busy, -1)  # type: ignore[call-arg]
    return _wait_while_equal(counter, value, spins, settle)


@functools.lru_cache(maxsize=1)
def _spins() -> int:
    """Reads of a counter in ``_SPIN_S`` on this machine (measured once)."""
    counter = np.zeros(1, dtype=np.int64)
    _wait_while_equal(counter, 0, 1000, 0)  # compiled or loaded from the cache first
    n = 200_000
    start = time.perf_counter()
    _wait_while_equal(counter, 0, n, 0)
    per_read = max((time.perf_counter() - start) / n, 1e-10)
    return max(1000, int(_SPIN_S / per_read))


class _Launch:
    """One launch's kernel, called by the caller and by the pool threads that join it."""

    def __init__(
        self, kernel: Any, args: tuple[Any, ...], taken: np.ndarray, n_chunks: int, seats: int
    ) -> None:
        self.kernel = kernel
        self.args = args
        # Chunks taken so far (by take_chunk, in the kernel), past n_chunks at the end.
        self.taken = taken
        self.n_chunks = n_chunks
        # Pool threads that may still join (the launch's thread count less the caller).
        self.seats = seats
        self.lock = threading.Lock()
        # Pool threads that joined and have not left: changed atomically only.
        self.busy = np.zeros(1, dtype=np.int64)
        self.error: BaseException | None = None

    def work(self) -> None:
        """Chunks until none is left (the kernel takes them)."""
        self.kernel(*self.args, self.taken)

    def join(self) -> bool:
        """Whether a pool thread may work on this launch (then it must leave, once)."""
        with self.lock:
            if self.seats == 0 or int(self.taken[0]) >= self.n_chunks:
                return False
            self.seats -= 1
            _add(self.busy, 1)
            return True

    def run_and_wait(self) -> None:
        """The caller's part: chunks until none is left, then the end of the pool's."""
        try:
            self.work()
        finally:
            # No chunk is left, so no pool thread joins from now on: wait for those
            # that did to leave, in compiled code, then (one far behind) polling.
            spins = _spins()
            while (busy := int(self.busy[0])) > 0:
                if not _wait_while_equal(self.busy, busy, spins, 0):
                    time.sleep(1e-4)
        if self.error is not None:
            raise self.error


class _HotPool:
    """Daemon threads that help launches and wait for the next one awake for a while."""

    def __init__(self, size: int, *, start: bool = True) -> None:
        # Bumped by each launch (under _PARALLEL_LOCK), read by the threads' waits.
        self.generation = np.zeros(1, dtype=np.int64)
        self.launch: _Launch | None = None
        self.lock = threading.Lock()
        self.sleepers = 0
        self.wake = threading.Semaphore(0)
        self.threads = [
            threading.Thread(target=self._serve, name=f"fused-kernel-{k}", daemon=True)
            for k in range(size)
        ]
        if start:
            _spins()
            for thread in self.threads:
                thread.start()

    def post(self, launch: _Launch) -> None:
        """Offer ``launch`` to the pool: awake threads see it at once, asleep ones are woken."""
        self.launch = launch
        _add(self.generation, 1)
        with self.lock:
            woken = min(self.sleepers, launch.seats)
            self.sleepers -= woken
        for _ in range(woken):
            self.wake.release()

    def _serve(self) -> None:
        seen = 0
        spins = _spins()
        settle = int(spins * _SETTLE_S / _SPIN_S)
        left: _Launch | None = None
        while True:
            if left is not None:
                changed = _leave_and_wait(left.busy, self.generation, seen, spins, settle)
                left = None
            else:
                changed = _wait_while_equal(self.generation, seen, spins, settle)
            if not changed:
                with self.lock:
                    asleep = int(self.generation[0]) == seen
                    self.sleepers += asleep
                if asleep:
                    self.wake.acquire()
            seen = int(self.generation[0])
            launch = self.launch
            if launch is not None and launch.join():
                left = launch
                try:
                    launch.work()
                except BaseException as error:  # raised by the launch's caller
                    launch.error = launch.error or error


_POOL: _HotPool | None = None
_POOL_PID = 0


def _hot_pool() -> _HotPool:
    """The pool of launches over several threads: numba's thread count less the caller."""
    global _POOL, _POOL_PID
    # A forked child inherits the pool object but none of its threads: it makes its own.
    if _POOL is None or _POOL_PID != os.getpid():
        pool_size: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        _POOL = _HotPool(max(1, pool_size - 1))
        _POOL_PID = os.getpid()
    return _POOL
