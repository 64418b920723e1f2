"""learned.compress: the compress() entry point, recipes, save/load and bad input.

References are independent: dense torch products of the stored weights, the layer-wise
objective ``||(W - W') X||`` evaluated directly, and the accuracy of a digits MLP.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learned.compress import (
    MixedBitLinear,
    NMSparseLinear,
    Recipe,
    SparseLinear,
    compress,
    load_compressed,
    save_compressed,
)
from learned.compress.api import dense_target_layer
from learned.compress.calibrate import collect_paired_stats, execution_stages
from learned.compress.eora import effective_weight
from learned.compress.fisher import fisher_row_weights
from learned.compress.layers import LowRankLinear, unpack_mask
from learned.compress.obs import inverse_hessian_factor, obs_sweep
from learned.compress.quantize import search_scales
from learned.compress.units import find_unit_pairs, fit_unit_pair

# --------------------------------------------------------------------------- fixtures


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 16)
    )


@pytest.fixture(scope="module")
def digits() -> dict:
    """An MLP trained for a second on scikit-learn's bundled digits (64 inputs, 10 classes)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    net = _mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xtr), ytr).backward()
        opt.step()
    torch.set_num_threads(threads)
    net.eval()
    calib = [Xtr[i : i + 200] for i in range(0, 600, 200)]
    labelled = [(Xtr[i : i + 200], ytr[i : i + 200]) for i in range(0, 600, 200)]
    return {"net": net, "calib": calib, "labelled": labelled, "Xte": Xte, "yte": yte}


def _cross_entropy(model: nn.Module, batch: tuple) -> torch.Tensor:
    inputs, labels = batch
    return nn.functional.cross_entropy(model(inputs), labels)


def _accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(X).argmax(-1) == y).float().mean())


RECIPES = {
    "magnitude": Recipe("magnitude", sparsity=0.5),
    "wanda": Recipe("wanda", sparsity=0.5),
    "sparsegpt": Recipe("sparsegpt", sparsity=0.5),
    "sparsegpt-2:4": Recipe("sparsegpt", pattern=(2, 4)),
    "sparsegpt-own-target": Recipe("sparsegpt", sparsity=0.5, dense_target=False),
    "wanda-2:4": Recipe("wanda", pattern=(2, 4)),
    "block": Recipe("block", sparsity=0.5, block=(4, 4)),
    "lowrank-svd": Recipe("lowrank", kind="svd", rank=16),
    "lowrank-whitened": Recipe("lowrank", param_ratio=0.5),
    "lowrank-global": Recipe("lowrank", param_ratio=0.5, allocation="global"),
    "monarch": Recipe("monarch", nblocks=(4, 4)),
    "monarch-frobenius": Recipe("monarch", nblocks=(4, 4), kind="svd"),
    "rtn-4": Recipe("rtn", bits=4, group_size=32),
    "gptq-4": Recipe("gptq", bits=4, group_size=32),
    "gptq-4-in-order": Recipe("gptq", bits=4, group_size=32, act_order=False),
    "gptq-3-weight-only": Recipe("gptq", bits=3, group_size=32, activation_bits=None),
    "ptq161": Recipe("ptq161", binary_block=16),
    "rtn-4-eora": Recipe("rtn", bits=4, eora_rank=8),
    "farms": Recipe("magnitude", sparsity=0.5, allocation="farms"),
}


# --------------------------------------------------------------------------- whole models


def test_zero_strength_leaves_outputs_unchanged(digits: dict) -> None:
    net, calib, X = digits["net"], digits["calib"], digits["Xte"]
    with torch.no_grad():
        ref = net(X)
    tiny = 1e-9  # rounds to zero pruned weights in every layer
    for recipe in (
        Recipe("magnitude", sparsity=tiny),
        Recipe("wanda", sparsity=tiny),
        Recipe("sparsegpt", sparsity=tiny),
        Recipe("lowrank", kind="svd", rank=128),
        Recipe("lowrank", kind="whitened", rank=128),
        Recipe("monarch", nblocks=(1, 1), rank=128),
    ):
        small = compress(net, recipe, calibration=calib)
        with torch.no_grad():
            out = small(X)
        assert torch.allclose(out, ref, atol=2e-4, rtol=1e-4), recipe.method


_HEAVY = {"ptq161", "gptq-4", "rtn-4-eora", "farms"}  # bit-plane emulation / FARMS fits


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in _HEAVY else n for n in RECIPES],
)
def test_every_recipe_makes_real_layers_and_reloads_identically(
    name: str, digits: dict, tmp_path
) -> None:
    net, calib, X = digits["net"], digits["calib"], digits["Xte"]
    small = compress(net, RECIPES[name], calibration=calib)
    assert not any(type(m) is nn.Linear for m in small.modules())
    assert all(type(m) is nn.Linear for m in net.modules() if isinstance(m, nn.Linear))
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, _mlp)  # a fresh, randomly initialised skeleton
    with torch.no_grad():
        # A few rows: the CPU bit-plane kernel is an emulation, slow but exact.
        assert torch.equal(small(X[:8]), again(X[:8]))
    assert again.compression_recipe == RECIPES[name].to_dict()


@pytest.mark.parametrize(
    ("name", "max_drop"),
    [
        ("wanda", 0.03),
        ("sparsegpt", 0.02),
        ("sparsegpt-2:4", 0.04),
        ("lowrank-whitened", 0.03),
        pytest.param("gptq-4", 0.01, marks=pytest.mark.slow),
        pytest.param("rtn-4-eora", 0.01, marks=pytest.mark.slow),
    ],
)
def test_digits_accuracy_is_kept(name: str, max_drop: float, digits: dict) -> None:
    net, calib, X, y = digits["net"], digits["calib"], digits["Xte"], digits["yte"]
    dense = _accuracy(net, X, y)
    assert dense > 0.93
    small = compress(net, RECIPES[name], calibration=calib)
    assert _accuracy(small, X, y) >= dense - max_drop


