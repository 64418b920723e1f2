"""The ptd suite's records (names, metrics, the same-norm peer) and its Pareto plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from validation.registry import plotters
from validation.suites import ptd, ptd_plot

METRICS = {"kappa", "backward_error", "rel_transfer_error", "unstable_eigenvalues", "e_norm_ratio"}


@pytest.fixture(scope="module")
def records():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ptd, "EPS", (1e-3,))
        mp.setattr(ptd, "TRIALS", 3)
        return ptd.hippo_legs_16("small", repeat=1)


def test_methods_peers_and_metric_names(records):
    pairs = {(r.method, r.peer) for r in records}
    assert pairs == {("ptd-random", "s4d-normal"), ("ptd-optimized", "ptd-random")}
    for r in records:
        assert r.case == "hippo-legs-16" and r.suite == "ptd"
        assert METRICS <= set(r.metrics) and METRICS <= set(r.peer_metrics)


def test_optimized_peer_is_random_of_the_same_size_and_loses(records):
    (opt,) = [r for r in records if r.method == "ptd-optimized"]
    assert opt.peer_metrics["e_norm_ratio"] == pytest.approx(opt.metrics["e_norm_ratio"])
    assert opt.metrics["strictly_better"] and opt.metrics["target_met"]
    assert opt.metrics["kappa"] < opt.peer_metrics["kappa"] <= opt.peer_metrics["median_kappa"]


def test_s4d_peer_is_unitary_with_dropped_low_rank_term(records):
    s4d = records[0].peer_metrics
    assert s4d["kappa"] == pytest.approx(1.0, abs=1e-10)
    # E = P P^T with P_i = sqrt(i + 1/2): ||E||_2 = sum(i + 1/2) = n^2 / 2
    A_norm = np.linalg.norm(ptd.hippo_nplr("legs", 16).A, 2)
    assert s4d["e_norm_ratio"] == pytest.approx(128 / A_norm, rel=1e-10)


def test_pareto_plot_from_results_json(records, tmp_path: Path):
    cases = [r.to_json() for r in records]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"cases": cases}))
    assert ptd_plot.main([str(path)]) == 0
    png = tmp_path / "ptd-pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ptd_plot.pareto_plot([], tmp_path) == []
    # the Records themselves, as numlib-bench holds them, draw the same plot
    (tmp_path / "records").mkdir()
    assert ptd_plot.pareto_plot(records, tmp_path / "records") == [
        tmp_path / "records" / "ptd-pareto.png"
    ]
    # and numlib-bench draws it by itself: the plot is registered for the suite
    assert ptd_plot.pareto_plot in plotters("ptd")
