"""The README's usage examples run as written (those that use CuPy where a GPU is present)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert BLOCKS, "README.md has no python example"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block: str) -> None:
    if "import cupy" in block:
        if importlib.util.find_spec("cupy") is None:
            pytest.skip("the example needs CuPy and a CUDA device")
        import cupy

        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("the example needs a CUDA device")
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
