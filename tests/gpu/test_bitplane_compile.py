"""Compile-only checks of gpu/kernels/bitplane.cu with nvcc (no GPU needed).

Also checks, without a GPU, that importing ``gpu.bitplane`` does not import cupy and
that the precision dispatch rule is what the module documents.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpu.bitplane import KERNEL_PATH, SM90A_KERNEL_PATH, auto_kernel, recommended_path

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit compiler) is not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_to_cubin(arch: str, tmp_path: Path) -> None:
    assert NVCC is not None
    cubin = tmp_path / f"bitplane_{arch}.cubin"
    proc = subprocess.run(
        [NVCC, "-std=c++17", f"-arch={arch}", "-cubin", "-o", str(cubin), str(KERNEL_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert cubin.stat().st_size > 0
    data = cubin.read_bytes()
    for name in ("popc_i64", "popc_i32", "mma_i64", "mma_i32"):
        assert b"bitplane_gemm_" + name.encode() in data
    gemv = [f"bitplane_gemv{rows}_{out}".encode() for rows in (4, 16, 32) for out in ("i32", "i64")]
    for name in (b"bitplane_pack", b"int8_rank_one", *gemv):
        assert name in data


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit compiler) is not on PATH")
def test_wgmma_kernel_compiles_for_sm90a_without_serialisation(tmp_path: Path) -> None:
    """The Hopper kernel builds for sm_90a, emits the binary wgmma, and ptxas keeps it async."""
    assert NVCC is not None
    ptx = tmp_path / "bitplane_sm90a.ptx"
    cubin = tmp_path / "bitplane_sm90a.cubin"
    base = [NVCC, "-std=c++17", "-arch=sm_90a"]
    proc = subprocess.run(
        [*base, "-ptx", "-o", str(ptx), str(SM90A_KERNEL_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = ptx.read_text()
    assert "wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc" in text
    proc = subprocess.run(
        [*base, "-cubin", "-Xptxas", "-v", "-o", str(cubin), str(SM90A_KERNEL_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # ptxas warns when it has to serialise wgmma (e.g. accumulators spilled or moved).
    assert "serialized" not in proc.stderr.lower(), proc.stderr
    spills = [line for line in proc.stderr.splitlines() if "spill stores" in line]
    assert len(spills) == 2 and all(" 0 bytes spill stores" in line for line in spills), spills
    data = cubin.read_bytes()
    assert b"bitplane_gemm_wgmma_i32" in data and b"bitplane_gemm_wgmma_i64" in data


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit compiler) is not on PATH")
def test_mma_instruction_is_emitted_for_sm80(tmp_path: Path) -> None:
    assert NVCC is not None
    ptx = tmp_path / "bitplane.ptx"
    proc = subprocess.run(
        [NVCC, "-std=c++17", "-arch=sm_80", "-ptx", "-o", str(ptx), str(KERNEL_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc" in ptx.read_text()


def test_import_does_not_import_cupy() -> None:
    code = "import sys, gpu.bitplane; print('cupy' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_recommended_path() -> None:
    """Bit-serial while a*b binary GEMMs beat one INT8 GEMM: a*b < 8 on Ampere, <= 4 on Hopper."""
    assert recommended_path(8, 8, 75) == "portable"
    assert recommended_path(1, 7, 80) == "mma"
    assert recommended_path(2, 4, 86) == "int8"
    assert recommended_path(2, 2, 90) == "wgmma"
    assert recommended_path(1, 4, 90) == "wgmma"
    assert recommended_path(1, 5, 90) == "int8"
    assert recommended_path(4, 1, 100) == "mma"
    assert recommended_path(8, 8, 100) == "int8"
    with pytest.raises(ValueError, match="bits_x must be >= 1"):
        recommended_path(0, 1, 80)
    with pytest.raises(ValueError, match=r"bits_w must be in 1\.\.8"):
        recommended_path(1, 9, 80)


@pytest.mark.parametrize("bad", [True, 2.0, "2"])
def test_widths_are_checked_by_numlib_check_bits(bad: object) -> None:
    """numlib.bitplane.check_bits: True is not a width, and a non-integer is a TypeError."""
    with pytest.raises(TypeError, match="bits_x must be an integer"):
        recommended_path(bad, 1, 80)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bits_w must be an integer"):
        auto_kernel(1, 64, 1, bad, 90)  # type: ignore[arg-type]


def test_missing_cupy_or_device_is_a_runtime_error() -> None:
    from gpu import bitplane

    try:
        import cupy

        has_device = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_device = False
    if has_device:
        pytest.skip("a CUDA device is present; the error path is not reachable")
    import numpy as np

    from numlib.bitplane import pack

    P = pack(np.zeros((2, 3), dtype=np.uint8), 1)
    with pytest.raises(RuntimeError, match=r"cupy|CUDA device"):
        bitplane.packed_matmul_gpu(P, P)
    with pytest.raises(RuntimeError, match=r"cupy|CUDA device"):
        bitplane.int8_matmul_gpu(np.zeros((2, 4), np.int8), np.zeros((2, 4), np.int8))
