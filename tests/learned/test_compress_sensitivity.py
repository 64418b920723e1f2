"""learned.compress.sensitivity: measured per-layer sensitivity and the knapsack over ranks.

References: brute force over every combination of options, a truncated SVD written
into a copy of the model, and models whose layers are exactly low rank.
"""

from __future__ import annotations

import collections
import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learned.compress import Recipe, compress, load_compressed, save_compressed
from learned.compress import sensitivity as sens
from learned.compress.layers import LowRankLinear
from learned.compress.sensitivity import (
    LayerOptions,
    choose_options,
    interpolate_losses,
    measure_sensitivity,
    output_tensor,
    rank_grid,
)


@st.composite
def knapsacks(draw: st.DrawFn) -> tuple[dict[str, LayerOptions], int]:
    options = {}
    for layer in range(draw(st.integers(1, 4))):
        count = draw(st.integers(1, 4))
        costs = draw(st.lists(st.integers(1, 30), min_size=count, max_size=count))
        losses = draw(st.lists(st.floats(0.0, 1.0), min_size=count, max_size=count))
        options[f"layer{layer}"] = LayerOptions(
            np.arange(1, count + 1), np.asarray(costs), np.asarray(losses)
        )
    cheapest = sum(int(o.costs.min()) for o in options.values())
    dearest = sum(int(o.costs.max()) for o in options.values())
    return options, draw(st.integers(cheapest, dearest))


def _brute_force(options: dict[str, LayerOptions], budget: float) -> float:
    best = np.inf
    for picks in itertools.product(*(range(len(o.ranks)) for o in options.values())):
        opts = list(options.values())
        cost = sum(o.costs[i] for o, i in zip(opts, picks, strict=True))
        if cost <= budget:
            best = min(best, sum(o.losses[i] for o, i in zip(opts, picks, strict=True)))
    return best


def _value(options: dict[str, LayerOptions], chosen: dict[str, int]) -> tuple[float, int]:
    loss = cost = 0
    for name, o in options.items():
        i = int(np.flatnonzero(o.ranks == chosen[name])[0])
        loss += o.losses[i]
        cost += int(o.costs[i])
    return float(loss), cost


@settings(max_examples=60)
@given(problem=knapsacks())
def test_knapsack_choice_is_optimal_and_within_the_budget(problem) -> None:
    options, budget = problem
    loss, cost = _value(options, choose_options(options, budget))
    assert cost <= budget
    assert loss == pytest.approx(_brute_force(options, budget), abs=1e-12)


@settings(max_examples=30)
@given(problem=knapsacks())
def test_coarse_bins_never_break_the_budget(problem) -> None:
    options, budget = problem
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sens, "MAX_BINS", 3)  # costs rounded up to budget / 3
        try:
            chosen = choose_options(options, budget)
        except ValueError:  # rounding up may leave nothing feasible: said, not hidden
            return
    loss, cost = _value(options, chosen)
    assert cost <= budget
    assert loss >= _brute_force(options, budget) - 1e-12


def test_a_budget_below_the_cheapest_options_is_refused() -> None:
    options = {"a": LayerOptions(np.array([1, 2]), np.array([5, 9]), np.array([1.0, 0.0]))}
    with pytest.raises(ValueError, match="budget"):
        choose_options(options, 4)


@settings(max_examples=30)
@given(m=st.integers(8, 200), n=st.integers(8, 200), multiple_of=st.sampled_from([1, 4, 16]))
def test_rank_grid_spans_the_useful_ranks(m: int, n: int, multiple_of: int) -> None:
    candidates, grid = rank_grid((m, n), multiple_of)
    assert np.all(candidates % multiple_of == 0) and candidates[0] == multiple_of
    if (m * n - 1) // (m + n) >= multiple_of:  # some rank is worth storing
        assert np.all(candidates * (m + n) < m * n)
        assert (candidates[-1] + multiple_of) * (m + n) >= m * n
    assert set(grid) <= set(candidates) and len(grid) <= sens.GRID_POINTS
    assert grid[0] == candidates[0] and grid[-1] == candidates[-1]
    measured = np.exp(-grid / 10.0)
    assert np.allclose(interpolate_losses(grid, grid, measured), measured)


def test_output_tensor_takes_the_first_tensor() -> None:
    t = torch.ones(2)
    assert output_tensor(t) is t
    assert output_tensor((None, t, torch.zeros(1))) is t
    assert output_tensor(collections.OrderedDict(mask=None, last_hidden_state=t)) is t
    with pytest.raises(TypeError, match="no tensor"):
        output_tensor({"logits": None})


def _truncated_svd(layer: nn.Linear, k: int) -> torch.Tensor:
    U, s, Vh = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
    return ((U[:, :k] * s[:k]) @ Vh[:k]).float()


