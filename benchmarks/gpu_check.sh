#!/usr/bin/env bash
# One call on a lent GPU machine: the GPU tests, then the GPU benchmarks.
#   bash benchmarks/gpu_check.sh            (from anywhere; writes logs to $OUT if set)
# The machine has no network: wheels the project needs and the machine lacks (dask,
# zarr, numcodecs, donfig, partd, locket, google-crc32c, a current xarray, distributed,
# tornado, tblib, zict, dask-cuda + rapids-dask-dependency for the `cuda` scheduler, and
# cucim-cu13 for the comparison) travel in .whl/ (see benchmarks/README-gpu.md). Without
# .whl/, pip installs the `gpu` extra and cuCIM from the package index instead.
# Exit status: that of pytest (the benchmark only reports).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gpu_check}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site:$PWD
else
    $PY -m pip install --quiet -e ".[test,gpu]" "cucim-cu12" || exit 2
fi
$PY - <<'PY' 2>&1 | tee "$LOG/versions.txt"
import cupy, dask, numba, numpy, xarray, zarr
import pipeline
from pipeline.kernels.backend import gpu_available
print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__,
      "numba", numba.__version__, "cupy", cupy.__version__, "dask", dask.__version__,
      "xarray", xarray.__version__, "zarr", zarr.__version__)
print("pipeline from", pipeline.__file__, "gpu_available", gpu_available())
PY

# Warnings are reported, not raised: the machine's library versions differ from CI's.
timeout 240 $PY -m pytest -m gpu -q -p no:cacheprovider -W default -rs \
    tests/kernels/gpu/test_maps.py tests/kernels/test_backend.py tests/metrics/test_loss.py tests/metrics/test_multiscale.py \
    tests/end_to_end/test_workflows.py \
    2>&1 | tee "$LOG/pytest.txt"
status=${PIPESTATUS[0]}
timeout 150 $PY benchmarks/bench_gpu.py --sizes 2048,4096,8192 --repeat 10 --evaluate 16 \
    2>&1 | tee "$LOG/bench_gpu.txt"
# Whether the GPU keeps up with decoding: folders end to end against decode only, SSIM on
# the GPU while the CPU workers decode, then the same with SSIM on the CPU (same files, same
# machine). The 500 pairs are made first, in parallel over the cores (~10 s on 16).
timeout 120 $PY benchmarks/bench_folders.py --device gpu 2>&1 | tee "$LOG/bench_folders_gpu.txt"
timeout 90 $PY benchmarks/bench_folders.py --device cpu 2>&1 | tee "$LOG/bench_folders_cpu.txt"
exit "$status"
