"""The numlib-bench CLI end to end on the small suite, and its error handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from validation import registry, runs
from validation.cli import main
from validation.registry import Case, Record
from validation.suites.krylov import RTOL

RECORD_KEYS = {
    "suite",
    "case",
    "size",
    "method",
    "peer",
    "time_s",
    "peer_time_s",
    "speedup",
    "metrics",
    "peer_metrics",
}
MACHINE_KEYS = {"cpu", "cores", "memory_gib", "os", "python", "versions", "blas", "timestamp"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("bench")
    return main(["--suite", "krylov", "--size", "small", "--repeat", "1", "--out", str(out)]), out


def test_small_run_succeeds(small_run: tuple[int, Path]) -> None:
    code, _ = small_run
    assert code == 0


def test_results_json_has_the_fixed_shape(small_run: tuple[int, Path]) -> None:
    _, out = small_run
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"machine", "suites", "cases"}
    assert MACHINE_KEYS <= set(results["machine"])
    assert results["suites"] == ["krylov"]
    names = {c["case"] for c in results["cases"]}
    assert names == {"poisson2d-cg", "poisson2d-amg", "darcy-cg", "convdiff-gmres"}
    for record in results["cases"]:
        assert set(record) == RECORD_KEYS
        assert record["suite"] == "krylov" and record["size"] == "small"
        assert isinstance(record["method"], str) and record["method"].startswith("numlib")
        assert isinstance(record["peer"], str) and record["peer"]
        assert record["time_s"] > 0 and record["peer_time_s"] > 0
        assert record["speedup"] == pytest.approx(record["peer_time_s"] / record["time_s"])
        for side in ("metrics", "peer_metrics"):
            metrics = record[side]
            assert isinstance(metrics["iterations"], int) and metrics["iterations"] > 0
            assert isinstance(metrics["converged"], bool)
            assert metrics["memory_mb"] > 0
            assert metrics["error_reference"] == "direct"
            assert metrics["rel_error"] < 1e-5


def test_converged_runs_meet_the_tolerance(small_run: tuple[int, Path]) -> None:
    _, out = small_run
    for record in json.loads((out / "results.json").read_text())["cases"]:
        metrics, peer = record["metrics"], record["peer_metrics"]
        assert metrics["converged"] and peer["converged"]
        # numlib's test is on the true residual; the peers stop on a recurrence
        # estimate, which may drift slightly from the true residual.
        assert metrics["rel_residual"] <= RTOL * (1 + 1e-6)
        assert peer["rel_residual"] <= 10 * RTOL


def test_unpreconditioned_cg_matches_scipy_iterations(small_run: tuple[int, Path]) -> None:
    _, out = small_run
    compared = [
        r
        for r in json.loads((out / "results.json").read_text())["cases"]
        if r["peer"] == "scipy.cg"
    ]
    assert compared
    for record in compared:
        # Same recurrence; rounding (summation order of the inner products) may
        # move the step that crosses the tolerance by one either way.
        ours, theirs = record["metrics"]["iterations"], record["peer_metrics"]["iterations"]
        assert abs(ours - theirs) <= 2


def test_report_and_plots_are_written(small_run: tuple[int, Path]) -> None:
    _, out = small_run
    report = (out / "report.md").read_text()
    assert "| case | method | peer |" in report
    assert "**Machine:**" in report
    plots = sorted(out.glob("*.png"))
    assert out / "speedup.png" in plots
    assert len(plots) >= 2
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({plot.name})" in report


def test_rel_residual_is_recomputed_not_trusted() -> None:
    A = sp.csr_array(np.diag([1.0, 2.0, 4.0]))
    b = np.ones(3)
    claims_success = runs.Run("claims", 1.0, np.zeros(3), 1, True, np.array([1.0, 0.0]), 0.1)
    record = runs.compare("s", "c", "small", claims_success, claims_success, A, b, None)
    assert record.metrics["rel_residual"] == pytest.approx(1.0)
    assert "rel_error" not in record.metrics


def test_list_prints_suites_cases_and_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "krylov (default)" in listing
    for name in ("poisson2d-cg", "poisson2d-amg", "darcy-cg", "convdiff-gmres"):
        assert name in listing
    assert "small, medium, large" in listing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
        (["--suite", "nope"], "argument --suite: invalid choice: 'nope'"),
        (["--case", "nope"], "argument --case: unknown case(s) nope"),
        (["--repeat", "0"], "argument --repeat: expected a positive integer"),
    ],
)
def test_bad_arguments_exit_with_a_clear_error(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_unwritable_out_is_an_argument_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["--size", "small", "--out", str(blocker / "out")])
    assert exit_info.value.code == 2
    assert "argument --out: cannot create" in capsys.readouterr().err


def _fine(size: str, *, repeat: int) -> Record:
    """Stand for a case that runs."""
    return Record("scratch", "fine", size, "numlib.x", "peer.x", 1.0, 3.0)


def _needs_gpu(size: str, *, repeat: int) -> Record:
    """Stand for a case whose peer is missing."""
    return Record.skip(
        "scratch", "needs-gpu", size, "no CUDA device", method="numlib.gpu", peer="cupy"
    )


def _broken(size: str, *, repeat: int) -> Record:
    """Stand for a case that raises."""
    raise RuntimeError("exploded")


def test_a_raising_case_fails_the_run_after_the_others_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = {
        ("scratch", "broken"): Case("scratch", "broken", registry.SIZES, _broken),
        ("scratch", "fine"): Case("scratch", "fine", registry.SIZES, _fine),
        ("scratch", "small-only"): Case("scratch", "small-only", ("small",), _fine),
        ("scratch", "needs-gpu"): Case("scratch", "needs-gpu", registry.SIZES, _needs_gpu),
    }
    for key, value in scratch.items():
        monkeypatch.setitem(registry._REGISTRY, key, value)
    assert main(["--suite", "scratch", "--size", "medium", "--out", str(tmp_path)]) == 1

    records = {r["case"]: r for r in json.loads((tmp_path / "results.json").read_text())["cases"]}
    assert records["fine"]["speedup"] == pytest.approx(3.0)
    assert "skipped" not in records["fine"]
    assert records["broken"]["skipped"] == "error: RuntimeError: exploded"
    assert records["small-only"]["skipped"] == "no 'medium' configuration"
    assert records["needs-gpu"]["skipped"] == "no CUDA device"
    assert (records["needs-gpu"]["method"], records["needs-gpu"]["peer"]) == ("numlib.gpu", "cupy")
    for case in ("broken", "small-only", "needs-gpu"):
        assert set(records[case]) == RECORD_KEYS | {"skipped"}
        assert records[case]["time_s"] is None and records[case]["speedup"] is None
    assert "skipped: error: RuntimeError: exploded" in (tmp_path / "report.md").read_text()


def test_kron_suite_agrees_with_linear_operator(tmp_path: Path) -> None:
    pytest.importorskip("linear_operator")
    code = main(["--suite", "kron", "--size", "small", "--repeat", "1", "--out", str(tmp_path)])
    assert code == 0
    records = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert {r["case"] for r in records} == {"se-grid2d-solve-logdet", "se-grid3d-solve-logdet"}
    for record in records:
        assert record["peer"] == "linear_operator"
        assert record["metrics"]["rel_diff_vs_peer"] < 1e-8
        assert record["metrics"]["rel_residual"] < 1e-8
