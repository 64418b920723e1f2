"""A physics-informed neural network (PINN) baseline for the GP-HM problems.

A tanh MLP ``u_θ(x)`` trained with Adam on the collocation residual and the Dirichlet
data (Raissi, Perdikaris, Karniadakis 2019):

    L(θ) = mean_i (N(u_θ)(x_i) - f_i)² / mean(f²) + w_b · mean_j (u_θ(x_j) - g_j)²,

with derivatives by autograd, inputs rescaled to ``[-1, 1]`` per axis, and a wall-time
budget (the baseline is run for a bounded time, seeded, single-threaded). The GP-HM
paper reports PINN errors of order one on its high-frequency problems (spectral bias);
this module measures that claim on the same grids as :class:`solvers.gp_pde.GPPDESolver`.

Training can be checkpointed to a safetensors file and resumed, so a long run loses at
most one checkpoint interval when interrupted. A checkpoint holds the weights, Adam's
state and the batch generator's state, with the run's configuration as JSON metadata
(never pickle), so a resumed run takes exactly the steps an uninterrupted one would.

Importing this module imports torch.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from learned.optim_state import load_optimizer, optimizer_tensors
from numlib.validate import check_positive_real, check_tolerance
from solvers.gp_pde.problems import PDEOperator

__all__ = ["PINNResult", "train_pinn"]

CHECKPOINT_FORMAT = "numlib.learned.gp_pinn"
CHECKPOINT_VERSION = "2"  # 1 (no metadata): weights and step only, cannot resume exactly


@dataclass(frozen=True)
class PINNResult:
    """Outcome of :func:`train_pinn`.

    Attributes
    ----------
    model : torch.nn.Module
        The trained network (float64, inputs in original coordinates via :meth:`predict`).
    steps : int
        Adam steps taken in total (resumed ones included).
    seconds : float
        Wall time of this call.
    losses : numpy.ndarray
        Loss after every 100 steps of this call.
    """

    model: torch.nn.Module
    steps: int
    seconds: float
    losses: np.ndarray
    lower: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)

    def predict(self, axes: Sequence[np.ndarray]) -> np.ndarray:
        """Return ``u_θ`` on the tensor grid ``axes`` (evaluated in chunks, no grad)."""
        points = _grid_points(axes)
        out = []
        with torch.no_grad():
            for chunk in np.array_split(points, max(1, points.shape[0] // 65536)):
                x = torch.from_numpy(_scale(chunk, self.lower, self.upper))
                out.append(self.model(x).squeeze(-1).numpy())
        return np.concatenate(out).reshape(tuple(len(a) for a in axes))


def _grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _scale(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return 2.0 * (x - lower) / (upper - lower) - 1.0


def _mlp(dims: int, width: int, depth: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    size = dims
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width, dtype=torch.float64), torch.nn.Tanh()]
        size = width
    layers.append(torch.nn.Linear(size, 1, dtype=torch.float64))
    return torch.nn.Sequential(*layers)


def _apply_operator(
    operator: PDEOperator, model: torch.nn.Module, x: torch.Tensor, chain: torch.Tensor
) -> torch.Tensor:
    """``N(u_θ)`` at ``x`` (scaled inputs); ``chain[d]`` = d(scaled)/d(original) on axis d."""
    u = model(x).squeeze(-1)
    grad = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    out = torch.zeros_like(u)
    for c, alpha in operator.terms:
        order = sum(alpha)
        if order == 0:
            term = u
        elif order == 1:
            d = alpha.index(1)
            term = grad[:, d] * chain[d]
        else:
            dims = [d for d, a in enumerate(alpha) for _ in range(a)]
            second = torch.autograd.grad(grad[:, dims[0]].sum(), x, create_graph=True)[0]
            term = second[:, dims[1]] * chain[dims[0]] * chain[dims[1]]
        out = out + c * term
    if operator.cubic:
        out = out + operator.cubic * u**3
    return out


def train_pinn(
    operator: PDEOperator,
    axes: Sequence[np.ndarray],
    source: np.ndarray,
    boundary: np.ndarray,
    *,
    seconds: float = 60.0,
    max_steps: int = 100_000,
    width: int = 64,
    depth: int = 4,
    lr: float = 1e-3,
    boundary_weight: float = 100.0,
    rng: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    batch_size: int = 4096,
) -> PINNResult:
    """Train a PINN for ``N(u) = f`` with Dirichlet data ``g`` for a bounded wall time.

    Parameters
    ----------
    operator : PDEOperator
        The differential operator (same object the GP solver takes).
    axes : sequence of numpy.ndarray
        Collocation points per axis (the full grid is used, boundary included).
    source, boundary : numpy.ndarray, grid shape
        ``f`` at every point; ``g`` read at the boundary points.
    seconds : float
        Wall-time budget of this call.
    max_steps : int
        Total Adam step limit (resumed steps count).
    width, depth : int
        Hidden width and number of hidden layers.
    lr : float
        Adam learning rate.
    boundary_weight : float
        ``w_b``.
    rng : int
        Seed of the initialisation (``torch.manual_seed``).
    checkpoint : path, optional
        safetensors file: resumed from if it exists, written every ``checkpoint_every``
        steps and at the end. It holds the weights, Adam's state, the batch generator's
        state and the configuration (operator, grid and a digest of the data, width,
        depth, ``lr``, ``boundary_weight``, ``batch_size``), so resuming reproduces the
        uninterrupted run; ``seconds``, ``max_steps``, ``checkpoint_every`` and ``rng``
        (the initialisation the checkpoint replaces) may change.
    checkpoint_every : int
        Steps between checkpoints.
    batch_size : int
        Collocation points per step, drawn uniformly from the grid (seeded by ``rng``);
        the boundary points are all used every step.

    Returns
    -------
    PINNResult

    Raises
    ------
    TypeError
        If a count (``max_steps``, ``width``, ``depth``, ``checkpoint_every``,
        ``batch_size``, ``rng``) is not an int or a rate not a real number.
    ValueError
        For axes that are not 1-D with at least 2 strictly increasing finite points,
        data whose shape differs from the grid, NaN/Inf data, a non-positive budget,
        count or ``lr``, a negative ``boundary_weight``, or a checkpoint of another
        format or configuration.
    """
    for name, value in (
        ("max_steps", max_steps),
        ("width", width),
        ("depth", depth),
        ("checkpoint_every", checkpoint_every),
        ("batch_size", batch_size),
    ):
        _check_count(value, name)
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"rng must be an int, got {type(rng).__name__}")
    lr = check_positive_real(lr, "lr")
    boundary_weight = check_tolerance(boundary_weight, "boundary_weight")
    axes = [np.asarray(a, dtype=np.float64) for a in axes]
    if len(axes) != operator.ndim:
        raise ValueError(f"axes must have {operator.ndim} arrays, got {len(axes)}")
    for d, a in enumerate(axes):
        if a.ndim != 1 or a.size < 2 or not np.all(np.isfinite(a)) or np.any(np.diff(a) <= 0):
            raise ValueError(
                f"axes[{d}] must be 1-D with at least 2 strictly increasing finite points, "
                f"got {a if a.size <= 6 else f'shape {a.shape}'}"
            )
    shape = tuple(a.size for a in axes)
    for name, v in (("source", source), ("boundary", boundary)):
        if np.shape(v) != shape:
            raise ValueError(f"{name} must have the grid shape {shape}, got {np.shape(v)}")
    if not np.all(np.isfinite(source)):
        raise ValueError("source contains NaN or Inf")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    torch.manual_seed(rng)
    lower = np.array([a[0] for a in axes])
    upper = np.array([a[-1] for a in axes])
    points = _grid_points(axes)
    mask = np.zeros(shape, dtype=bool)
    for d in range(len(shape)):
        index = [slice(None)] * len(shape)
        index[d] = [0, -1]
        mask[tuple(index)] = True
    mask = mask.ravel()
    g = np.asarray(boundary, dtype=np.float64).ravel()[mask]
    if not np.all(np.isfinite(g)):
        raise ValueError("boundary contains NaN or Inf at boundary points")
    f = torch.from_numpy(np.asarray(source, dtype=np.float64).ravel())
    x_all = torch.from_numpy(_scale(points, lower, upper))
    generator = torch.Generator().manual_seed(rng)
    xb = torch.from_numpy(_scale(points[mask], lower, upper))
    gb = torch.from_numpy(g)
    chain = torch.from_numpy(2.0 / (upper - lower))
    f_scale = float(torch.mean(f * f)) or 1.0

    model = _mlp(len(axes), width, depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    config = {
        "operator": {
            "terms": [[float(c), [int(a) for a in alpha]] for c, alpha in operator.terms],
            "cubic": float(operator.cubic),
        },
        "grid": list(shape),
        "data": _digest(axes, f.numpy(), g),
        "width": int(width),
        "depth": int(depth),
        "lr": float(lr),
        "boundary_weight": float(boundary_weight),
        "batch_size": int(batch_size),
    }
    steps = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        steps = _load(checkpoint, config, model, optimizer, generator)
    losses = []
    start = time.perf_counter()
    while steps < max_steps and time.perf_counter() - start < seconds:
        optimizer.zero_grad()
        if batch_size < x_all.shape[0]:
            idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=generator)
            x, fb = x_all[idx].requires_grad_(True), f[idx]
        else:
            x, fb = x_all.clone().requires_grad_(True), f
        r = _apply_operator(operator, model, x, chain) - fb
        b = model(xb).squeeze(-1) - gb
        loss = torch.mean(r * r) / f_scale + boundary_weight * torch.mean(b * b)
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % 100 == 0:
            losses.append(float(loss.detach()))
        if checkpoint is not None and steps % checkpoint_every == 0:
            _save(checkpoint, config, steps, model, optimizer, generator)
    if checkpoint is not None:
        _save(checkpoint, config, steps, model, optimizer, generator)
    elapsed = time.perf_counter() - start
    return PINNResult(model, steps, elapsed, np.array(losses, dtype=np.float64), lower, upper)


def _check_count(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")


def _digest(axes: Sequence[np.ndarray], *arrays: np.ndarray) -> str:
    """SHA-256 of the grid and data, so a checkpoint is not resumed on other data."""
    h = hashlib.sha256()
    for a in (*axes, *arrays):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


# Checkpoint keys besides the model's own: the step count, Adam's per-parameter state
# ("__adam__.<param index>.<name>") and the batch generator's state.
_STEPS, _ADAM, _GENERATOR = "__steps__", "__adam__.", "__generator__"


def _save(
    path: str | os.PathLike,
    config: dict,
    steps: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state[_STEPS] = torch.tensor([steps], dtype=torch.int64)
    state.update(optimizer_tensors(optimizer, _ADAM))
    state[_GENERATOR] = generator.get_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": json.dumps(config, sort_keys=True),
    }
    tmp = f"{os.fspath(path)}.tmp"
    save_file(state, tmp, metadata=meta)
    os.replace(tmp, path)  # atomic: an interrupted write never leaves a broken checkpoint


def _load(
    path: str | os.PathLike,
    config: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> int:
    """Restore a checkpoint of this configuration into the objects; return its step."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} is not a train_pinn checkpoint of version "
            f"{CHECKPOINT_VERSION} (format {meta.get('format')!r}, version "
            f"{meta.get('version')!r}; files without optimizer state cannot be resumed "
            "exactly): delete it or pass another checkpoint path"
        )
    saved = json.loads(meta["config"])
    wanted = json.loads(json.dumps(config, sort_keys=True))
    if saved != wanted:
        changed = sorted(k for k in wanted.keys() | saved.keys() if saved.get(k) != wanted.get(k))
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} was written with another configuration "
            f"(differs in {', '.join(changed)}): use a new checkpoint path"
        )
    try:
        steps = int(state.pop(_STEPS).item())
        generator.set_state(state.pop(_GENERATOR))
        load_optimizer(optimizer, state, _ADAM)  # lr and the rest: the checked config's
        model.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is damaged: {exc}") from exc
    return steps
