"""DCDM training: determinism, safetensors checkpoints, resume, model files, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from dcdm_tiny import TINY

from learned.dcdm import GridStencil, load_model, save_model
from learned.dcdm.data import RitzDataset, training_operators
from learned.dcdm.io import model_metadata, pretrained
from learned.dcdm.module import DCDMModule, read_checkpoint
from learned.dcdm.network import DCDMNet
from learned.dcdm.ritz import lanczos_ritz
from learned.dcdm.train import fit, main


def _state(net: DCDMNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_is_deterministic_under_a_seed(tmp_path):
    first, summary = fit(TINY, tmp_path / "a", progress=False)
    second, _ = fit(TINY, tmp_path / "b", progress=False)
    _assert_same(_state(first), _state(second))
    assert summary["completed_steps"] == 6
    torch.manual_seed(0)
    untrained = DCDMNet(2, channels=4, blocks=1)
    assert not torch.equal(first.project.weight, untrained.project.weight)


def test_galerkin_network_trains_deterministically(tmp_path):
    galerkin = dataclasses.replace(
        TINY, channels=6, blocks=3, init="multigrid", restriction="adjoint", galerkin=True
    )
    first, summary = fit(galerkin, tmp_path / "a", progress=False)
    second, _ = fit(galerkin, tmp_path / "b", progress=False)
    _assert_same(_state(first), _state(second))
    assert first.config.galerkin and summary["completed_steps"] == 6
    untrained = DCDMNet.from_config(first.config)
    assert not torch.equal(first.down[0][2].weight, untrained.down[0][2].weight)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    """Stopping after 3 of 6 steps and resuming runs only steps 4-6, on the straight run's
    batches 4-6, and ends with the straight run's weights."""
    batches: list[torch.Tensor] = []
    training_step = DCDMModule.training_step

    def recorded(self, batch, batch_idx):
        batches.append(batch[0].clone())
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(DCDMModule, "training_step", recorded)
    straight, _ = fit(TINY, tmp_path / "data", progress=False)
    straight_batches = batches[:]
    assert len(straight_batches) == 6
    checkpoint = tmp_path / "run.ckpt.safetensors"
    batches.clear()
    _, partial = fit(TINY, tmp_path / "data", checkpoint=checkpoint, stop_after=3, progress=False)
    assert partial["completed_steps"] == 3 and len(batches) == 3
    tensors, meta = read_checkpoint(checkpoint)
    assert meta["completed_steps"] == 3 and any(k.startswith("adam.") for k in tensors)
    batches.clear()
    resumed, summary = fit(
        TINY, tmp_path / "data", checkpoint=checkpoint, resume=True, progress=False
    )
    assert summary["completed_steps"] == 6
    assert len(batches) == 3  # only the remaining optimiser steps ran
    for got, want in zip(batches, straight_batches[3:], strict=True):
        assert torch.equal(got, want)
    _assert_same(_state(straight), _state(resumed))


def test_samples_are_normalised_and_depend_only_on_the_index():
    ops = training_operators(2, 8, 2, seed=0)
    bases = [lanczos_ritz(op.A, 10, rng=i) for i, op in enumerate(ops)]
    whole = RitzDataset(bases, (8, 8), seed=1, length=6)
    tail = RitzDataset(bases, (8, 8), seed=1, length=3, start=3)
    for i in range(3):
        b, op = tail[i]
        b_ref, op_ref = whole[3 + i]
        assert op == op_ref and torch.equal(b, b_ref)
        assert float(b.norm()) == pytest.approx(1.0, rel=1e-5)


def test_model_files_round_trip(tmp_path):
    torch.manual_seed(1)
    net = DCDMNet(3, channels=4, levels=1)
    path = tmp_path / "m.safetensors"
    save_model(net, path, metadata={"training": {"steps": 0}})
    loaded = load_model(path)
    assert loaded.config == net.config
    r = torch.randn(1, 1, 6, 6, 6)
    torch.testing.assert_close(loaded(r), net(r), rtol=0, atol=0)
    assert model_metadata(path)["training"] == {"steps": 0}
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")
    checkpoint = tmp_path / "c.safetensors"
    fit(TINY, tmp_path / "data", checkpoint=checkpoint, stop_after=1, progress=False)
    with pytest.raises(ValueError, match="not a DCDM model"):
        load_model(checkpoint)


