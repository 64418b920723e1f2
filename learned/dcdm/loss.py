"""The unsupervised, scale-invariant DCDM training loss."""

from __future__ import annotations

import torch

from learned.dcdm.stencil import apply_stencil

__all__ = ["dcdm_loss"]


def dcdm_loss(q: torch.Tensor, b: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||b - A q (q^T b)/(q^T A q)||²``.

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
    dims = tuple(range(1, q.ndim))
    alpha = (q * b).sum(dim=dims, keepdim=True) / (q * Aq).sum(dim=dims, keepdim=True)
    return ((b - alpha * Aq) ** 2).sum(dim=dims).mean()
