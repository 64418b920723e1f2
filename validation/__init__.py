"""Benchmark suite and paper reproductions behind the ``numlib-bench`` command."""
