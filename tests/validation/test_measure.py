"""Timing helpers of validation.measure and the bitplane suite's CPU layer case."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from validation.measure import (
    best_time_unless_slow,
    best_times_interleaved,
    one_thread,
    one_torch_thread,
)
from validation.suites.bitplane_layer import FORMATS, cpu_layer


def test_interleaved_runs_alternate_after_one_warm_up_each() -> None:
    calls: list[str] = []
    times = best_times_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], 3)
    assert calls == ["a", "b"] * 4
    assert len(times) == 2 and all(0 <= t < 1 for t in times)
    with pytest.raises(ValueError, match="repeat"):
        best_times_interleaved([lambda: None], 0)


def test_one_torch_thread_restores_the_count() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), one_torch_thread():
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_a_fast_reference_is_repeated_a_slow_one_timed_once() -> None:
    calls: list[int] = []
    seconds, result, runs = best_time_unless_slow(lambda: calls.append(1) or len(calls), 4)
    assert (runs, len(calls), result) == (4, 4, 1) and seconds >= 0
    calls.clear()
    _, _, runs = best_time_unless_slow(lambda: calls.append(1), 4, slow_s=0.0)
    assert (runs, len(calls)) == (1, 1)


def test_one_thread_limits_blas_and_torch_then_restores_them() -> None:
    before = (torch.get_num_threads(), [lib["num_threads"] for lib in threadpool_info()])
    with one_thread():
        assert torch.get_num_threads() == 1
        assert all(
            lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas"
        )
    assert (torch.get_num_threads(), [lib["num_threads"] for lib in threadpool_info()]) == before


def test_cpu_layer_case_compares_every_format_with_every_peer() -> None:
    records = cpu_layer("small", repeat=1)
    assert len(records) == 2 * len(FORMATS) * 3  # shapes x formats x peers
    by_key = {(r.method, r.peer): r for r in records}
    assert len(by_key) == len(records)
    for r in records:
        assert r.time_s > 0 and r.peer_time_s > 0
        if r.peer == "torch-linear-fp32":
            assert r.peer_metrics["rel_error"] == 0
            assert r.peer_metrics["max_abs_error"] < 1e-5
        # the exact integer product: only the float32 output rounds
        assert r.metrics["max_abs_error"] < 1e-5
    # Per-token activation scales and per-row weight scales at 8 bits beat torch's one
    # activation scale per call, on the same inputs.
    for shape in ("384x1536", "1536x384"):
        for peer in ("torch-dynamic-int8", "torch-dynamic-int8-per-channel"):
            ours = by_key[(f"bitplane-linear-w8a8-{shape}", peer)]
            assert ours.metrics["rel_error"] < 0.02
            assert ours.metrics["rel_error"] < ours.peer_metrics["rel_error"]
            # against the one reference both sides share, the unquantised product
            assert ours.metrics["max_abs_error_vs_float64"] < ours.peer_metrics["max_abs_error"]
