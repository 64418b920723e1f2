"""Baselines written for the benchmark suites where no peer package installs cleanly."""
