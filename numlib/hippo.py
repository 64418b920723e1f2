"""HiPPO state matrices and their normal-plus-low-rank (NPLR) form.

Every constructor returns ``(A, B)`` in float64 with the sign convention of S4,
``x'(t) = A x(t) + B u(t)`` and ``A`` stable (every eigenvalue has Re <= 0), as in
``state-spaces/s4``, ``src/models/hippo/hippo.py`` (``transition`` and
``rank_correction``). ``B`` is 1-D, shape ``(n,)``.

References
----------
A. Gu, T. Dao, S. Ermon, A. Rudra, C. Ré, "HiPPO: Recurrent memory with optimal
polynomial projections", NeurIPS 2020.
A. Gu, K. Goel, C. Ré, "Efficiently modeling long sequences with structured state
spaces" (S4), ICLR 2022, sec. 3.3 (NPLR form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numlib.validate import check_positive_int, check_positive_real

__all__ = [
    "MEASURES",
    "NPLR",
    "hippo",
    "hippo_fout",
    "hippo_lagt",
    "hippo_legs",
    "hippo_legt",
    "hippo_nplr",
]

MEASURES: tuple[str, ...] = ("legs", "legt", "lagt", "fout")


def hippo_legs(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LegS (scaled Legendre) matrices.

    ``A[i, k] = -sqrt(2i+1) sqrt(2k+1)`` for ``i > k``, ``-(i+1)`` for ``i = k`` and 0
    above the diagonal; ``B[i] = sqrt(2i+1)``. ``A`` is lower triangular with the
    distinct eigenvalues ``-1, ..., -n`` but is far from normal: its eigenvector
    matrix has ``kappa_2 ~ 1e23`` at ``n = 32`` (see
    :func:`numlib.diag.exact_eigenvector_condition_legs`).

    Parameters
    ----------
    n : int
        State size, >= 1.

    Returns
    -------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n,)

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not an integer >= 1.
    """
    n = check_positive_int(n, "n")
    q = np.arange(n, dtype=np.float64)
    r = np.sqrt(2.0 * q + 1.0)
    A = -np.tril(np.outer(r, r), -1) - np.diag(q + 1.0)
    return A, r.copy()


def hippo_legt(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LegT (translated Legendre, window 1) matrices, S4's normalisation.

    With ``r_i = sqrt(2i+1)``: ``A[i, k] = -r_i r_k / 2`` for ``i >= k`` and
    ``-(-1)^(i-k) r_i r_k / 2`` for ``i < k``; ``B[i] = r_i / 2`` (S4 halves both
    "for timescale correctness"). This is the LMU matrix of the HiPPO paper
    conjugated by ``diag(r)`` and scaled.

    Parameters
    ----------
    n : int
        State size, >= 1.

    Returns
    -------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n,)
    """
    n = check_positive_int(n, "n")
    q = np.arange(n)
    r = np.sqrt(2.0 * q + 1.0)
    i, k = q[:, None], q[None, :]
    sign = np.where(i < k, (-1.0) ** (i - k), 1.0)
    A = -0.5 * r[:, None] * sign * r[None, :]
    return A, 0.5 * r


def hippo_lagt(n: int, beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-LagT (translated Laguerre) matrices.

    ``A = I/2 - tril(ones)``: ``-1/2`` on the diagonal, ``-1`` below, 0 above;
    ``B = beta * ones``.

    Parameters
    ----------
    n : int
        State size, >= 1.
    beta : float
        Scale of ``B``, > 0.

    Returns
    -------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n,)
    """
    n = check_positive_int(n, "n")
    beta = check_positive_real(beta, "beta")
    A = np.eye(n) / 2.0 - np.tril(np.ones((n, n)))
    return A, beta * np.ones(n)


def _fout_b(n: int) -> np.ndarray:
    b = np.zeros(n)
    b[0::2] = np.sqrt(2.0)
    b[0] = 1.0
    return b


