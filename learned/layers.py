"""Trainable torch layers built on numlib primitives.

:class:`TensorAttention` is the tensor (Kronecker) attention of Alman & Song ("How to
Capture Higher-order Correlations? Generalizing Matrix Softmax Attention to Kronecker
Computation", ICLR 2024, arXiv:2310.04064): each query attends to *pairs* of tokens,
``D^-1 exp(Q (K1 ⊘ K2)^T)(V1 ⊘ V2)`` per head, computed by
:func:`numlib.attention.tensor_attention` (exact, ``O(n^3)``) or
:func:`numlib.attention.fast_tensor_attention` (polynomial features, ``O(n r d)``
for bounded logits). :class:`SoftmaxAttention` is the matrix counterpart with the same
interface, for comparisons. Autograd flows through both numlib paths (they compute
with torch operations on torch inputs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from numlib.attention import (
    fast_softmax_attention,
    fast_tensor_attention,
    softmax_attention,
    tensor_attention,
)

__all__ = ["SoftmaxAttention", "TensorAttention"]

MODES = ("exact", "fast")


class _MultiHead(nn.Module):
    """Shared constructor, projections and head split of the attention layers below."""

    #: Names of the input projections (one ``nn.Linear(dim, heads * head_dim)`` each).
    streams: tuple[str, ...] = ()

    def __init__(
        self,
        dim: int,
        heads: int = 1,
        head_dim: int | None = None,
        *,
        mode: str = "exact",
        causal: bool = False,
        degree: int | None = None,
        tol: float = 1e-4,
        basis: str = "chebyshev",
        fallback: bool = True,
    ) -> None:
        super().__init__()
        sizes = (("dim", dim), ("heads", heads), ("head_dim", head_dim), ("degree", degree))
        for name, value in sizes:
            if value is None and name in ("head_dim", "degree"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {causal!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if head_dim is None:
            if dim % heads:
                raise ValueError(f"dim = {dim} is not divisible by heads = {heads}")
            head_dim = dim // heads
        self.dim, self.heads, self.head_dim = dim, heads, head_dim
        self.mode, self.causal = mode, causal
        self.fast_options: dict[str, Any] = {
            "degree": degree,
            "tol": tol,
            "basis": basis,
            "fallback": fallback,
        }
        self.proj = nn.ModuleDict({s: nn.Linear(dim, heads * head_dim) for s in self.streams})
        self.out = nn.Linear(heads * head_dim, dim)

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., n, {self.dim}), got {tuple(x.shape)}")

    def _split(self, x: torch.Tensor, stream: str) -> torch.Tensor:
        y = self.proj[stream](x)
        y = y.reshape(*x.shape[:-1], self.heads, self.head_dim)
        return y.transpose(-2, -3)  # (..., heads, n, head_dim)

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        y = y.transpose(-2, -3)
        return self.out(y.reshape(*y.shape[:-2], self.heads * self.head_dim))


class TensorAttention(_MultiHead):
    """Multi-head tensor attention: every token attends to pairs of tokens.

    Per head, with projections ``q, k1, k2, v1, v2`` of the input rows,
    ``out_i = sum_{j,l} w_ijl (v1_j ∘ v2_l)`` with
    ``w_ijl ∝ exp(<q_i, k1_j ∘ k2_l> / sqrt(head_dim))``; heads are concatenated and
    projected back to ``dim``. One layer can express triple-wise relations (e.g.
    ``x_i + x_j + x_l ≡ 0 mod p``) that one layer of softmax attention of the same
    width cannot (Sanford, Hsu & Telgarsky 2023, cited by Alman & Song).

    Parameters
    ----------
    dim : int
        Model width (input and output features).
    heads : int, optional
        Number of heads.
    head_dim : int, optional
        Width per head (default ``dim // heads``).
    mode : {"exact", "fast"}, optional
        ``exact``: :func:`numlib.attention.tensor_attention`, ``O(n^3 d)``.
        ``fast``: :func:`numlib.attention.fast_tensor_attention`, ``O(n r d)``,
        accurate to its a-priori bound when the logits are bounded.
    causal : bool, optional
        Token ``i`` attends to pairs ``j, l <= i``.
    degree, tol, basis, fallback
        Options of the fast mode (:func:`numlib.attention.plan_attention`); with
        ``fallback=True`` (default here) a batch whose logits are too large for the
        requested accuracy is computed exactly rather than raising.

    Raises
    ------
    TypeError
        If ``dim``, ``heads`` or ``head_dim`` is not an int or ``causal`` not a bool.
    ValueError
        If one of them is not positive, ``heads`` does not divide ``dim`` (without
        ``head_dim``), or ``mode`` is unknown.

    Examples
    --------
    >>> import torch
    >>> from learned.layers import TensorAttention
    >>> layer = TensorAttention(8, heads=2).double()
    >>> x = torch.randn(3, 5, 8, dtype=torch.float64) * 0.1
    >>> layer(x).shape
    torch.Size([3, 5, 8])
    >>> fast = TensorAttention(8, heads=2, mode="fast", tol=1e-8).double()
    >>> _ = fast.load_state_dict(layer.state_dict())
    >>> bool(torch.allclose(fast(x), layer(x), atol=1e-7))
    True
    """

    streams = ("q", "k1", "k2", "v1", "v2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., n, dim)``."""
        self._check_input(x)
        q = self._split(x, "q") / self.head_dim**0.5
        k1, k2, v1, v2 = (self._split(x, s) for s in ("k1", "k2", "v1", "v2"))
        if self.mode == "exact":
            y = tensor_attention(q, k1, k2, v1, v2, causal=self.causal)
        else:
            y = fast_tensor_attention(q, k1, k2, v1, v2, causal=self.causal, **self.fast_options)
        return self._merge(y)


class SoftmaxAttention(_MultiHead):
    """Multi-head softmax (matrix) attention with the interface of :class:`TensorAttention`.

    ``out_i = sum_j w_ij v_j``, ``w_ij ∝ exp(<q_i, k_j> / sqrt(head_dim))``, through
    :func:`numlib.attention.softmax_attention` (``exact``) or
    :func:`numlib.attention.fast_softmax_attention` (``fast``). Parameters as for
    :class:`TensorAttention`.

    Examples
    --------
    >>> import torch
    >>> from learned.layers import SoftmaxAttention
    >>> SoftmaxAttention(8, heads=2)(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    streams = ("q", "k", "v")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(..., n, dim)``."""
        self._check_input(x)
        q = self._split(x, "q") / self.head_dim**0.5
        k, v = self._split(x, "k"), self._split(x, "v")
        if self.mode == "exact":
            y = softmax_attention(q, k, v, causal=self.causal)
        else:
            y = fast_softmax_attention(q, k, v, causal=self.causal, **self.fast_options)
        return self._merge(y)