def test_calibrated_methods_beat_magnitude_on_digits(digits: dict) -> None:
    net, calib, X = digits["net"], digits["calib"], digits["Xte"]
    with torch.no_grad():
        ref = net(X)

    def err(recipe: Recipe) -> float:
        with torch.no_grad():
            return float((compress(net, recipe, calibration=calib)(X) - ref).norm())

    mag = err(Recipe("magnitude", sparsity=0.7))
    assert err(Recipe("sparsegpt", sparsity=0.7)) < mag
    assert err(Recipe("lowrank", param_ratio=0.5)) < err(Recipe("lowrank", kind="svd", rank=16))
    monarch = {"method": "monarch", "nblocks": (4, 4), "rank": 4}
    assert err(Recipe(**monarch)) < err(Recipe(**monarch, kind="svd"))


def _fisher_reference(net: nn.Module, labelled: list) -> list[torch.Tensor]:
    """Row sums of squared per-sample gradients, one ``backward`` per sample (not the
    library's one pass per batch)."""
    model = copy.deepcopy(net)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    fisher = [torch.zeros(m.out_features, dtype=torch.float64) for m in linears]
    for inputs, labels in labelled:
        for x, label in zip(inputs, labels, strict=True):
            model.zero_grad()
            _cross_entropy(model, (x[None], label[None])).backward()
            for f, m in zip(fisher, linears, strict=True):
                f += m.weight.grad.double().pow(2).sum(1)
    return fisher


def test_fisher_weighted_svd_minimises_the_fisher_weighted_error(digits: dict, tmp_path) -> None:
    """FWSVD: each layer is the rank-k minimiser of ``||diag(sqrt(F_i)) (W - X)||_F`` with
    ``F_i`` the empirical Fisher information (squared per-sample gradients) of output
    row ``i``; a plain SVD of the same rank does worse in that norm, and the dense model
    (and its ``.grad``) is untouched."""
    net, labelled = digits["net"], digits["labelled"]
    before = [p.detach().clone() for p in net.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    small = compress(net, Recipe("lowrank", kind="fisher", rank=8, sequential=False),
                     calibration=digits["calib"], loss_fn=_cross_entropy,
                     loss_data=labelled)  # fmt: skip
    plain = compress(net, Recipe("lowrank", kind="svd", rank=8), calibration=digits["calib"])
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))
    for p, g in zip(net.parameters(), grads, strict=True):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    dense = [m for m in net if isinstance(m, nn.Linear)]
    for i, fisher in enumerate(_fisher_reference(net, labelled)):
        W = dense[i].weight.detach().double()
        D = fisher.sqrt()[:, None]
        assert float(D.max() / D[D > 0].min()) > 2  # the weighting is far from uniform
        U, S, Vt = torch.linalg.svd(D * W, full_matrices=False)
        weighted_reference = (U[:, :8] * S[:8]) @ Vt[:8]  # D X for the minimiser X
        ours = small[2 * i].dense_weight().detach().double()
        # Equal in the weighted norm, the one the minimiser is unique in: rows without
        # Fisher information (dead ReLU units) do not count, the 6 unused logits little.
        assert float((D * ours - weighted_reference).norm()) <= 1e-5 * float((D * W).norm())
        plain_weight = plain[2 * i].dense_weight().detach().double()
        weighted = [float((D * (W - X)).norm()) for X in (ours, plain_weight)]
        assert weighted[0] <= weighted[1] + 1e-6
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, _mlp)
    with torch.no_grad():
        assert torch.equal(small(digits["Xte"]), again(digits["Xte"]))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), tokens=st.integers(1, 5))
