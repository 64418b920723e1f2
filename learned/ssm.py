"""Diagonal state-space layers: S4D (SISO per channel) and S5 (MIMO), three equal modes.

Both layers run the continuous system ``x' = diag(Λ) x + B u``, ``y = Re(C x) + D u``
(``2 Re`` when the modes stand for conjugate pairs), discretised with step ``dt`` by

* ZOH: ``Ā = exp(dt Λ)``, ``B̄ = (Ā - 1) / Λ · B``;
* bilinear: ``Ā = (1 + dt Λ/2) / (1 - dt Λ/2)``, ``B̄ = dt / (1 - dt Λ/2) · B``,

and evaluated in any of three modes that compute the same map:

``"conv"``
    S4D: the kernel ``K_l = Re Σ_n C_n B̄_n Ā_n^l`` is a Vandermonde product
    (:func:`vandermonde_kernel`, with a blocked path of ``O(N + L)`` memory per
    channel), applied by FFT convolution (:func:`fft_conv`). S5: each mode's state is
    the FFT convolution of ``B̄ u`` with ``Ā^l``.
``"scan"``
    The linear recurrence ``x_k = Ā x_{k-1} + B̄ u_k`` by a parallel associative scan
    (:func:`parallel_scan`, ``log2 L`` doubling steps).
``"step"``
    One time step at a time (:meth:`S4DLayer.step`, :meth:`S5Layer.step`), as at
    inference.

Initialisations come from :func:`learned.ssm_init.diagonal_init` (S4D-Lin, -Inv, -Real,
-LegS, and PTD through :mod:`numlib.diag`).

References
----------
A. Gu, A. Gupta, K. Goel, C. Ré, S4D, NeurIPS 2022; J. T. H. Smith, A. Warrington,
S. W. Linderman, "Simplified state space layers for sequence modeling" (S5), ICLR 2023;
A. Yu et al., S4-PTD / S5-PTD, ICLR 2024.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from learned.ssm_init import DiagonalInit
from numlib.validate import check_positive_int

__all__ = [
    "MODES",
    "S4DLayer",
    "S5Layer",
    "discretize",
    "fft_conv",
    "parallel_scan",
    "vandermonde_kernel",
]

MODES: tuple[str, ...] = ("conv", "scan", "step")
DISCRETIZATIONS: tuple[str, ...] = ("zoh", "bilinear")


def discretize(
    Lambda: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, method: str = "zoh"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Discretise ``x' = Λ x + B u`` with step ``dt`` (broadcasting, complex ``Λ``).

    Parameters
    ----------
    Lambda, B : torch.Tensor, complex
        Diagonal state matrix and input coefficients (broadcastable).
    dt : torch.Tensor, real
        Step sizes (broadcastable against ``Lambda``).
    method : {"zoh", "bilinear"}
        Zero-order hold (exact for piecewise-constant input) or the bilinear
        (Tustin) map, which sends the left half-plane into the unit disc.

    Returns
    -------
    Abar, Bbar : torch.Tensor, complex
    """
    if method not in DISCRETIZATIONS:
        raise ValueError(f"method must be one of {DISCRETIZATIONS}, got {method!r}")
    dtL = dt * Lambda
    if method == "zoh":
        Abar = torch.exp(dtL)
        # expm1 keeps (exp(dtΛ) - 1)/Λ accurate when |dt Λ| is tiny.
        return Abar, torch.expm1(dtL) / Lambda * B
    denom = 1.0 - dtL / 2
    return (1.0 + dtL / 2) / denom, dt / denom * B


