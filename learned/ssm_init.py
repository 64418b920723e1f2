"""Initialisations of diagonal state-space layers: S4D-Lin/Inv/Real/LegS and PTD.

Each returns a :class:`DiagonalInit`: the diagonal state matrix ``Λ`` (complex modes),
the input vector ``B`` in that eigenbasis, and whether the modes stand for conjugate
pairs (the layer's output is then ``2 Re(...)``, as S4D halves the state). numpy
only; the layers in :mod:`learned.ssm` turn these into torch parameters.

References
----------
A. Gu, A. Gupta, K. Goel, C. Ré, "On the parameterization and initialization of
diagonal state space models" (S4D), NeurIPS 2022, sec. 4 (Lin, Inv, Real, LegS).
A. Yu, D. Lyu, S. H. Lim, M. W. Mahoney, N. B. Erichson, "Robustifying state-space
models for long sequences via approximate diagonalization", ICLR 2024 (PTD init).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from numlib.diag import PTDResult, UnstableEigenvalueWarning, perturb_then_diagonalize
from numlib.hippo import hippo_legs, hippo_nplr
from numlib.validate import check_positive_int, check_tolerance

__all__ = ["INITS", "DiagonalInit", "diagonal_init", "from_ptd"]

INITS: tuple[str, ...] = ("lin", "inv", "real", "legs", "ptd")


@dataclass(frozen=True)
class DiagonalInit:
    """A diagonal SSM ``x' = diag(Λ) x + B u`` ready to load into a layer.

    Attributes
    ----------
    Lambda : numpy.ndarray, complex, shape (modes,)
        Eigenvalues, all with ``Re <= 0``.
    B : numpy.ndarray, complex, shape (modes,)
        Input vector in the eigenbasis (``V^{-1} B`` for a diagonalised matrix).
    conj_sym : bool
        True when each mode stands for itself and its conjugate (output ``2 Re``).
    name : str
        Which initialisation.
    """

    Lambda: np.ndarray
    B: np.ndarray
    conj_sym: bool
    name: str


def _even(n: int) -> int:
    n = check_positive_int(n, "n", minimum=2)
    if n % 2:
        raise ValueError(f"n must be even for conjugate-pair initialisations, got {n}")
    return n


def from_ptd(result: PTDResult, B: np.ndarray) -> DiagonalInit:
    """Diagonal SSM from a :func:`numlib.diag.perturb_then_diagonalize` result.

    ``Λ`` are the returned (stabilised) eigenvalues and ``B̃ = V^{-1} B``; no conjugate
    pairing is assumed because a complex ``E`` breaks it, so the layer keeps all ``n``
    modes and takes ``Re`` of the output.

    Parameters
    ----------
    result : PTDResult
    B : numpy.ndarray, shape (n,)
        Input vector of the matrix that was diagonalised.

    Returns
    -------
    DiagonalInit
    """
    if not isinstance(result, PTDResult):
        raise TypeError(f"result must be a PTDResult, got {type(result).__name__}")
    B = np.asarray(B)
    if B.shape != (result.V.shape[0],):
        raise ValueError(f"B must have shape ({result.V.shape[0]},), got {B.shape}")
    return DiagonalInit(result.eigenvalues.copy(), result.V_inv @ B, False, "ptd")


def diagonal_init(
    kind: str,
    n: int,
    *,
    eps: float = 1e-3,
    rng: int | np.random.Generator | None = 0,
) -> DiagonalInit:
    r"""S4D-style initialisation of state size ``n``.

    ``"lin"``
        ``Λ_k = -1/2 + i π k``, ``k < n/2``, ``B = 1``, conjugate pairs (S4D-Lin).
    ``"inv"``
        ``Λ_k = -1/2 + i (n/π)(n/(2k+1) - 1)``, ``k < n/2``, ``B = 1``, pairs (S4D-Inv).
    ``"real"``
        ``Λ_k = -(k+1)``, ``k < n``, ``B = 1`` (S4D-Real: the LegS diagonal).
    ``"legs"``
        S4D-LegS: the eigenvalues of the normal part ``N`` of LegS's NPLR form (real
        part ``-1/2``) with ``Im > 0``, ``B̃ = V^H B`` from the unitary ``V`` of ``N``;
        the low-rank term is dropped, which is why its transfer function only
        converges weakly to LegS's.
    ``"ptd"``
        Optimised perturb-then-diagonalise of LegS at size ``eps``
        (:func:`numlib.diag.perturb_then_diagonalize` with ``method="optimized"``),
        through :func:`from_ptd`.

    Parameters
    ----------
    kind : {"lin", "inv", "real", "legs", "ptd"}
    n : int
        State size (even for ``lin``, ``inv`` and ``legs``).
    eps : float
        PTD perturbation size (``"ptd"`` only), > 0.
    rng : int, numpy.random.Generator or None
        Seed for PTD's random start (``"ptd"`` only).

    Returns
    -------
    DiagonalInit

    Examples
    --------
    >>> init = diagonal_init("legs", 8)
    >>> init.Lambda.shape, bool(np.allclose(init.Lambda.real, -0.5)), init.conj_sym
    ((4,), True, True)
    """
    if kind not in INITS:
        raise ValueError(f"kind must be one of {INITS}, got {kind!r}")
    if kind == "real":
        n = check_positive_int(n, "n")
        return DiagonalInit(-np.arange(1.0, n + 1) + 0j, np.ones(n, complex), False, kind)
    if kind == "ptd":
        n = check_positive_int(n, "n")
        eps = check_tolerance(eps, "eps")
        if eps == 0:
            raise ValueError("eps must be > 0 for the PTD initialisation")
        A, B = hippo_legs(n)
        with warnings.catch_warnings():
            # A reflection would be reported in the result; the init uses Λ as returned.
            warnings.simplefilter("ignore", UnstableEigenvalueWarning)
            result = perturb_then_diagonalize(A, eps, method="optimized", rng=rng)
        return from_ptd(result, B)
    n = _even(n)
    k = np.arange(n // 2, dtype=np.float64)
    if kind == "lin":
        lam = -0.5 + 1j * np.pi * k
        return DiagonalInit(lam, np.ones(n // 2, complex), True, kind)
    if kind == "inv":
        lam = -0.5 + 1j * (n / np.pi) * (n / (2 * k + 1) - 1)
        return DiagonalInit(lam, np.ones(n // 2, complex), True, kind)
    F = hippo_nplr("legs", n)
    r = perturb_then_diagonalize(F.N, 0.0)  # normal: unitary V from the Schur form
    keep = r.eigenvalues.imag > 0
    return DiagonalInit(r.eigenvalues[keep], (r.V_inv @ F.B)[keep], True, kind)
