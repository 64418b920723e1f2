"""Benchmark suites; importing this package registers every case."""

from validation.suites import krylov, recycle

__all__ = ["krylov", "recycle"]
