"""learned.compress on convolutions: kernels as matrices over patches.

References: ``torch.nn.functional.conv1d/conv2d`` for the patch matrices, the dense
kernel of each compressed layer for its convolution, and the accuracy of a small CNN
trained for a second on scikit-learn's bundled 8 x 8 digits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from learned.compress import CompressedConv, Recipe, compress, load_compressed, save_compressed
from learned.compress.calibrate import collect_stats
from learned.compress.conv import patch_rows
from learned.compress.fisher import fisher_row_weights


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )


def _convolutions(module: nn.Module, name: str) -> bool:
    return isinstance(module, nn.Conv1d | nn.Conv2d)


def _cross_entropy(model: nn.Module, batch: tuple) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


@pytest.fixture(scope="module")
def digits() -> dict:
    """A CNN trained for a second on the 8 x 8 digits (1 channel, 10 classes)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(data.target)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = _cnn()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(net(X[:1400]), y[:1400]).backward()
        opt.step()
    torch.set_num_threads(threads)
    net.eval()
    calib = [X[i : i + 200] for i in range(0, 600, 200)]
    labelled = [(X[i : i + 200], y[i : i + 200]) for i in range(0, 600, 200)]
    return {"net": net, "calib": calib, "labelled": labelled, "Xte": X[1400:], "yte": y[1400:]}


def _accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(X).argmax(-1) == y).float().mean())


CONV_RECIPES = {
    "magnitude": Recipe("magnitude", sparsity=0.5),
    "magnitude-2:4": Recipe("magnitude", pattern=(2, 4)),
    "wanda": Recipe("wanda", sparsity=0.5),
    "sparsegpt": Recipe("sparsegpt", sparsity=0.5),
    "block": Recipe("block", sparsity=0.5, block=(4, 4)),
    "lowrank-svd": Recipe("lowrank", kind="svd", rank=8),
    "lowrank-whitened": Recipe("lowrank", param_ratio=0.5, multiple_of=4),
    "lowrank-energy": Recipe("lowrank", energy=0.9, multiple_of=4),
    "monarch": Recipe("monarch", nblocks=(4, 4), rank=2),
}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    dims=st.sampled_from([1, 2]),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
)
def test_patch_rows_times_the_kernel_matrix_is_the_convolution(
    seed: int, dims: int, kernel: int, stride: int, padding: int, dilation: int
) -> None:
    torch.manual_seed(seed)
    conv_type = nn.Conv1d if dims == 1 else nn.Conv2d
    conv = conv_type(3, 5, kernel, stride=stride, padding=padding, dilation=dilation).double()
    x = torch.randn(2, 3, *([9] * dims), dtype=torch.float64)
    with torch.no_grad():
        y = conv(x)
        rows = patch_rows(conv, x) @ conv.weight.reshape(5, -1).T + conv.bias
    assert torch.allclose(rows, y.flatten(2).transpose(1, 2).reshape(-1, 5), atol=1e-12)


@pytest.mark.parametrize("name", list(CONV_RECIPES))
def test_every_conv_recipe_makes_real_layers_and_reloads_identically(
    name: str, digits: dict, tmp_path
) -> None:
    net, calib, X = digits["net"], digits["calib"], digits["Xte"]
    # The strided convolution, 32 x (16 * 9): every block and N:M size divides it.
    small = compress(net, CONV_RECIPES[name], calibration=calib, filter_fn=lambda m, n: n == "2")
    layer, dense = small[2], net[2]
    assert isinstance(layer, CompressedConv) and isinstance(small[0], nn.Conv2d)
    with torch.no_grad():  # the layer is the convolution with its own dense kernel
        kernel = layer.inner.dense_weight().reshape(dense.weight.shape)
        x = torch.randn(4, dense.in_channels, 8, 8)
        expected = F.conv2d(x, kernel, layer.inner.bias, dense.stride, dense.padding)
        assert torch.allclose(layer(x), expected, atol=1e-5)
    save_compressed(small, tmp_path)
    again = load_compressed(tmp_path, _cnn)
    with torch.no_grad():
        assert torch.equal(small(X), again(X))


def test_zero_strength_leaves_the_cnn_unchanged(digits: dict) -> None:
    net, calib, X = digits["net"], digits["calib"], digits["Xte"]
    with torch.no_grad():
        ref = net(X)
    for recipe in (
        Recipe("magnitude", sparsity=1e-9),
        Recipe("sparsegpt", sparsity=1e-9),
        Recipe("lowrank", kind="svd", rank=512),
        Recipe("lowrank", rank=512),
    ):
        small = compress(net, recipe, calibration=calib, filter_fn=_convolutions)
        with torch.no_grad():
            assert torch.allclose(small(X), ref, atol=2e-4, rtol=1e-4), recipe


def test_a_low_rank_kernel_runs_as_two_convolutions(digits: dict) -> None:
    """``W = L R``: a kernel-sized convolution with ``rank`` outputs, then ``1 x 1``."""
    small = compress(
        digits["net"],
        CONV_RECIPES["lowrank-svd"],
        calibration=digits["calib"],
        filter_fn=_convolutions,
    )
    layer = small[2]
    assert layer.inner.rank == 8 and layer.inner.right.shape == (8, 16 * 9)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        right = layer.inner.right.reshape(8, 16, 3, 3)
        hidden = F.conv2d(x, right, None, stride=2, padding=1)
        out = F.conv2d(hidden, layer.inner.left[:, :, None, None], layer.inner.bias)
        assert torch.allclose(layer(x), out, atol=1e-6)


