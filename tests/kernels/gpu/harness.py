"""Run this package's CUDA C sources on the CPU, and compile them with nvcc where present.

The kernels of ``pipeline.kernels.gpu`` are plain CUDA C. :func:`build` compiles
one source as C++ together with a small POSIX-threads launcher and a C entry
point that the test writes, into a shared library loaded with ctypes. The
launcher runs every thread block of a launch on the CPU, one block at a time:
one OS thread per CUDA thread, ``__syncthreads`` as a barrier, ``__shared__``
arrays as function statics (which the block's threads share). The same
indexing, tiling, shifts, barriers and float32 roundings as on a device (FMA
contraction aside: x86-64's baseline has none), checked against the float64
references. Nothing here measures speed or proves the device path.

:func:`nvcc_compile` builds a source for a Hopper target (``-arch=sm_90
-cubin``), which also has ptxas check the shared-memory budget.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HAVE_GXX = shutil.which("g++") is not None
HAVE_NVCC = shutil.which("nvcc") is not None

# CUDA's built-ins mapped onto C++ and POSIX threads. One block runs at a time, so
# function-static arrays are exactly a block's shared memory.
PRELUDE = r"""
#include <math.h>
#include <pthread.h>
#include <functional>
#include <vector>
struct dim3 { unsigned x, y, z; };
static thread_local dim3 threadIdx;
static dim3 blockIdx, blockDim, gridDim;
static pthread_barrier_t barrier;
#define __global__
#define __device__ static
#define __shared__ static
#define __syncthreads() pthread_barrier_wait(&barrier)
#define __fmul_rn(a, b) ((a) * (b))
#define __fadd_rn(a, b) ((a) + (b))
#define __dmul_rn(a, b) ((a) * (b))
#define __dadd_rn(a, b) ((a) + (b))
"""

LAUNCHER = r"""
struct Thread { const std::function<void()>* body; unsigned id; };

static void* run_thread(void* p) {
    const Thread* t = (const Thread*)p;
    threadIdx = dim3{t->id % blockDim.x, (t->id / blockDim.x) % blockDim.y,
                     t->id / (blockDim.x * blockDim.y)};
    (*t->body)();
    return nullptr;
}

// Every block of the grid in turn, each with all of its threads at once.
static void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x * block.y * block.z;
    pthread_barrier_init(&barrier, nullptr, n);
    std::vector<pthread_t> threads(n);
    std::vector<Thread> args(n);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = dim3{bx, by, bz};
                for (unsigned t = 0; t < n; ++t) {
                    args[t] = Thread{&body, t};
                    pthread_create(&threads[t], nullptr, run_thread, &args[t]);
                }
                for (auto& t : threads) pthread_join(t, nullptr);
            }
    pthread_barrier_destroy(&barrier);
}
"""

_BUILDS = Path(tempfile.gettempdir()) / "pipeline-cuda-harness"


def build(source: str, entry: str) -> ctypes.CDLL:
    """``source`` (CUDA C) and ``entry`` (C++ calling ``launch``) as a loaded library.

    Builds are kept by content hash for the session's temporary folder, so a
    source is compiled once however many cases run it.
    """
    text = PRELUDE + source + LAUNCHER + entry
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    _BUILDS.mkdir(exist_ok=True)
    library = _BUILDS / f"{digest}.so"
    if not library.exists():
        cpp = _BUILDS / f"{digest}.cpp"
        cpp.write_text(text)
        partial = _BUILDS / f"{digest}.{np.random.default_rng().integers(1 << 30)}.so"
        result = subprocess.run(
            ["g++", "-O1", "-std=c++17", "-shared", "-fPIC", "-pthread", str(cpp),
             "-o", str(partial)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"g++ failed on the kernel source:\n{result.stderr[-4000:]}")
        partial.replace(library)
    return ctypes.CDLL(str(library))


def nvcc_compile(source: str) -> subprocess.CompletedProcess[str]:
    """``nvcc -arch=sm_90 -cubin`` of one translation unit (output discarded)."""
    return subprocess.run(
        ["nvcc", "-arch=sm_90", "-cubin", "-x", "cu", "-", "-o", "/dev/null"],
        input=source,
        capture_output=True,
        text=True,
        timeout=300,
    )


def nvcc_compile_all(sources: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """:func:`nvcc_compile` of each source, in order; as many at once as there are cores.

    Each nvcc run is one process on one core, most of its time spent starting up.
    """
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(nvcc_compile, sources))


# Compiles every case of a kernel source in a process of its own (queued early, see
# tests/background_runs.py); prints one [return code, end of stderr] per case, as JSON.
_COMPILE_CASES = """
import importlib, json, sys
from kernels.gpu.harness import nvcc_compile_all
kernel_source = importlib.import_module(sys.argv[1]).kernel_source
cases = json.loads(sys.argv[2])
results = nvcc_compile_all([kernel_source(*case) for case in cases])
print(json.dumps([[r.returncode, r.stderr[-2000:]] for r in results]))
"""


def nvcc_cases_command(module: str, cases: list[tuple[Any, ...]]) -> dict[str, Any]:
    """``subprocess`` arguments that nvcc-compile ``module.kernel_source(*case)`` per case."""
    tests = Path(__file__).resolve().parents[2]
    path = [str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]
    return {
        "command": [sys.executable, "-c", _COMPILE_CASES, module, json.dumps(cases)],
        "env": {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
    }


def pointer(array: np.ndarray) -> ctypes.c_void_p:
    """The address of a C-contiguous array's data, for a ``void*`` argument."""
    if not array.flags.c_contiguous:
        raise ValueError("harness arrays must be C-contiguous")
    return ctypes.c_void_p(array.ctypes.data)