def test_fisher_of_token_sequences_sums_squared_per_sequence_gradients(
    seed: int, tokens: int
) -> None:
    """A sample is a whole sequence: ``F_i = sum_n sum_j (dL_n/dW_ij)^2`` with ``L_n`` the
    loss of sequence ``n`` over all its tokens, against one ``autograd.grad`` per sequence."""
    torch.manual_seed(seed % 2**31)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(4, tokens, 6, dtype=torch.float64)
    target = torch.randn(4, tokens, 3, dtype=torch.float64)

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        return ((model(batch[0]) - batch[1]) ** 2).sum()

    targets = {"0": net[0], "2": net[2]}
    net.requires_grad_(False)  # a frozen model: the flags are set for the pass and restored
    ours = fisher_row_weights(net, targets, [(x, target)], loss_fn, floor=0.0)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_(True)
    for name, layer in targets.items():
        reference = torch.zeros(layer.out_features, dtype=torch.float64)
        for n in range(4):
            (grad,) = torch.autograd.grad(loss_fn(net, (x[n], target[n])), layer.weight)
            reference += grad.double().pow(2).sum(1)
        assert torch.allclose(ours[name] ** 2, reference, rtol=1e-9, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(energy=st.floats(0.05, 1.0), multiple_of=st.sampled_from([1, 4]))
def test_energy_rank_is_the_smallest_keeping_that_energy(energy: float, multiple_of: int) -> None:
    net = _mlp()
    small = compress(net, Recipe("lowrank", kind="svd", energy=energy, multiple_of=multiple_of))
    for dense, layer in zip(net[::2], small[::2], strict=True):
        s2 = torch.linalg.svdvals(dense.weight.detach().double()) ** 2
        kept = torch.cumsum(s2, 0) / s2.sum()
        k = int((kept < energy * (1 - 1e-12)).sum()) + 1
        k = min(-(-k // multiple_of) * multiple_of, len(s2))
        assert layer.rank == k


def test_sequential_calibration_groups_layers_reading_the_same_input() -> None:
    class QKV(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.out = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.q(x) * self.k(x) + self.v(x))

    model = QKV()
    targets = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    stages = execution_stages(model, targets, [torch.randn(5, 8)])
    assert stages == [["q", "k", "v"], ["out"]]


def test_paired_statistics_of_a_model_with_itself_are_its_second_moments() -> None:
    net = _mlp()
    targets = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    batches = [torch.randn(30, 64), torch.randn(17, 64)]
    stats, cross = collect_paired_stats(net, net, targets, targets, batches)
    for name in targets:
        C = stats[name].second_moment()
        assert stats[name].count == 47
        assert torch.allclose(cross[name], C, rtol=1e-12, atol=1e-12 * float(C.abs().max()))


def _layer_inputs(model: nn.Module, names: list[str], batches: list) -> dict[str, torch.Tensor]:
    """The float64 inputs of the named modules over all batches, by forward pre-hooks."""
    got: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_pre_hook(
            lambda _, args, name=name: got[name].append(args[0].detach().double())
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(xs) for name, xs in got.items()}


def test_paired_statistics_against_a_perturbed_reference() -> None:
    """``cross = X_d^T X_c / N`` with ``X_d`` the layer's inputs in the reference and ``X_c``
    in the model, both collected here independently (forward pre-hooks)."""
    torch.manual_seed(0)
    net = _mlp()
    reference = copy.deepcopy(net)
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(0.1 * torch.randn_like(param))
    targets = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    ref_targets = {n: m for n, m in reference.named_modules() if isinstance(m, nn.Linear)}
    batches = [torch.randn(30, 64), torch.randn(17, 64)]
    stats, cross = collect_paired_stats(net, reference, targets, ref_targets, batches)
    Xc = _layer_inputs(net, list(targets), batches)
    Xd = _layer_inputs(reference, list(targets), batches)
    for name in targets:
        assert stats[name].count == 47
        C = Xc[name].T @ Xc[name] / 47
        expected = Xd[name].T @ Xc[name] / 47
        tol = 1e-10 * float(expected.abs().max())
        assert torch.allclose(stats[name].second_moment(), C, rtol=0, atol=tol)
        assert torch.allclose(cross[name], expected, rtol=0, atol=tol)
        if name != "0":  # past the first layer the two models' inputs differ
            assert float((expected - C).abs().max()) > 1e-3 * float(C.abs().max())


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(0.0, 1.0))
def test_dense_target_is_the_least_squares_fit_of_the_dense_outputs(
    seed: int, noise: float
) -> None:
    # B minimises sum_t ||W x_d(t) - B x_c(t)||^2, the least-squares solution of
    # X_c B^T = X_d W^T.
    gen = torch.Generator().manual_seed(seed)
    Xd = torch.randn(400, 12, generator=gen, dtype=torch.float64)
    Xc = Xd + noise * torch.randn(400, 12, generator=gen, dtype=torch.float64)
    lin = nn.Linear(12, 5, dtype=torch.float64)
    C, cross = Xc.T @ Xc / 400, Xd.T @ Xc / 400
    B = dense_target_layer(lin, C, cross, damp=0.0).weight.detach()
    ref = torch.linalg.lstsq(Xc, Xd @ lin.weight.detach().T).solution.T
    assert torch.allclose(B, ref, rtol=1e-8, atol=1e-8 * float(ref.abs().max()))
    assert torch.equal(dense_target_layer(lin, C, C, damp=0.01).bias, lin.bias)
    with pytest.raises(ValueError, match="cross must be 12 x 12"):
        dense_target_layer(lin, C, cross[:5], damp=0.0)
    # Equal inputs: the target is the layer itself, damping or not.
    same = dense_target_layer(lin, C, C, damp=0.01).weight.detach()
    assert torch.allclose(same, lin.weight.detach(), rtol=0, atol=1e-12)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**31 - 1), bits=st.integers(1, 6))