def test_sensitivity_is_the_relative_output_change_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 24), nn.Tanh(), nn.Linear(24, 8)).eval()
    batches = [torch.randn(32, 16) for _ in range(3)]
    before = copy.deepcopy(net.state_dict())

    def build(name: str):
        layer = net.get_submodule(name)

        def truncated(k: int) -> nn.Module:
            U, s, Vh = torch.linalg.svd(layer.weight.detach(), full_matrices=False)
            return LowRankLinear.from_factors(
                U[:, :k] * s[:k], Vh[:k], layer.bias, dtype=torch.float32
            )

        return truncated

    ranks = {"0": [2, 5], "2": [1, 7]}
    measured = measure_sensitivity(net, {n: build(n) for n in ranks}, ranks, batches)
    with torch.no_grad():
        reference = [net(x) for x in batches]
        scale = sum(float(r.double().square().sum()) for r in reference)
        for name, ks in ranks.items():
            for k, got in zip(ks, measured[name], strict=True):
                other = copy.deepcopy(net)
                other.get_submodule(name).weight.copy_(_truncated_svd(net.get_submodule(name), k))
                change = sum(
                    float((other(x) - r).double().square().sum())
                    for x, r in zip(batches, reference, strict=True)
                )
                assert got == pytest.approx(change / scale, rel=1e-3, abs=1e-9)
    assert [type(m) for m in net] == [nn.Linear, nn.Tanh, nn.Linear]
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key])


def _low_rank_then_full() -> nn.Module:
    """32 -> 32 -> 32: the first layer has rank 4 exactly, the second full rank."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32)).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(32, 4) @ torch.randn(4, 32) / 4)
    return net


@pytest.mark.parametrize(("ratio", "second"), [(0.6, 12), (0.7, 0)])
def test_budget_goes_where_truncation_hurts(ratio: float, second: int, tmp_path) -> None:
    net = _low_rank_then_full()
    batches = [torch.randn(64, 32) for _ in range(4)]
    recipe = Recipe(
        "lowrank", kind="svd", param_ratio=ratio, allocation="sensitivity", multiple_of=4
    )
    small = compress(net, recipe, calibration=batches)
    # Rank 4 reproduces the first layer; the rest of the budget (uniform: rank 8 each)
    # goes to the second, which is kept dense once the budget allows it.
    assert isinstance(small[0], LowRankLinear) and small[0].rank == 4
    stored = small[0].rank * 64
    if second:
        assert isinstance(small[2], LowRankLinear) and small[2].rank == second
        stored += second * 64
    else:
        assert type(small[2]) is nn.Linear and torch.equal(small[2].weight, net[2].weight)
        assert small.compressed_layers == ["0"]
        stored += 32 * 32
        x = torch.randn(16, 32)
        with torch.no_grad():
            assert torch.allclose(small(x), net(x), atol=1e-5)
    assert stored <= ratio * 2 * 32 * 32
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, _low_rank_then_full)
    x = torch.randn(8, 32)
    with torch.no_grad():
        assert torch.equal(again(x), small(x))


def test_sensitivity_allocation_needs_calibration_and_a_budget() -> None:
    recipe = Recipe("lowrank", kind="svd", param_ratio=0.5, allocation="sensitivity")
    assert recipe.needs_calibration
    with pytest.raises(ValueError, match="calibration"):
        compress(_low_rank_then_full(), recipe)
    with pytest.raises(ValueError, match="sensitivity"):
        Recipe("lowrank", rank=8, allocation="sensitivity")
    with pytest.raises(ValueError, match="sensitivity"):
        Recipe("wanda", sparsity=0.5, allocation="sensitivity")


def test_convolutions_are_measured_as_convolutions(tmp_path) -> None:
    torch.manual_seed(2)
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3)).eval()
    images = [torch.randn(4, 3, 10, 10) for _ in range(2)]
    recipe = Recipe("lowrank", param_ratio=0.5, allocation="sensitivity", multiple_of=2)
    small = compress(
        cnn, recipe, calibration=images, filter_fn=lambda m, _: isinstance(m, nn.Conv2d)
    )
    stored = 0
    for layer, dense in ((small[0], cnn[0]), (small[2], cnn[2])):
        rows, cols = dense.out_channels, dense.weight[0].numel()
        if type(layer) is nn.Conv2d:
            stored += rows * cols
        else:
            stored += layer.inner.rank * (rows + cols)
    assert stored <= 0.5 * (16 * 27 + 16 * 144)
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, copy.deepcopy(cnn))
    with torch.no_grad():
        assert torch.equal(again(images[0]), small(images[0]))
