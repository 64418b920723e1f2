"""Saving and loading DCDM networks as safetensors; the models shipped in the repository.

A model file holds the network's tensors and, in the safetensors metadata, its
:class:`~learned.dcdm.network.DCDMConfig` as JSON and the format version, so that
loading needs nothing else (and never unpickles anything). Files without a version
entry (the shipped models among them) are version 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from learned.dcdm.network import DCDMConfig, DCDMNet

__all__ = ["MODELS_DIR", "load_model", "model_metadata", "pretrained", "save_model"]

FORMAT = "numlib.learned.DCDMNet"
VERSION = "1"
_RESERVED = ("format", "version", "config")
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
"""Folder of the shipped models, ``dcdm2d.safetensors`` and ``dcdm3d.safetensors``."""


def save_model(net: DCDMNet, path: str | Path, *, metadata: dict[str, Any] | None = None) -> None:
    """Write ``net``'s weights and configuration to a safetensors file.

    ``metadata`` (JSON-ready values) is stored next to the configuration, e.g. the
    training command. The file is written atomically (temporary file, rename).

    Raises
    ------
    TypeError
        If ``net`` is not a :class:`DCDMNet`.
    ValueError
        If ``metadata`` uses a reserved key (``format``, ``version``, ``config``).
    """
    if not isinstance(net, DCDMNet):
        raise TypeError(f"net must be a DCDMNet, got {type(net).__name__}")
    clash = sorted(set(metadata or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved for the file format")
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "version": VERSION, "config": json.dumps(net.config.to_dict())}
    for key, value in (metadata or {}).items():
        meta[key] = json.dumps(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=meta)
    partial.replace(path)


def load_model(path: str | Path) -> DCDMNet:
    """Load a network written by :func:`save_model` (in eval mode, on the CPU).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a DCDM model, is of an unsupported version (a missing
        version is 1), or its configuration or tensors are missing, invalid or do not
        match each other.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no DCDM model at {path}")
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a DCDM model (format {meta.get('format')!r})")
        version = meta.get("version", "1")
        if version != VERSION:
            raise ValueError(
                f"{path} is a DCDM model of version {version!r}; this reader loads "
                f"version {VERSION}"
            )
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if "config" not in meta:
        raise ValueError(f"{path} has no DCDM configuration in its metadata")
    try:
        fields = json.loads(meta["config"])
        if not isinstance(fields, dict):
            raise TypeError(f"the configuration is a {type(fields).__name__}, not an object")
        config = DCDMConfig(**fields)
        net = DCDMNet.from_config(config)
        net.load_state_dict(tensors)
    except (TypeError, ValueError, RuntimeError) as exc:  # json errors are ValueErrors
        raise ValueError(f"{path} is not a valid DCDM model: {exc}") from exc
    return net.eval()


def pretrained(dim: int) -> DCDMNet:
    """Load the shipped model for 2-D (``dim=2``) or 3-D (``dim=3``) Poisson problems.

    Both are the multigrid initialisation (``init="multigrid"``,
    ``restriction="adjoint"``, 6 channels): a symmetric cycle of damped Jacobi for the
    constant-coefficient Laplacian, untrained; V(1, 1) (3 blocks) in 2-D and V(3, 3)
    (5 blocks) in 3-D, the smoothing that needs the fewest solver iterations with and
    without obstacles in each dimension (more smoothing by the box stencil costs
    iterations on the 2-D obstacle problems). Training from it
    (energy loss, 64² grids) made the validation iterations worse on the box and
    barely moved them on obstacles, and the BPX-initialised and trained networks
    shipped before needed 2.6-3.7x more iterations on the box and fell back to PCG on
    obstacles. The commands are in ``learned/models/dcdm<dim>d.json``. The networks are
    multilevel and fully convolutional, so they apply to any grid.

    Examples
    --------
    >>> net = pretrained(2)
    >>> net.config.dim, net.config.levels is None, net.config.init
    (2, True, 'multigrid')
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    return load_model(MODELS_DIR / f"dcdm{dim}d.safetensors")


def model_metadata(path: str | Path) -> dict[str, Any]:
    """Return the JSON metadata stored in a model file (configuration included)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    return {
        key: json.loads(value) for key, value in meta.items() if key not in ("format", "version")
    }
