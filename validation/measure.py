"""Wall time and peak memory of a callable, measured in separate runs.

Time is the best of ``repeat`` runs of :func:`time.perf_counter` with the garbage
collector paused (as :mod:`timeit` does), since on a shared machine the minimum
is the least noisy estimate of the cost. Memory is the peak of the bytes
allocated *during* one further run, traced by :mod:`tracemalloc` (numpy reports
its array buffers to it). That run is never timed: tracing slows allocation-heavy
loops. Callers may give the memory run a smaller workload than the timed one
(e.g. a capped iteration count) when the peak is reached early.
"""

from __future__ import annotations

import contextlib
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["best_time", "best_times_interleaved", "one_torch_thread", "peak_memory_mb"]

T = TypeVar("T")


# A run at least this long is timed once where repeating it would cost minutes.
SLOW_S = 10.0


def _check_repeat(repeat: int) -> None:
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")


def best_time(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Run ``fn`` ``repeat`` times and return the fastest wall time and its result.

    Parameters
    ----------
    fn : callable
        Zero-argument callable; every run must do the same work.
    repeat : int
        Number of timed runs, at least 1.

    Returns
    -------
    seconds : float
        Fastest run, in seconds.
    result : object
        What the last run returned.

    Raises
    ------
    ValueError
        If ``repeat`` < 1.
    """
    _check_repeat(repeat)
    best = float("inf")
    result: T
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def best_time_unless_slow(
    fn: Callable[[], T], repeat: int, slow_s: float = SLOW_S
) -> tuple[float, T, int]:
    """Best of ``repeat`` runs, or of one run when the first already takes ``slow_s``.

    For the expensive reference of a comparison (a full SVD, exact attention) whose
    repetitions would cost minutes: a first run that short is repeated like the other
    side, so that a cold first run is never the only one timed; a run of ``slow_s``
    or more is long enough for cold-start costs not to matter.

    Returns
    -------
    seconds : float
        Fastest run.
    result : object
        What the first run returned.
    runs : int
        How many runs were timed (report it beside the time).
    """
    _check_repeat(repeat)
    seconds, result = best_time(fn, 1)
    runs = repeat if seconds < slow_s else 1
    if runs > 1:
        seconds = min(seconds, best_time(fn, runs - 1)[0])
    return seconds, result, runs


def best_times_interleaved(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time of each of ``fns``, their runs alternating.

    One warm-up call each, then ``repeat`` rounds that run every function once.
    Alternating keeps a shared machine's changing load out of the ratios of the times.

    Raises ``ValueError`` if ``repeat`` < 1.
    """
    _check_repeat(repeat)
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], best_time(fn, 1)[0])
    return best


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch with one intra-op thread inside the block, then restore the count.

    On a shared 2-core machine torch's OpenMP pool spins against the other processes
    and costs more than it saves at benchmark sizes; one thread also matches the
    one-BLAS-thread peers.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run BLAS, torch and numlib's own thread pools with one thread inside the block.

    For comparisons whose two sides use different runtimes (numpy's BLAS against
    torch): both get the same single thread. numlib's pools follow the BLAS limit
    (:func:`numlib._arrays.usable_cpus`).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), one_torch_thread():
        yield


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """Peak memory allocated while ``fn`` runs, in MiB (2**20 bytes).

    Counts only blocks allocated after the call starts (inputs that already exist
    are free), including the returned value while it is alive inside ``fn``.

    Parameters
    ----------
    fn : callable
        Zero-argument callable.

    Returns
    -------
    float
        Traced peak, in MiB.
    """
    gc.collect()
    # Under ``python -X tracemalloc`` tracing is already on and must stay on.
    already_tracing = tracemalloc.is_tracing()
    if already_tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already_tracing:
            tracemalloc.stop()
    return (peak - before) / 2**20
