"""Benchmark suites; importing this package registers every case."""

from validation.suites import (
    bitplane,
    completion,
    kron,
    krylov,
    lowrank,
    petsc,
    ptd,
    recycle,
    sketch,
)

__all__ = [
    "bitplane",
    "completion",
    "kron",
    "krylov",
    "lowrank",
    "petsc",
    "ptd",
    "recycle",
    "sketch",
]
