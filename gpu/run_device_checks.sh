#!/usr/bin/env bash
# GPU checks for the bit-plane kernels (gpu/kernels/bitplane.cu, gpu/bitplane.py).
#
# Usage:  bash gpu/run_device_checks.sh [WHEEL_DIR]
#   OUT        where logs and the benchmark report go (default ./gpu-results)
#   WHEEL_DIR  optional folder of wheels (e.g. .whl) to install cupy-cuda13x from, offline;
#              without it cupy must already be importable (the device image ships
#              cupy-cuda13x 14.2.0) or pip must reach an index.
#   PYTHON     interpreter (default: python3, the device image's one with cupy and torch)
#
# Through the device tool (one call; ~2-4 min of device time expected, mostly NVRTC compiles
# and the CPU oracle; the timeout leaves room for one rerun inside the 15-minute budget):
#   run(command="bash gpu/run_device_checks.sh", timeout_s=420)
# with wheels carried (see /work/.library/device/README.md, "a Python package missing there"):
#   run(command="bash gpu/run_device_checks.sh .whl", carry=[".whl"], timeout_s=420)
# then give_back() unless rerunning at once. Files under $OUT come back (at most 8 files).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-./gpu-results}"
WHEEL_DIR="${1:-}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv >"$OUT/device.txt" 2>&1 || true

if ! "$PY" -c "import cupy" 2>/dev/null; then
    if [ -n "$WHEEL_DIR" ]; then
        "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEEL_DIR" cupy-cuda13x
    else
        "$PY" -m pip install -q "cupy-cuda13x==14.2.0"
    fi
fi
"$PY" -c "import cupy; d = cupy.cuda.Device(); print('cupy', cupy.__version__, 'cc', d.compute_capability)" \
    | tee -a "$OUT/device.txt"

status=0
# Correctness: bit-for-bit equality with numlib.bitplane.packed_matmul, both kernels, INT8 path.
"$PY" -m pytest tests/gpu -m gpu -q -p no:cacheprovider -x 2>&1 | tee "$OUT/pytest-gpu.txt" \
    || status=1
# Benchmarks (validation/suites/bitplane.py): report.md, results.json and plots under $OUT.
"$PY" -m validation --suite bitplane --size medium --out "$OUT" 2>&1 | tee "$OUT/bench.txt" \
    || status=1
exit "$status"
