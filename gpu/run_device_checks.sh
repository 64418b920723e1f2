#!/usr/bin/env bash
# GPU checks for the bit-plane kernels (gpu/kernels/*.cu, gpu/bitplane.py, gpu/int8.py).
#
# Usage:  bash gpu/run_device_checks.sh [WHEEL_DIR]
#   OUT        where logs and the benchmark report go (default ./gpu-results)
#   WHEEL_DIR  optional folder of wheels installed (offline) into a private site folder
#              before anything runs: packages the device image lacks and the benchmark
#              registry imports (pyamg, array-api-compat; README, "On the GPU", says how
#              to fetch them).
#   PYTHON     interpreter (default: python3, the device image's one with cupy and torch)
#
# Through the device tool (one call, a few minutes of device time; the timeout leaves room
# for one rerun inside the 15-minute budget):
#   run(command="bash gpu/run_device_checks.sh .whl", carry=[".whl"], timeout_s=420)
# then give_back() unless rerunning at once. Files under $OUT come back (at most 8 files).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh" "${1:-}"

{
    nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv
    nvcc --version | tail -1
    "$PY" -c "import cupy; d = cupy.cuda.Device(); print('cupy', cupy.__version__, 'cc', d.compute_capability)"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# 1. Smoke test of every kernel on a few products, before the long runs, so that a broken
#    kernel shows up with its own error.
"$PY" - >"$OUT/smoke.txt" 2>&1 <<'EOF'
import traceback
import numpy as np
from numlib.bitplane import pack, packed_matmul
import gpu.bitplane as gb

rng = np.random.default_rng(0)
cases = [(1, 1, 200, 150, 1000), (2, 2, 70, 300, 4096), (8, 8, 33, 17, 257), (1, 1, 1, 4096, 4096),
         (2, 2, 16, 4096, 4096), (1, 1, 1536, 2816, 4096)]
for a, b, m, n, k in cases:
    Xp = pack(rng.integers(0, 1 << a, (m, k), dtype=np.uint8), a)
    Wp = pack(rng.integers(0, 1 << b, (n, k), dtype=np.uint8), b)
    for encoding in ("bipolar", "twos"):
        want = packed_matmul(Xp, Wp, encoding=encoding)
        for kernel in ("portable", "mma", "wgmma") + (("gemv",) if m <= 32 else ()):
            try:
                got = gb.packed_matmul_gpu(
                    Xp, Wp, encoding=encoding, kernel=kernel, out_dtype="int32"
                ).get()
                err = np.abs(got - want).max()
                print(f"W{b}A{a} {m}x{n}x{k} {encoding} {kernel}: max|err| = {err}")
            except Exception:
                print(f"W{b}A{a} {encoding} {kernel}: FAILED")
                traceback.print_exc()

EOF
cat "$OUT/smoke.txt"

status=0
# 2. Benchmarks (validation/suites/bitplane_gpu.py): report.md and results.json under $OUT.
timeout 200 "$PY" -m validation --suite bitplane --case gpu-bitplane-gemm --size medium \
    --out "$OUT" >"$OUT/bench.txt" 2>&1 || status=1
tail -n 60 "$OUT/bench.txt"
# 3. Correctness: bit-for-bit equality with numlib.bitplane for every kernel and path.
timeout 150 "$PY" -m pytest tests/gpu -m gpu -q -p no:cacheprovider -rf \
    >"$OUT/pytest-gpu.txt" 2>&1 || status=1
tail -n 25 "$OUT/pytest-gpu.txt"
exit "$status"
