"""Tests of the Match3 demo task: labels against brute force, balance, resumable training."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from learned.tasks.triples import Config, balanced_batch, main, train, triple_labels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_force(x: np.ndarray, p: int) -> np.ndarray:
    m, n = x.shape
    y = np.zeros((m, n), dtype=bool)
    for s in range(m):
        for i, j, k in itertools.product(range(n), repeat=3):
            if (x[s, i] + x[s, j] + x[s, k]) % p == 0:
                y[s, i] = True
    return y


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 13), st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**31))
def test_labels_match_brute_force(p, n, m, seed) -> None:
    x = np.random.default_rng(seed).integers(0, p, (m, n))
    np.testing.assert_array_equal(triple_labels(x, p), brute_force(x, p))


def test_balanced_batch_is_half_positive_and_reproducible() -> None:
    x, y = balanced_batch(500, 9, 61, 3)
    assert x.shape == y.shape == (500, 9)
    assert abs(y.mean() - 0.5) <= 1 / (2 * 500)
    np.testing.assert_array_equal(y, triple_labels(x, 61))
    x2, _ = balanced_batch(500, 9, 61, 3)
    np.testing.assert_array_equal(x, x2)


def test_bad_labels_input() -> None:
    with pytest.raises(ValueError, match=r"entries in \[0, 5\)"):
        triple_labels(np.array([[1, 7]]), 5)
    with pytest.raises(ValueError, match="2-D integer array"):
        triple_labels(np.array([1.0, 2.0]), 5)


def test_resumed_training_equals_uninterrupted(tmp_path) -> None:
    cfg = Config(p=11, n=4, dim=8, heads=1, hidden=8, batch=16, steps=4, test_size=32)
    whole = train("tensor", cfg, tmp_path / "whole", log_every=2)
    first = train("tensor", cfg, tmp_path / "part", stop_after=2)
    assert first["steps"] == 2 and not first["finished"]
    resumed = train("tensor", cfg, tmp_path / "part")
    assert resumed["steps"] == whole["steps"] == 4 and resumed["finished"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    a = load_file(str(tmp_path / "whole" / "triples-tensor.safetensors"))
    b = load_file(str(tmp_path / "part" / "triples-tensor.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another configuration"):
        train("tensor", Config(**{**asdict(cfg), "lr": 1e-3}), tmp_path / "part")


@pytest.mark.slow
def test_cli_trains_briefly(tmp_path) -> None:
    argv = ["--out", str(tmp_path), "--steps", "300", "--p", "31", "--n", "6"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"tensor", "matrix"}
    assert results["tensor"]["test_accuracy"] > 0.55