def hippo_fout(n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""HiPPO-FouT (translated Fourier) matrices.

    ``A = pi * (diag(d, -1) - diag(d, 1)) - B B^T`` with ``d = (0, 0, 1, 0, 2, 0, ...,
    n/2 - 1)`` of length ``n - 1``: states ``(2k, 2k+1)`` are the cosine/sine pair of
    frequency ``k``, coupled by ``±pi k`` (state 1, the sine of frequency 0, is
    dead), and ``B = (1, 0, sqrt 2, 0, sqrt 2, ...)``. The rank-one term is the other
    endpoint ``u(t - 1)`` of the window. Exactly S4's ``transition("fout", n)``.

    Parameters
    ----------
    n : int
        State size, even and >= 2 (cosine/sine pairs).

    Returns
    -------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n,)

    Raises
    ------
    ValueError
        If ``n`` is odd.
    """
    n = check_positive_int(n, "n", minimum=2)
    if n % 2:
        raise ValueError(f"n must be even for FouT (cosine/sine pairs), got {n}")
    freqs = np.arange(n // 2, dtype=np.float64)
    d = np.stack([np.zeros(n // 2), freqs], axis=-1).reshape(-1)[1:]
    b = _fout_b(n)
    A = np.pi * (np.diag(d, -1) - np.diag(d, 1)) - np.outer(b, b)
    return A, b


def hippo(measure: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(A, B)`` of the HiPPO ``measure`` in :data:`MEASURES` at state size ``n``."""
    funcs = {"legs": hippo_legs, "legt": hippo_legt, "lagt": hippo_lagt, "fout": hippo_fout}
    if measure not in funcs:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    return funcs[measure](n)


@dataclass(frozen=True)
class NPLR:
    """Normal-plus-low-rank form ``A = N - P Q^T`` of a HiPPO matrix.

    Attributes
    ----------
    A, B : numpy.ndarray
        The HiPPO matrices, as :func:`hippo` returns them.
    N : numpy.ndarray, shape (n, n)
        Normal part: skew-symmetric plus ``shift * I``.
    P, Q : numpy.ndarray, shape (n, r)
        Low-rank factors (``Q = P`` for every measure here).
    shift : float
        ``N - shift * I`` is skew-symmetric, so every eigenvalue of ``N`` has real
        part ``shift`` (``-1/2`` for LegS, 0 for LegT, LagT and FouT).
    """

    A: np.ndarray
    B: np.ndarray
    N: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    shift: float


def hippo_nplr(measure: str, n: int) -> NPLR:
    r"""NPLR form ``A = N - P Q^T`` of a HiPPO matrix, with ``N`` normal.

    The low-rank corrections are those of S4's ``rank_correction``: LegS
    ``P_i = sqrt(i + 1/2)`` (rank 1; then ``N = S - I/2`` with ``S`` skew); LagT
    ``P = ones / sqrt 2`` (rank 1; ``N`` skew); LegT two columns ``sqrt(2i+1)/sqrt 2`` on the odd
    and on the even indices (rank 2); FouT ``P = B`` (rank 1). ``N`` is formed as
    ``A + P P^T`` and then made exactly skew-plus-shift by averaging its
    off-diagonal part with minus its transpose (a change at rounding level), so
    ``N N^T = N^T N`` holds to rounding.

    Parameters
    ----------
    measure : {"legs", "legt", "lagt", "fout"}
    n : int
        State size.

    Returns
    -------
    NPLR

    References
    ----------
    Gu, Goel, Ré, S4 (ICLR 2022), Theorem 1 and Appendix C.1.
    """
    A, B = hippo(measure, n)
    q = np.arange(n, dtype=np.float64)
    if measure == "legs":
        P = np.sqrt(q + 0.5)[:, None]
        shift = -0.5
    elif measure == "lagt":
        P = np.full((n, 1), np.sqrt(0.5))
        shift = 0.0
    elif measure == "legt":
        r = np.sqrt(2.0 * q + 1.0) / np.sqrt(2.0)
        P = np.zeros((n, 2))
        P[1::2, 0] = r[1::2]
        P[0::2, 1] = r[0::2]
        shift = 0.0
    else:
        P = _fout_b(n)[:, None]
        shift = 0.0
    M = A + P @ P.T
    S = M - np.diag(np.diag(M))
    N = 0.5 * (S - S.T) + shift * np.eye(n)
    return NPLR(A=A, B=B, N=N, P=P, Q=P.copy(), shift=shift)
