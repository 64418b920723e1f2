"""GP-HM spectral-mixture kernels as gpytorch modules.

:class:`SpectralMixtureProductKernel` is a ``gpytorch.kernels.Kernel`` computing the
product over input dimensions of one-dimensional spectral-mixture kernels,

    k(x, x') = Π_d Σ_q w_{dq} B(x_d - x'_d; l_{dq}) cos(2π f_{dq} (x_d - x'_d)),

with a squared-exponential (Gaussian-mixture spectrum) or Matérn-5/2 (Student-t mixture
spectrum) envelope ``B``, the covariance of GP-HM (Fang et al., ICLR 2024). The weights
are stored as ``log_weight``: optimising them in the log domain with no further prior is
the paper's Jeffreys prior ``p(w) ∝ 1/w``, which prunes unneeded components. The
formulas are those of :class:`solvers.gp_pde.kernels.SpectralMixture` (numpy), which the
PDE solver uses; :meth:`SpectralMixtureProductKernel.from_mixtures` and
:meth:`~SpectralMixtureProductKernel.to_mixtures` convert between the two, so a kernel
fitted by the solver can be reused in any gpytorch model (and derivative kernels are
available by autograd).

Importing this module imports torch and gpytorch; :mod:`solvers` never does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from gpytorch.constraints import Positive
from gpytorch.kernels import Kernel

from solvers.gp_pde.kernels import ENVELOPES, SpectralMixture

__all__ = ["SpectralMixtureProductKernel"]


class SpectralMixtureProductKernel(Kernel):
    r"""Product over dimensions of spectral-mixture kernels (GP-HM), a gpytorch kernel.

    Parameters
    ----------
    num_dims : int
        Number of input dimensions ``D`` (each gets its own mixture).
    num_mixtures : int
        Components ``Q`` per dimension.
    envelope : {"se", "matern52"}
        Squared-exponential (Gaussian-mixture spectrum) or Matérn-5/2 (Student-t).
    **kwargs
        Passed to ``gpytorch.kernels.Kernel`` (``batch_shape``, ``active_dims``, ...).

    Attributes
    ----------
    log_weight : torch.nn.Parameter, shape (D, Q)
        ``log w``; initialised to ``log(1/Q)`` as in the reference code.
    frequency, envelope_lengthscale : torch.Tensor, shape (D, Q)
        Positive-constrained ``f`` (cycles per unit) and ``l``.

    Examples
    --------
    >>> import torch
    >>> k = SpectralMixtureProductKernel(num_dims=2, num_mixtures=3)
    >>> x = torch.rand(5, 2, dtype=torch.float64)
    >>> K = k(x, x).to_dense()
    >>> tuple(K.shape), bool(torch.allclose(K, K.T))
    ((5, 5), True)
    """

    has_lengthscale = False

    def __init__(self, num_dims: int, num_mixtures: int, envelope: str = "se", **kwargs) -> None:
        if isinstance(num_dims, bool) or not isinstance(num_dims, int) or num_dims < 1:
            raise ValueError(f"num_dims must be a positive integer, got {num_dims!r}")
        if isinstance(num_mixtures, bool) or not isinstance(num_mixtures, int) or num_mixtures < 1:
            raise ValueError(f"num_mixtures must be a positive integer, got {num_mixtures!r}")
        if envelope not in ENVELOPES:
            raise ValueError(f"envelope must be one of {ENVELOPES}, got {envelope!r}")
        super().__init__(**kwargs)
        self.num_dims, self.num_mixtures, self.envelope = num_dims, num_mixtures, envelope
        shape = (num_dims, num_mixtures)
        dtype = torch.get_default_dtype()
        self.register_parameter(
            "log_weight",
            torch.nn.Parameter(torch.full(shape, -math.log(num_mixtures), dtype=dtype)),
        )
        self.register_parameter(
            "raw_frequency", torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        )
        self.register_parameter(
            "raw_envelope_lengthscale", torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        )
        self.register_constraint("raw_frequency", Positive())
        self.register_constraint("raw_envelope_lengthscale", Positive())

    @property
    def frequency(self) -> torch.Tensor:
        """Component frequencies ``f_{dq}`` (cycles per unit length)."""
        return self.raw_frequency_constraint.transform(self.raw_frequency)

    @frequency.setter
    def frequency(self, value: torch.Tensor) -> None:
        value = torch.as_tensor(value, dtype=self.raw_frequency.dtype)
        self.initialize(raw_frequency=self.raw_frequency_constraint.inverse_transform(value))

    @property
    def envelope_lengthscale(self) -> torch.Tensor:
        """Envelope lengthscales ``l_{dq}``."""
        return self.raw_envelope_lengthscale_constraint.transform(self.raw_envelope_lengthscale)

    @envelope_lengthscale.setter
    def envelope_lengthscale(self, value: torch.Tensor) -> None:
        value = torch.as_tensor(value, dtype=self.raw_envelope_lengthscale.dtype)
        self.initialize(
            raw_envelope_lengthscale=self.raw_envelope_lengthscale_constraint.inverse_transform(
                value
            )
        )

    def _axis(self, tau: torch.Tensor, d: int) -> torch.Tensor:
        """``Σ_q w_q B(τ; l_q) cos(2π f_q τ)`` for dimension ``d`` at lags ``tau``."""
        w = torch.exp(self.log_weight[d])
        f = self.frequency[d]
        ell = self.envelope_lengthscale[d]
        t = tau.unsqueeze(-1)
        if self.envelope == "se":
            b = torch.exp(-0.5 * (t / ell) ** 2)
        else:
            # sqrt(t^2 + tiny) keeps autograd finite at tau = 0, where |tau| has no
            # derivative even though B does (B'(0) = 0).
            ar = math.sqrt(5.0) * torch.sqrt(t * t + 1e-300) / ell
            b = (1.0 + ar + ar * ar / 3.0) * torch.exp(-ar)
        return (w * b * torch.cos(2.0 * math.pi * f * t)).sum(-1)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params,
    ) -> torch.Tensor:
        """Return ``k(x1, x2)`` (``(..., n, m)``) or its diagonal (``(..., n)``)."""
        if last_dim_is_batch:
            raise NotImplementedError("last_dim_is_batch is not supported")
        if x1.shape[-1] != self.num_dims:
            raise ValueError(f"inputs must have {self.num_dims} columns, got {x1.shape[-1]}")
        out = None
        for d in range(self.num_dims):
            if diag:
                tau = x1[..., d] - x2[..., d]
            else:
                tau = x1[..., :, d].unsqueeze(-1) - x2[..., :, d].unsqueeze(-2)
            term = self._axis(tau, d)
            out = term if out is None else out * term
        return out

    @classmethod
    def from_mixtures(cls, mixtures: Sequence[SpectralMixture]) -> SpectralMixtureProductKernel:
        """Build a float64 module from per-dimension numpy kernels (same ``Q`` and envelope)."""
        mixtures = list(mixtures)
        if not mixtures:
            raise ValueError("mixtures must not be empty")
        q, env = mixtures[0].components, mixtures[0].envelope
        if any(m.components != q or m.envelope != env for m in mixtures):
            raise ValueError("every mixture must have the same number of components and envelope")
        module = cls(len(mixtures), q, env).to(torch.float64)
        dtype = torch.float64
        with torch.no_grad():
            module.log_weight.copy_(
                torch.tensor(np.log([m.weights for m in mixtures]), dtype=dtype)
            )
        # Positive() is a softplus: a frequency of exactly 0 maps to -inf; nudge it.
        freqs = np.maximum([m.frequencies for m in mixtures], 1e-12)
        module.frequency = torch.tensor(freqs, dtype=dtype)
        module.envelope_lengthscale = torch.tensor(
            np.array([m.lengthscales for m in mixtures]), dtype=dtype
        )
        return module

    def to_mixtures(self) -> list[SpectralMixture]:
        """Return the per-dimension numpy kernels (for :class:`solvers.gp_pde.GPPDESolver`)."""
        with torch.no_grad():
            w = torch.exp(self.log_weight).cpu().double().numpy()
            f = self.frequency.cpu().double().numpy()
            ell = self.envelope_lengthscale.cpu().double().numpy()
        return [SpectralMixture(w[d], f[d], ell[d], self.envelope) for d in range(self.num_dims)]
