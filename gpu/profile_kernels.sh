#!/usr/bin/env bash
# Nsight Compute profile of the bit-plane kernels at the benchmark's shapes: where the time
# goes (speed of light, occupancy, memory, warp stall reasons), before optimising them.
#
# Usage:  bash gpu/profile_kernels.sh [WHEEL_DIR]      (WHEEL_DIR as for run_device_checks.sh)
#   OUT   where ncu.txt goes (default ./gpu-results)
# ncu reads hardware counters on Firecracker device machines, not on gVisor (see the device
# library's KINDS.md); without counters the report says so and nothing else fails.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/device_env.sh" "${1:-}"

cat >/tmp/numlib_profile_target.py <<'EOF'
# One call of each kernel at a benchmark shape (after a warm-up call that compiles).
import cupy

import gpu.bitplane as gb
from gpu.int8 import int8_operand, int8_product

rng = cupy.random.default_rng(0)


def planes(rows, k, bits):
    return gb.pack_gpu(rng.integers(0, 1 << bits, (rows, k)).astype(cupy.uint8), bits)


W1 = planes(4096, 4096, 1)
for m, kernel in ((4096, "wgmma"), (128, "wgmma"), (16, "gemv"), (1, "gemv")):
    X = planes(m, 4096, 1)
    for _ in range(2):
        gb.packed_matmul_gpu(X, W1, kernel=kernel, out_dtype="int32")
X8 = int8_operand(rng.integers(0, 256, (4096, 4096)).astype(cupy.uint8), 8)
for _ in range(2):
    int8_product(X8, X8)
cupy.cuda.Device().synchronize()
EOF

ncu --clock-control none --target-processes all \
    -k 'regex:bitplane_gemm_wgmma|bitplane_gemv|int8_rank_one' --launch-skip-before-match 0 \
    --section SpeedOfLight --section Occupancy --section LaunchStats \
    --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
    "$PY" /tmp/numlib_profile_target.py >"$OUT/ncu.txt" 2>&1
status=$?
grep -E "bitplane|int8_rank|Duration|Throughput|Achieved Occupancy|Registers|Stall|Warp Cycles|Eligible|Issued|L2 Hit|Mem Busy|ERR|==PROF==" \
    "$OUT/ncu.txt" | head -n 200
exit "$status"
