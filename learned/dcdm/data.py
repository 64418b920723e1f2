"""Training data for DCDM: right-hand sides from Ritz vectors of gallery operators.

Following Kaneda et al. (ICML 2023, Sec. 4), a sample is
``b = Σ_i c_i y_i / ||Σ_i c_i y_i||`` over the Ritz vectors ``y_i`` of one training
operator, with ``c_i`` standard normal and the lowest ``low_fraction`` of the
modes weighted by ``low_weight`` (the paper: the lowest ~55% of 10,000 modes, x9),
so that the network sees mostly the smooth residuals that CG is slow on. The
training operators are the Poisson matrices of
:func:`solvers.problems.obstacles.poisson_obstacles` on one grid: an empty
all-Dirichlet box plus domains with random obstacles and random closed walls.

Samples are drawn from a pool of ``pool`` indices, sample ``i`` from a generator
seeded by ``(seed, i)``: the data are a pure function of the seed, independent of
batching, worker processes and of where an interrupted run resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from learned.dcdm.ritz import RitzBasis, load_or_compute
from learned.dcdm.stencil import GridStencil
from numlib.validate import as_generator, check_positive_int
from solvers.problems.obstacles import WALLS, poisson_obstacles
from solvers.problems.system import LinearSystem

__all__ = ["RitzDataModule", "RitzDataset", "training_operators"]


def training_operators(dim: int, n: int, count: int, *, seed: int) -> list[LinearSystem]:
    """Build the training family: ``count`` Poisson operators on an ``n^dim`` grid.

    Operator 0 is the empty all-Dirichlet box (:func:`poisson2d`'s matrix); the
    others have 2 to 8 random obstacles and each wall closed with probability 1/2
    (at least one stays open), drawn from ``seed``.

    Examples
    --------
    >>> ops = training_operators(2, 16, 3, seed=0)
    >>> [op.grid_shape for op in ops], bool(ops[0].params["solid"].any())
    ([(16, 16), (16, 16), (16, 16)], False)
    """
    gen = as_generator(seed)
    systems = [poisson_obstacles(n, dim, obstacles=0, source=0.0)]
    walls = WALLS[: 2 * dim]
    for _ in range(count - 1):
        closed = [w for w in walls if gen.random() < 0.5]
        if len(closed) == len(walls):
            closed.pop(int(gen.integers(len(closed))))
        obstacles = int(gen.integers(2, 9))
        systems.append(
            poisson_obstacles(n, dim, obstacles=obstacles, neumann=closed, source=0.0, rng=gen)
        )
    return systems


class RitzDataset(Dataset):
    """Normalised right-hand sides from Ritz bases (see the module docstring).

    Item ``i`` is ``(b, op)``: ``b`` a float32 tensor of shape ``(1, *grid_shape)``
    and ``op`` the index of the operator it belongs to. ``start`` skips the first
    samples (for resuming), ``length`` items follow.
    """

    def __init__(
        self,
        bases: list[RitzBasis],
        grid_shape: tuple[int, ...],
        *,
        seed: int,
        length: int,
        pool: int = 20_000,
        start: int = 0,
        low_fraction: float = 0.55,
        low_weight: float = 9.0,
    ) -> None:
        self.bases = bases
        self.grid_shape = tuple(grid_shape)
        self.seed, self.length, self.pool, self.start = seed, length, pool, start
        self.low_fraction, self.low_weight = low_fraction, low_weight

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        gen = np.random.default_rng([self.seed, (self.start + index) % self.pool])
        op = int(gen.integers(len(self.bases)))
        basis = self.bases[op]
        m = basis.values.shape[0]
        weights = gen.standard_normal(m).astype(np.float32)
        weights[: math.ceil(self.low_fraction * m)] *= self.low_weight
        b = weights @ basis.vectors
        b /= np.linalg.norm(b)
        return torch.from_numpy(b.reshape(1, *self.grid_shape)), op


class RitzDataModule(pl.LightningDataModule):
    """Lightning DataModule: training operators, their Ritz bases, and the sample stream.

    Parameters
    ----------
    dim, n : int
        Grid dimension and nodes per axis of the training operators.
    operators : int
        Number of training operators (:func:`training_operators`).
    ritz_steps : int
        Lanczos steps per operator (Ritz vectors before dropping).
    data_dir : str or Path
        Where the Ritz bases are stored (``ritz-<dim>d-<n>-<i>.npz``); computed once,
        reused by later and resumed runs with the same configuration.
    batch_size, seed, pool
        Batch size, data seed, number of distinct samples.
    steps : int
        Optimiser steps the stream must feed.
    start_step : int
        Steps already done (resume): the stream starts after their samples.
    """

    def __init__(
        self,
        *,
        dim: int,
        n: int,
        operators: int,
        ritz_steps: int,
        data_dir: str | Path,
        batch_size: int,
        seed: int,
        steps: int,
        start_step: int = 0,
        pool: int = 20_000,
    ) -> None:
        super().__init__()
        self.dim, self.n = dim, check_positive_int(n, "n", minimum=4)
        self.operators = check_positive_int(operators, "operators")
        self.ritz_steps = check_positive_int(ritz_steps, "ritz_steps")
        self.data_dir = Path(data_dir)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed, self.steps, self.start_step, self.pool = seed, steps, start_step, pool
        self.systems = training_operators(dim, self.n, self.operators, seed=seed)
        stencils = [GridStencil.from_matrix(s.A, s.grid_shape) for s in self.systems]
        self.coefficients = torch.stack([s.to_tensor() for s in stencils])
        self.geometry = torch.stack(
            [torch.as_tensor(s.geometry(), dtype=torch.float32) for s in stencils]
        )
        self.bases: list[RitzBasis] = []

    def prepare_bases(self) -> None:
        """Compute (or load) the Ritz basis of every training operator, with progress."""
        if self.bases:
            return
        for i, system in enumerate(self.systems):
            started = time.perf_counter()
            active = ~system.params["solid"].ravel()
            # Start inside the fluid: A is block diagonal, so the Krylov space (and
            # every sample) then stays off the decoupled solid rows.
            start = system.A @ (
                active * np.random.default_rng([self.seed, i]).standard_normal(active.size)
            )
            key = {
                "dim": self.dim,
                "n": self.n,
                "op": i,
                "seed": self.seed,
                "steps": self.ritz_steps,
                "operators": self.operators,
            }
            path = self.data_dir / f"ritz-{self.dim}d-{self.n}-{i}.npz"
            basis = load_or_compute(path, system.A, self.ritz_steps, start=start, key=key, rng=i)
            self.bases.append(basis)
            print(
                f"ritz basis {i + 1}/{len(self.systems)}: {basis.values.size} vectors, "
                f"values [{basis.values[0]:.3g}, {basis.values[-1]:.3g}] "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )

    def setup(self, stage: str | None = None) -> None:
        """Load the Ritz bases (Lightning hook)."""
        self.prepare_bases()

    def train_dataloader(self) -> DataLoader:
        """Stream of the remaining ``steps - start_step`` batches, in a fixed order."""
        dataset = RitzDataset(
            self.bases,
            (self.n,) * self.dim,
            seed=self.seed,
            length=(self.steps - self.start_step) * self.batch_size,
            pool=self.pool,
            start=self.start_step * self.batch_size,
        )
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=0)
