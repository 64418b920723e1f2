"""CuPy consumers of numlib; CUDA sources live under ``gpu/kernels``.

Empty until the GPU issues land. Nothing here imports cupy at import time.
"""