def test_clipping_search_never_loses_to_absmax(seed: int, bits: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    # Heavy tails (Student t, 2 dof): the case where clipping pays.
    W = torch.randn(9, 40, generator=gen, dtype=torch.float64)
    W = W / torch.rand(9, 40, generator=gen, dtype=torch.float64).sqrt()
    importance = torch.rand(40, generator=gen, dtype=torch.float64) + 0.1
    top = (1 << bits) - 1
    absmax = W.abs().amax(dim=1) / top

    def err(s: torch.Tensor) -> torch.Tensor:
        v = (2 * torch.floor((W / s[:, None]).abs() / 2) + 1).clamp(max=top)
        q = torch.where(W < 0, -v, v) * s[:, None]
        return ((W - q).square() * importance).sum(dim=1)

    s = search_scales(W, top, importance)
    assert torch.all(s <= absmax * (1 + 1e-12)) and torch.all(s >= 0.5 * absmax * (1 - 1e-12))
    assert torch.all(err(s) <= err(absmax) * (1 + 1e-12))
    with pytest.raises(ValueError, match="does not fit"):
        search_scales(W, top, importance[:7])


def test_uniform_allocation_keeps_every_layer_within_the_budget() -> None:
    net = _mlp()
    small = compress(net, Recipe("lowrank", kind="svd", param_ratio=0.6, multiple_of=8))
    for layer, (m, n) in zip([small[0], small[2]], [(128, 64), (64, 128)], strict=True):
        k = layer.rank
        assert k % 8 == 0 and k * (m + n) <= 0.6 * m * n < (k + 8) * (m + n)
    assert small[4].rank == 8  # 16 x 64 at 60% admits rank 7.7: the minimum step is kept


def test_filter_fn_selects_layers_and_input_is_not_modified(digits: dict) -> None:
    net = digits["net"]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    small = compress(net, Recipe("magnitude", sparsity=0.5), filter_fn=lambda m, n: n == "0")
    assert type(small[0]).__name__ == "SparseLinear"
    assert type(small[2]) is nn.Linear and type(small[4]) is nn.Linear
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


# --------------------------------------------------------------------------- properties


@settings(max_examples=12)
@given(
    seed=st.integers(0, 2**31 - 1),
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (4, 8)]),
    method=st.sampled_from(["magnitude", "wanda", "sparsegpt"]),
    groups=st.integers(1, 6),
    out=st.integers(1, 12),
)
def test_nm_masks_have_exactly_n_per_m(
    seed: int, nm: tuple[int, int], method: str, groups: int, out: int
) -> None:
    n, m = nm
    gen = torch.Generator().manual_seed(seed)
    in_f = groups * m * (2 if method == "sparsegpt" else 1)
    lin = nn.Linear(in_f, out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(out, in_f, generator=gen))
    calib = [torch.randn(64, in_f, generator=gen)]
    small = compress(
        nn.Sequential(lin), Recipe(method, pattern=(n, m), blocksize=8 * m), calibration=calib
    )
    layer = small[0]
    assert isinstance(layer, NMSparseLinear)
    W = layer.dense_weight().reshape(out, -1, m)
    assert torch.all((W != 0).sum(-1) == n)
    # the stored mask: exactly n bits in every group of m, one bit per weight
    kept = unpack_mask(layer.mask, in_f).reshape(out, -1, m)
    assert layer.mask.numel() == out * -(-in_f // 8) and torch.all(kept.sum(-1) == n)


@settings(max_examples=12)
@given(
    seed=st.integers(0, 2**31 - 1),
    density=st.sampled_from([0.0, 0.03, 0.3, 0.97]),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 21)),
)
def test_sparse_layer_stores_a_bit_mask_and_multiplies_exactly(
    seed: int, density: float, shape: tuple[int, int]
) -> None:
    # Both products (CSR below SPARSE_MM_MAX_DENSITY, dense above) against x W^T + b, and
    # the mask against numpy's little-endian packbits.
    gen = torch.Generator().manual_seed(seed)
    out_f, in_f = shape
    w = torch.randn(out_f, in_f, generator=gen) * (torch.rand(out_f, in_f, generator=gen) < density)
    b = torch.randn(out_f, generator=gen)
    layer = SparseLinear.from_dense(w, b)
    assert layer.nnz == int((w != 0).sum()) and layer.mask.shape == (out_f, -(-in_f // 8))
    np.testing.assert_array_equal(
        layer.mask.numpy(), np.packbits((w != 0).numpy(), axis=1, bitorder="little")
    )
    assert torch.equal(layer.dense_weight(), w)
    x = torch.randn(4, in_f, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        y = layer.double()(x)
    torch.testing.assert_close(y, x @ w.double().T + b.double())
    again = SparseLinear(in_f, out_f, layer.nnz, dtype=torch.float64)
    again.load_state_dict(layer.state_dict())
    with torch.no_grad():
        assert torch.equal(again(x), y)  # the cached CSR indices follow the new mask


@given(seed=st.integers(0, 2**31 - 1), sparsity=st.floats(0.05, 0.95))
def test_unstructured_sparsity_is_exact(seed: int, sparsity: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(32, 24)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(24, 32, generator=gen))
    calib = [torch.randn(64, 32, generator=gen)]
    for method in ("magnitude", "wanda", "sparsegpt"):
        small = compress(nn.Sequential(lin), Recipe(method, sparsity=sparsity), calibration=calib)
        zeros = int((small[0].dense_weight() == 0).sum())
        if method == "wanda":  # per output row
            assert zeros == 24 * round(32 * sparsity)
        elif method == "magnitude":
            assert zeros == round(24 * 32 * sparsity)
        else:  # SparseGPT: per block of 128 columns, here one block
            assert zeros == round(24 * 32 * sparsity)


def _gptq_over_rtn_error(seed: int, bits: int) -> float:
    """``||(W - Q) X^T||`` of GPTQ over RTN's on one random layer with correlated inputs."""
    # Correlated inputs, the regime where error feedback matters.
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(48, 48, generator=gen)
    X = torch.randn(512, 48, generator=gen) @ mix
    lin = nn.Linear(48, 20)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(20, 48, generator=gen))
    W = lin.weight.detach().double()

    def err(recipe: Recipe) -> float:
        layer = compress(nn.Sequential(lin), recipe, calibration=[X])[0]
        return float(((W - effective_weight(layer)) @ X.double().T).norm())

    return err(Recipe("gptq", bits=bits, damp=1e-4)) / err(Recipe("rtn", bits=bits))


@settings(max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), bits=st.integers(2, 6))
def test_gptq_beats_rtn_on_the_layer_objective_on_average(seed: int, bits: int) -> None:
    """GPTQ lowers ``||(W - Q) X^T||`` against round-to-nearest, on average over layers.

    GPTQ is greedy: on a rare draw it loses to RTN (1.5% on one of thousands), so the
    claim is about the mean over eight layers, where it keeps 0.59-0.73 of RTN's error
    (40 draws per width) and a GPTQ that did nothing would score 1.
    """
    ratios = [_gptq_over_rtn_error(seed + draw, bits) for draw in range(8)]
    assert np.mean(ratios) <= 0.9


class _PruneFirst:
    """OBS rule pruning the first ``k`` columns (the case where the sweep is exact)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def begin_block(self, W1: torch.Tensor, d: torch.Tensor, start: int) -> None:
        self.start = start

    def column(self, w: torch.Tensor, j: int, W1: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(w) if self.start + j < self.k else w


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 10), blocksize=st.sampled_from([3, 8, 64]))
def test_obs_sweep_matches_the_least_squares_reconstruction(
    seed: int, k: int, blocksize: int
) -> None:
    # Pruning a set S of leading columns, the sweep must give the exact minimiser of
    # ||(W - W') X^T|| with W'_S = 0: W'_F = W_F + W_S X_S^T X_F (X_F^T X_F)^-1.
    gen = torch.Generator().manual_seed(seed)
    X = (torch.randn(300, 16, generator=gen) @ torch.randn(16, 16, generator=gen)).double()
    W = torch.randn(5, 16, generator=gen, dtype=torch.float64)
    U = inverse_hessian_factor(X.T @ X / 300, damp=0.0)
    got = obs_sweep(W, U, _PruneFirst(k), blocksize=blocksize)
    XS, XF = X[:, :k], X[:, k:]
    ref = W[:, k:] + torch.linalg.solve(XF.T @ XF, XF.T @ XS @ W[:, :k].T).T
    assert torch.all(got[:, :k] == 0)
    assert torch.allclose(got[:, k:], ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))


def test_sparsegpt_beats_magnitude_with_outlier_channels() -> None:
    # Transformer activations have a few large channels; weighing by them is the point.
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(500, 64, generator=gen)
    X[:, :4] *= 25.0
    lin = nn.Linear(64, 32)
    W = lin.weight.detach().double()

    def err(method: str) -> float:
        layer = compress(nn.Sequential(lin), Recipe(method, sparsity=0.5), calibration=[X])[0]
        return float(((W - effective_weight(layer)) @ X.double().T).norm())

    assert err("sparsegpt") < err("wanda") < err("magnitude")


def test_eora_reduces_the_output_error() -> None:
    torch.manual_seed(0)
    X = torch.randn(300, 64) @ torch.randn(64, 64)
    lin = nn.Linear(64, 32)
    base = compress(nn.Sequential(lin), Recipe("rtn", bits=3), calibration=[X])[0]
    comp = compress(nn.Sequential(lin), Recipe("rtn", bits=3, eora_rank=8), calibration=[X])[0]
    W = lin.weight.detach().double()
    e0 = ((W - effective_weight(base)) @ X.double().T).norm()
    e1 = ((W - effective_weight(comp)) @ X.double().T).norm()
    assert e1 < 0.9 * e0


def test_ptq161_keeps_salient_channels_at_high_precision() -> None:
    torch.manual_seed(0)
    X = torch.randn(200, 64)
    X[:, :8] *= 20.0  # the salient channels
    lin = nn.Linear(64, 16)
    layer = compress(nn.Sequential(lin), Recipe("ptq161", binary_block=16), calibration=[X])[0]
    assert isinstance(layer, MixedBitLinear)
    assert set(range(8)) <= set(layer.salient.tolist())
    assert layer.low.weight_bits == 1 and layer.high.weight_bits == 4


# --------------------------------------------------------------------------- hidden units


def _first_pair(module: nn.Module, name: str) -> bool:
    return name in ("0", "2")  # Linear -> ReLU -> Linear: one hidden layer of 128 units


@pytest.mark.parametrize("dense_target", [True, False])
def test_nystrom_narrows_the_mlp_keeps_accuracy_and_reloads(
    dense_target: bool, digits: dict, tmp_path
) -> None:
    net, calib, X, y = digits["net"], digits["calib"], digits["Xte"], digits["yte"]
    recipe = Recipe("nystrom", param_ratio=0.5, dense_target=dense_target)
    small = compress(net, recipe, calibration=calib, filter_fn=_first_pair)
    assert (small[0].out_features, small[2].in_features) == (64, 64)
    assert _accuracy(small, X, y) >= _accuracy(net, X, y) - 0.03
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, _mlp)
    with torch.no_grad():
        assert torch.equal(small(X), again(X))
    whole = compress(
        net, Recipe("nystrom", param_ratio=1 - 1e-9), calibration=calib, filter_fn=_first_pair
    )
    assert whole[0].out_features == 128
    with torch.no_grad():  # every unit kept: the same network
        assert torch.allclose(whole(X), net(X), atol=1e-5, rtol=1e-5)


@settings(max_examples=12)
@given(
    seed=st.integers(0, 2**31 - 1),
    units=st.integers(1, 12),
    select=st.sampled_from(["greedy", "top"]),
)
def test_unit_pair_consumer_is_the_least_squares_refit(seed: int, units: int, select: str) -> None:
    g = torch.Generator().manual_seed(seed)
    up, down = nn.Linear(6, 12).double(), nn.Linear(12, 5).double()
    H = torch.relu(up(torch.randn(200, 6, generator=g, dtype=torch.float64))).detach()
    C = H.T @ H / len(H)
    producers, consumer = fit_unit_pair({"up": up}, down, C, units, select=select, damp=0.0)
    rows = producers["up"].weight.detach()
    S = [int((up.weight.detach() == r).all(1).nonzero()) for r in rows]
    assert len(S) == units
    target = H @ down.weight.detach().T
    reference = torch.linalg.lstsq(H[:, S], target).solution.T
    torch.testing.assert_close(consumer.weight.detach(), reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(consumer.bias, down.bias)


class _Rolled(nn.Module):
    """A hidden layer whose channels are rotated: not a unit-by-unit link."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 8)
        self.c, self.d = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.b(torch.roll(torch.tanh(self.a(x)), 1, dims=-1))
        return self.d(torch.nn.functional.gelu(self.c(x)))


class _Gated(nn.Module):
    """A SwiGLU MLP (LLaMA's): two producers multiply unit by unit."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.up, self.down = nn.Linear(8, 32), nn.Linear(8, 32), nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def test_gated_mlp_units_are_dropped_from_both_producers() -> None:
    torch.manual_seed(0)
    net, x = _Gated().double(), torch.randn(256, 8, dtype=torch.float64)
    small = compress(net, Recipe("nystrom", param_ratio=0.5, multiple_of=1), calibration=[x])
    assert (small.gate.out_features, small.up.out_features, small.down.in_features) == (16, 16, 16)
    with torch.no_grad():
        h = nn.functional.silu(net.gate(x)) * net.up(x)
        kept = torch.cat([small.gate.weight, small.up.weight], 1)
        S = [
            int((torch.cat([net.gate.weight, net.up.weight], 1) == r).all(1).nonzero())
            for r in kept
        ]
        best = torch.linalg.lstsq(h[:, S], h @ net.down.weight.T).solution.T
        err = (small(x) - net(x)).norm()
        assert err <= 1.01 * (h[:, S] @ best.T - h @ net.down.weight.T).norm() + 1e-9


def test_unit_pairs_are_found_by_trial_and_channel_mixing_is_rejected() -> None:
    net = _Rolled()
    targets = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    before = {n: m.weight.clone() for n, m in targets.items()}
    pairs = find_unit_pairs(net, targets, [torch.randn(32, 8)])
    assert [(p.producers, p.consumer) for p in pairs] == [(("c",), "d")]
    assert all(torch.equal(net.get_submodule(n).weight, w) for n, w in before.items())
    with pytest.raises(ValueError, match=r"in no such pair: \['a', 'b'\]"):
        compress(net, Recipe("nystrom", param_ratio=0.5), calibration=[torch.randn(32, 8)])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "magnitude", "sparsity": 0.0}, "sparsity"),
        ({"method": "magnitude", "sparsity": 1.0}, "sparsity"),
        ({"method": "wanda", "sparsity": -0.5}, "sparsity"),
        ({"method": "lowrank", "rank": 0}, "rank"),
        ({"method": "lowrank", "rank": -3}, "rank"),
        ({"method": "lowrank", "param_ratio": 1.5}, "param_ratio"),
        ({"method": "rtn", "bits": 9}, "bits"),
        ({"method": "magnitude"}, "sparsity"),
        ({"method": "prune-everything"}, "method"),
        ({"method": "magnitude", "pattern": (4, 4)}, "N:M"),
        ({"method": "lowrank", "rank": 8, "allocation": "global"}, "global"),
        ({"method": "sparsegpt", "sparsity": 0.5, "allocation": "global"}, "global"),
        ({"method": "lowrank", "param_ratio": 0.5, "allocation": "farms"}, "farms"),
        ({"method": "magnitude", "sparsity": 0.5, "allocation": "even"}, "allocation"),
        ({"method": "nystrom"}, "param_ratio"),
        ({"method": "nystrom", "param_ratio": 0.5, "selection": "best"}, "selection"),
        ({"method": "lowrank", "energy": 0.0}, "energy"),
        ({"method": "lowrank", "energy": 1.5}, "energy"),
        ({"method": "lowrank", "rank": 8, "energy": 0.9}, "exactly one"),
        ({"method": "magnitude", "sparsity": 0.5, "energy": 0.9}, "energy"),
        ({"method": "monarch", "kind": "fisher"}, "kind"),
    ],
)
def test_bad_recipes_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


def test_recipe_switches_must_be_bools() -> None:
    with pytest.raises(TypeError, match="dense_target"):
        Recipe("sparsegpt", sparsity=0.5, dense_target="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="act_order"):
        Recipe("gptq", bits=4, act_order=1)  # type: ignore[arg-type]


def test_bad_targets_and_calibration_are_rejected() -> None:
    net = _mlp()
    with pytest.raises(TypeError, match="ReLU"):
        compress(net, Recipe("magnitude", sparsity=0.5), filter_fn=lambda m, n: n in ("0", "1"))
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        compress(net, Recipe("magnitude", sparsity=0.5), filter_fn=lambda m, n: False)
    with pytest.raises(ValueError, match="empty"):
        compress(net, Recipe("wanda", sparsity=0.5), calibration=[])
    with pytest.raises(ValueError, match="calibration is required"):
        compress(net, Recipe("sparsegpt", sparsity=0.5))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        compress("not a model", Recipe("magnitude", sparsity=0.5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="M must divide"):
        compress(nn.Sequential(nn.Linear(6, 2)), Recipe("magnitude", pattern=(2, 4)))
    fisher = Recipe("lowrank", kind="fisher", rank=4)
    batches = [torch.randn(8, 64)]
    with pytest.raises(ValueError, match="loss_fn"):
        compress(net, fisher, calibration=batches)
    with pytest.raises(ValueError, match="loss_data is empty"):
        compress(net, fisher, calibration=batches, loss_fn=_cross_entropy, loss_data=[])
    with pytest.raises(ValueError, match="scalar"):
        compress(net, fisher, calibration=batches, loss_fn=lambda model, x: model(x))
    with pytest.raises(ValueError, match="does not depend"):
        compress(net, fisher, calibration=batches, loss_fn=lambda model, x: model[0](x).sum())


# --------------------------------------------------------------------------- dtypes and modes


def _small(dtype: torch.dtype = torch.float32, *, bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 24, bias=bias), nn.ReLU(), nn.Linear(24, 8, bias=bias)).to(
        dtype
    )


def _float_dtypes(model: nn.Module) -> set[torch.dtype]:
    """dtypes of the floating tensors a layer computes with (BitplaneLinear's scales aside)."""
    return {
        v.dtype
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not k.endswith("weight_scales")
    }


# Full rank: exact up to rounding, so a float64 model stays accurate to float64 rounding.
EXACT_RECIPES = {
    "lowrank": Recipe("lowrank", kind="svd", rank=16),
    "monarch": Recipe("monarch", kind="svd", nblocks=(1, 1), rank=16),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", list(EXACT_RECIPES))
def test_factored_layers_keep_the_weight_dtype(name: str, bias: bool, dtype: torch.dtype) -> None:
    net = _small(dtype, bias=bias)
    small = compress(net, EXACT_RECIPES[name])
    assert _float_dtypes(small) == {dtype}
    x = torch.randn(5, 16, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        out, ref = small(x), net(x)
    assert out.dtype == dtype
    if dtype == torch.float64:  # float32 factors would be off by ~1e-7
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


DTYPE_RECIPES = {
    "lowrank": Recipe("lowrank", kind="svd", rank=4),
    "monarch": Recipe("monarch", kind="svd", nblocks=(2, 2)),
    "magnitude": Recipe("magnitude", sparsity=0.5),
    "nm": Recipe("magnitude", pattern=(2, 4)),
    "rtn": Recipe("rtn", bits=4, activation_bits=None),
    "magnitude-eora": Recipe("magnitude", sparsity=0.5, eora_rank=2),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", list(DTYPE_RECIPES))
def test_save_and_load_keep_every_layer_dtype(name: str, bias: bool, tmp_path) -> None:
    net = _small(torch.float64, bias=bias)
    small = compress(
        net, DTYPE_RECIPES[name], calibration=[torch.randn(32, 16, dtype=torch.float64)]
    )
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, lambda: _small(torch.float64, bias=bias))
    assert _float_dtypes(again) == _float_dtypes(small) <= {torch.float64}
    x = torch.randn(4, 16, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(small(x), again(x))


def test_version_2_files_load_in_their_stored_dtype_and_others_are_refused(tmp_path) -> None:
    import json

    small = compress(_small(torch.float64, bias=False), Recipe("lowrank", kind="svd", rank=4))
    save_compressed(small, tmp_path)
    meta_path = tmp_path / "compression.json"
    meta = json.loads(meta_path.read_text())
    assert meta["version"] == 3 and meta["layers"]["0"]["dtype"] == "float64"
    for desc in meta["layers"].values():  # what version 2 wrote: no dtype
        del desc["dtype"]
    meta_path.write_text(json.dumps({**meta, "version": 2}))
    again = load_compressed(tmp_path, lambda: _small(torch.float64, bias=False))
    assert _float_dtypes(again) == {torch.float64}
    meta_path.write_text(json.dumps({**meta, "version": 1}))
    with pytest.raises(ValueError, match="version 2 or 3"):
        load_compressed(tmp_path, _small)
    meta_path.write_text(json.dumps({**meta, "version": 3}))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no model\.safetensors"):
        load_compressed(tmp_path, _small)


@pytest.mark.parametrize("inplace", [False, True])
def test_compress_returns_an_eval_model_and_leaves_the_input_mode_alone(inplace: bool) -> None:
    net = _small()
    net.train()
    small = compress(net, Recipe("magnitude", sparsity=0.5), inplace=inplace)
    assert not any(m.training for m in small.modules())
    if not inplace:
        assert all(m.training for m in net.modules())
    # A failure while planning (nothing replaced yet) leaves an in-place model's mode alone.
    net = _Rolled().train()
    with pytest.raises(ValueError, match="in no such pair"):
        compress(
            net, Recipe("nystrom", param_ratio=0.5), calibration=[torch.randn(32, 8)], inplace=True
        )
    assert all(m.training for m in net.modules())


# --------------------------------------------------------------------------- checked up front


@pytest.mark.parametrize(
    ("recipe", "layer", "match"),
    [
        (Recipe("rtn", bits=4, group_size=32), "'2'", "group_size 32 must divide in_features"),
        (Recipe("gptq", bits=4, group_size=32), "'2'", "group_size 32 must divide in_features"),
        (Recipe("magnitude", pattern=(2, 32)), "'2'", "M must divide in_features"),
        (Recipe("block", sparsity=0.5, block=(16, 32)), "'2'", "columns must divide"),
        (Recipe("monarch", kind="svd", nblocks=(32, 16), rank=1), "'2'", "input blocks"),
        (Recipe("ptq161", binary_block=32), "'0'", "at least 2 x binary_block 32"),
    ],
)
def test_inplace_compression_checks_every_shape_before_touching_the_model(
    recipe: Recipe, layer: str, match: str
) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 16)).train()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=rf"^{layer}: .*{match}"):
        compress(net, recipe, calibration=[torch.randn(8, 32)], inplace=True)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear]
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert net.training


def test_ptq161_refuses_layers_narrower_than_two_blocks_and_splits_the_rest() -> None:
    from learned.compress.quantize import mixed_ptq161

    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 16))
    with pytest.raises(ValueError, match=r"'0': in_features = 64 must be at least 2 x"):
        compress(net, Recipe("ptq161"), calibration=[torch.randn(8, 64)])
    with pytest.raises(ValueError, match="at least 2 x block"):
        mixed_ptq161(nn.Linear(64, 4), torch.ones(64), block=64)
    # Exactly two blocks: one salient (4-bit) block and one binarised block.
    layer = mixed_ptq161(nn.Linear(128, 4), torch.ones(128), block=64, activation_bits=None)
    assert layer.high.in_features == layer.low.in_features == 64


