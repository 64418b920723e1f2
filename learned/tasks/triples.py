"""Match3 mod p: a triple-wise task one layer of tensor attention learns, matrix attention not.

Tokens ``x_1..x_n`` are drawn from ``Z_p``; the label of position ``i`` is whether some
pair of positions ``(j, l)`` (any, repeats allowed) completes it to a zero-sum triple,
``x_i + x_j + x_l ≡ 0 (mod p)``. This is the "Match3" function that Sanford, Hsu &
Telgarsky ("Representational Strengths and Limitations of Transformers", NeurIPS 2023)
show a one-layer softmax-attention transformer cannot represent unless its width grows
polynomially in ``n``, and that Alman & Song (ICLR 2024, arXiv:2310.04064) cite as the
motivation for tensor attention: one tensor-attention head represents it with width 4,
since ``cos(a + b + c)`` is a sum of four products ``f(a) g(b) h(c)``.

The models are an embedding, one attention layer with a residual connection
(:class:`learned.layers.TensorAttention` or :class:`learned.layers.SoftmaxAttention`,
same width and heads), a LayerNorm and a two-layer MLP read-out per position.

Run (progress is printed; ``--out`` keeps a safetensors checkpoint per model and a
``results.json``; rerunning the same command resumes where it stopped)::

    python -m learned.tasks.triples --out /tmp/triples
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from learned.layers import SoftmaxAttention, TensorAttention
from learned.optim_state import load_optimizer, optimizer_tensors
from numlib.validate import as_generator, check_positive_int

__all__ = [
    "Config",
    "TriplesModel",
    "balanced_batch",
    "evaluate",
    "main",
    "train",
    "triple_labels",
]

KINDS = ("tensor", "matrix")
# Keeps the seeds of the held-out set apart from every training step's seed.
_TEST_STREAM = 2**40


def triple_labels(x: np.ndarray, p: int) -> np.ndarray:
    """Per-position Match3 labels: ``y[s, i] = any_{j,l} (x[s,i] + x[s,j] + x[s,l]) % p == 0``.

    Parameters
    ----------
    x : numpy.ndarray of int, shape (m, n)
        Token sequences with entries in ``[0, p)``.
    p : int
        Modulus, ``>= 2``.

    Returns
    -------
    numpy.ndarray of bool, shape (m, n)
        ``O(m n^2)``: the residues ``x_j + x_l`` present in each sequence are marked
        once, then looked up at ``-x_i``.

    Examples
    --------
    >>> import numpy as np
    >>> from learned.tasks.triples import triple_labels
    >>> triple_labels(np.array([[1, 2, 4]]), 7).tolist()  # 1+2+4, and 2+1+4 ...
    [[True, True, True]]
    >>> triple_labels(np.array([[1, 1]]), 7).tolist()
    [[False, False]]
    """
    p = check_positive_int(p, "p", minimum=2)
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x must be a 2-D integer array, got shape {x.shape}, dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= p):
        raise ValueError(f"x must have entries in [0, {p}), got [{x.min()}, {x.max()}]")
    m, n = x.shape
    pair_sums = (x[:, :, None] + x[:, None, :]) % p
    present = np.zeros((m, p), dtype=bool)
    np.put_along_axis(present, pair_sums.reshape(m, n * n), True, axis=1)
    return np.take_along_axis(present, (-x) % p, axis=1)


def balanced_batch(
    count: int, n: int, p: int, rng: int | np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uniform sequences, accepted so that positives are 50% of all labels.

    Candidates are drawn uniformly and accepted in order when they keep the running
    number of positive positions within ``n / 2`` of half the positions so far; for
    ``(n, p)`` with a natural positive rate near one half (e.g. ``(6, 31)``: 51%)
    almost all candidates are accepted. The final rate is within ``1 / (2 count)`` of 0.5.

    Returns
    -------
    x : numpy.ndarray of int64, shape (count, n)
    y : numpy.ndarray of bool, shape (count, n)
    """
    gen = as_generator(rng)
    xs, ys = [], []
    positives = total = 0
    while len(xs) < count:
        cand = gen.integers(0, p, size=(2 * count, n))
        labels = triple_labels(cand, p)
        for row, lab in zip(cand, labels, strict=True):
            k = int(lab.sum())
            if abs(positives + k - (total + n) / 2) <= n / 2:
                xs.append(row)
                ys.append(lab)
                positives += k
                total += n
                if len(xs) == count:
                    break
    return np.stack(xs), np.stack(ys)