# ---------------------------------------------------------------------------
# A stand-in for the few CuPy calls the wrappers make, on NumPy arrays

_SCALARS = {
    "int": (ctypes.c_int, np.int32),
    "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
}


def _parameters(source: str, name: str) -> list[tuple[str, str]]:
    """``(C type, name)`` of each parameter of kernel ``name`` in ``source``."""
    start = source.index(f"void {name}(") + len(f"void {name}(")
    text = source[start : source.index(")", start)]
    out = []
    for parameter in text.split(","):
        words = parameter.replace("__restrict__", "").replace("*", " * ").split()
        out.append((" ".join(words[:-1]), words[-1]))
    return out


def _entry(source: str, name: str) -> str:
    """A C entry ``run_<name>(grid, block, parameters)`` that launches kernel ``name``."""
    parameters = _parameters(source, name)
    declared = ", ".join(
        f"void* {p}" if "*" in ctype else f"{ctype.replace('const ', '')} {p}"
        for ctype, p in parameters
    )
    passed = ", ".join(f"({ctype}){p}" if "*" in ctype else p for ctype, p in parameters)
    return (
        f'extern "C" void run_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
        f"unsigned by, {declared}) {{\n"
        f"    launch(dim3{{gx, gy, gz}}, dim3{{bx, by, 1}}, [&] {{ {name}({passed}); }});\n}}\n"
    )


class _Kernel:
    """One kernel of a source: ``kernel(grid, block, args)`` as CuPy calls it."""

    def __init__(self, source: str, name: str) -> None:
        self.source, self.name = source, name

    def _c_type(self, ctype: str) -> str:
        """``T`` and ``F`` resolved through the source's typedefs."""
        for line in self.source.splitlines():
            if line.startswith("typedef ") and line.endswith(f" {ctype};"):
                return line[len("typedef ") : -len(f" {ctype};")]
        return ctype

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple) -> None:
        parameters = _parameters(self.source, self.name)
        if len(args) != len(parameters):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(parameters)} parameters")
        converted = []
        for value, (ctype, pname) in zip(args, parameters, strict=True):
            if "*" in ctype:
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"{self.name}: {pname} must be an array (got {type(value)})")
                base = self._c_type(ctype.replace("const ", "").replace("*", "").strip())
                expected = {
                    "float": np.float32, "double": np.float64, "unsigned char": np.uint8,
                    "signed char": np.int8, "unsigned short": np.uint16, "short": np.int16,
                    "unsigned int": np.uint32, "int": np.int32, "unsigned long long": np.uint64,
                    "long long": np.int64,
                }[base]  # fmt: skip
                if value.dtype != expected:
                    raise TypeError(f"{self.name}: {pname} is {value.dtype}, kernel reads {base}")
                converted.append(pointer(value))
            else:
                base = self._c_type(ctype.replace("const ", "").strip())
                c_scalar, np_scalar = _SCALARS[base]
                # CuPy passes a NumPy scalar as its own type: it must be the parameter's.
                if type(value) is not np_scalar:
                    raise TypeError(f"{self.name}: {pname} is {type(value)}, kernel reads {base}")
                converted.append(c_scalar(value))
        grid = (*grid, 1, 1)[:3]
        block = (*block, 1)[:2]
        library = build(self.source, _entry(self.source, self.name))
        getattr(library, f"run_{self.name}")(
            *(ctypes.c_uint(n) for n in (*grid, *block)), *converted
        )


class _Module:
    def __init__(self, code: str) -> None:
        self.code = code

    def get_function(self, name: str) -> _Kernel:
        return _Kernel(self.code, name)


class FakeCupy:
    """The CuPy calls of ``pipeline.kernels.gpu.fused`` and ``loss``, on NumPy arrays.

    Installed as ``sys.modules["cupy"]`` by a test, it runs the Python wrappers
    end to end on the CPU harness and checks every launch argument against the
    kernel's C parameter (count, array dtype, scalar type), the mistakes that a
    device would turn into garbage rather than an error.
    """

    float32 = np.float32
    float64 = np.float64
    ndarray = np.ndarray

    @staticmethod
    def asarray(a, dtype=None):
        return np.asarray(a, dtype=dtype)

    @staticmethod
    def ascontiguousarray(a, dtype=None):
        return np.ascontiguousarray(a, dtype=dtype)

    @staticmethod
    def empty(shape, dtype=np.float64):
        return (
            np.full(shape, np.nan, dtype=dtype)
            if np.dtype(dtype).kind == "f"
            else np.empty(shape, dtype=dtype)
        )

    @staticmethod
    def empty_like(a):
        return np.full_like(a, np.nan)

    @staticmethod
    def RawKernel(code: str, name: str) -> _Kernel:
        return _Kernel(code, name)

    @staticmethod
    def RawModule(code: str) -> _Module:
        return _Module(code)
