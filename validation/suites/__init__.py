"""Benchmark suites; importing this package registers every case."""

from validation.suites import bitplane, kron, krylov, ptd, recycle, sketch

__all__ = ["bitplane", "kron", "krylov", "ptd", "recycle", "sketch"]
