"""Benchmark suites; importing this package registers every case."""

from validation.suites import kron, krylov, recycle

__all__ = ["kron", "krylov", "recycle"]
