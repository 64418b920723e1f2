"""Approximate diagonalisation: perturb-then-diagonalise (PTD) and its diagnostics.

A non-normal state matrix ``A`` (HiPPO-LegS, say) has an eigenvector matrix ``V``
so ill-conditioned that ``V Λ V^{-1}`` is useless in floating point. PTD
diagonalises ``A + E`` for a small perturbation ``E`` instead: a random ``E`` of
size ``eps ||A||`` gives ``kappa_2(V) ~ 1/eps`` (pseudospectral regularisation),
trading a backward error ``||E||`` for a well-conditioned basis. An ``E``
optimised for conditioning (:mod:`numlib.ptd_optimize`) does much better at the same
size: on HiPPO-LegS with ``n = 64`` it reaches ``kappa_2(V) ~ 2e2`` at
``||E||/||A|| ~ 9e-4`` where a random ``E`` gives ``~2e3``.

Everything here is numpy/scipy only (LAPACK ``geev`` and ``gesv``); other array
kinds raise ``TypeError``.

References
----------
A. Yu, D. Lyu, S. H. Lim, M. W. Mahoney, N. B. Erichson, "Tuning frequency bias of
state space models" / "Robustifying state-space models for long sequences via
approximate diagonalization", ICLR 2024 (S4-PTD, S5-PTD).
J. Banks, J. Garza-Vargas, A. Kulkarni, N. Srivastava, "Pseudospectral shattering,
the sign function, and diagonalization in nearly matrix multiplication time",
FOCS 2020 (random perturbations regularise kappa_V).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from numlib._arrays import small_lapack_threads
from numlib.ptd_optimize import condition_objective, optimize_perturbation
from numlib.validate import as_generator, check_positive_int, check_tolerance

__all__ = [
    "PTDResult",
    "UnstableEigenvalueWarning",
    "eigenvector_condition",
    "exact_eigenvector_condition_legs",
    "perturb_then_diagonalize",
    "transfer_function",
]

METHODS: tuple[str, ...] = ("random", "structured", "optimized")
STABILIZE: tuple[str, ...] = ("reflect", "none")
# Frequencies solved at once in transfer_function (bounds the (k, n, n) work array).
_OMEGA_CHUNK = 256


class UnstableEigenvalueWarning(UserWarning):
    """Eigenvalues of the perturbed matrix lie in the open right half-plane.

    The message says how many and whether they were reflected.
    """


def _check_dense(A: Any, name: str, *, ndim: int | tuple[int, ...]) -> np.ndarray:
    if not isinstance(A, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(A).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if A.ndim not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} dimensions, got {A.ndim}")
    if A.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {A.shape}")
    if not np.issubdtype(A.dtype, np.inexact):
        raise TypeError(f"{name} must have a floating-point or complex dtype, got {A.dtype}")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return A


def _check_square(A: Any, name: str) -> np.ndarray:
    A = _check_dense(A, name, ndim=2)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be square, got shape {A.shape}")
    return A


def _check_system(
    A: np.ndarray, B: Any, C: Any, omegas: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = A.shape[0]
    B = _check_dense(B, "B", ndim=(1, 2))
    if B.shape[0] != n:
        raise ValueError(f"B must have {n} rows (the size of A), got shape {B.shape}")
    C = _check_dense(C, "C", ndim=(1, 2))
    if C.shape[-1] != n:
        raise ValueError(f"C must have {n} columns (the size of A), got shape {C.shape}")
    omegas = np.asarray(omegas)
    if omegas.ndim != 1 or omegas.size == 0:
        raise ValueError(f"omegas must be a non-empty 1-D array, got shape {omegas.shape}")
    if not np.issubdtype(omegas.dtype, np.number) or np.iscomplexobj(omegas):
        raise TypeError(f"omegas must be real, got dtype {omegas.dtype}")
    if not np.isfinite(omegas).all():
        raise ValueError("omegas contains NaN or Inf")
    return B, C, omegas.astype(np.float64)


def transfer_function(A: np.ndarray, B: np.ndarray, C: np.ndarray, omegas: Any) -> np.ndarray:
    r"""Transfer function ``G(iω) = C (iω I - A)^{-1} B`` on a grid of real frequencies.

    Computed by one LU solve per frequency (batched ``numpy.linalg.solve`` in chunks
    of frequencies), never through eigenvectors, so it is backward stable for every
    ``A`` however non-normal: each ``G(iω)`` is exact for a matrix within
    ``O(u ||iωI - A||)`` of ``iωI - A``. Cost ``O(k n^3)`` for ``k`` frequencies.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        State matrix, real or complex.
    B : numpy.ndarray, shape (n,) or (n, m)
        Input matrix.
    C : numpy.ndarray, shape (n,) or (p, n)
        Output matrix.
    omegas : array_like, shape (k,)
        Real frequencies ω; ``iω`` must not be an eigenvalue of ``A``.

    Returns
    -------
    numpy.ndarray, complex
        Shape ``(k,)`` when ``B`` and ``C`` are 1-D (SISO); otherwise ``(k, p, m)``
        with 1-D ``B`` / ``C`` counted as ``m = 1`` / ``p = 1``.

    Raises
    ------
    TypeError
        Non-numpy or integer inputs.
    ValueError
        Non-square ``A``, mismatched shapes, empty or non-finite inputs, or an
        exactly singular ``iωI - A`` for some ω in ``omegas``.
    """
    A = _check_square(A, "A")
    B, C, omegas = _check_system(A, B, C, omegas)
    n = A.shape[0]
    B2 = B.reshape(n, -1)
    C2 = C.reshape(-1, n)
    out = np.empty((omegas.size, C2.shape[0], B2.shape[1]), dtype=np.complex128)
    eye = np.eye(n)
    with small_lapack_threads(n):  # batched small solves: threads only add overhead
        for start in range(0, omegas.size, _OMEGA_CHUNK):
            w = omegas[start : start + _OMEGA_CHUNK]
            M = 1j * w[:, None, None] * eye - A
            try:
                X = np.linalg.solve(M, np.broadcast_to(B2, (w.size, *B2.shape)))
            except np.linalg.LinAlgError as err:
                raise ValueError(f"iω I - A is singular for some ω in omegas: {err}") from None
            out[start : start + w.size] = C2 @ X
    if B.ndim == 1 and C.ndim == 1:
        return out[:, 0, 0]
    return out


def eigenvector_condition(V: np.ndarray) -> float:
    r"""2-norm condition number ``kappa_2(V) = sigma_max / sigma_min`` via the SVD.

    Accurate to a few ulps of ``kappa`` while ``kappa << 1/u``; for larger values the
    computed ``sigma_min`` is at rounding level and ``kappa`` saturates near
    ``1e16-1e20`` (use :func:`exact_eigenvector_condition_legs` for LegS). Returns
    ``inf`` for a singular ``V`` (``sigma_min = 0``).

    Parameters
    ----------
    V : numpy.ndarray, shape (n, n)

    Returns
    -------
    float
    """
    V = _check_square(V, "V")
    s = np.linalg.svd(V, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def exact_eigenvector_condition_legs(n: int, dps: int | None = None) -> float:
    r"""``kappa_2(V)`` of HiPPO-LegS in high precision (mpmath), unit-norm eigenvectors.

    LegS is lower triangular with the distinct diagonal ``-(i+1)``, so eigenvector
    ``j`` (eigenvalue ``λ_j = -(j+1)``) has ``v_i = 0`` for ``i < j``, ``v_j = 1`` and,
    by forward substitution, ``v_i = Σ_{j<=k<i} A_ik v_k / (λ_j - A_ii)`` for ``i > j``.
    The columns are scaled to unit 2-norm (as LAPACK's ``geev`` returns them) and
    the singular values taken with ``mpmath.svd_r``, all at ``dps`` decimal digits.
    The substitution loses about ``log10 kappa`` digits, so ``dps`` must exceed
    that by the digits wanted; the default ``30 + 2 n`` leaves > 25 correct digits
    up to ``n = 64`` (``kappa ~ 3e47``). Cost ``O(n^3)`` multiprecision operations
    (about a second at ``n = 64``).

    Parameters
    ----------
    n : int
        State size, >= 1.
    dps : int, optional
        Decimal digits of working precision, >= 15.

    Returns
    -------
    float
        ``kappa_2(V)`` rounded to float64 (``inf`` beyond the float64 range).

    Raises
    ------
    ImportError
        If mpmath is not installed.
    """
    n = check_positive_int(n, "n")
    dps = 30 + 2 * n if dps is None else check_positive_int(dps, "dps", minimum=15)
    import mpmath

    with mpmath.workdps(dps):
        r = [mpmath.sqrt(2 * i + 1) for i in range(n)]
        V = mpmath.zeros(n, n)
        for j in range(n):
            lam = -(j + 1)
            col = [mpmath.mpf(0)] * n
            col[j] = mpmath.mpf(1)
            for i in range(j + 1, n):
                s = mpmath.fsum(-r[i] * r[k] * col[k] for k in range(j, i))
                col[i] = s / (lam + (i + 1))
            norm = mpmath.sqrt(mpmath.fsum(c * c for c in col))
            for i in range(n):
                V[i, j] = col[i] / norm
        sv = mpmath.svd_r(V, compute_uv=False)
        sv = [sv[i] for i in range(n)]
        return float(max(sv) / min(sv))


@dataclass(frozen=True)
class PTDResult:
    r"""Outcome of :func:`perturb_then_diagonalize`: ``A + E ≈ V diag(eigenvalues) V^{-1}``.

    Attributes
    ----------
    eigenvalues : numpy.ndarray, complex, shape (n,)
        The returned ``Λ``: eigenvalues of ``A + E`` after the stability treatment
        (reflected real parts when ``stability == "reflected"``).
    raw_eigenvalues : numpy.ndarray, complex, shape (n,)
        Eigenvalues of ``A + E`` as computed, before any reflection.
    V, V_inv : numpy.ndarray, complex, shape (n, n)
        Eigenvectors (unit 2-norm columns) and the computed inverse of ``V``.
    E : numpy.ndarray, shape (n, n)
        The perturbation used (zeros for ``eps = 0``).
    kappa : float
        ``kappa_2(V)`` by :func:`eigenvector_condition`.
    backward_error : float
        ``||A + E - V diag(raw_eigenvalues) V_inv||_2 / ||A||_2``: how well the
        decomposition represents ``A + E`` (reflection excluded by design).
    e_norm_ratio : float
        ``||E||_2 / ||A||_2``.
    unstable_eigenvalues : int
        Number of raw eigenvalues with ``Re λ > 0``.
    stability : str
        ``"stable"`` (none had ``Re λ > 0``), ``"reflected"`` (those were replaced
        by ``-|Re λ| + i Im λ``, with an :class:`UnstableEigenvalueWarning`) or
        ``"unstable"`` (kept, with the same warning).
    transfer_error : float or None
        With ``B`` and ``C``: ``max_ω max|G_pert(iω) - G(iω)| / max_ω max|G(iω)|``
        (entrywise maxima), ``G_pert`` from the returned ``Λ``; else None.
    omegas : numpy.ndarray or None
        The frequency grid of ``transfer_error``.
    method : str
    eps : float
    converged : bool
        False only when ``"optimized"`` hit its iteration cap.
    info : dict
        ``"normal_path"`` (True when a complex Schur form gave a unitary ``V``, see
        the function); for ``"optimized"`` also ``"trials"``, ``"initial_losses"``
        (``J`` of each random start), ``"objective"`` (``J`` per iteration),
        ``"iterations"``, ``"evaluations"`` and ``"message"``.
    """

    eigenvalues: np.ndarray
    raw_eigenvalues: np.ndarray
    V: np.ndarray
    V_inv: np.ndarray
    E: np.ndarray
    kappa: float
    backward_error: float
    e_norm_ratio: float
    unstable_eigenvalues: int
    stability: str
    transfer_error: float | None
    omegas: np.ndarray | None
    method: str
    eps: float
    converged: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def _ginibre(n: int, gen: np.random.Generator, scale: float) -> np.ndarray:
    G = gen.standard_normal((n, n)) + 1j * gen.standard_normal((n, n))
    return G * (scale / np.linalg.norm(G, 2))


def _is_normal(A: np.ndarray, norm: float) -> bool:
    AH = A.conj().T
    return bool(
        np.linalg.norm(A @ AH - AH @ A, 2) <= 100 * A.shape[0] * np.finfo(float).eps * norm**2
    )


def _eig(M: np.ndarray, norm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    if _is_normal(M, norm):
        T, Z = scipy.linalg.schur(M.astype(np.complex128), output="complex")
        return np.diag(T).copy(), Z, Z.conj().T, True
    lam, V = scipy.linalg.eig(M)
    V = V.astype(np.complex128)
    V_inv = np.linalg.solve(V, np.eye(M.shape[0]))
    return lam.astype(np.complex128), V, V_inv, False


def _initial_perturbation(
    A: np.ndarray, scale: float, gen: np.random.Generator, trials: int, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best of ``trials`` Ginibre directions by the optimiser's objective (no barrier)."""
    losses = []
    best = None
    for _ in range(trials):
        E = _ginibre(A.shape[0], gen, scale)
        loss = (
            np.log(condition_objective(A + E).value)
            + gamma * float(np.linalg.norm(E)) ** 2 / scale**2
        )
        losses.append(loss)
        if best is None or loss < best[0]:
            best = (loss, E)
    assert best is not None
    return best[1], np.array(losses)


def _low_rank(n: int, gen: np.random.Generator, scale: float, rank: int) -> np.ndarray:
    X = gen.standard_normal((n, rank)) + 1j * gen.standard_normal((n, rank))
    Y = gen.standard_normal((n, rank)) + 1j * gen.standard_normal((n, rank))
    E = X @ Y.conj().T
    return E * (scale / np.linalg.norm(E, 2))


def perturb_then_diagonalize(
    A: np.ndarray,
    eps: float,
    *,
    method: str = "random",
    rng: int | np.random.Generator | None = None,
    B: np.ndarray | None = None,
    C: np.ndarray | None = None,
    omegas: Any = None,
    gamma: float = 1.0,
    barrier: float = 10.0,
    trials: int = 8,
    rank: int = 1,
    maxiter: int = 200,
    stabilize: str = "reflect",
) -> PTDResult:
    r"""Diagonalise ``A + E`` for a small perturbation ``E`` (perturb-then-diagonalise).

    Three ways to choose ``E``, all seeded by ``rng`` and of initial size
    ``||E||_2 = eps ||A||_2``:

    ``method="random"``
        A complex Ginibre matrix (i.i.d. standard complex Gaussian entries). By
        pseudospectral shattering (Banks et al. 2020) ``kappa_2(V)`` is then of order
        ``n^2/eps`` w.h.p. whatever ``A`` is; observed ``~1/eps`` on HiPPO-LegS.
    ``method="structured"``
        A random rank-``rank`` matrix ``X Y^H`` (complex Gaussian ``n x rank`` factors).
    ``method="optimized"``
        Gradient optimisation (:func:`numlib.ptd_optimize.optimize_perturbation`) of

        ``J(E) = ln kappa_F(V)^2 + gamma ||E||_F^2 / s^2 + barrier Σ_i (max(0, Re λ_i + δ)/δ)^2``

        with ``s = eps ||A||_2``, ``kappa_F(V) = ||V||_F ||V^{-1}||_F`` for unit-column
        ``V`` (a smooth surrogate with ``kappa_2 <= kappa_F <= n kappa_2``) and
        ``δ = -max Re λ(A) / 2`` (eigenvalues computed once in float64): the barrier
        penalises eigenvalues of ``A + E`` right of ``-δ`` when ``A`` is stable (a
        penalty, not a constraint: any that still end with ``Re λ > 0`` are treated
        as ``stabilize`` says, with a warning), and is switched off when ``A`` itself
        has an eigenvalue with ``Re λ >= 0``. Initialisation: the best of ``trials`` seeded Ginibre
        directions of size ``s`` by ``J`` without the barrier. Optimiser: L-BFGS-B on
        ``(Re E, Im E) / s`` with the analytic gradient from eigenvector perturbation
        theory. Stopping rule: largest gradient entry ``<= 1e-5``, relative decrease
        of ``J`` ``<= 1e-9`` per iteration, or ``maxiter`` iterations; the last sets
        ``converged=False`` and emits a :class:`~numlib.result.ConvergenceWarning`. The
        final ``||E||`` is whatever minimises ``J`` (``e_norm_ratio`` reports it);
        on HiPPO-LegS it stays within a factor 2 of ``eps`` for ``gamma = 1``.

    ``eps = 0`` diagonalises ``A`` itself, and so does any ``eps`` when ``A`` is normal
    to rounding (``||A A^H - A^H A||_2 <= 100 n u ||A||_2^2``): a unitary eigenbasis
    needs no perturbation, so ``E = 0``. Whenever the matrix diagonalised is normal
    to rounding, the complex Schur form is used instead of ``geev``: its ``V`` is
    unitary (``kappa ≈ 1``) even for repeated eigenvalues, and ``V_inv = V^H``.

    Eigenvalues with ``Re λ > 0`` are never passed on silently: with
    ``stabilize="reflect"`` (default, as Yu et al.) their real parts are negated, with
    ``"none"`` they are kept; both emit :class:`UnstableEigenvalueWarning` with the
    count, and ``PTDResult.stability`` records which.

    Guarantees: the returned ``backward_error``, ``kappa`` and ``e_norm_ratio`` are
    recomputed from the returned arrays, not estimated; for the transfer-function
    error Yu et al. prove ``sup|G_pert - G| <= (2 ln n + 4) eps + O(sqrt(log n) eps^2)``
    (relative, for their normalisation) for random ``E``, which the returned
    ``transfer_error`` lets one check (it includes the effect of reflection).

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
        Real or complex, finite. Not modified.
    eps : float
        Relative size ``||E||_2 / ||A||_2`` (initial size for ``"optimized"``), >= 0.
    method : {"random", "structured", "optimized"}
    rng : int, numpy.random.Generator or None
        Seed or generator for ``E`` (see :func:`numlib.validate.as_generator`).
    B, C : numpy.ndarray, optional
        Input ``(n,)``/``(n, m)`` and output ``(n,)``/``(p, n)`` matrices; when both
        are given, ``transfer_error`` is computed against
        :func:`transfer_function` of the unperturbed ``A``.
    omegas : array_like, optional
        Real frequency grid for ``transfer_error``; default
        ``||A||_2 * logspace(-4, 2, 601)``.
    gamma : float
        Weight of ``||E||_F^2 / s^2`` in ``J`` (``"optimized"``), >= 0.
    barrier : float
        Weight of the stability penalty in ``J`` (``"optimized"``), >= 0.
    trials : int
        Random initial directions tried by ``"optimized"``, >= 1.
    rank : int
        Rank of ``E`` for ``"structured"``, ``1 <= rank <= n``.
    maxiter : int
        Iteration cap of ``"optimized"``, >= 1.
    stabilize : {"reflect", "none"}

    Returns
    -------
    PTDResult

    Raises
    ------
    TypeError
        Non-numpy or integer ``A``/``B``/``C``, bad ``rng``.
    ValueError
        Non-square, empty or non-finite ``A``; ``eps`` negative or not finite;
        unknown ``method`` or ``stabilize``; only one of ``B``/``C``; bad shapes;
        ``rank > n``.

    Warns
    -----
    UnstableEigenvalueWarning
        Eigenvalues of ``A + E`` with ``Re λ > 0``.
    ConvergenceWarning
        ``"optimized"`` hit ``maxiter``.

    References
    ----------
    Yu, Lyu, Lim, Mahoney, Erichson, ICLR 2024 (PTD, S4-PTD); Banks, Garza-Vargas,
    Kulkarni, Srivastava, FOCS 2020.

    Examples
    --------
    >>> from numlib.hippo import hippo_legs
    >>> A, B = hippo_legs(32)
    >>> r = perturb_then_diagonalize(A, 1e-3, method="optimized", rng=0, B=B, C=B)
    >>> bool(r.kappa < 1e3 and r.transfer_error < 1e-2 and r.unstable_eigenvalues == 0)
    True
    """
    A = _check_square(A, "A")
    eps = check_tolerance(eps, "eps")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if stabilize not in STABILIZE:
        raise ValueError(f"stabilize must be one of {STABILIZE}, got {stabilize!r}")
    gamma = check_tolerance(gamma, "gamma")
    barrier = check_tolerance(barrier, "barrier")
    trials = check_positive_int(trials, "trials")
    rank = check_positive_int(rank, "rank")
    maxiter = check_positive_int(maxiter, "maxiter")
    n = A.shape[0]
    if rank > n:
        raise ValueError(f"rank must be <= n = {n}, got {rank}")
    if (B is None) != (C is None):
        raise ValueError("B and C must be given together (or neither)")
    gen = as_generator(rng)
    a_norm = float(np.linalg.norm(A, 2))
    denom = a_norm if a_norm > 0 else 1.0
    if B is not None:
        if omegas is None:
            omegas = denom * np.logspace(-4, 2, 601)
        B, C, omegas = _check_system(A, B, C, omegas)

    # Every dense step below is small (n x n, batches of n x n): one BLAS thread.
    with small_lapack_threads(n):
        info: dict[str, Any] = {}
        converged = True
        scale = eps * a_norm
        if eps == 0.0 or a_norm == 0.0 or _is_normal(A, denom):
            E = np.zeros((n, n), dtype=A.dtype)
        elif method == "random":
            E = _ginibre(n, gen, scale)
        elif method == "structured":
            E = _low_rank(n, gen, scale, rank)
        else:
            E0, losses = _initial_perturbation(A, scale, gen, trials, gamma)
            abscissa = float(np.linalg.eigvals(A).real.max())
            opt = optimize_perturbation(
                A,
                E0,
                scale,
                gamma=gamma,
                barrier=barrier if abscissa < 0 else 0.0,
                margin=-abscissa / 2 if abscissa < 0 else 0.0,
                maxiter=maxiter,
            )
            E = opt.E
            converged = opt.converged
            info.update(
                trials=trials,
                initial_losses=losses,
                objective=opt.objective,
                iterations=opt.iterations,
                evaluations=opt.evaluations,
                message=opt.message,
            )
        lam, V, V_inv, normal = _eig(A + E, denom)
        kappa = eigenvector_condition(V)
        info["normal_path"] = normal

        recon = (V * lam) @ V_inv
        backward_error = float(np.linalg.norm(A + E - recon, 2)) / denom
        unstable = int(np.count_nonzero(lam.real > 0))
        out_lam = lam.copy()
        if unstable == 0:
            stability = "stable"
        elif stabilize == "reflect":
            stability = "reflected"
            out_lam = -np.abs(lam.real) + 1j * lam.imag
            warnings.warn(
                f"{unstable} of {n} eigenvalues of A + E had Re > 0; their real parts were "
                "reflected to the left half-plane",
                UnstableEigenvalueWarning,
                stacklevel=2,
            )
        else:
            stability = "unstable"
            warnings.warn(
                f"{unstable} of {n} eigenvalues of A + E have Re > 0 and were kept "
                "(stabilize='none')",
                UnstableEigenvalueWarning,
                stacklevel=2,
            )

        transfer_error = None
        if B is not None:
            G = transfer_function(A, B, C, omegas)
            Bt = V_inv @ B.reshape(n, -1)
            Ct = C.reshape(-1, n) @ V
            G_pert = np.einsum("pi,ki,im->kpm", Ct, 1.0 / (1j * omegas[:, None] - out_lam), Bt)
            if G.ndim == 1:
                G_pert = G_pert[:, 0, 0]
            g_max = float(np.abs(G).max())
            transfer_error = float(np.abs(G_pert - G).max()) / (g_max if g_max > 0 else 1.0)
        else:
            omegas = None

    return PTDResult(
        eigenvalues=out_lam,
        raw_eigenvalues=lam,
        V=V,
        V_inv=V_inv,
        E=E,
        kappa=kappa,
        backward_error=backward_error,
        e_norm_ratio=float(np.linalg.norm(E, 2)) / denom,
        unstable_eigenvalues=unstable,
        stability=stability,
        transfer_error=transfer_error,
        omegas=omegas,
        method=method,
        eps=eps,
        converged=converged,
        info=info,
    )
