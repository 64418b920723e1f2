"""The DCDM network: a convolutional approximation of ``r -> c A^{-1} r`` on a grid.

Kaneda et al. (ICML 2023) use a 3-D CNN of 16 channels, 3x3x3 kernels, ReLU and
additive residual skips, with *one* average-pooling level, upsampling and a
full-resolution skip, and a pointwise linear output. That network is
``DCDMNet(dim, levels=1)`` here.

Why a multilevel default. ``A^{-1}`` of a Laplacian is global: a residual at one
node changes the solution everywhere. A network whose receptive field is a fixed
number of nodes (one pooling level: a few dozen nodes) can only approximate a
*local* inverse, so on finer grids the low-frequency error it cannot see costs
iterations that grow with the grid, as for any one-level preconditioner. The
default, ``levels=None``, therefore recurses like a multigrid V-cycle: the same
(weight-shared) blocks are applied on every level of a pooling pyramid that goes
down to a grid of at most ``coarsest`` nodes per axis, so the receptive field
always spans the whole domain, the network applies to any grid size, and the
number of levels grows with ``log2 n``. Each coarse correction is multiplied by a
learned gain initialised to ``4 = (2h)²/h²``, the factor by which the inverse of a
Laplacian rediscretised on a twice coarser grid grows.

Initialisation. Trained from random weights, the network starts far rougher than
``A^{-1} r`` and the scale-invariant loss gives it little signal (on a CPU budget
it stayed at the loss of a useless direction). So with ``init="bpx"`` (default)
the weights start as the BPX multilevel preconditioner of Bramble, Pasciak and Xu,
``q = Σ_l 4^l (I^l R^l) r`` (``R`` = average pooling, ``I`` = linear interpolation),
which is spectrally equivalent to ``A^{-1}`` up to logarithmic factors on these
Poisson problems: the lift splits ``r`` into pairs of channels ``(r)_+, (-r)_-``
(so the ReLUs pass it unchanged), the second convolution of every residual
block starts at zero (each block is the identity), and the projection recombines
the pairs with random positive weights that sum to one (they break the symmetry
between pairs). ``init="multigrid"`` goes further: the weights of a V(nu, nu)
multigrid cycle with damped-Jacobi smoothing, ``nu = blocks - 2``
(:meth:`DCDMNet._init_multigrid`), which gives grid-independent iteration counts on the box; with
``restriction="adjoint"`` (the transpose of the interpolation instead of average
pooling) that network is a symmetric operator, as a CG preconditioner must be.
``init="random"`` keeps PyTorch's default initialisation, as in the paper.

Operator layers. With ``galerkin=True`` (an extension) every residual block also
reads the operator of its level, :class:`OperatorPyramid` (the Galerkin products
``P^T A P`` of the network's own transfers): a convolution applies one stencil at
every node, so without these layers obstacles and closed walls reach the coarse
levels only as input channels, and the cycle treats them as Dirichlet nodes. The
multigrid initialisation then is a Galerkin V-cycle with true-diagonal Jacobi.

The convolutions have no bias, so the network is positively homogeneous,
``f(c r) = c f(r)`` for ``c > 0``: together with the scale-invariant loss this makes
the direction independent of the residual's scale, as the method requires. The
network also reads the operator: ``geometry`` (:meth:`GridStencil.geometry`: the
active mask, the scaled diagonal and couplings) enters the first convolution, so
it can tell closed walls and obstacles (Neumann) from open walls (Dirichlet),
which the residual alone cannot show; and the mask multiplies the features
after every block, so decoupled solid nodes stay out of the computation. With a
geometry input the network is positively homogeneous in ``r`` only when the
geometry weights are zero; the solver and the training always feed unit-norm
residuals, so this costs nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from learned.dcdm.pyramid import (
    OPERATOR_TERMS,
    OperatorPyramid,
    interpolation_adjoint,
    level_shapes,
)
from learned.dcdm.stencil import GridStencil

__all__ = ["INITS", "RESTRICTIONS", "DCDMConfig", "DCDMNet"]

INITS = ("bpx", "multigrid", "random")
RESTRICTIONS = ("average", "adjoint")
# Damped-Jacobi weight of the multigrid initialisation: the optimal smoothing weight
# of the 5-point (4/5) and 7-point (6/7) Laplacian.
JACOBI_WEIGHT = {2: 4 / 5, 3: 6 / 7}
# Slots of the multigrid initialisation: each signed field u is held as a pair of
# non-negative channels (2 s, 2 s + 1) with u = ch[2 s] - ch[2 s + 1].
_RESIDUAL, _CORRECTION, _PREVIOUS = 0, 1, 2
_SPARE_SCALE = 1e-3


@dataclass(frozen=True)
class DCDMConfig:
    """Hyper-parameters of :class:`DCDMNet` (stored with every saved model).

    Attributes
    ----------
    dim : int
        Grid dimension, 2 or 3.
    channels : int
        Feature channels (16 in the paper).
    blocks : int
        Residual blocks (two convolutions each) per stack.
    levels : int or None
        Pooling levels; 1 is the paper's network, None recurses down to ``coarsest``.
    coarsest : int
        With ``levels=None``, stop pooling once an axis has at most this many nodes.
    init : {"bpx", "multigrid", "random"}
        Initial weights (see the module docstring).
    restriction : {"average", "adjoint"}
        Fine-to-coarse transfer: average pooling (the paper's), or the adjoint of the
        linear interpolation that brings coarse corrections back, divided by ``2^d``,
        which makes a linear network symmetric (a CG preconditioner needs that).
    galerkin : bool
        Every block also reads the operator of its level (:class:`OperatorPyramid`:
        Galerkin products of the network's own transfers) through a 1x1 convolution
        of :data:`OPERATOR_TERMS`; needs ``restriction="adjoint"``.
    """

    dim: int
    channels: int = 16
    blocks: int = 2
    levels: int | None = None
    coarsest: int = 4
    init: str = "bpx"
    restriction: str = "average"
    galerkin: bool = False

    def __post_init__(self) -> None:
        for name in ("dim", "channels", "blocks", "coarsest"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim}")
        if self.channels < 1 or self.blocks < 1 or self.coarsest < 1:
            raise ValueError("channels, blocks and coarsest must be >= 1")
        if self.levels is not None and (
            isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 1
        ):
            raise ValueError(f"levels must be a positive int or None, got {self.levels!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.init == "bpx" and self.channels < 2:
            raise ValueError("init='bpx' needs channels >= 2")
        if self.restriction not in RESTRICTIONS:
            raise ValueError(f"restriction must be one of {RESTRICTIONS}, got {self.restriction!r}")
        if not isinstance(self.galerkin, bool):
            raise TypeError(f"galerkin must be a bool, got {type(self.galerkin).__name__}")
        if self.galerkin and self.restriction != "adjoint":
            raise ValueError("galerkin=True needs restriction='adjoint' (P^T A P pairs with P^T)")
        if self.init == "multigrid" and (self.channels < 6 or self.blocks < 3):
            raise ValueError("init='multigrid' needs channels >= 6 and blocks >= 3")

    def to_dict(self) -> dict[str, int | None]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


class _Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that takes oneDNN's kernel for float32 on the CPU whatever the size.

    PyTorch sends a 3-D input with ``N C D H <= 20480`` -- one sample of 6 channels on
    32³ -- to its reference kernel, which is ten times slower than oneDNN's there
    (15 ms against 1.5 ms on one thread): the network's second level cost more than
    its finest.
    """

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if (
            input.device.type == "cpu"
            and input.dtype == torch.float32
            and self.padding_mode == "zeros"
            and torch.backends.mkldnn.is_available()
        ):
            return torch.mkldnn_convolution(
                input, weight, bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super()._conv_forward(input, weight, bias)


class _ResidualStack(nn.Sequential):
    """``blocks`` residual blocks ``x + conv(relu(conv(x) + mix(T x)))``, each followed by a ReLU.

    ``T x`` are the :data:`OPERATOR_TERMS` of the level's operator, mixed by the
    weights of a 1x1 convolution (:meth:`OperatorPyramid.mix`); only with
    ``galerkin=True``.
    """

    def __init__(self, conv: type[nn.Module], channels: int, blocks: int, galerkin: bool) -> None:
        def block() -> nn.ModuleList:
            layers = [
                conv(channels, channels, 3, padding=1, bias=False),
                conv(channels, channels, 3, padding=1, bias=False),
            ]
            if galerkin:
                layers.append(conv(len(OPERATOR_TERMS) * channels, channels, 1, bias=False))
            return nn.ModuleList(layers)

        super().__init__(*[block() for _ in range(blocks)])

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mix: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        for block in self:
            h = block[0](x)
            if mix is not None:
                h = h + mix(x, block[2].weight)
            x = F.relu(x + block[1](F.relu(h))) * mask
        return x


class DCDMNet(nn.Module):
    """Convolutional network mapping a residual to a search direction.

    Input and output have shape ``(B, 1, *grid)``; any grid with at least one node
    per axis works (pooling rounds odd sizes up, upsampling returns to the exact
    size). With ``levels=1`` this is the network of Kaneda et al. (2023); the
    default multilevel form is explained in the module docstring.

    Parameters
    ----------
    dim : {2, 3}
        Grid dimension.
    channels, blocks, levels, coarsest, init, restriction, galerkin
        See :class:`DCDMConfig`.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = DCDMNet(2)
    >>> r = torch.randn(3, 1, 20, 12)
    >>> q = net(r)
    >>> q.shape
    torch.Size([3, 1, 20, 12])
    >>> bool(torch.allclose(net(2.5 * r), 2.5 * q, atol=1e-5))  # positively homogeneous
    True
    """

    def __init__(
        self,
        dim: int,
        *,
        channels: int = 16,
        blocks: int = 2,
        levels: int | None = None,
        coarsest: int = 4,
        init: str = "bpx",
        restriction: str = "average",
        galerkin: bool = False,
    ) -> None:
        super().__init__()
        self.config = DCDMConfig(
            dim, channels, blocks, levels, coarsest, init, restriction, galerkin
        )
        conv = nn.Conv2d if dim == 2 else _Conv3d
        self.lift = conv(1, channels, 3, padding=1, bias=False)
        self.geometry_lift = conv(2 + dim, channels, 3, padding=1, bias=False)
        # One stack per role; shared by every level of the pyramid when levels=None.
        self.down = _ResidualStack(conv, channels, blocks, galerkin)
        self.bottom = _ResidualStack(conv, channels, blocks, galerkin)
        self.up = _ResidualStack(conv, channels, blocks, galerkin)
        self.project = conv(channels, 1, 1, bias=False)
        self.coarse_gain = nn.Parameter(torch.tensor(4.0))
        self._pool = F.avg_pool2d if dim == 2 else F.avg_pool3d
        self._maxpool = F.max_pool2d if dim == 2 else F.max_pool3d
        self._interp = "bilinear" if dim == 2 else "trilinear"
        if init == "bpx":
            self._init_bpx()
        elif init == "multigrid":
            self._init_multigrid()

    @torch.no_grad()
    def _init_bpx(self) -> None:
        pairs = self.config.channels // 2
        centre = (0, *([1] * self.config.dim))
        self.lift.weight.mul_(0.1)  # a small random part, to break symmetry
        self.geometry_lift.weight.zero_()
        weights = torch.rand(pairs) + 0.5
        weights /= weights.sum()
        self.project.weight.zero_()
        for j in range(pairs):
            self.lift.weight[(2 * j, *centre)] += 1.0
            self.lift.weight[(2 * j + 1, *centre)] -= 1.0
            self.project.weight[(0, 2 * j, *([0] * self.config.dim))] = weights[j]
            self.project.weight[(0, 2 * j + 1, *([0] * self.config.dim))] = -weights[j]
        for stack in (self.down, self.bottom, self.up):
            for block in stack:
                for layer in block[1:]:  # the second convolution and the operator mix
                    layer.weight.zero_()

    @torch.no_grad()
    def _init_multigrid(self) -> None:
        """Set the weights to a V(nu, nu) multigrid cycle.

        For the constant-coefficient Laplacian, or with ``galerkin=True`` for the
        operators of the :class:`OperatorPyramid` the network reads. ``nu = blocks - 2``
        damped-Jacobi steps before and after the coarse correction (V(1, 1) with the
        minimum of three blocks), ``nu + 1`` on the coarsest level.

        Every residual block adds to some signed fields ``u_s`` (held as channel pairs,
        ``u = ch+ - ch-``, both non-negative) linear functions ``w_s`` of the fields: the
        first convolution computes ``(relu(w_s), relu(-w_s))``, the second adds them to
        ``(ch+, ch-)``, which keeps both non-negative, so the block's ReLU passes them and
        the represented ``u_s + w_s`` is exact. Fields: the level's residual ``R``, the
        correction ``E`` and a copy ``P`` of ``E`` before the coarse correction. With
        ``S`` the stencil (``2d`` at the centre, ``-1`` at the face neighbours, zero
        outside the grid: the Dirichlet box) and ``J = omega / (2d)`` -- with
        ``galerkin=True``, ``S`` the level's operator ``A_l`` and ``J = omega D_l^-1``,
        both through the operator mix, the first convolution keeping the identities:

        - down: ``R += R / 2, E = 0, P = 0``; ``E += J R``; ``R -= S E, P += E``; then
          ``nu - 1`` times ``E += J R, R -= S J R, P += J R``;
        - coarse level on the restricted fields (its first block clears the restricted
          ``E`` and ``P``), its ``E`` interpolated (bi/tri)linearly and added with the
          coarse gain;
        - up: ``R -= S (E - P)``; ``nu - 1`` times ``E += J R, R -= S J R``; then
          ``E += J R, R = 0, P = 0``;
        - bottom: ``R += R / 2, E = 0, P = 0``; ``E += J R``; ``nu - 1`` times
          ``E += J (R - S E)``; ``E += J (R - S E), R = 0``.

        The lift writes ``r / 2`` and ``-r / 2`` (it has no ReLU after it); the first
        block's ``R += R / 2`` turns that into the pair of ``r`` at the finest level and
        multiplies every coarser level's residual by 3/2, which the gain undoes: it is
        ``4 / (3/2)`` for the rediscretised coarse Laplacian (4 = its ratio to the
        coarse stencil) and ``2^d / (3/2)`` for the Galerkin operator read through the
        restriction ``P^T / 2^d``. The six channels used start exact; weights touching
        spare channels keep 1e-3 of PyTorch's random initialisation, so that training
        can recruit them. Without the Galerkin layers, obstacles and closed walls are
        not in these weights (they enter through ``geometry``, which training may use).
        """
        dim, channels = self.config.dim, self.config.channels
        w = JACOBI_WEIGHT[dim]
        R, E, P = _RESIDUAL, _CORRECTION, _PREVIOUS
        # Updates as {target: {source: {term: coefficient}}}, terms "I" (identity) and
        # OPERATOR_TERMS: "D" = D^-1, "A", "AD" = A D^-1, "DA" = D^-1 A.
        normalise = {R: {R: {"I": 0.5}}, E: {E: {"I": -1.0}}, P: {P: {"I": -1.0}}}
        more = self.config.blocks - 3  # smoothing steps beyond V(1, 1)
        smooth = {E: {R: {"D": w}}, R: {R: {"AD": -w}}}
        down = [
            normalise,
            {E: {R: {"D": w}}},
            {R: {E: {"A": -1.0}}, P: {E: {"I": 1.0}}},
            *[{**smooth, P: {R: {"D": w}}}] * more,
        ]
        up = [
            {R: {E: {"A": -1.0}, P: {"A": 1.0}}},
            *[smooth] * more,
            {E: {R: {"D": w}}, R: {R: {"I": -1.0}}, P: {P: {"I": -1.0}}},
        ]
        bottom = [
            normalise,
            {E: {R: {"D": w}}},
            *[{E: {R: {"D": w}, E: {"DA": -w}}}] * more,
            {E: {R: {"D": w}, E: {"DA": -w}}, R: {R: {"I": -1.0}}},
        ]
        used = 2 * len((R, E, P))
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Conv3d):
                # spare channels keep a tiny random part, so that training can use them;
                # the used ones start exact (an operator mix reads one group per term)
                module.weight.mul_(_SPARE_SCALE)
                for start in range(0, module.weight.shape[1], channels):
                    module.weight[:used, start : start + used] = 0.0
        centre = (1,) * dim
        self.lift.weight[(2 * R, 0, *centre)] = 0.5
        self.lift.weight[(2 * R + 1, 0, *centre)] = -0.5
        kernels = _box_kernels(dim)
        for stack, updates in ((self.down, down), (self.up, up), (self.bottom, bottom)):
            for block, update in zip(stack, updates, strict=False):
                _set_update(block, update, kernels)
        self.project.weight[(0, 2 * E, *([0] * dim))] = 1.0
        self.project.weight[(0, 2 * E + 1, *([0] * dim))] = -1.0
        # 1.5 undoes the first block's R += R / 2 on coarse levels; the rest is the
        # ratio of the coarse operator to the coarse Laplacian the cycle needs: 4 for
        # the rediscretised one, 2^d for P^T A P read through the restriction P^T / 2^d.
        self.coarse_gain.fill_((2**dim if self.config.galerkin else 4.0) / 1.5)

    @classmethod
    def from_config(cls, config: DCDMConfig) -> DCDMNet:
        """Build an (untrained) network from its configuration."""
        return cls(**asdict(config))

    def depth(self, grid_shape: tuple[int, ...]) -> int:
        """Return the number of pooling levels used on ``grid_shape``."""
        if self.config.levels is not None:
            return self.config.levels
        smallest = min(grid_shape)
        return max(1, math.ceil(math.log2(max(smallest, 1) / self.config.coarsest)))

    def forward(
        self,
        r: torch.Tensor,
        geometry: torch.Tensor | None = None,
        pyramid: OperatorPyramid | None = None,
    ) -> torch.Tensor:
        """Return the search direction for the residuals ``r`` of shape ``(B, 1, *grid)``.

        ``geometry`` (shape ``(B or 1, 2 + d, *grid)``, :meth:`GridStencil.geometry`)
        describes the operator; None means the Dirichlet box of constant coefficients.
        Features and output are zero where its mask channel is 0. A ``galerkin=True``
        network also reads ``pyramid`` (:meth:`OperatorPyramid.from_matrix` with
        :meth:`depth` levels, the network's dtype; None: the box's), whose masks then
        take the place of the geometry's.
        """
        d = self.config.dim
        if r.ndim != d + 2 or r.shape[1] != 1:
            raise ValueError(
                f"r must have shape (batch, 1, {', '.join(['n'] * d)}) for a {d}-D model, "
                f"got {tuple(r.shape)}"
            )
        shape = tuple(r.shape[2:])
        if geometry is None:
            box = GridStencil.box_geometry(shape)
            geometry = torch.as_tensor(box, dtype=r.dtype, device=r.device).unsqueeze(0)
        elif geometry.ndim != d + 2 or geometry.shape[1] != 2 + d or geometry.shape[2:] != shape:
            raise ValueError(
                f"geometry must have shape (batch, {2 + d}, *{shape}), got {tuple(geometry.shape)}"
            )
        depth = self.depth(shape)
        mask = geometry[:, :1]
        if self.config.galerkin:
            if pyramid is None:
                pyramid = OperatorPyramid.box(shape, depth, dtype=r.dtype, device=r.device)
            elif pyramid.grid_shapes != level_shapes(shape, depth):
                raise ValueError(
                    f"pyramid has grids {pyramid.grid_shapes}, the network needs "
                    f"{level_shapes(shape, depth)}"
                )
            elif pyramid.masks[0].dtype != r.dtype:
                raise ValueError(f"pyramid is {pyramid.masks[0].dtype}, r is {r.dtype}")
            mask = pyramid.masks[0]
        elif pyramid is not None:
            raise ValueError("pyramid is read only by a network built with galerkin=True")
        x = (self.lift(r) + self.geometry_lift(geometry)) * mask
        y = self._level(x, mask, depth, pyramid, 0)
        return self.project(y) * mask

    def _level(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        remaining: int,
        pyramid: OperatorPyramid | None,
        level: int,
    ) -> torch.Tensor:
        mix = None if pyramid is None else functools.partial(pyramid.mix, level)
        if remaining == 0 or min(x.shape[2:]) < 2:
            return self.bottom(x, mask, mix)
        y = self.down(x, mask, mix)
        if pyramid is None:
            coarse_mask = self._maxpool(mask, 2, ceil_mode=True)
        else:
            coarse_mask = pyramid.masks[level + 1]
        if self.config.restriction == "adjoint":
            coarse = interpolation_adjoint(y, tuple(coarse_mask.shape[2:]))
        else:
            coarse = self._pool(y, 2, ceil_mode=True)
        z = self._level(coarse, coarse_mask, remaining - 1, pyramid, level + 1)
        z = F.interpolate(z, size=y.shape[2:], mode=self._interp, align_corners=False)
        y = y + self.coarse_gain * z * mask
        return self.up(y, mask, mix)


@torch.no_grad()
def _set_update(
    block: nn.ModuleList,
    update: dict[int, dict[int, dict[str, float]]],
    kernels: dict[str, torch.Tensor],
) -> None:
    """Make a residual block add ``w_s = sum_t sum_term c * term(u_t)`` to each slot ``s``.

    A term other than the identity goes to the operator mix when the block has one
    (``galerkin=True``), else to the first convolution as its constant-stencil kernel.
    """
    first, second = block[0], block[1]
    mix = block[2] if len(block) == 3 else None
    channels = second.weight.shape[0]
    centre = (1,) * (first.weight.ndim - 2)
    for target, sources in update.items():
        for source, terms in sources.items():
            for term, coefficient in terms.items():
                if mix is None or term == "I":
                    weight, column, value = first.weight, 2 * source, coefficient * kernels[term]
                else:
                    column = OPERATOR_TERMS.index(term) * channels + 2 * source
                    weight, value = mix.weight, torch.tensor(coefficient)
                for sign, row in ((1.0, 2 * target), (-1.0, 2 * target + 1)):
                    weight[row, column] += sign * value
                    weight[row, column + 1] -= sign * value
        second.weight[(2 * target, 2 * target, *centre)] = 1.0
        second.weight[(2 * target + 1, 2 * target + 1, *centre)] = 1.0


def _box_kernels(dim: int) -> dict[str, torch.Tensor]:
    """3^d kernels of the terms for the constant-coefficient Laplacian (``D = 2d``)."""
    centre = (1,) * dim
    identity = torch.zeros((3,) * dim)
    identity[centre] = 1.0
    stencil = identity * (2 * dim)
    for axis in range(dim):
        for side in (0, 2):
            index = list(centre)
            index[axis] = side
            stencil[tuple(index)] = -1.0
    scaled = stencil / (2 * dim)
    return {"I": identity, "D": identity / (2 * dim), "A": stencil, "AD": scaled, "DA": scaled}
