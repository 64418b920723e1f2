"""The DCDM training losses: the paper's residual loss and numlib's energy-norm loss.

Both are unsupervised in the sense that they need no linear solves, both are
invariant to the scale of the network output ``q``, and both are minimised by the
exact line search along ``q`` -- they differ in the norm in which they measure
what that one step leaves.

``"residual"`` (Kaneda et al., ICML 2023): ``||b - alpha A q||²`` for a unit ``b``.
The 2-norm of the residual weights an error component of eigenvalue ``λ`` by
``λ²``: it is dominated by the high frequencies, which any smoother already
removes, and hardly sees the smooth error that makes CG slow. Trained on it,
numlib's multilevel network got *worse* as a search-direction generator than
its BPX initialisation (see the README's DCDM section).

``"energy"`` (numlib's choice): sample the *solution* ``x`` and set ``b = A x``.
The step ``alpha q`` then leaves the relative ``A``-norm error

    ||x - alpha q||_A² / ||x||_A² = 1 - (q^T b)² / ((q^T A q)(x^T b)),

which is exactly the quantity a conjugate-direction step reduces, lies in
``[0, 1]`` (0 iff ``q`` is a multiple of ``x = A^{-1} b``, 1 iff ``q`` is no
descent direction at all), is invariant to the scales of ``q`` and of ``x`` and
weights the error component of eigenvalue ``λ`` by ``λ``, one power less than the
residual loss: the smooth modes count.

``"unrolled"`` (numlib's, the default for new models): the same relative energy
error, but after ``steps`` iterations of the DCDM solver itself from ``x_0 = 0``
(network on the normalised residual, ``A``-orthogonalisation against the last
``k`` directions, exact line search), differentiated through all of them. A
one-step loss only asks that ``f(b)`` point towards ``A^{-1} b`` for the training
right-hand sides; the solver applies ``f`` to the residuals *it* leaves behind,
whose smooth, hard part is what decides the iteration count. Unrolling puts
exactly those residuals in front of the network during training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from learned.dcdm.stencil import apply_stencil

__all__ = ["LOSSES", "dcdm_loss", "energy_loss", "unrolled_energy_loss"]

LOSSES = ("residual", "energy", "unrolled")
"""Names of the training losses (``--loss`` of ``python -m learned.dcdm.train``)."""


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(dim=tuple(range(1, u.ndim)), keepdim=True)


def dcdm_loss(q: torch.Tensor, b: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||b - A q (q^T b)/(q^T A q)||²`` (the paper's loss).

    ``x = q (q^T b)/(q^T A q)`` is the exact line-search minimiser of the ``A``-norm
    error along ``q``, so the loss is the squared residual after one step of the
    DCDM iteration from zero: it needs no solutions, only ``A``, and it is
    invariant to the scale of ``q`` (``loss(c q) == loss(q)`` for every ``c != 0``),
    so the network only has to learn ``A^{-1}`` up to a constant (Kaneda et al.,
    ICML 2023). It is 0 exactly when ``q`` is a nonzero multiple of ``A^{-1} b``.

    Parameters
    ----------
    q : torch.Tensor, shape (B, 1, *grid)
        Network outputs.
    b : torch.Tensor, shape (B, 1, *grid)
        Right-hand sides.
    coefficients : torch.Tensor, shape (B, 1 + d, *grid) or (1 + d, *grid)
        Stencils of each sample's ``A`` (:meth:`GridStencil.to_tensor`).

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable in ``q``.

    Examples
    --------
    >>> from learned.dcdm.stencil import GridStencil
    >>> from solvers.problems import poisson2d
    >>> coeffs = GridStencil.from_matrix(poisson2d(6).A, (6, 6)).to_tensor(torch.float64)
    >>> b = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    >>> q = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    >>> bool(torch.isclose(dcdm_loss(-3.0 * q, b, coeffs), dcdm_loss(q, b, coeffs)))
    True
    """
    Aq = apply_stencil(coefficients, q)
    alpha = _dot(q, b) / _dot(q, Aq)
    return ((b - alpha * Aq) ** 2).sum(dim=tuple(range(1, q.ndim))).mean()