def test_conv_calibration_is_the_second_moment_of_the_patches(digits: dict) -> None:
    net, calib = digits["net"], digits["calib"]
    stats = collect_stats(net, {"2": net[2]}, calib)
    with torch.no_grad():
        rows = torch.cat([patch_rows(net[2], net[1](net[0](x))) for x in calib]).double()
    C = stats["2"].second_moment()
    assert torch.allclose(C, rows.T @ rows / len(rows), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("recipe", "max_drop"),
    [
        (Recipe("sparsegpt", sparsity=0.5), 0.02),
        (Recipe("wanda", sparsity=0.5), 0.03),
        (Recipe("lowrank", param_ratio=0.5, multiple_of=4), 0.03),
    ],
)
def test_calibrated_conv_recipes_keep_accuracy(recipe: Recipe, max_drop: float, digits) -> None:
    net, X, y = digits["net"], digits["Xte"], digits["yte"]
    dense = _accuracy(net, X, y)
    assert dense > 0.93
    small = compress(net, recipe, calibration=digits["calib"], filter_fn=_convolutions)
    assert _accuracy(small, X, y) >= dense - max_drop


def test_fisher_weighted_conv_uses_per_position_patches(digits: dict) -> None:
    """The Fisher of a kernel row sums over samples the squared per-sample gradient,
    which adds up the output positions of the sample: checked with one backward per
    sample."""
    net, labelled = digits["net"], digits["labelled"]
    ours = fisher_row_weights(net, {"2": net[2]}, labelled[:1], _cross_entropy, floor=0.0)["2"]
    reference = torch.zeros(32, dtype=torch.float64)
    inputs, labels = labelled[0]
    for x, label in zip(inputs[:200], labels[:200], strict=True):
        (grad,) = torch.autograd.grad(_cross_entropy(net, (x[None], label[None])), net[2].weight)
        reference += grad.double().pow(2).sum(dim=(1, 2, 3))
    scale = 200**2  # the batch loss is a mean: every per-sample gradient is 1/200 of it
    assert torch.allclose(ours**2 * scale, reference, rtol=1e-4)
    small = compress(net, Recipe("lowrank", kind="fisher", rank=8), calibration=digits["calib"],
                     loss_fn=_cross_entropy, loss_data=labelled,
                     filter_fn=_convolutions)  # fmt: skip
    assert isinstance(small[2], CompressedConv)


def test_conv1d_layers_are_compressed_too() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(4, 8, 5, padding="same"), nn.GELU(), nn.Conv1d(8, 8, 3))
    calib = [torch.randn(16, 4, 32) for _ in range(2)]
    with torch.no_grad():
        ref = net(calib[0])
    for recipe in (Recipe("sparsegpt", sparsity=1e-9), Recipe("lowrank", rank=24)):
        small = compress(net, recipe, calibration=calib, filter_fn=_convolutions)
        assert all(isinstance(m, CompressedConv) for m in (small[0], small[2]))
        with torch.no_grad():
            assert torch.allclose(small(calib[0]), ref, atol=1e-4)


def test_unsupported_convolutions_and_methods_are_rejected_before_any_work() -> None:
    net = _cnn()
    calib = [torch.randn(4, 1, 8, 8)]
    kw = {"calibration": calib, "filter_fn": _convolutions}
    with pytest.raises(ValueError, match=r"'0' is a Conv2d: method 'gptq'"):
        compress(net, Recipe("gptq", bits=4), **kw)
    with pytest.raises(ValueError, match="eora_rank"):
        compress(net, Recipe("magnitude", sparsity=0.5, eora_rank=4), **kw)
    with pytest.raises(ValueError, match="nystrom"):
        compress(net, Recipe("nystrom", param_ratio=0.5), **kw)
    magnitude = Recipe("magnitude", sparsity=0.5)
    for bad, match in (
        (nn.Conv2d(4, 4, 3, groups=2), "grouped"),
        (nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), "circular"),
        (nn.Conv1d(4, 4, 4, padding="same"), "even kernel"),
    ):
        with pytest.raises(ValueError, match=match):
            compress(nn.Sequential(bad), magnitude, filter_fn=_convolutions)
    with pytest.raises(TypeError, match="Conv3d"):
        compress(nn.Sequential(nn.Conv3d(1, 1, 1)), magnitude, filter_fn=lambda m, n: n == "0")


def test_the_conv_benchmark_case_runs_and_calibration_pays() -> None:
    """``numlib-bench --suite compress --case conv`` at the small size: every record is
    complete, and the calibrated recipes fit the dense logits better than magnitude
    pruning at equal strength."""
    from validation.suites.compress import conv

    records = {(r.case, r.method): r for r in conv("small", repeat=1)}
    for name in ("sparsegpt-90", "nm-2:4", "lowrank-whitened-10"):
        record = records[("conv-digits", name)]
        assert record.metrics["logit_error"] < record.peer_metrics["logit_error"]
    speed = records[("conv-speed", "lowrank-whitened-30")]
    assert speed.time_s > 0 and speed.peer_time_s > 0 and speed.metrics["ranks"]
