"""The DCDM iteration with a safeguard that makes it converge on every SPD system.

Kaneda et al. (ICML 2023), Algorithm 1: ``q = f(r/||r||)``; ``A``-orthogonalise ``q``
against the last ``k`` search directions (``k = 2`` in the paper); exact line search
``alpha = p^T r / p^T A p``. With exact line searches the residual is orthogonal to the
last ``k`` directions, so every step lowers the ``A``-norm of the error by
``(p^T r)² / (p^T A p)`` -- but a network direction may be useless (nearly
orthogonal to ``r``, or nearly inside the span of the previous directions), and
the paper's method has no convergence guarantee.

The safeguard here has two layers.

1. **Per step.** A network direction is rejected, and replaced by the flexible-PCG
   direction ``z = M r`` (``M`` the caller's preconditioner, else Jacobi) put
   through the same orthogonalisation, if its output is not finite, if it is not a
   descent direction (``|cos(p, r)| < descent_tol``), or if ``A``-conjugacy is lost
   (``||p||_A < conjugacy_tol ||q||_A``: the orthogonalisation cancelled almost all
   of ``q``, so ``p`` is rounding noise).
2. **Overall.** While the network is in use the best residual must halve at least
   every ``w = min(stall_window, N)`` iterations; otherwise the network is switched
   off and the solve continues as PCG with ``M`` from the current iterate.

Hence either the residual halves every ``w`` iterations, or the
iteration becomes PCG with an SPD preconditioner on an SPD matrix: in both cases
it converges (in exact arithmetic; in floating point the true residual is
recomputed before ``converged`` is reported). A trained network is expected never
to trigger layer 2; ``info`` reports how often each layer acted.

``smoothing=nu`` (an extension, not in the paper) wraps the network in ``nu`` damped
Jacobi steps with the true operator before and after it, as a multigrid cycle wraps its
coarse-grid correction: ``e = S^nu r``, ``e += f(r - A e) / s``, ``nu`` more steps,
with ``s = max diag(A) / 2d`` bringing the network's grid-unit output to ``A``'s
scale. The network never sees closed walls and obstacles exactly (a convolution
cannot multiply its features by the stencil it reads); the smoother does, and the
wrapped direction stays a symmetric operator when the network is one.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from learned.dcdm.network import JACOBI_WEIGHT, DCDMNet
from learned.dcdm.pyramid import OperatorPyramid
from learned.dcdm.stencil import GridStencil
from numlib.linop import as_matvec
from numlib.result import SolveResult
from numlib.validate import check_positive_int, check_tolerance
from solvers.state import prepare

__all__ = ["dcdm_solve"]


def dcdm_solve(
    A: Any,
    b: np.ndarray,
    model: DCDMNet,
    *,
    grid_shape: tuple[int, ...] | None = None,
    x0: np.ndarray | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    k: int = 2,
    M: Any = None,
    descent_tol: float = 1e-4,
    conjugacy_tol: float = 1e-3,
    stall_window: int = 100,
    smoothing: int = 0,
    callback: Callable[[np.ndarray], None] | None = None,
) -> SolveResult:
    """Solve ``A x = b`` (``A`` SPD) by the deep conjugate-direction method.

    Each iteration applies the network once and ``A`` once (``A q``; ``A p`` follows
    from the stored ``A p_j`` of the window, and the residual is updated by
    recurrence and recomputed before convergence is declared). See the module
    docstring for the safeguard, which guarantees convergence on every symmetric
    positive definite system whatever the network's weights.

    Parameters
    ----------
    A : numpy array, scipy.sparse matrix or LinearOperator, shape (N, N)
        Symmetric positive definite. A sparse nearest-neighbour stencil on
        ``grid_shape`` is shown to the network (:meth:`GridStencil.geometry`), which
        masks decoupled solid nodes out of its output; any other operator is shown
        as the Dirichlet box. A ``galerkin=True`` network also reads the Galerkin
        pyramid of ``A`` (any sparse or dense matrix; the box's for a
        LinearOperator), built once per call (``info["pyramid_s"]``).
    b : numpy.ndarray, shape (N,)
        Right-hand side, float.
    model : DCDMNet
        The network (e.g. :func:`learned.dcdm.pretrained`); evaluated under
        ``torch.no_grad`` in its own dtype and on its own device.
    grid_shape : tuple of int, optional
        Grid of the unknowns (C order), of the model's dimension. Default: the
        square (2-D model) or cube (3-D model) with ``N`` nodes.
    x0 : numpy.ndarray, shape (N,), optional
        Starting guess (default zeros). Not modified.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)`` (true residual).
    maxiter : int, optional
        Iteration limit, default ``10 N``.
    k : int, default 2
        Number of previous directions each new one is ``A``-orthogonalised against
        (the paper's default is 2).
    M : array, scipy.sparse matrix or LinearOperator, optional
        SPD preconditioner of the fallback steps; default Jacobi (``diag(A)^{-1}``),
        or the identity for a ``LinearOperator`` without entries.
    descent_tol, conjugacy_tol : float
        Thresholds of the per-step safeguard (module docstring), in ``[0, 1)``.
    stall_window : int, default 100
        Iterations within which the network must halve the best residual (at most
        ``N``, the iterations in which CG would terminate). CG's residual norm is not
        monotone: with the multigrid-initialised network on the 2-D obstacle problems
        it first halves after 56 (256²) and 89 (512²) iterations, then converges in
        120 and 187, so a window of 20 switched a working network off.
    smoothing : int, default 0
        Damped-Jacobi steps with ``A`` before and after each network evaluation
        (module docstring); 0 is the paper's method. Each step costs one product with
        ``A``; ``A`` must be a matrix (its diagonal is read).
    callback : callable, optional
        Called as ``callback(xk)`` after every iteration with the live iterate.

    Returns
    -------
    SolveResult
        ``info`` holds ``network_steps``, ``fallback_steps``, ``rejected`` (counts
        by reason: ``"non-finite"``, ``"non-descent"``, ``"conjugacy"``),
        ``network_disabled_at`` (iteration at which layer 2 switched the network
        off, or None), ``network_time_s``, ``pyramid_s`` (building the Galerkin
        operators of a ``galerkin=True`` model; 0 otherwise), ``true_residual_norm``,
        ``tolerance``.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`DCDMNet`, ``b`` not a numpy array, or any
        argument has the wrong type.
    ValueError
        If ``A`` is not square or does not match ``b``; ``b``, ``x0`` or ``A`` hold
        NaN/Inf or ``model`` has non-finite weights; ``grid_shape`` does not match
        ``N`` or the model's dimension; a tolerance or ``k`` is out of range; or
        ``diag(A)`` has a non-positive entry (``A`` is not SPD).

    Warns
    -----
    ConvergenceWarning
        If the tolerance was not met within ``maxiter`` (``converged=False``).

    References
    ----------
    .. [1] A. Kaneda, O. Akar, J. Chen, V. A. T. Kala, D. Hyde, J. Teran, "A Deep
       Conjugate Direction Method for Iteratively Solving Linear Systems",
       ICML 2023, Algorithm 1.
    .. [2] Y. Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22 (2000).

    Examples
    --------
    >>> from learned.dcdm import pretrained
    >>> from solvers.problems import poisson2d
    >>> system = poisson2d(64)
    >>> result = dcdm_solve(system.A, system.b, pretrained(2), rtol=1e-6)
    >>> result.converged, result.iterations == result.residual_norms.size - 1
    (True, True)
    """
    if not isinstance(model, DCDMNet):
        raise TypeError(f"model must be a DCDMNet, got {type(model).__name__}")
    if not isinstance(b, np.ndarray):
        raise TypeError(f"b must be a numpy array, got {type(b).__name__}")
    k = check_positive_int(k, "k")
    stall_window = check_positive_int(stall_window, "stall_window")
    smoothing = check_positive_int(smoothing, "smoothing", minimum=0)
    for value, name in ((descent_tol, "descent_tol"), (conjugacy_tol, "conjugacy_tol")):
        if check_tolerance(value, name) >= 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    state = prepare(A, b, x0, rtol, atol, maxiter, None, callback)
    n = state.b.shape[0]
    shape = _grid_shape(grid_shape, n, model.config.dim)
    stall_window = min(stall_window, n)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise ValueError("model has non-finite weights")
    precondition = _fallback_preconditioner(A, M, n)
    started = time.perf_counter()
    pyramid = _pyramid(A, shape, model)
    pyramid_s = time.perf_counter() - started
    network = _NetworkDirection(model, shape, _geometry(A, shape), pyramid)
    direction: Callable[[np.ndarray], np.ndarray] = network
    if smoothing:
        direction = _Smoothed(network, state.matvec, _diagonal(A), smoothing, len(shape))

    x, matvec = state.x, state.matvec
    r, residual_norm = state.residual()
    history = [residual_norm]
    window: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=k)
    counts = {"non-finite": 0, "non-descent": 0, "conjugacy": 0}
    network_steps = fallback_steps = iterations = 0
    disabled_at: int | None = None
    best, best_at = residual_norm, 0
    breakdown = None
    if state.b_norm == 0.0 and x0 is None:
        info = _info(0, 0, counts, None, 0.0, pyramid_s, k)
        return state.finish("dcdm", 0, [0.0], true_norm=0.0, **info)

    while residual_norm > state.tolerance and iterations < state.maxiter:
        step = None
        if disabled_at is None:
            q = direction(r / residual_norm)
            step, reason = _orthogonalise(q, matvec(q), window, r, descent_tol, conjugacy_tol)
            if step is None:
                counts[reason] += 1
            else:
                network_steps += 1
        if step is None:
            z = precondition(r)
            step, reason = _orthogonalise(z, matvec(z), window, r, 0.0, 0.0)
            if step is None:
                breakdown = f"the fallback direction failed ({reason}): A or M is not SPD"
                break
            fallback_steps += 1
        p, Ap, curvature = step
        alpha = float(p @ r) / curvature
        x += alpha * p
        r -= alpha * Ap
        iterations += 1
        window.append(step)
        residual_norm = float(np.linalg.norm(r))
        history.append(residual_norm)
        if callback is not None:
            callback(x)
        if residual_norm <= state.tolerance:
            # Trust the recurrence only after checking it; a drifted residual
            # restarts the orthogonalisation from the true one.
            r, residual_norm = state.residual()
            if residual_norm > state.tolerance:
                window.clear()
        if residual_norm < 0.5 * best:
            best, best_at = residual_norm, iterations
        elif disabled_at is None and iterations - best_at >= stall_window:
            disabled_at = iterations
            window.clear()  # from here on: PCG with the fallback preconditioner
    info = _info(network_steps, fallback_steps, counts, disabled_at, network.seconds, pyramid_s, k)
    return state.finish("dcdm", iterations, history, breakdown, **info)


def _info(
    network_steps: int,
    fallback_steps: int,
    counts: dict[str, int],
    disabled_at: int | None,
    seconds: float,
    pyramid_s: float,
    k: int,
) -> dict[str, Any]:
    return {
        "network_steps": network_steps,
        "fallback_steps": fallback_steps,
        "rejected": dict(counts),
        "network_disabled_at": disabled_at,
        "network_time_s": seconds,
        "pyramid_s": pyramid_s,
        "k": k,
    }


def _orthogonalise(
    q: np.ndarray,
    Aq: np.ndarray,
    window: deque[tuple[np.ndarray, np.ndarray, float]],
    r: np.ndarray,
    descent_tol: float,
    conjugacy_tol: float,
) -> tuple[tuple[np.ndarray, np.ndarray, float] | None, str]:
    """A-orthogonalise ``q`` against the window; return ``((p, A p, p^T A p), "")`` or a reason."""
    if not (np.isfinite(q).all() and np.isfinite(Aq).all()):
        return None, "non-finite"
    q_energy = float(q @ Aq)
    p, Ap = q.copy(), Aq.copy()
    # Modified Gram-Schmidt in the A-inner product; A p follows from the stored
    # A p_j, which saves a second operator application per iteration.
    for p_j, Ap_j, curvature_j in window:
        c = float(p @ Ap_j) / curvature_j
        p -= c * p_j
        Ap -= c * Ap_j
    curvature = float(p @ Ap)
    if not curvature > 0.0 or not q_energy > 0.0:
        return None, "conjugacy" if q_energy > 0.0 else "non-descent"
    if curvature < conjugacy_tol**2 * q_energy:
        return None, "conjugacy"
    if abs(float(p @ r)) <= descent_tol * float(np.linalg.norm(p)) * float(np.linalg.norm(r)):
        return None, "non-descent"
    return (p, Ap, curvature), ""


class _NetworkDirection:
    """``r -> f(r)`` on the grid, as a float64 numpy vector; timed."""

    def __init__(
        self,
        model: DCDMNet,
        shape: tuple[int, ...],
        geometry: np.ndarray,
        pyramid: OperatorPyramid | None,
    ) -> None:
        parameter = next(model.parameters())
        self.model, self.shape, self.pyramid = model, shape, pyramid
        self.dtype, self.device = parameter.dtype, parameter.device
        self.geometry = torch.as_tensor(geometry[None], dtype=self.dtype).to(self.device)
        self.seconds = 0.0

    def __call__(self, r: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        with torch.no_grad():
            t = torch.as_tensor(r.reshape(1, 1, *self.shape), dtype=self.dtype).to(self.device)
            q = self.model(t, self.geometry, self.pyramid).to("cpu", torch.float64).numpy().ravel()
        self.seconds += time.perf_counter() - started
        return q


class _Smoothed:
    """``r -> S^nu-wrapped network direction`` (``smoothing=nu``; module docstring)."""

    def __init__(
        self,
        network: Callable[[np.ndarray], np.ndarray],
        matvec: Callable[[np.ndarray], np.ndarray],
        diagonal: np.ndarray,
        steps: int,
        dim: int,
    ) -> None:
        self.network, self.matvec, self.steps = network, matvec, steps
        # The grid network's damping for the box, applied with the true diagonal.
        self.jacobi = JACOBI_WEIGHT[dim] / diagonal
        self.scale = float(diagonal.max()) / (2 * dim)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        e = np.zeros_like(r)
        residual = r
        for _ in range(self.steps):
            e += self.jacobi * residual
            residual = r - self.matvec(e)
        e += self.network(residual) / self.scale
        for _ in range(self.steps):
            residual = r - self.matvec(e)
            e += self.jacobi * residual
        return e


def _diagonal(A: Any) -> np.ndarray:
    if sp.issparse(A):
        diagonal = np.asarray(A.diagonal(), dtype=np.float64)
    elif isinstance(A, np.ndarray):
        diagonal = np.diag(A).astype(np.float64)
    else:
        raise TypeError("smoothing needs the diagonal of A: give A as a matrix")
    if not (diagonal > 0).all():
        raise ValueError("A has a non-positive diagonal entry, so it is not positive definite")
    return diagonal


def _grid_shape(grid_shape: Any, n: int, dim: int) -> tuple[int, ...]:
    if grid_shape is None:
        side = round(n ** (1.0 / dim))
        if side**dim != n:
            raise ValueError(
                f"b has length {n}, which is not a {'square' if dim == 2 else 'cube'}; "
                f"pass grid_shape for the {dim}-D model"
            )
        return (side,) * dim
    if not isinstance(grid_shape, tuple | list) or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in grid_shape
    ):
        raise TypeError(f"grid_shape must be a tuple of positive ints, got {grid_shape!r}")
    shape = tuple(int(s) for s in grid_shape)
    if len(shape) != dim:
        raise ValueError(f"grid_shape {shape} does not match the model's dimension {dim}")
    if math.prod(shape) != n:
        raise ValueError(f"grid_shape {shape} has {math.prod(shape)} nodes, but b has length {n}")
    return shape


def _geometry(A: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Describe ``A`` to the network: its stencil when ``A`` is a sparse grid stencil.

    Any other operator (dense, a general sparse matrix, a LinearOperator) is shown
    to the network as the constant-coefficient Dirichlet box.
    """
    if sp.issparse(A):
        try:
            return GridStencil.from_matrix(A, shape).geometry()
        except ValueError:
            pass
    return GridStencil.box_geometry(shape)


def _pyramid(A: Any, shape: tuple[int, ...], model: DCDMNet) -> OperatorPyramid | None:
    """Build the Galerkin pyramid a ``galerkin=True`` model reads (of the box without entries)."""
    if not model.config.galerkin:
        return None
    parameter = next(model.parameters())
    depth, kind = model.depth(shape), {"dtype": parameter.dtype, "device": parameter.device}
    if sp.issparse(A) or isinstance(A, np.ndarray):
        return OperatorPyramid.from_matrix(A, shape, depth, **kind)
    return OperatorPyramid.box(shape, depth, **kind)


def _fallback_preconditioner(A: Any, M: Any, n: int) -> Callable[[np.ndarray], np.ndarray]:
    if M is not None:
        return as_matvec(M, "M", size=n)
    if not (sp.issparse(A) or isinstance(A, np.ndarray)):
        return lambda r: r.copy()
    inverse = 1.0 / _diagonal(A)
    return lambda r: inverse * r
