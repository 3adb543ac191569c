"""Keep freed memory in a benchmark's process, so that no call pays page faults for its temporaries.

glibc hands a freed block above its mmap threshold back to the system, and trims the
top of its heap; the next call that allocates as much maps it afresh and the kernel
zeroes it page by page. On the 2-core virtual machine the benchmarks were measured on,
a loop of 64 OpenCV colour SSIM calls (float32 temporaries of 3 MB) took 686,000 such
page faults, and their cost moved 1.7-3.5 s with the host's state, against 0.65 s with
the memory kept: the peers' times, and so every ratio to them, measured the page
faults more than the arithmetic. The benchmarks that time peers therefore keep freed
memory by default (:func:`add_flag`, :func:`apply_flag`: :func:`keep_freed_memory`, the
same as ``MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824`` in the
environment, which is what their timing subprocesses get: :data:`KEEP_ENV`);
``--no-keep-memory`` restores the C library's defaults, as the figures measured before
this was the default were.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_BYTES = 256 << 20
_TRIM_BYTES = 1 << 30

# The same thresholds for a child process, through glibc's environment tunables.
KEEP_ENV = {"MALLOC_MMAP_THRESHOLD_": str(_MMAP_BYTES), "MALLOC_TRIM_THRESHOLD_": str(_TRIM_BYTES)}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (256 MB, 1 GB); whether it took effect.

    False where the C library has no ``mallopt`` (not glibc) or refuses the values:
    the benchmark then runs with the library's defaults and says so.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES)
    )


def add_flag(parser: argparse.ArgumentParser) -> None:
    """``--keep-memory`` (the default) / ``--no-keep-memory`` on a benchmark's parser."""
    parser.add_argument(
        "--keep-memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep freed memory in the timing processes (glibc mallopt), so that no call "
        "pays page faults for its temporaries (default); --no-keep-memory: the C "
        "library's defaults",
    )


def apply_flag(keep: bool) -> str:
    """Keep freed memory in this process when ``keep``; the line a benchmark prints about it."""
    if not keep:
        return "malloc: the C library's defaults (--no-keep-memory)"
    if keep_freed_memory():
        return "malloc: freed memory kept (mmap threshold 256 MB, trim threshold 1 GB)"
    return "malloc: the C library refused to keep freed memory (not glibc?); its defaults hold"
