"""CuPy, the current device and the compiled kernel modules of ``gpu/kernels``.

Nothing here imports cupy at import time; every function that needs it raises
:class:`RuntimeError` naming what is missing (cupy, a CUDA device) before any work.

Two modules are built per device, on first use:

``bitplane.cu``
    Through ``cupy.RawModule`` (NVRTC, for the device's own architecture).
``bitplane_sm90a.cu``
    Hopper's ``wgmma`` instructions exist only for the architecture-specific target
    ``sm_90a``, which ``RawModule`` does not select, so the file is compiled with NVRTC
    directly (``--gpu-architecture=sm_90a``) to a cubin, cached on disk by a hash of the
    source, and loaded with ``RawModule(path=...)``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

KERNEL_DIR: Path = Path(__file__).resolve().parent / "kernels"
KERNEL_PATH: Path = KERNEL_DIR / "bitplane.cu"
SM90A_KERNEL_PATH: Path = KERNEL_DIR / "bitplane_sm90a.cu"


def cupy_module() -> Any:
    """Import cupy and check for a CUDA device; raise RuntimeError naming what is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "gpu needs cupy, which is not installed (pip install 'numlib[gpu]', i.e. cupy-cuda13x)"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise RuntimeError(f"gpu needs a CUDA device; the CUDA runtime says: {exc}") from exc
    if count == 0:
        raise RuntimeError("gpu needs a CUDA device, but none is visible")
    return cupy


def compute_capability() -> int:
    """Return the compute capability of the current CUDA device as an int, e.g. 80 or 90.

    Raises
    ------
    RuntimeError
        If cupy is not installed or no CUDA device is visible.
    """
    cupy = cupy_module()
    return int(cupy.cuda.Device().compute_capability)


@functools.cache
def _portable_module(device_id: int) -> Any:
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.RawModule(code=KERNEL_PATH.read_text(encoding="utf-8"), options=("-std=c++17",))


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    path = Path(root) / "numlib" / "cubin"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: a private temporary folder still caches per process
        path = Path(tempfile.mkdtemp(prefix="numlib-cubin-"))
    return path


def _nvrtc_cubin(source: str, name: str, arch: str) -> bytes:
    from cupy.cuda import nvrtc

    prog = nvrtc.createProgram(source, name, (), ())
    try:
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", "-std=c++17"])
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(
                f"NVRTC could not compile {name} for {arch}:\n{nvrtc.getProgramLog(prog)}"
            ) from exc
        return bytes(nvrtc.getCUBIN(prog))
    finally:
        nvrtc.destroyProgram(prog)


@functools.cache
def _sm90a_module(device_id: int) -> Any:
    import cupy

    source = SM90A_KERNEL_PATH.read_text(encoding="utf-8")
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    cubin = _cache_dir() / f"bitplane_sm90a-{digest}.cubin"
    if not cubin.exists():
        data = _nvrtc_cubin(source, SM90A_KERNEL_PATH.name, "sm_90a")
        partial = cubin.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(cubin)  # atomic: a concurrent reader never sees half a file
    with cupy.cuda.Device(device_id):
        return cupy.RawModule(path=str(cubin))


def kernel(name: str) -> Any:
    """Return a compiled kernel of ``gpu/kernels`` for the current device.

    Names starting with ``bitplane_gemm_wgmma`` come from the sm_90a module, all others
    from ``bitplane.cu``.
    """
    import cupy

    device_id = int(cupy.cuda.Device().id)
    if name.startswith("bitplane_gemm_wgmma"):
        return _sm90a_module(device_id).get_function(name)
    return _portable_module(device_id).get_function(name)