def vandermonde_kernel(
    Abar: torch.Tensor, W: torch.Tensor, length: int, *, block: int | None = None
) -> torch.Tensor:
    r"""``K[..., l] = Σ_n W[..., n] Abar[..., n]^l`` for ``l < length`` (complex).

    The Vandermonde product of S4D. With ``block=None`` the ``(..., N, L)`` power
    matrix is formed at once (``O(N L)`` memory per channel). With ``block=b`` the
    powers are formed ``b`` at a time, ``Abar^(s + j) = Abar^s Abar^j``, so peak memory
    per channel is ``O(N b + L)``; ``b ~ L / N`` gives ``O(N + L)``. Powers are
    ``exp(l log Abar)``, accurate to ``O(l u)`` relative. A mode with ``|Abar|`` below
    the smallest normal number of its dtype (``exp(dt Λ)`` underflowed, to 0 or to a
    subnormal) counts as 0: ``0^0 = 1`` and ``0^l = 0`` exactly, and its gradient is
    finite (0) rather than ``log(0)``'s NaN or ``1 / subnormal``'s overflow.

    Parameters
    ----------
    Abar, W : torch.Tensor, complex, shape (..., N)
    length : int
        Kernel length ``L`` >= 1.
    block : int, optional
        Powers per block.

    Returns
    -------
    torch.Tensor, complex, shape (..., L)
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if block is not None and block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    real_dtype = Abar.real.dtype
    # log(0) = -inf and -inf * 0 = NaN, and log's gradient 1 / Abar overflows below the
    # smallest normal: take the log of 1 there and put the powers of 0 back in _powers.
    zero = Abar.abs() < torch.finfo(real_dtype).tiny
    logA = torch.log(torch.where(zero, torch.ones_like(Abar), Abar))

    def _powers(ell: torch.Tensor) -> torch.Tensor:
        """``Abar^ell`` for exponents ``ell`` (broadcast on a trailing axis of Abar)."""
        return torch.where(
            zero[..., None], (ell == 0).to(Abar.dtype), torch.exp(logA[..., None] * ell)
        )

    if block is None or block >= length:
        ell = torch.arange(length, dtype=real_dtype, device=Abar.device)
        return torch.einsum("...n,...nl->...l", W, _powers(ell))
    out = torch.empty((*Abar.shape[:-1], length), dtype=Abar.dtype, device=Abar.device)
    ell = torch.arange(block, dtype=real_dtype, device=Abar.device)
    powers = _powers(ell)  # (..., N, b), reused by every block
    for start in range(0, length, block):
        stop = min(start + block, length)
        first = torch.full((1,), float(start), dtype=real_dtype, device=Abar.device)
        Ws = W * _powers(first)[..., 0]
        out[..., start:stop] = torch.einsum("...n,...nl->...l", Ws, powers[..., : stop - start])
    return out


def fft_conv(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Causal convolution ``y_k = Σ_{l<=k} K_l u_{k-l}`` along the last axis by FFT.

    Zero-padded to ``2L`` so the circular product equals the linear one; real or
    complex inputs (complex when either is complex). ``O(L log L)``.

    Parameters
    ----------
    u : torch.Tensor, shape (..., L)
    K : torch.Tensor, shape broadcastable to (..., L)

    Returns
    -------
    torch.Tensor, shape (..., L)
    """
    L = u.shape[-1]
    if u.is_complex() or K.is_complex():
        spec = torch.fft.fft(u, n=2 * L) * torch.fft.fft(K, n=2 * L)
        return torch.fft.ifft(spec, n=2 * L)[..., :L]
    spec = torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(K, n=2 * L)
    return torch.fft.irfft(spec, n=2 * L)[..., :L]


