"""Benchmark suites; importing this package registers every case."""

from validation.suites import (
    bitplane,
    completion,
    gp_pde,
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
    "gp_pde",
    "kron",
    "krylov",
    "lowrank",
    "petsc",
    "ptd",
    "recycle",
    "sketch",
]
