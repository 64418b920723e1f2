"""CuPy consumers of numlib; CUDA sources live under ``gpu/kernels``.

``gpu.bitplane``: exact bit-plane matrix products (``numlib.bitplane`` on CUDA) from
``gpu/kernels/bitplane.cu`` via ``cupy.RawModule`` (a portable ``__popc`` kernel, a
binary Tensor-Core MMA kernel for sm_80+, and a cuBLAS INT8 GEMM path).
Nothing here imports cupy at import time.
"""
