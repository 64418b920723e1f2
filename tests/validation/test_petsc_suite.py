"""The petsc suite's target test: converged by the recomputed residual, then fewer and faster."""

from __future__ import annotations

import pytest

from validation.suites.petsc import RTOL, _target_met

OURS = {"converged": True, "rel_residual": RTOL, "iterations": 50, "operator_applications": 60,
        "time_s": 1.0}  # fmt: skip
PEER = {"converged": True, "rel_residual": RTOL, "iterations": 100, "time_s": 2.0}


def test_fewer_iterations_products_and_less_time_meet_the_target():
    assert _target_met(OURS, PEER)


@pytest.mark.parametrize(
    "change",
    [
        {"iterations": 100},  # as many iterations
        {"operator_applications": 100},  # the k products per system spent the margin
        {"time_s": 2.0},  # not faster
        {"converged": False},
        {"rel_residual": 2 * RTOL},  # numlib's report contradicted by PETSc's residual
    ],
)
def test_each_condition_is_required(change):
    assert not _target_met(OURS | change, PEER)


def test_a_peer_that_stopped_early_is_no_bar_but_numlib_must_still_converge():
    stopped = PEER | {"converged": False, "iterations": 10, "time_s": 0.1}
    assert _target_met(OURS, stopped)
    assert not _target_met(OURS | {"rel_residual": 2 * RTOL}, stopped)
