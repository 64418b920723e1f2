"""Benchmark suites; importing this package registers every case."""

from validation.suites import krylov

__all__ = ["krylov"]