def test_eora_compensates_ptq161_and_reloads(tmp_path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32))
    X = torch.randn(256, 64)
    kw = {"binary_block": 16, "activation_bits": None, "sequential": False}
    plain = compress(net, Recipe("ptq161", **kw), calibration=[X])
    fixed = compress(net, Recipe("ptq161", eora_rank=8, **kw), calibration=[X])
    with torch.no_grad():
        ref = net[0](X)
        assert (fixed[0](X) - ref).norm() < 0.9 * (plain[0](X) - ref).norm()
    save_compressed(fixed, tmp_path)
    again = load_compressed(tmp_path, net)
    with torch.no_grad():
        assert torch.equal(again(X[:8]), fixed(X[:8]))


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("magnitude", sparsity=0.5),
        Recipe("block", sparsity=0.5, block=(4, 4)),
        Recipe("lowrank", kind="svd", rank=4),
    ],
)
def test_non_finite_weights_are_rejected_by_every_method(recipe: Recipe) -> None:
    net = _small()
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="'2': the weight must be finite"):
        compress(net, recipe)


def test_compress_linear_checks_its_arguments() -> None:
    from learned.compress import compress_linear
    from numlib.calibration import CalibrationStats

    lin = nn.Linear(32, 16)
    with pytest.raises(TypeError, match=r"nn\.Linear"):
        compress_linear(nn.Conv2d(4, 8, 3), Recipe("magnitude", sparsity=0.5))
    layer = compress_linear(lin, {"method": "magnitude", "sparsity": 0.5})
    assert isinstance(layer, SparseLinear)
    lowrank = Recipe("lowrank", kind="svd", rank=4)
    for rank in (0, -2, 2.0):
        with pytest.raises(ValueError, match="rank must be a positive int"):
            compress_linear(lin, lowrank, rank=rank)
    with pytest.raises(ValueError, match="sparsity"):
        compress_linear(lin, Recipe("magnitude", sparsity=0.5), sparsity=1.5)
    stats = CalibrationStats().update(torch.randn(10, 20))
    with pytest.raises(ValueError, match="in_features = 32"):
        compress_linear(lin, Recipe("wanda", sparsity=0.5), stats=stats)


