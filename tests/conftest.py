"""Shared test configuration: hypothesis profiles and hardware-dependent markers."""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

# CI runs derandomised so that a red run can be reproduced exactly; locally the
# default profile explores new examples each run.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch intra-op thread, then restore the count.

    Tiny tensors: a second thread only adds synchronisation (and spins badly on a
    loaded machine). Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cuda_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # get_closest_marker, not keywords: keywords also hold directory names, and
    # the compile-only tests under tests/gpu/ must run without a device.
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if marked and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA device and cupy")
        for item in marked:
            item.add_marker(skip)
