"""Noisy sinusoid classification: S4D-LegS vs PTD initialisation under Fourier-mode noise.

The robustness test of Yu et al. (ICLR 2024, "Robustifying state-space models for long
sequences via approximate diagonalization"), at CPU scale. A sequence is
``a sin(2π f_c k + φ) + s w_k`` (``k < L``, white Gaussian ``w``) and its label is the
frequency class ``c``. Two models identical except for the initialisation of their
diagonal SSM layers (:class:`learned.ssm.S4DLayer`) are trained on it:

``legs``
    S4D-LegS: the normal part of HiPPO-LegS (:func:`learned.ssm_init.diagonal_init`).
``ptd``
    Optimised perturb-then-diagonalise of HiPPO-LegS (:mod:`numlib.diag`).

Both are then evaluated on clean test sequences and on the same sequences plus a
sinusoid at each *spike frequency* of S4D-LegS: the frequencies below Nyquist where
``|G_S4D(iω) - G_LegS(iω)|`` (``C = B``) has its largest local maxima
(:func:`spike_frequencies`), i.e. the lightly damped modes (``Re λ = -1/2``) that the
normal part keeps and LegS damps. A control frequency half-way between the two
highest spikes tells the spike effect from generic high-frequency noise.

Run (progress printed; ``--out`` keeps a safetensors checkpoint per model and a
``results.json``; rerunning the same command resumes where it stopped)::

    python -m learned.tasks.sinusoid --out /tmp/sinusoid --steps 1500
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from learned.optim_state import load_optimizer, optimizer_tensors
from learned.ssm import S4DLayer
from learned.ssm_init import diagonal_init
from numlib.diag import transfer_function
from numlib.hippo import hippo_nplr
from numlib.validate import check_positive_int

__all__ = [
    "Config",
    "SSMClassifier",
    "evaluate",
    "main",
    "make_batch",
    "spike_frequencies",
    "train",
]

KINDS = ("legs", "ptd")
# Seeds of the held-out set live apart from every training step's seed.
_TEST_STREAM = 2**40


@dataclass(frozen=True)
class Config:
    """Task and training settings (stored with each checkpoint)."""

    length: int = 256
    classes: int = 8
    f_min: float = 0.02  # lowest class frequency, cycles per sample
    f_step: float = 0.01
    noise: float = 0.3  # training-time white-noise level s
    state: int = 64  # N of HiPPO-LegS behind both inits
    channels: int = 32
    layers: int = 2
    dt: float = 0.01  # initial step of every channel
    block: int = 32  # Vandermonde powers per block (the O(N + L)-memory path)
    ptd_eps: float = 1e-3
    steps: int = 1500
    batch: int = 32
    lr: float = 3e-3
    ssm_lr: float = 1e-3
    seed: int = 0
    test_size: int = 1024

    def frequencies(self) -> np.ndarray:
        """Class frequencies in cycles per sample."""
        return self.f_min + self.f_step * np.arange(self.classes)


def make_batch(cfg: Config, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` labelled sequences, shape ``(size, 1, L)``, drawn from ``seed``.

    Amplitude uniform in ``[0.5, 1.5]``, phase uniform, white noise ``cfg.noise``.

    Examples
    --------
    >>> u, y = make_batch(Config(length=64), 4, seed=0)
    >>> tuple(u.shape), tuple(y.shape)
    ((4, 1, 64), (4,))
    """
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, cfg.classes, size)
    f = cfg.frequencies()[labels][:, None]
    k = np.arange(cfg.length)[None, :]
    amp = gen.uniform(0.5, 1.5, (size, 1))
    phase = gen.uniform(0, 2 * np.pi, (size, 1))
    u = amp * np.sin(2 * np.pi * f * k + phase) + cfg.noise * gen.standard_normal(
        (size, cfg.length)
    )
    return torch.from_numpy(u[:, None, :]).float(), torch.from_numpy(labels)


def spike_frequencies(n: int, dt: float, count: int = 2) -> np.ndarray:
    r"""Discrete frequencies (cycles/sample) of S4D-LegS's largest transfer-function spikes.

    ``ΔG(ω) = |B^T (iωI - N)^{-1} B - B^T (iωI - A)^{-1} B|`` for HiPPO-LegS ``A`` and its
    normal part ``N`` (both by linear solves, :func:`numlib.diag.transfer_function`) on
    a fine log grid below the Nyquist frequency ``π/dt``; the ``count`` largest local
    maxima, mapped to ``ω dt / 2π``.

    Examples
    --------
    >>> f = spike_frequencies(64, 0.01)
    >>> bool(((f > 0.2) & (f < 0.5)).all())
    True
    """
    F = hippo_nplr("legs", check_positive_int(n, "n"))
    omegas = np.logspace(0, np.log10(np.pi / dt), 1500)
    dG = np.abs(transfer_function(F.N, F.B, F.B, omegas) - transfer_function(F.A, F.B, F.B, omegas))
    peaks, _ = scipy.signal.find_peaks(dG)
    top = peaks[np.argsort(dG[peaks])[::-1][:count]]
    return np.sort(omegas[top] * dt / (2 * np.pi))