def parallel_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""All states of ``x_k = a_k x_{k-1} + b_k`` (``x_{-1} = 0``) along axis ``-2``.

    The pairs ``(a_k, b_k)`` compose associatively, ``(a, b) ∘ (a', b') = (a a', a' b +
    b')``, so ``ceil(log2 L)`` doubling steps (Hillis-Steele) give every prefix:
    ``O(L log L)`` work, ``O(log L)`` sequential depth, as S5's ``associative_scan``.

    Parameters
    ----------
    a : torch.Tensor, shape (L, N) or broadcastable to ``b``
        Diagonal transition per step.
    b : torch.Tensor, shape (..., L, N)
        Inputs ``B̄ u_k``.

    Returns
    -------
    torch.Tensor, shape of ``b``
    """
    a = torch.broadcast_to(a, b.shape)
    offset = 1
    L = b.shape[-2]
    while offset < L:
        b = torch.cat(
            [b[..., :offset, :], a[..., offset:, :] * b[..., :-offset, :] + b[..., offset:, :]],
            dim=-2,
        )
        a = torch.cat([a[..., :offset, :], a[..., offset:, :] * a[..., :-offset, :]], dim=-2)
        offset *= 2
    return b


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def _log_dt(channels: int, dt_min: float, dt_max: float, gen: torch.Generator, dtype: Any) -> Any:
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
    r = torch.rand(channels, generator=gen, dtype=dtype)
    return r * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)


class _DiagonalSSM(nn.Module):
    """Parameters shared by both layers: ``Λ = -exp(log_neg_re) + i im``, ``log dt``, D."""

    def _init_lambda(self, init: DiagonalInit, rows: int, cdtype: torch.dtype) -> None:
        if not isinstance(init, DiagonalInit):
            raise TypeError(f"init must be a DiagonalInit, got {type(init).__name__}")
        lam = torch.as_tensor(np.asarray(init.Lambda), dtype=cdtype)
        if (lam.real >= 0).any():
            raise ValueError("init.Lambda must have Re < 0 (a stable diagonal system)")
        lam = lam.expand(rows, -1).clone()
        # Re Λ = -exp(.) stays negative under any gradient step (S4D's parametrisation).
        self.log_neg_re = nn.Parameter(torch.log(-lam.real))
        self.im = nn.Parameter(lam.imag.clone())
        self.conj_sym = bool(init.conj_sym)

    @property
    def Lambda(self) -> torch.Tensor:
        """The current continuous-time eigenvalues (complex)."""
        return torch.complex(-torch.exp(self.log_neg_re), self.im)

    def _out_scale(self) -> float:
        return 2.0 if self.conj_sym else 1.0


class S4DLayer(_DiagonalSSM):
    r"""S4D layer: ``H`` independent SISO diagonal SSMs with ``N`` modes each.

    Maps ``u`` of shape ``(batch, H, L)`` to ``y`` of the same shape,
    ``y_h = K_h * u_h + D_h u_h`` with ``K_h[l] = s Re Σ_n C_hn B̄_hn Ā_hn^l`` (``s = 2``
    for conjugate-pair inits). Every channel starts from the same ``init`` and a
    log-uniform ``dt`` in ``[dt_min, dt_max]``; ``C`` is complex Gaussian with
    variance 1/2 per part, ``D`` standard normal, drawn from ``seed``.

    Parameters
    ----------
    channels : int
        ``H``.
    init : DiagonalInit
        From :func:`learned.ssm_init.diagonal_init` or :func:`learned.ssm_init.from_ptd`.
    discretization : {"zoh", "bilinear"}
    dt_min, dt_max : float
    block : int, optional
        Block size of the Vandermonde kernel (``O(N + L)`` memory path).
    dtype : torch.dtype
        float32 or float64 (complex parameters use the matching complex type).
    seed : int
        Seed of the torch generator for ``C``, ``D`` and ``dt``.

    Examples
    --------
    >>> from learned.ssm_init import diagonal_init
    >>> layer = S4DLayer(3, diagonal_init("lin", 8), dtype=torch.float64)
    >>> u = torch.randn(2, 3, 16, dtype=torch.float64)
    >>> y = layer(u, mode="conv")
    >>> bool(torch.allclose(y, layer(u, mode="step"), atol=1e-10))
    True
    """

    def __init__(
        self,
        channels: int,
        init: DiagonalInit,
        *,
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        block: int | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if discretization not in DISCRETIZATIONS:
            raise ValueError(
                f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}"
            )
        channels = check_positive_int(channels, "channels")
        if block is not None:
            block = check_positive_int(block, "block")
        cdtype = _complex_dtype(dtype)
        gen = torch.Generator().manual_seed(seed)
        self._init_lambda(init, channels, cdtype)
        modes = self.im.shape[-1]
        B = torch.as_tensor(np.asarray(init.B), dtype=cdtype).expand(channels, -1).clone()
        self.B = nn.Parameter(torch.view_as_real(B))
        C = torch.randn(channels, modes, 2, generator=gen, dtype=dtype) * math.sqrt(0.5)
        self.C = nn.Parameter(C)
        self.D = nn.Parameter(torch.randn(channels, generator=gen, dtype=dtype))
        self.log_dt = nn.Parameter(_log_dt(channels, dt_min, dt_max, gen, dtype))
        self.discretization = discretization
        self.block = block

    def _discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dt = torch.exp(self.log_dt)[:, None]
        Abar, Bbar = discretize(self.Lambda, torch.view_as_complex(self.B), dt, self.discretization)
        return Abar, Bbar, torch.view_as_complex(self.C)

    def kernel(self, length: int) -> torch.Tensor:
        """Real convolution kernel ``K``, shape ``(H, length)``."""
        Abar, Bbar, C = self._discrete()
        K = vandermonde_kernel(Abar, C * Bbar, length, block=self.block)
        return self._out_scale() * K.real

    def forward(self, u: torch.Tensor, mode: str = "conv") -> torch.Tensor:
        """Apply the layer to ``u`` of shape ``(batch, H, L)`` in ``mode``."""
        _check_mode(mode)
        if u.ndim != 3 or u.shape[1] != self.D.shape[0]:
            raise ValueError(
                f"u must have shape (batch, {self.D.shape[0]}, L), got {tuple(u.shape)}"
            )
        if mode == "conv":
            return fft_conv(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        Abar, Bbar, C = self._discrete()
        if mode == "scan":
            bu = u[..., None] * Bbar[:, None, :]  # (batch, H, L, N), scanned along L
            x = parallel_scan(Abar[:, None, :], bu)
            y = self._out_scale() * torch.einsum("bhln,hn->bhl", x, C).real
            return y + self.D[:, None] * u
        state = self.initial_state(u.shape[0])
        ys = []
        for k in range(u.shape[-1]):
            yk, state = self.step(u[:, :, k], state)
            ys.append(yk)
        return torch.stack(ys, dim=-1)

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state of shape ``(batch, H, N)``."""
        return torch.zeros((batch, *self.im.shape), dtype=self.Lambda.dtype)

    def step(self, u_k: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step: ``x = Ā x + B̄ u_k``, ``y_k = s Re(C x) + D u_k``."""
        Abar, Bbar, C = self._discrete()
        state = Abar * state + Bbar * u_k[..., None]
        y = self._out_scale() * (state * C).sum(-1).real + self.D * u_k
        return y, state


class S5Layer(_DiagonalSSM):
    r"""S5 layer: one MIMO diagonal SSM with ``P`` modes shared by ``H`` channels.

    ``x_k = Ā x_{k-1} + B̄ u_k``, ``y_k = s Re(C x_k) + D ∘ u_k`` with ``B`` of shape
    ``(P, H)`` and ``C`` of shape ``(H, P)``: the modes mix the channels. ``B`` is the
    init's ``B̃`` times a random row (``B̃_p g_h``, ``g`` Gaussian / sqrt(H)) so that the
    single-input transfer function of the init survives; ``dt`` is per mode.

    Parameters
    ----------
    channels : int
        ``H``.
    init : DiagonalInit
    discretization : {"zoh", "bilinear"}
    dt_min, dt_max : float
    dtype : torch.dtype
    seed : int

    Examples
    --------
    >>> from learned.ssm_init import diagonal_init
    >>> layer = S5Layer(3, diagonal_init("inv", 8), dtype=torch.float64)
    >>> u = torch.randn(2, 3, 20, dtype=torch.float64)
    >>> bool(torch.allclose(layer(u, mode="scan"), layer(u, mode="conv"), atol=1e-10))
    True
    """

    def __init__(
        self,
        channels: int,
        init: DiagonalInit,
        *,
        discretization: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if discretization not in DISCRETIZATIONS:
            raise ValueError(
                f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}"
            )
        channels = check_positive_int(channels, "channels")
        cdtype = _complex_dtype(dtype)
        gen = torch.Generator().manual_seed(seed)
        self._init_lambda(init, 1, cdtype)
        modes = self.im.shape[-1]
        g = torch.randn(channels, generator=gen, dtype=dtype) / math.sqrt(channels)
        B = torch.as_tensor(np.asarray(init.B), dtype=cdtype)[:, None] * g.to(cdtype)
        self.B = nn.Parameter(torch.view_as_real(B))
        C = torch.randn(channels, modes, 2, generator=gen, dtype=dtype) * math.sqrt(0.5)
        self.C = nn.Parameter(C)
        self.D = nn.Parameter(torch.randn(channels, generator=gen, dtype=dtype))
        self.log_dt = nn.Parameter(_log_dt(modes, dt_min, dt_max, gen, dtype))
        self.discretization = discretization

    def _discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dt = torch.exp(self.log_dt)
        lam = self.Lambda[0]
        Abar, scale = discretize(lam, torch.ones_like(lam), dt, self.discretization)
        return Abar, scale[:, None] * torch.view_as_complex(self.B), torch.view_as_complex(self.C)

    def forward(self, u: torch.Tensor, mode: str = "scan") -> torch.Tensor:
        """Apply the layer to ``u`` of shape ``(batch, H, L)`` in ``mode``."""
        _check_mode(mode)
        if u.ndim != 3 or u.shape[1] != self.D.shape[0]:
            raise ValueError(
                f"u must have shape (batch, {self.D.shape[0]}, L), got {tuple(u.shape)}"
            )
        if mode == "step":
            state = self.initial_state(u.shape[0])
            ys = []
            for k in range(u.shape[-1]):
                yk, state = self.step(u[:, :, k], state)
                ys.append(yk)
            return torch.stack(ys, dim=-1)
        Abar, Bbar, C = self._discrete()
        bu = torch.einsum("ph,bhl->bpl", Bbar, u.to(Bbar.dtype))
        if mode == "scan":
            x = parallel_scan(Abar, bu.transpose(1, 2)).transpose(1, 2)
        else:
            powers = vandermonde_kernel(Abar[:, None], torch.ones_like(Abar)[:, None], u.shape[-1])
            x = fft_conv(bu, powers)
        y = self._out_scale() * torch.einsum("hp,bpl->bhl", C, x).real
        return y + self.D[:, None] * u

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state of shape ``(batch, P)``."""
        return torch.zeros((batch, self.im.shape[-1]), dtype=self.Lambda.dtype)

    def step(self, u_k: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step on ``u_k`` of shape ``(batch, H)``."""
        Abar, Bbar, C = self._discrete()
        state = Abar * state + u_k.to(Bbar.dtype) @ Bbar.T
        y = self._out_scale() * (state @ C.T).real + self.D * u_k
        return y, state
