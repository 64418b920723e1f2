"""Benchmark suites; importing this package registers every case and suite plot."""

from validation.suites import (
    attention,
    bitplane,
    bitplane_gpu,
    completion,
    compress,
    dcdm,
    gp_pde,
    kron,
    krylov,
    lowrank,
    petsc,
    ptd,
    ptd_plot,
    recycle,
    sketch,
    sketch_plot,
)

__all__ = [
    "attention",
    "bitplane",
    "bitplane_gpu",
    "completion",
    "compress",
    "dcdm",
    "gp_pde",
    "kron",
    "krylov",
    "lowrank",
    "petsc",
    "ptd",
    "ptd_plot",
    "recycle",
    "sketch",
    "sketch_plot",
]
