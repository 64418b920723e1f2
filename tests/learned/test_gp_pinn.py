"""learned.gp_pinn: argument checks and exact resume from safetensors checkpoints.

(Training itself is tested with the GP-HM solver in tests/solvers/test_gp_pde_torch.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learned.gp_pinn import train_pinn
from solvers.gp_pde.problems import PDEOperator

LAPLACE = PDEOperator(terms=((1.0, (2, 0)), (1.0, (0, 2))))
AXES = [np.linspace(0.0, 1.0, 6), np.linspace(0.0, 1.0, 6)]
X, Y = np.meshgrid(*AXES, indexing="ij")
SOURCE, BOUNDARY = np.sin(3 * X) * Y, np.zeros((6, 6))
SMALL = {"seconds": 60.0, "width": 8, "depth": 2, "batch_size": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"batch_size": -5}, ValueError, "batch_size must be a positive int"),
        ({"batch_size": 4.0}, TypeError, "batch_size"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"width": 0}, ValueError, "width"),
        ({"depth": True}, TypeError, "depth"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"boundary_weight": -1.0}, ValueError, "boundary_weight"),
        ({"rng": 0.5}, TypeError, "rng"),
        ({"axes": [AXES[0], np.full(6, 0.5)]}, ValueError, r"axes\[1\] must be 1-D"),
        ({"axes": [AXES[0], AXES[1][::-1]]}, ValueError, "strictly increasing"),
        ({"axes": [AXES[0], np.r_[AXES[1][:5], np.nan]]}, ValueError, "finite"),
        ({"axes": [np.array([0.0]), AXES[1]]}, ValueError, "at least 2"),
    ],
)
def test_bad_arguments_are_rejected_before_training(kwargs, error, match, tmp_path) -> None:
    kw = {**SMALL, "max_steps": 5, "checkpoint": tmp_path / "c.safetensors", **kwargs}
    axes = kw.pop("axes", AXES)
    with pytest.raises(error, match=match):
        train_pinn(LAPLACE, axes, SOURCE, BOUNDARY, **kw)
    assert not (tmp_path / "c.safetensors").exists()


def test_resume_reproduces_the_uninterrupted_run_and_refuses_another_configuration(
    tmp_path,
) -> None:
    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "pinn.safetensors"
    straight = train_pinn(LAPLACE, AXES, SOURCE, BOUNDARY, max_steps=200, **SMALL)
    first = train_pinn(LAPLACE, AXES, SOURCE, BOUNDARY, max_steps=100, checkpoint=ckpt, **SMALL)
    assert first.steps == 100
    # Another seed: it only picks the initialisation, which the checkpoint replaces.
    resumed = train_pinn(
        LAPLACE, AXES, SOURCE, BOUNDARY, max_steps=200, checkpoint=ckpt, rng=7, **SMALL
    )
    assert resumed.steps == 200
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert np.array_equal(straight.predict(AXES), resumed.predict(AXES))
    np.testing.assert_array_equal(resumed.losses, straight.losses[1:])

    for change, field in (
        ({"lr": 1e-2}, "lr"),
        ({"batch_size": 8}, "batch_size"),
        ({"width": 16}, "width"),
    ):
        with pytest.raises(ValueError, match=f"another configuration .*{field}"):
            train_pinn(
                LAPLACE,
                AXES,
                SOURCE,
                BOUNDARY,
                max_steps=201,
                checkpoint=ckpt,
                **{**SMALL, **change},
            )
    with pytest.raises(ValueError, match="data"):
        train_pinn(LAPLACE, AXES, 2 * SOURCE, BOUNDARY, max_steps=201, checkpoint=ckpt, **SMALL)
    # A checkpoint without optimizer state (the earlier format) cannot resume exactly.
    old = {k: v for k, v in load_file(str(ckpt)).items() if not k.startswith("__adam")}
    save_file(old, str(ckpt))
    with pytest.raises(ValueError, match="not a train_pinn checkpoint"):
        train_pinn(LAPLACE, AXES, SOURCE, BOUNDARY, max_steps=201, checkpoint=ckpt, **SMALL)