def energy_loss(
    q: torch.Tensor, x: torch.Tensor, b: torch.Tensor, coefficients: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of ``1 - (q^T b)² / ((q^T A q)(x^T b))`` with ``b = A x``.

    The relative ``A``-norm error ``min_a ||x - alpha q||_A² / ||x||_A²`` left by the
    exact line search along ``q`` (module docstring): in ``[0, 1]``, invariant to
    the scale of ``q`` and of ``(x, b)``, and 0 exactly when ``q`` is a nonzero
    multiple of ``x``. The identity is Pythagoras in the ``A`` inner product, so
    it holds for every SPD ``A``; the caller guarantees ``b = A x``.

    Parameters
    ----------
    q : torch.Tensor, shape (B, 1, *grid)
        Network outputs.
    x : torch.Tensor, shape (B, 1, *grid)
        Solutions (nonzero).
    b : torch.Tensor, shape (B, 1, *grid)
        ``A x``, the right-hand sides the network saw.
    coefficients : torch.Tensor, shape (B, 1 + d, *grid) or (1 + d, *grid)
        Stencils of each sample's ``A`` (:meth:`GridStencil.to_tensor`).

    Returns
    -------
    torch.Tensor
        Scalar loss in ``[0, 1]``, differentiable in ``q``.

    Examples
    --------
    >>> from learned.dcdm.stencil import GridStencil, apply_stencil
    >>> from solvers.problems import poisson2d
    >>> coeffs = GridStencil.from_matrix(poisson2d(6).A, (6, 6)).to_tensor(torch.float64)
    >>> x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    >>> b = apply_stencil(coeffs, x)
    >>> float(energy_loss(-2.0 * x, x, b, coeffs)) < 1e-12  # q = c x is optimal
    True
    """
    Aq = apply_stencil(coefficients, q)
    ratio = _dot(q, b) ** 2 / (_dot(q, Aq) * _dot(x, b))
    return (1.0 - ratio).mean()


def unrolled_energy_loss(
    direction: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    b: torch.Tensor,
    coefficients: torch.Tensor,
    *,
    steps: int,
    k: int = 2,
) -> torch.Tensor:
    """Mean relative ``A``-norm error ``||x - x_s||_A² / ||x||_A²`` after ``s`` DCDM steps.

    ``x_s`` is the iterate of ``steps`` iterations of :func:`learned.dcdm.dcdm_solve`'s
    recurrence from ``x_0 = 0`` on ``A x = b`` (without its safeguard): ``q_j =
    direction(r_j / ||r_j||)``, ``p_j`` = ``q_j`` ``A``-orthogonalised against the
    last ``k`` directions, ``x_{j+1} = x_j + (p_j^T r_j / p_j^T A p_j) p_j``. With
    exact line searches the error is non-increasing, so the loss lies in
    ``[0, 1]``; with ``steps=1`` it equals :func:`energy_loss`. It is invariant to
    the scale of ``(x, b)`` and, per step, to the scale of ``q_j``.

    Parameters
    ----------
    direction : callable
        Maps normalised residuals ``(B, 1, *grid)`` to directions of the same shape
        (the network with the operators' geometry bound).
    x, b : torch.Tensor, shape (B, 1, *grid)
        Solutions and ``b = A x`` (the caller guarantees it).
    coefficients : torch.Tensor, shape (B, 1 + d, *grid) or (1 + d, *grid)
        Stencils of each sample's ``A`` (:meth:`GridStencil.to_tensor`).
    steps : int
        Unrolled iterations, >= 1.
    k : int, default 2
        Directions kept for the orthogonalisation (the solver's ``k``).

    Returns
    -------
    torch.Tensor
        Scalar loss in ``[0, 1]``, differentiable in the direction's parameters.

    Examples
    --------
    >>> from learned.dcdm.stencil import GridStencil, apply_stencil
    >>> from solvers.problems import poisson2d
    >>> coeffs = GridStencil.from_matrix(poisson2d(6).A, (6, 6)).to_tensor(torch.float64)
    >>> x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    >>> b = apply_stencil(coeffs, x)
    >>> identity = lambda r: r  # steepest descent with two-term conjugation: CG
    >>> one = unrolled_energy_loss(identity, x, b, coeffs, steps=1)
    >>> bool(torch.isclose(one, energy_loss(b, x, b, coeffs)))
    True
    >>> float(unrolled_energy_loss(identity, x, b, coeffs, steps=36)) < 1e-12  # CG: N steps
    True
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    dims = tuple(range(1, b.ndim))
    r, xs = b, torch.zeros_like(x)
    window: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for _ in range(steps):
        norm = r.pow(2).sum(dim=dims, keepdim=True).sqrt()
        # A sample that has converged exactly keeps r = 0 and contributes no step.
        q = direction(r / torch.where(norm > 0, norm, torch.ones_like(norm)))
        p, Ap = q, apply_stencil(coefficients, q)
        for pj, Apj, curvature in window:
            beta = _dot(Ap, pj) / curvature
            p, Ap = p - beta * pj, Ap - beta * Apj
        curvature = _dot(p, Ap)
        safe = torch.where(curvature > 0, curvature, torch.ones_like(curvature))
        alpha = torch.where(curvature > 0, _dot(p, r) / safe, torch.zeros_like(curvature))
        xs, r = xs + alpha * p, r - alpha * Ap
        window = [*window[1 - k :], (p, Ap, safe)] if k > 1 else [(p, Ap, safe)]
    # The error e = x - x_s has A e = r, so ||e||_A² = e^T r: no further product with A.
    return (_dot(x - xs, r) / _dot(x, b)).mean()
