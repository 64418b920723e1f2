"""The noisy-sinusoid task: data, spike frequencies, resumable training, evaluation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import learned.tasks.sinusoid as task
from learned.tasks.sinusoid import Config, evaluate, main, make_batch, spike_frequencies, train
from numlib.hippo import hippo_nplr


@dataclasses.dataclass(frozen=True)
class TinyConfig(Config):
    """A configuration that trains in well under a second."""

    length: int = 48
    state: int = 8
    channels: int = 4
    layers: int = 1
    steps: int = 4
    batch: int = 8
    test_size: int = 16
    block: int = 8


TINY = TinyConfig()


def test_batches_are_seeded_and_labelled_by_frequency():
    u1, y1 = make_batch(TINY, 6, seed=3)
    u2, y2 = make_batch(TINY, 6, seed=3)
    torch.testing.assert_close(u1, u2)
    assert torch.equal(y1, y2)
    clean = dataclasses.replace(TINY, noise=0.0, length=400)
    u, y = make_batch(clean, 5, seed=1)
    for seq, label in zip(u[:, 0].numpy(), y.numpy(), strict=True):
        peak = np.argmax(np.abs(np.fft.rfft(seq))) / seq.size  # cycles per sample
        assert peak == pytest.approx(clean.frequencies()[label], abs=1.5 / seq.size)


def test_spike_frequencies_sit_on_lightly_damped_s4d_modes():
    dt = 0.01
    spikes = spike_frequencies(64, dt, count=3)
    modes = np.abs(np.linalg.eigvals(hippo_nplr("legs", 64).N).imag) * dt / (2 * np.pi)
    for f in spikes:
        assert np.abs(modes - f).min() < 0.01 * f
    assert (spikes < 0.5).all()  # below Nyquist


def test_resumed_training_equals_uninterrupted(tmp_path):
    kind = "ptd"
    whole, meta = train(TINY, kind, tmp_path / "a", log_every=2)
    train(dataclasses.replace(TINY, steps=2), kind, tmp_path / "b", log_every=2)
    resumed, meta_b = train(TINY, kind, tmp_path / "b", log_every=2)
    assert meta["step"] == meta_b["step"] == 4
    assert meta["losses"] == meta_b["losses"]
    for p, q in zip(whole.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(ValueError, match="another configuration"):
        train(dataclasses.replace(TINY, lr=1.0), kind, tmp_path / "b")


def test_evaluate_zero_amplitude_is_clean_accuracy(tmp_path):
    model, _ = train(dataclasses.replace(TINY, steps=1), "legs", tmp_path)
    acc = evaluate(model, TINY, [0.3], [0.0, 1.0])
    assert acc["f=0.3000,a=0"] == acc["clean"]
    assert set(acc) == {"clean", "f=0.3000,a=0", "f=0.3000,a=1"}


def test_cli_trains_both_models_and_writes_results(tmp_path, monkeypatch):
    monkeypatch.setattr(task, "Config", TinyConfig)
    assert main(["--out", str(tmp_path), "--steps", "2", "--amplitudes", "1.0"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["models"]) == {"legs", "ptd"}
    acc = results["models"]["ptd"]["accuracy"]
    assert len(acc) == 1 + len(results["spike_frequencies"]) + 1  # clean, spikes, control
    assert all(0.0 <= v <= 1.0 for v in acc.values())
