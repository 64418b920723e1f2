"""Checkpoint selection by solver iterations, the quantity the network exists to lower.

A falling training loss does not imply a better solver: trained on the paper's
residual loss, numlib's network lowered the loss while the solve on a 256² grid
went from ~70 iterations (its BPX start) to 643. So during training the network is
periodically *used*: :func:`dcdm_solve` runs on fixed validation problems and the
total iteration count decides which weights are kept. Step 0 (the initialisation)
is evaluated too, so the kept network is never worse than the start on this
metric -- if training never beats it, the kept network *is* the initialisation.

The validation problems are 2-D/3-D Poisson on a grid twice as fine per axis as
the training grid (so the metric also rewards generalising to finer grids),
without and with obstacles; the obstacle seed differs from the benchmark suite's
(:mod:`validation.suites.dcdm`), so the benchmark is not the selection set.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from learned.dcdm.network import DCDMNet
from learned.dcdm.solve import dcdm_solve
from solvers import problems
from solvers.problems.obstacles import poisson_obstacles
from solvers.problems.system import LinearSystem

__all__ = ["BestIterationsCheckpoint", "validation_iterations", "validation_problems"]

SELECTION_FORMAT = "numlib.learned.dcdm-selection"
VALIDATION_SEED = 4242
VALIDATION_RTOL = 1e-6


def validation_problems(dim: int, n: int) -> list[tuple[str, LinearSystem]]:
    """Return the named selection problems on an ``n^dim`` grid: the box and obstacles.

    Examples
    --------
    >>> [name for name, _ in validation_problems(2, 16)]
    ['poisson-16^2', 'obstacles-16^2']
    """
    box = problems.poisson2d(n) if dim == 2 else problems.poisson3d(n)
    obstacles = poisson_obstacles(n, dim, neumann=("x-", "y-"), rng=VALIDATION_SEED)
    return [(f"poisson-{n}^{dim}", box), (f"obstacles-{n}^{dim}", obstacles)]


def validation_iterations(
    net: DCDMNet, systems: list[tuple[str, LinearSystem]], *, rtol: float = VALIDATION_RTOL
) -> dict[str, int]:
    """Return the :func:`dcdm_solve` iteration count of ``net`` on each named system.

    A solve that does not converge within ``20 N`` iterations counts as that many, and
    its ConvergenceWarning is silenced (the count is the report).
    """
    counts = {}
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, system in systems:
                result = dcdm_solve(
                    system.A,
                    system.b,
                    net,
                    grid_shape=system.grid_shape,
                    rtol=rtol,
                    maxiter=20 * system.b.size,
                )
                counts[name] = int(result.iterations)
    finally:
        net.train(was_training)
    return counts


class BestIterationsCheckpoint(pl.Callback):
    """Evaluate the solver every ``every`` steps (and at step 0); keep the best weights.

    The best network so far is written to ``path`` (safetensors, atomically), with
    the step, the counts and the whole evaluation history in its metadata; a
    resumed run reads it back and carries on from there. Ties keep the earlier
    step.

    Parameters
    ----------
    path : str or Path
        File of the best weights.
    systems : list of (str, LinearSystem)
        Selection problems (:func:`validation_problems`).
    every : int
        Steps between evaluations.
    """

    def __init__(
        self, path: str | Path, systems: list[tuple[str, LinearSystem]], *, every: int = 100
    ) -> None:
        self.path = Path(path)
        self.systems = systems
        self.every = every
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with safe_open(str(self.path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != SELECTION_FORMAT:
            raise ValueError(f"{self.path} is not a DCDM selection file")
        self.history = json.loads(meta["history"])
        self.best = json.loads(meta["best"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluate the starting weights (step 0, or the resumed step if not yet seen)."""
        self._evaluate(pl_module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Evaluate every ``every`` completed steps."""
        if pl_module.completed_steps % self.every == 0:
            self._evaluate(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluate the final weights."""
        self._evaluate(pl_module)

    def _evaluate(self, module: Any) -> None:
        step = int(module.completed_steps)
        if any(entry["step"] == step for entry in self.history):
            return
        started = time.perf_counter()
        counts = validation_iterations(module.net, self.systems)
        entry = {"step": step, "iterations": counts, "total": sum(counts.values())}
        self.history.append(entry)
        print(
            f"step {step}: solver iterations {counts} ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        if self.best is None or entry["total"] < self.best["total"]:
            self.best = entry
            self._save(module.net)
        elif self.path.exists():
            self._save(None)

    def _save(self, net: DCDMNet | None) -> None:
        if net is None:
            with safe_open(str(self.path), framework="pt") as handle:
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        else:
            tensors = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        meta = {
            "format": SELECTION_FORMAT,
            "history": json.dumps(self.history),
            "best": json.dumps(self.best),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        save_file(tensors, str(partial), metadata=meta)
        partial.replace(self.path)

    def best_state(self) -> dict[str, torch.Tensor]:
        """Return the kept weights (a state dict for :class:`DCDMNet`)."""
        with safe_open(str(self.path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}

    def summary(self) -> dict[str, Any]:
        """Return the JSON-ready selection record: problems, rtol, best step, history."""
        return {
            "metric": "total dcdm_solve iterations to rtol "
            f"{VALIDATION_RTOL:g} on {[name for name, _ in self.systems]}",
            "best_step": None if self.best is None else self.best["step"],
            "best": self.best,
            "history": sorted(self.history, key=lambda e: e["step"]),
        }
