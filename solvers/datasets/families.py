"""PDE families of the data sets: how a sample is drawn, built into ``(A, b)`` and ordered.

Each family is a :class:`_Family` record in :data:`_FAMILIES`; the families
themselves are described in the :mod:`solvers.datasets` package docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.fields import gaussian_random_field
from solvers.ordering import parameter_features
from solvers.problems import convection_diffusion, darcy, heat_step, helmholtz, poisson2d

Params = dict[str, Any]


def _no_shared(n: int, opts: Params) -> None:
    return None


@dataclass(frozen=True)
class _Family:
    """One PDE family.

    ``draw(rng, n, opts)`` returns the stored input and the parameters ``build``
    needs; ``shared(n, opts)`` builds the matrix common to all samples (``None``
    when the matrix varies); ``build(params, n, opts, shared)`` returns ``(A, b)``;
    ``features(inputs)`` maps a stack of inputs to ordering features. ``spd`` says
    whether the matrices are symmetric positive definite (for every option value).
    """

    defaults: dict[str, Any]
    spd: bool
    draw: Callable[[np.random.Generator, int, Params], tuple[np.ndarray, Params]]
    build: Callable[[Params, int, Params, Any], tuple[Any, np.ndarray]]
    shared: Callable[[int, Params], Any] = _no_shared
    features: Callable[[np.ndarray], np.ndarray] = lambda inputs: parameter_features(inputs)


def _grf(rng: np.random.Generator, n: int, opts: Params) -> np.ndarray:
    return gaussian_random_field((n, n), alpha=opts["alpha"], tau=opts["tau"], rng=rng)


def _field_draw(
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Callable[[np.random.Generator, int, Params], tuple[np.ndarray, Params]]:
    def draw(rng: np.random.Generator, n: int, opts: Params) -> tuple[np.ndarray, Params]:
        field = _grf(rng, n, opts)
        if transform is not None:
            field = transform(field)
        return field, {"field": field}

    return draw


def _rhs_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    # Constant-matrix families: every system gets the very same matrix object, so
    # solve_sequence can recognise the family as constant without comparing entries.
    return shared, params["field"].ravel()


def _darcy_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    system = darcy(n, coefficient=params["field"])
    return system.A, system.b


def _convection_draw(rng: np.random.Generator, n: int, opts: Params) -> tuple[np.ndarray, Params]:
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    peclet = float(rng.uniform(opts["peclet_min"], opts["peclet_max"]))
    velocity = peclet * np.array([math.cos(angle), math.sin(angle)])
    field = np.broadcast_to(velocity[:, None, None], (2, n, n)).copy()
    return field, {"peclet": peclet, "angle": angle}


def _convection_build(params: Params, n: int, opts: Params, shared: Any) -> tuple[Any, np.ndarray]:
    # The matrix does not depend on the manufactured solution; the data set's
    # right-hand side is f = 1 with zero boundary values.
    system = convection_diffusion(n, params["peclet"], angle=params["angle"], scheme=opts["scheme"])
    return system.A, np.ones(n * n)


def _convection_features(inputs: np.ndarray) -> np.ndarray:
    # The channels are constant: the velocity vector is the whole parameter, and
    # nearby velocities give nearby matrices.
    return inputs[:, :, 0, 0]


_GRF_DEFAULTS = {"alpha": 2.5, "tau": 7.0}

_FAMILIES: dict[str, _Family] = {
    "darcy": _Family(
        defaults=dict(_GRF_DEFAULTS),
        spd=True,
        draw=_field_draw(np.exp),
        build=_darcy_build,
    ),
    "helmholtz": _Family(
        defaults={"k": 10.0, **_GRF_DEFAULTS},
        spd=False,  # indefinite once k² passes the smallest Laplacian eigenvalue
        draw=_field_draw(),
        build=_rhs_build,
        shared=lambda n, opts: helmholtz(n, opts["k"]).A,
    ),
    "convection_diffusion": _Family(
        defaults={"peclet_min": 1.0, "peclet_max": 50.0, "scheme": "upwind"},
        spd=False,
        draw=_convection_draw,
        build=_convection_build,
        features=_convection_features,
    ),
    "heat": _Family(
        defaults={"dt": 1e-3, **_GRF_DEFAULTS},
        spd=True,
        draw=_field_draw(),
        build=_rhs_build,
        # heat_step's right-hand side without a source is u_prev itself.
        shared=lambda n, opts: heat_step(n, opts["dt"], u_prev=np.zeros((n, n))).A,
    ),
    "poisson": _Family(
        defaults=dict(_GRF_DEFAULTS),
        spd=True,
        draw=_field_draw(),
        build=_rhs_build,
        shared=lambda n, opts: poisson2d(n).A,
    ),
}

FAMILIES = tuple(_FAMILIES)
"""The PDE families :func:`solvers.datasets.generate_dataset` can produce."""