def test_compensated_linear_needs_matching_shapes() -> None:
    from learned.compress import CompensatedLinear, LowRankLinear

    with pytest.raises(ValueError, match="must equal the correction"):
        CompensatedLinear(LowRankLinear(8, 4, 2), LowRankLinear(16, 3, 2, bias=False))
    with pytest.raises(TypeError, match="LowRankLinear"):
        CompensatedLinear(LowRankLinear(8, 4, 2), nn.Linear(8, 4, bias=False))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "monarch", "kind": "svd", "param_ratio": 0.25}, "param_ratio does not apply"),
        ({"method": "magnitude", "sparsity": 0.5, "bits": 4}, "bits does not apply"),
        ({"method": "magnitude", "sparsity": 0.5, "group_size": 8}, "group_size does not apply"),
        ({"method": "rtn", "bits": 4, "kind": "svd"}, "kind does not apply"),
        ({"method": "lowrank", "rank": 4, "nblocks": (2, 2)}, "nblocks does not apply"),
        ({"method": "block", "sparsity": 0.5, "block": (4, 4), "pattern": (2, 4)}, "pattern"),
        ({"method": "nystrom", "param_ratio": 0.5, "eora_rank": 2}, "eora_rank does not apply"),
        ({"method": "ptq161", "binary_block": 0}, "binary_block"),
        ({"method": "ptq161", "binary_block": -32}, "binary_block"),
        ({"method": "gptq", "bits": 4, "damp": float("nan")}, "damp"),
        ({"method": "gptq", "bits": 4, "damp": float("inf")}, "damp"),
        ({"method": "gptq", "bits": 4, "group_size": 48}, "multiple of group_size"),
        ({"method": "sparsegpt", "pattern": (2, 3)}, "multiple of M"),
    ],
)
def test_inapplicable_and_out_of_range_recipe_fields_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)
    with pytest.raises(TypeError, match="damp"):
        Recipe("gptq", bits=4, damp="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: SparseLinear.from_dense(torch.ones(5), None), ValueError),
        (lambda: SparseLinear.from_dense(torch.ones(2, 4, dtype=torch.int64), None), ValueError),
        (
            lambda: NMSparseLinear.from_dense(torch.full((2, 4), math.nan), None, n=2, m=4),
            ValueError,
        ),
        (
            lambda: LowRankLinear.from_factors(
                torch.full((3, 2), math.nan), torch.ones(2, 4), None
            ),
            ValueError,
        ),
        (lambda: LowRankLinear.from_factors(torch.ones(3, 2), [[1.0, 2.0]], None), TypeError),
    ],
)
def test_layer_builders_refuse_what_they_cannot_pack(build, error) -> None:
    with pytest.raises(error, match=r"weight|left|right"):
        build()
