"""Benchmark suites; importing this package registers every case."""

from validation.suites import bitplane, kron, krylov, recycle

__all__ = ["bitplane", "kron", "krylov", "recycle"]
