"""LightningModule for DCDM training; checkpoints as safetensors, resumable.

Lightning's own checkpoints are pickles; these are safetensors files holding the
network, the Adam state (one tensor per moment and parameter) and, in the
metadata, the completed step count and the loss history. Resuming restores all
of it and the data stream continues after the samples already seen (see
:mod:`learned.dcdm.data`), so an interrupted run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from learned.dcdm.loss import LOSSES, dcdm_loss, energy_loss, unrolled_energy_loss
from learned.dcdm.network import DCDMConfig, DCDMNet
from learned.dcdm.pyramid import OperatorPyramid
from learned.dcdm.stencil import apply_stencil

__all__ = ["DCDMModule", "SafetensorsCheckpoint", "read_checkpoint"]

CHECKPOINT_FORMAT = "numlib.learned.dcdm-checkpoint"


class DCDMModule(pl.LightningModule):
    """Trains a :class:`DCDMNet` on one of the DCDM losses (:mod:`learned.dcdm.loss`).

    With ``loss="residual"`` a sample ``v`` of the data stream is the right-hand
    side; with ``loss="energy"`` or ``"unrolled"`` it is the solution ``x``, the
    network sees ``b = A x / ||A x||`` and the loss is the relative ``A``-norm error
    after one step or after ``unroll`` steps of the solver.

    Adam with a cosine learning-rate decay from ``lr`` to ``lr / 10`` over
    ``steps`` optimiser steps (the schedule is a function of the *total* step, so
    a resumed run follows the same curve).

    Parameters
    ----------
    config : DCDMConfig
        Network configuration.
    coefficients, geometry : torch.Tensor
        Stencils ``(ops, 1 + d, *grid)`` and geometry ``(ops, 2 + d, *grid)`` of the
        training operators (:class:`learned.dcdm.data.RitzDataModule`).
    lr : float
        Peak learning rate.
    steps : int
        Total optimiser steps of the run.
    seed : int
        Seeds the weight initialisation.
    loss : {"residual", "energy", "unrolled"}
        Training loss; "residual" is the paper's.
    unroll : int
        Solver steps of the "unrolled" loss.
    matrices : sequence of scipy.sparse matrices, optional
        The training operators themselves, for a ``galerkin=True`` network: the
        :class:`OperatorPyramid` of each is built once, and each batch is evaluated
        per operator.
    """

    def __init__(
        self,
        config: DCDMConfig,
        coefficients: torch.Tensor,
        geometry: torch.Tensor,
        *,
        lr: float,
        steps: int,
        seed: int,
        loss: str = "residual",
        unroll: int = 4,
        matrices: Sequence[Any] | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
            raise ValueError(f"unroll must be a positive int, got {unroll!r}")
        self.loss_name, self.unroll = loss, unroll
        torch.manual_seed(seed)
        self.net = DCDMNet.from_config(config)
        self.pyramids: list[OperatorPyramid] | None = None
        if config.galerkin:
            if matrices is None or len(matrices) != coefficients.shape[0]:
                raise ValueError("a galerkin=True network needs matrices, one per operator")
            grid = tuple(coefficients.shape[2:])
            depth = self.net.depth(grid)
            self.pyramids = [OperatorPyramid.from_matrix(A, grid, depth) for A in matrices]
        self.register_buffer("coefficients", coefficients, persistent=False)
        self.register_buffer("geometry", geometry, persistent=False)
        self.lr, self.steps = lr, steps
        self.start_step = 0
        self.elapsed_s = 0.0
        self.losses: list[float] = []  # mean loss of every completed block of LOG_EVERY steps
        self._block: list[float] = []
        self._optimizer_state: dict[str, Any] | None = None

    LOG_EVERY = 50

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        """One step of the loss on a batch ``(v, op)`` (``v`` is ``b`` or ``x``, see above)."""
        v, op = batch
        coefficients = self.coefficients[op]
        geometry = self.geometry[op]
        if self.loss_name == "residual":
            loss = dcdm_loss(self._direction(v, op, geometry), v, coefficients)
        else:
            Av = apply_stencil(coefficients, v)
            # Both scaled by 1/||A x||: the network is fed unit residuals, as in the solver.
            scale = Av.flatten(1).norm(dim=1).view(-1, *([1] * (v.ndim - 1)))
            x, b = v / scale, Av / scale
            if self.loss_name == "energy":
                loss = energy_loss(self._direction(b, op, geometry), x, b, coefficients)
            else:
                loss = unrolled_energy_loss(
                    lambda r: self._direction(r, op, geometry),
                    x,
                    b,
                    coefficients,
                    steps=self.unroll,
                )
        self.log("loss", loss, prog_bar=True)
        self._block.append(float(loss.detach()))
        if len(self._block) == self.LOG_EVERY:
            self.losses.append(sum(self._block) / len(self._block))
            self._block = []
        return loss

    def _direction(self, r: torch.Tensor, op: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """Apply the network to a batch whose samples belong to the operators ``op``."""
        if self.pyramids is None:
            return self.net(r, geometry)
        # A pyramid holds one operator, so a galerkin network sees one group at a time.
        operators = torch.unique(op).tolist()
        groups = [torch.nonzero(op == o).flatten() for o in operators]
        parts = [
            self.net(r[g], geometry[g], self.pyramids[o])
            for o, g in zip(operators, groups, strict=True)
        ]
        return torch.cat(parts)[torch.argsort(torch.cat(groups))]

    def configure_optimizers(self) -> Any:
        """Adam and the cosine schedule, offset by the steps already done."""
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)

        def factor(step: int) -> float:
            progress = min((self.start_step + step) / max(self.steps, 1), 1.0)
            return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_train_start(self) -> None:
        """Restore the Adam moments of a resumed run (the optimiser exists only now)."""
        if self._optimizer_state is not None:
            optimizer = self.optimizers().optimizer
            state = optimizer.state_dict()
            state["state"] = self._optimizer_state
            optimizer.load_state_dict(state)
            self._optimizer_state = None

    @property
    def completed_steps(self) -> int:
        """Optimiser steps done, including those before a resume."""
        return self.start_step + (self.trainer.global_step if self._trainer is not None else 0)

    def restore(self, path: str | Path) -> None:
        """Load a checkpoint written by :class:`SafetensorsCheckpoint` into this module."""
        tensors, meta = read_checkpoint(path)
        if meta["config"] != self.net.config.to_dict():
            raise ValueError(f"checkpoint {path} has config {meta['config']}, not this run's")
        self.net.load_state_dict(
            {k.removeprefix("net."): v for k, v in tensors.items() if k.startswith("net.")}
        )
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, name = key.split(".")
                state.setdefault(int(index), {})[name] = value
        self._optimizer_state = state
        self.start_step = int(meta["completed_steps"])
        self.elapsed_s = float(meta["elapsed_s"])
        self.losses = list(meta["losses"])


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training checkpoint: its tensors and decoded metadata."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a DCDM training checkpoint")
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return tensors, {k: json.loads(v) for k, v in meta.items() if k != "format"}


class SafetensorsCheckpoint(pl.Callback):
    """Write the module's full training state to ``path`` every ``every`` steps and at the end.

    Atomic (temporary file, then rename): a run killed while writing keeps the
    previous checkpoint.
    """

    def __init__(self, path: str | Path, *, every: int = 100) -> None:
        self.path = Path(path)
        self.every = every
        self._started = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the wall clock of this session."""
        self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Checkpoint every ``every`` completed steps."""
        assert isinstance(pl_module, DCDMModule)
        if pl_module.completed_steps % self.every == 0:
            self.save(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Checkpoint the final state."""
        assert isinstance(pl_module, DCDMModule)
        self.save(pl_module)

    def save(self, module: DCDMModule) -> None:
        """Write the checkpoint now."""
        tensors = {f"net.{k}": v.detach().contiguous() for k, v in module.net.state_dict().items()}
        optimizer = module.optimizers().optimizer
        for index, state in optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"adam.{index}.{name}"] = torch.as_tensor(value).detach().contiguous()
        elapsed = module.elapsed_s + time.perf_counter() - self._started
        meta = {
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(module.net.config.to_dict()),
            "completed_steps": json.dumps(module.completed_steps),
            "elapsed_s": json.dumps(elapsed),
            "losses": json.dumps(module.losses),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        save_file(tensors, str(partial), metadata=meta)
        partial.replace(self.path)
