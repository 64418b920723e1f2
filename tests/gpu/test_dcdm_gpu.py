"""DCDM with the network on CUDA: the Galerkin pyramid and the network run on the device.

The CPU and GPU networks compute the same float32 directions up to rounding, so the
solver needs the same iterations (within one, as rounding may move the stopping step)
and meets the tolerance. Runs only with a CUDA build of torch (``gpu`` marker).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learned.dcdm import dcdm_solve, pretrained
from solvers.problems.obstacles import poisson_obstacles

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA build of torch"),
]


@pytest.mark.parametrize(("dim", "n"), [(2, 128), (3, 32)])
def test_gpu_network_solves_like_the_cpu_one(dim: int, n: int) -> None:
    system = poisson_obstacles(n, dim, neumann=("x-", "y+"), rng=4)
    cpu = dcdm_solve(system.A, system.b, pretrained(dim), rtol=1e-6)
    gpu = dcdm_solve(system.A, system.b, pretrained(dim).to("cuda"), rtol=1e-6)
    assert cpu.converged and gpu.converged
    assert gpu.info["fallback_steps"] == 0
    assert abs(gpu.iterations - cpu.iterations) <= 1
    residual = np.linalg.norm(system.b - system.A @ gpu.x)
    assert residual <= 1e-6 * np.linalg.norm(system.b)
