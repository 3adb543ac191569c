#!/usr/bin/env bash
# One call on a lent GPU machine: the GPU tests, then the GPU benchmarks.
#   bash benchmarks/gpu_check.sh            (from anywhere; writes logs to $OUT if set)
# The machine has no network: wheels the project needs and the machine lacks (dask,
# zarr, numcodecs, donfig, partd, locket, google-crc32c, a current xarray, distributed,
# tornado, tblib, zict, dask-cuda + rapids-dask-dependency for the `cuda` scheduler, and
# cucim-cu13 for the comparison) travel in .whl/ (see benchmarks/README-gpu.md). Without
# .whl/ nothing is installed: the machine's Python must already have the `gpu` extra.
# Every step runs under its own timeout; a failing step is reported and the rest still run.
# Exit status: that of pytest (the benchmarks only report).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gpu_check}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
SUMMARY="$LOG/summary.txt"
: >"$SUMMARY"

# step NAME SECONDS COMMAND...: run it, log to $LOG/NAME.txt, record its exit status.
step() {
    local name=$1 seconds=$2
    shift 2
    echo "=== $name: $*"
    timeout "$seconds" "$@" 2>&1 | tee "$LOG/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "$name rc=$rc$([ "$rc" = 124 ] && echo ' (timed out)')" | tee -a "$SUMMARY"
    return "$rc"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ -d .whl ]; then
    step install 180 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
step versions 60 $PY -c '
import sys, cupy, dask, numba, numpy, xarray, zarr
import pipeline
from pipeline.kernels.backend import gpu_available
print("python", sys.version.split()[0], "numpy", numpy.__version__, "numba", numba.__version__,
      "cupy", cupy.__version__, "dask", dask.__version__, "xarray", xarray.__version__,
      "zarr", zarr.__version__)
print("pipeline from", pipeline.__file__, "gpu_available", gpu_available())
'

# Every gpu-marked test. Warnings are reported, not raised: the machine's library
# versions differ from CI's. In this one process: pyproject's addopts ask for two
# pytest-xdist workers, and the GPU machine's Python may have no pytest-xdist.
step pytest 300 $PY -m pytest -o "addopts=--strict-markers --import-mode=importlib" \
    -m gpu -q -p no:cacheprovider -W default -rs
status=$?
step bench_gpu 150 $PY benchmarks/bench_gpu.py --sizes 2048,4096,8192 --repeat 10 --evaluate 16
if [ -f benchmarks/bench_loss.py ]; then
    step bench_loss 150 $PY benchmarks/bench_loss.py --device cuda
else
    echo "bench_loss skipped: benchmarks/bench_loss.py is missing" | tee -a "$SUMMARY"
fi
# Whether the GPU keeps up with decoding: folders end to end against decode only, SSIM on
# the GPU while the CPU workers decode, then the same with SSIM on the CPU.
step bench_folders_gpu 120 $PY benchmarks/bench_folders.py --device gpu
step bench_folders_cpu 90 $PY benchmarks/bench_folders.py --device cpu
cat "$SUMMARY"
exit "$status"
