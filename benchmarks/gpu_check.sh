#!/usr/bin/env bash
# One call on a lent GPU machine: install what is missing, run the GPU tests, then the GPU benchmark.
#   bash benchmarks/gpu_check.sh
# Runs from the repository root. Exit status: that of pytest (the benchmark only reports).
set -uo pipefail
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# The `gpu` extra (CuPy) and cuCIM for the comparison, only when absent.
python - <<'PY' || python -m pip install --quiet "cupy-cuda12x>=13" "cucim-cu12"
import importlib.util, sys
sys.exit(0 if importlib.util.find_spec("cupy") and importlib.util.find_spec("cucim") else 1)
PY
# The project itself (editable) when it is not importable yet.
python -c "import pipeline" 2>/dev/null || python -m pip install --quiet -e ".[test]"

python -m pytest -m gpu -q -p no:cacheprovider tests/test_kernels_gpu.py
status=$?
python benchmarks/bench_gpu.py --sizes 2048,4096,8192 --repeat 10
exit $status