@pytest.mark.parametrize("dim", [2, 3])
def test_shipped_models_load_and_record_their_training(dim):
    net = pretrained(dim)
    assert net.config.dim == dim
    record = model_metadata(pretrained.__globals__["MODELS_DIR"] / f"dcdm{dim}d.safetensors")
    assert record["training"]["commands"][0].startswith("python -m learned.dcdm.train")
    assert all(np.isfinite(p.detach().numpy()).all() for p in net.parameters())
    training = record["training"]
    if training["completed_steps"] == 0 or training.get("selection", {}).get("best_step") == 0:
        # untrained, or training selected step 0: the configuration's initialisation
        fresh = DCDMNet.from_config(net.config).state_dict()
        for name, value in net.state_dict().items():
            torch.testing.assert_close(value, fresh[name], rtol=0, atol=0)


def test_cli_writes_model_and_json(tmp_path, capsys):
    out = tmp_path / "models" / "tiny"
    argv = [
        "--dim",
        "2",
        "--grid",
        "8",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--operators",
        "2",
        "--ritz-steps",
        "10",
        "--channels",
        "4",
        "--blocks",
        "1",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["commands"] == ["python -m learned.dcdm.train " + " ".join(argv)]
    assert record["completed_steps"] == 2
    assert load_model(out.with_suffix(".safetensors")).config.channels == 4
    assert "wrote" in capsys.readouterr().out


def test_galerkin_batches_mixing_operators_keep_their_order():
    systems = training_operators(2, 8, 3, seed=0)
    stencils = [GridStencil.from_matrix(s.A, s.grid_shape) for s in systems]
    coefficients = torch.stack([s.to_tensor() for s in stencils])
    geometry = torch.stack([torch.as_tensor(s.geometry(), dtype=torch.float32) for s in stencils])
    config = DCDMNet(2, channels=6, blocks=3, init="multigrid", restriction="adjoint").config
    config = dataclasses.replace(config, galerkin=True)
    module = DCDMModule(
        config,
        coefficients,
        geometry,
        lr=1e-3,
        steps=1,
        seed=0,
        matrices=[s.A for s in systems],
    )
    op = torch.tensor([2, 0, 2, 1, 0])
    r = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batched = module._direction(r, op, geometry[op])
        one_by_one = torch.cat(
            [
                module.net(r[i : i + 1], geometry[o : o + 1], module.pyramids[o])
                for i, o in enumerate(op.tolist())
            ]
        )
    torch.testing.assert_close(batched, one_by_one)
    with pytest.raises(ValueError, match="needs matrices, one per operator"):
        DCDMModule(config, coefficients, geometry, lr=1e-3, steps=1, seed=0)


def _rewrite(path, meta: dict, tensors: dict) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=meta)


def test_model_files_are_versioned_and_damaged_ones_raise_value_error(tmp_path):
    from safetensors import safe_open

    torch.manual_seed(1)
    net = DCDMNet(2, channels=4, levels=1)
    path = tmp_path / "m.safetensors"
    save_model(net, path)
    with safe_open(str(path), framework="pt") as handle:
        meta, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    assert meta["version"] == "1"
    config = json.loads(meta["config"])
    # No version entry (the files shipped before versions): version 1.
    _rewrite(path, {k: v for k, v in meta.items() if k != "version"}, tensors)
    assert load_model(path).config == net.config
    bad = [
        ({**meta, "version": "2"}, tensors, "version '2'"),
        ({**meta, "config": json.dumps({**config, "norm": "batch"})}, tensors, "norm"),
        ({k: v for k, v in meta.items() if k != "config"}, tensors, "no DCDM configuration"),
        ({**meta, "config": "[1, 2]"}, tensors, "not an object"),
        ({**meta, "config": "{"}, tensors, "not a valid DCDM model"),
        (meta, dict(list(tensors.items())[1:]), "Missing key"),
        ({**meta, "config": json.dumps({**config, "channels": 5})}, tensors, "size mismatch"),
    ]
    for m, t, match in bad:
        _rewrite(path, m, t)
        with pytest.raises(ValueError, match=match):
            load_model(path)
    with pytest.raises(ValueError, match="reserved"):
        save_model(net, path, metadata={"version": 2})