class SSMClassifier(nn.Module):
    """Encoder, ``layers`` x (S4D layer, GELU, residual, LayerNorm), mean pool, decoder."""

    def __init__(self, cfg: Config, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        init = diagonal_init(kind, cfg.state, eps=cfg.ptd_eps, rng=cfg.seed)
        self.encoder = nn.Linear(1, cfg.channels)
        self.ssms = nn.ModuleList(
            S4DLayer(
                cfg.channels, init, dt_min=cfg.dt, dt_max=cfg.dt, block=cfg.block, seed=cfg.seed + i
            )
            for i in range(cfg.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.channels) for _ in range(cfg.layers))
        self.decoder = nn.Linear(cfg.channels, cfg.classes)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Class logits for ``u`` of shape ``(batch, 1, L)``."""
        x = self.encoder(u.transpose(1, 2)).transpose(1, 2)  # (batch, H, L)
        for ssm, norm in zip(self.ssms, self.norms, strict=True):
            x = x + nn.functional.gelu(ssm(x))
            x = norm(x.transpose(1, 2)).transpose(1, 2)
        return self.decoder(x.mean(-1))


def _optimizer(model: SSMClassifier, cfg: Config) -> torch.optim.Optimizer:
    # S4D's recipe: the SSM's own parameters get a smaller step and no weight decay.
    ssm = [p for m in model.ssms for p in m.parameters()]
    ids = {id(p) for p in ssm}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.AdamW(
        [
            {"params": rest, "lr": cfg.lr, "weight_decay": 0.01},
            {"params": ssm, "lr": cfg.ssm_lr, "weight_decay": 0.0},
        ]
    )


def _save(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt, "opt."))
    meta = {**meta, "param_groups": opt.state_dict()["param_groups"]}
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={"json": json.dumps(meta)})
    partial.replace(path)  # atomic: an interrupted save never leaves a torn checkpoint


def _load(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {})["json"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer(opt, tensors, "opt.", meta.pop("param_groups"))
    return meta


def train(
    cfg: Config, kind: str, out: Path, *, log_every: int = 100
) -> tuple[SSMClassifier, dict[str, Any]]:
    """Train (or resume) one model; checkpoint ``out/<kind>.safetensors`` as it goes.

    The batch of step ``s`` is drawn from seed ``(cfg.seed, s)``, so a resumed run
    sees the same data as an uninterrupted one. Checkpoints every ``log_every``
    steps and at the end hold the model, the AdamW state and the loss history.

    Returns
    -------
    model : SSMClassifier
        In eval mode.
    meta : dict
        ``"step"``, ``"losses"``, ``"seconds"`` (training wall time), ``"config"``.
    """
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    model = SSMClassifier(cfg, kind)
    opt = _optimizer(model, cfg)
    path = out / f"{kind}.safetensors"
    meta: dict[str, Any] = {"step": 0, "losses": [], "seconds": 0.0, "config": asdict(cfg)}
    if path.is_file():
        meta = _load(path, model, opt)
        # Only the step budget may change on resume (to train further).
        if {**meta["config"], "steps": cfg.steps} != asdict(cfg):
            raise ValueError(f"{path} was trained with another configuration; use a new --out")
        meta["config"] = asdict(cfg)
        print(f"[{kind}] resumed at step {meta['step']}", flush=True)
    start = time.perf_counter() - meta["seconds"]
    model.train()
    for step in range(meta["step"], cfg.steps):
        u, y = make_batch(cfg, cfg.batch, seed=cfg.seed * 1_000_003 + step)
        loss = nn.functional.cross_entropy(model(u), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        meta["losses"].append(loss.item())
        meta["step"] = step + 1
        if meta["step"] % log_every == 0 or meta["step"] == cfg.steps:
            meta["seconds"] = time.perf_counter() - start
            recent = float(np.mean(meta["losses"][-log_every:]))
            print(
                f"[{kind}] step {meta['step']}/{cfg.steps} loss {recent:.3f} "
                f"({meta['seconds']:.0f} s)",
                flush=True,
            )
            _save(path, model, opt, meta)
    return model.eval(), meta


@torch.no_grad()
def evaluate(
    model: nn.Module, cfg: Config, noise_freqs: Sequence[float], amplitudes: Sequence[float]
) -> dict[str, float]:
    """Accuracy on the held-out set, clean and with ``a sin(2π f k + φ)`` added.

    Keys ``"clean"`` and ``"f=<f>,a=<a>"``; the phase ``φ`` is drawn per sequence
    from a fixed seed, the same for every model.
    """
    u, y = make_batch(cfg, cfg.test_size, seed=_TEST_STREAM + cfg.seed)
    out = {"clean": float((model(u).argmax(-1) == y).float().mean())}
    gen = np.random.default_rng(_TEST_STREAM + cfg.seed + 1)
    phase = gen.uniform(0, 2 * np.pi, (cfg.test_size, 1))
    k = np.arange(cfg.length)[None, :]
    for f in noise_freqs:
        wave = torch.from_numpy(np.sin(2 * np.pi * f * k + phase)[:, None, :]).float()
        for a in amplitudes:
            acc = (model(u + a * wave).argmax(-1) == y).float().mean()
            out[f"f={f:.4f},a={a:g}"] = float(acc)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train both models (resumably), evaluate, write ``results.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m learned.tasks.sinusoid", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint and results folder")
    parser.add_argument("--steps", type=int, default=Config.steps)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.5, 1.0])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = Config(steps=check_positive_int(args.steps, "steps"), seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    spikes = spike_frequencies(cfg.state, cfg.dt)
    control = float(spikes.mean())  # between the two spikes: high frequency, no resonance
    freqs = [*spikes.tolist(), control]
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "spike_frequencies": spikes.tolist(),
        "control_frequency": control,
        "models": {},
    }
    for kind in KINDS:
        model, meta = train(cfg, kind, args.out)
        acc = evaluate(model, cfg, freqs, args.amplitudes)
        results["models"][kind] = {
            "accuracy": acc,
            "train_seconds": meta["seconds"],
            "final_loss": float(np.mean(meta["losses"][-100:])),
        }
        print(f"[{kind}] " + ", ".join(f"{k}: {v:.3f}" for k, v in acc.items()), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