class TriplesModel(nn.Module):
    """Embedding, one attention layer (tensor or matrix) with residual, per-position MLP.

    Parameters
    ----------
    p : int
        Vocabulary size (the modulus).
    dim : int
        Width.
    heads : int
        Attention heads.
    kind : {"tensor", "matrix"}
        Attention layer.
    hidden : int
        Width of the read-out MLP.
    """

    def __init__(self, p: int, dim: int, heads: int, kind: str, hidden: int) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.embed = nn.Embedding(p, dim)
        layer = TensorAttention if kind == "tensor" else SoftmaxAttention
        self.attn = layer(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return one logit per position for tokens ``x`` of shape ``(batch, n)``."""
        h = self.embed(x)
        h = h + self.attn(h)
        return self.head(self.norm(h)).squeeze(-1)


@dataclass(frozen=True)
class Config:
    """Training configuration (stored in every checkpoint and in ``results.json``)."""

    p: int = 31
    n: int = 6
    dim: int = 32
    heads: int = 4
    hidden: int = 64
    batch: int = 256
    steps: int = 6000
    lr: float = 3e-3
    test_size: int = 4096
    seed: int = 0


def _checkpoint_path(out: Path, kind: str) -> Path:
    return out / f"triples-{kind}.safetensors"


def _save(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, cfg: Config) -> None:
    """Model and AdamW state as safetensors (no pickle); written atomically."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update(optimizer_tensors(opt, "optim."))
    meta = {
        "step": str(step),
        "config": json.dumps(asdict(cfg)),
        "param_groups": json.dumps(opt.state_dict()["param_groups"]),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load(path: Path, model: nn.Module, opt: torch.optim.Optimizer, cfg: Config) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    if json.loads(meta["config"]) != asdict(cfg):
        raise ValueError(f"checkpoint {path} was written with another configuration: {meta}")
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_optimizer(opt, tensors, "optim.", json.loads(meta["param_groups"]))
    return int(meta["step"])


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Per-position accuracy of ``model`` on tokens ``x`` against labels ``y``."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.as_tensor(xb)) for xb in np.array_split(x, 8)])
    model.train()
    return float(((logits > 0).numpy() == y).mean())


def train(
    kind: str,
    cfg: Config,
    out: Path,
    *,
    minutes: float | None = None,
    stop_after: int | None = None,
    log_every: int = 200,
) -> dict[str, Any]:
    """Train one model, resuming from its checkpoint in ``out``; return its results.

    Batches come from ``numpy.random.default_rng([seed, step])`` and the learning rate
    (cosine decay from ``cfg.lr``) is a function of the step, so a resumed run takes
    exactly the steps an uninterrupted one would. Stops after ``cfg.steps`` steps
    or ``minutes`` of wall time or ``stop_after`` steps of this call (checkpointing
    either way; ``finished`` in the result says which); held-out accuracy is on
    ``cfg.test_size`` sequences from a separate stream.
    """
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = TriplesModel(cfg.p, cfg.dim, cfg.heads, kind, cfg.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    path = _checkpoint_path(out, kind)
    step = _load(path, model, opt, cfg) if path.exists() else 0
    if step:
        print(f"[{kind}] resuming at step {step} from {path}", flush=True)
    loss_fn = nn.BCEWithLogitsLoss()
    start = time.perf_counter()
    deadline = math.inf if minutes is None else start + 60 * minutes
    running = []
    last = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    while step < last and time.perf_counter() < deadline:
        xb, yb = balanced_batch(cfg.batch, cfg.n, cfg.p, np.random.default_rng([cfg.seed, step]))
        # Cosine decay, a function of the step alone, so resuming needs no scheduler state.
        for group in opt.param_groups:
            group["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / cfg.steps))
        logits = model(torch.as_tensor(xb))
        loss = loss_fn(logits, torch.as_tensor(yb, dtype=logits.dtype))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        running.append((loss.item(), float(((logits.detach() > 0).numpy() == yb).mean())))
        if step % log_every == 0 or step == cfg.steps:
            loss_avg, acc_avg = np.mean(running, axis=0)
            running.clear()
            print(
                f"[{kind}] step {step}/{cfg.steps} loss {loss_avg:.4f} train acc {acc_avg:.3f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            _save(path, model, opt, step, cfg)
    _save(path, model, opt, step, cfg)
    x_test, y_test = balanced_batch(
        cfg.test_size, cfg.n, cfg.p, np.random.default_rng([cfg.seed, _TEST_STREAM])
    )
    result = {
        "kind": kind,
        "steps": step,
        "finished": step >= cfg.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": evaluate(model, x_test, y_test),
        "test_positive_rate": float(y_test.mean()),
        "config": asdict(cfg),
    }
    print(f"[{kind}] held-out accuracy {result['test_accuracy']:.4f}", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m learned.tasks.triples --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m learned.tasks.triples",
        description="Train one-layer tensor- and matrix-attention models on Match3 mod p.",
    )
    defaults = Config()
    parser.add_argument("--model", choices=KINDS, action="append", help="default: both")
    parser.add_argument("--out", type=Path, required=True, help="checkpoints and results.json")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time cap per model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    for field, value in asdict(defaults).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = Config(**{f: getattr(args, f) for f in asdict(defaults)})
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for kind in args.model or KINDS:
        results[kind] = train(kind, cfg, args.out, minutes=args.minutes)
        args.out.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
    for kind, r in results.items():
        print(
            f"{kind}: {r['parameters']} parameters, {r['steps']} steps, "
            f"held-out accuracy {r['test_accuracy']:.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
