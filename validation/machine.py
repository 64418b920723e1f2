"""Description of the machine a benchmark ran on, without identifying it.

The hostname, user and paths are left out on purpose: ``results.json`` files are
meant to be shared and compared.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["describe_machine", "summary"]

_PACKAGES = ("numlib", "numpy", "scipy", "pyamg")
# Environment variables that change how many threads BLAS and friends use, which
# changes timings as much as the hardware does.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    # The module's own __version__, since numlib may run from a source tree that
    # was never installed (no distribution metadata).
    try:
        return str(importlib.import_module(package).__version__)
    except (ImportError, AttributeError):
        return None


def _blas() -> dict[str, Any]:
    """Describe the BLAS numpy was built against, from ``numpy.show_config``."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        key: blas.get(key)
        for key in ("name", "version", "openblas configuration")
        if blas.get(key) is not None
    }


def describe_machine() -> dict[str, Any]:
    """Describe this machine: the ``"machine"`` object of ``results.json``.

    Returns
    -------
    dict
        ``cpu`` (model name), ``cores`` (logical CPUs), ``memory_gib``, ``os``,
        ``python``, ``versions`` (numlib, numpy, scipy, pyamg), ``blas`` (numpy's BLAS
        build), ``threads`` (thread-count environment variables that are set) and
        ``timestamp`` (UTC, ISO 8601).
    """
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: _version(package) for package in _PACKAGES},
        "blas": _blas(),
        "threads": {var: os.environ[var] for var in _THREAD_VARIABLES if var in os.environ},
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def summary(machine: dict[str, Any]) -> str:
    """Condense ``machine`` into one line for the report header."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    blas = machine["blas"]
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}, Python {machine['python']}, {versions}, "
        f"BLAS {blas.get('name', '?')} {blas.get('version', '')}".rstrip()
        + f" ({machine['timestamp']})"
    )
