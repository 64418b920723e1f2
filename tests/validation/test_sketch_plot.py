"""The sketch suite's l-infinity plot is registered and draws from Records and JSON alike."""

from __future__ import annotations

import json
from pathlib import Path

from validation.registry import Record, plotters
from validation.suites import sketch_plot


def _record(sketch: str) -> Record:
    metrics = {
        "sketch": sketch,
        "n": 4000,
        "d": 20,
        "eps": 0.1,
        "seeds": 3,
        "m_paper": 1e7,
        "m": [40, 80, 160],
        "median_linf_over_bound": [4.0, 2.0, 0.9],
        "max_linf_over_bound": [5.0, 2.5, 1.1],
    }
    return Record("sketch", f"linf-vs-m-{sketch}", "small", sketch, "bound", 0.1, None, metrics)


def test_linf_plot_is_registered_and_draws(tmp_path: Path):
    records = [_record("srht"), _record("countsketch")]
    assert sketch_plot.linf_plot in plotters("sketch")
    (path,) = sketch_plot.linf_plot(records, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"cases": [r.to_json() for r in records]}))
    assert sketch_plot.main([str(results), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "sketch-linf-vs-m.png").exists()
    assert sketch_plot.linf_plot([], tmp_path) == []
