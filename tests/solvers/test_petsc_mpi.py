"""solvers.petsc under ``mpiexec -n 2``: distributed results against serial references.

Each test launches one script of tests/mpi/ on two ranks, which writes an npz
from rank 0, and compares it here with an independent serial computation
(scipy's sparse LU, the serial numlib functions). Skipped, with the reason,
where mpiexec or mpi4py is missing.

The argument checks of the distributed functions, which need no second rank,
run in this process on its one-rank ``COMM_WORLD`` (skipped without mpi4py); only
the tests that launch ``mpiexec`` carry the ``mpi`` marker.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

RANKS = 2
SCRIPTS = Path(__file__).resolve().parents[1] / "mpi"
ROOT = Path(__file__).resolve().parents[2]


def _skip_reason() -> str | None:
    if shutil.which("mpiexec") is None:
        return "mpiexec is not on PATH (install OpenMPI, e.g. Debian's petsc-dev)"
    for module in ("mpi4py", "petsc4py"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install numlib[petsc]; `make setup`)"
    return None


def run_mpi(script: str, *args: str, ranks: int = RANKS) -> None:
    """Run ``tests/mpi/<script>`` on ``ranks`` ranks with this interpreter; fail on error."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    env = dict(os.environ)
    # Open MPI refuses to start as root without these; the test harness sets them
    # for its own child only. One thread per rank: the machine has two cores.
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    command = [
        "mpiexec",
        "--oversubscribe",
        "-n",
        str(ranks),
        sys.executable,
        str(SCRIPTS / script),
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def _error_bound(A: sp.sparray, b: np.ndarray, rtol: float, solutions: int = 1) -> float:
    """``||x - y||`` allowed when ``x`` and ``y`` both have ``||b - A .|| <= rtol ||b||``.

    ``||x - y|| <= ||A^-1|| (||r_x|| + ||r_y||)``; the matrices here are symmetric
    positive definite, so ``||A^-1|| = 1 / lambda_min``, found by shift-invert Lanczos.
    """
    smallest = spla.eigsh(sp.csc_array(A), k=1, sigma=0, return_eigenvectors=False)[0]
    inverse_norm = 1.0 / smallest
    return (1 + solutions) * inverse_norm * rtol * np.linalg.norm(b) * 1.01


@pytest.mark.mpi
def test_row_split_and_local_row_checks_on_every_rank(tmp_path):
    from solvers.problems import darcy

    out = tmp_path / "layouts.npz"
    run_mpi("layouts.py", str(out))
    data = np.load(out)
    assert np.array_equal(data["numlib_ranges"], data["petsc_ranges"])
    # Every rank refuses, also the one whose own rows are fine.
    assert all("add up to 12, not n=16" in message for message in data["short_error"])
    assert all("finite" in message for message in data["nan_error"])
    assert data["ownership_of_uneven"].tolist() == [[0, 3], [3, 16]]
    A = darcy(4, rng=0).A
    # Row sums cancel (a diffusion matrix): only the order of the sums may differ.
    assert np.allclose(data["product"], A @ np.ones(16), rtol=0, atol=1e-14 * abs(A).max())


@pytest.mark.mpi
def test_distributed_solve_equals_serial(tmp_path):
    from solvers.gcrodr import gcrodr
    from solvers.problems import darcy

    out = tmp_path / "solve.npz"
    run_mpi("solve_distributed.py", str(out))
    data = np.load(out)
    assert int(data["ranks"]) == RANKS
    rtol = 1e-10
    for precision, label in (("working", "gcrodr"), ("single", "gcrodr_single")):
        recycle = None
        for name, seed in (("first", 0), ("second", 1)):
            system = darcy(32, rng=seed)
            exact = spla.spsolve(sp.csc_array(system.A), system.b)
            serial = gcrodr(system.A, system.b, rtol=rtol, m=30, k=10, recycle=recycle,
                            basis_precision=precision)  # fmt: skip
            recycle = serial.info["recycle"]
            x = data[f"{label}_{name}_x"]
            assert bool(data[f"{label}_{name}_converged"])
            bound = _error_bound(system.A, system.b, rtol)
            assert np.linalg.norm(x - exact) <= bound
            assert np.linalg.norm(x - serial.x) <= bound
            # Only the order of the sums differs from the serial run.
            assert abs(int(data[f"{label}_{name}_iterations"]) - serial.iterations) <= 2
        assert int(data[f"{label}_second_iterations"]) < int(data[f"{label}_first_iterations"])
    first = darcy(32, rng=0)
    exact = spla.spsolve(sp.csc_array(first.A), first.b)
    for method in ("gcrodr", "gmres", "cg"):
        assert bool(data[f"{method}_pc_converged"])
        x = data[f"{method}_pc_x"]
        assert np.linalg.norm(first.A @ x - first.b) <= rtol * np.linalg.norm(first.b) * 1.01
        assert np.linalg.norm(x - exact) <= _error_bound(first.A, first.b, rtol)
        assert int(data[f"{method}_pc_iterations"]) < int(data["gcrodr_first_iterations"])


@pytest.mark.mpi
def test_ksp_python_converges_with_petsc_preconditioners(tmp_path):
    from solvers.problems import darcy

    out = tmp_path / "ksp.npz"
    pc_types = ("gamg", "bjacobi", "asm")
    run_mpi("ksp_python.py", str(out), *pc_types)
    data = np.load(out)
    systems = [darcy(32, rng=seed) for seed in range(3)]
    for pc in pc_types:
        assert str(data[f"{pc}_ksp_type"]) == "python" and str(data[f"{pc}_pc_type"]) == pc
        for seed, system in enumerate(systems):
            x = data[f"{pc}_x_{seed}"]
            residual = np.linalg.norm(system.A @ x - system.b)
            assert int(data[f"{pc}_reason_{seed}"]) == 2  # KSP_CONVERGED_RTOL
            assert residual <= 1e-9 * np.linalg.norm(system.b) * 1.01
            assert float(data[f"{pc}_residual_norm_{seed}"]) == pytest.approx(residual, rel=1e-6)
        # The recycled space survives the operator changes between KSPSolve calls.
        assert int(data[f"{pc}_iterations_2"]) < int(data[f"{pc}_iterations_0"])


@pytest.mark.mpi
def test_distributed_sequence_and_dataset_equal_serial_and_resume(tmp_path):
    from solvers.datasets import generate_dataset, load_dataset
    from solvers.problems import darcy
    from solvers.recycle import solve_sequence

    reference = tmp_path / "serial"
    generate_dataset("darcy", 10, reference, n=12, shard_size=3, seed=7, progress=False)
    # An interrupted serial run: shards 2 and 3 missing; the distributed run finishes it.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(reference, interrupted)
    (interrupted / "shard-00002.npz").unlink()
    (interrupted / "shard-00003.npz").unlink()
    kept = (interrupted / "shard-00001.npz").read_bytes()

    out, folder = tmp_path / "sequence.npz", tmp_path / "distributed"
    run_mpi("sequence_dataset.py", str(out), str(folder), str(interrupted))
    data = np.load(out)
    systems = [darcy(16, rng=seed) for seed in range(8)]
    serial = solve_sequence(systems, strategy="gcrodr", rtol=1e-10, m=20, k=5)
    np.testing.assert_array_equal(data["order"], serial.order)
    np.testing.assert_array_equal(data["chunks"], [4, 4])
    assert bool(data["converged"]) and str(data["strategy"]) == "gcrodr"
    for system, x, y in zip(systems, data["solutions"], serial.solutions, strict=True):
        assert np.linalg.norm(x - y) <= _error_bound(system.A, system.b, 1e-10)

    assert int(data["shards_written"]) == 4
    assert (folder / "order.npy").read_bytes() == (reference / "order.npy").read_bytes()
    inputs, solutions, index = load_dataset(folder)
    inputs_ref, solutions_ref, index_ref = load_dataset(reference)
    np.testing.assert_array_equal(index, index_ref)
    np.testing.assert_array_equal(inputs, inputs_ref)
    bounds = [_error_bound(darcy(12, coefficient=a).A, np.ones(144), 1e-8) for a in inputs]
    for x, y, bound in zip(solutions, solutions_ref, bounds, strict=True):
        assert np.linalg.norm(x - y) <= bound
    for name in sorted(p.name for p in reference.glob("shard-*.npz")):
        with np.load(folder / name) as ours, np.load(reference / name) as theirs:
            np.testing.assert_array_equal(ours["index"], theirs["index"])
            np.testing.assert_array_equal(ours["iterations"], theirs["iterations"])

    assert (int(data["resumed_written"]), int(data["resumed_skipped"])) == (2, 2)
    assert (interrupted / "shard-00001.npz").read_bytes() == kept
    _, resumed_solutions, resumed_index = load_dataset(interrupted)
    np.testing.assert_array_equal(resumed_index, np.arange(10))
    untouched = np.load(reference / "order.npy")[:6]  # the samples of shards 0 and 1
    np.testing.assert_array_equal(resumed_solutions[untouched], solutions_ref[untouched])
    for x, y, bound in zip(resumed_solutions, solutions, bounds, strict=True):
        assert np.linalg.norm(x - y) <= bound


@pytest.fixture
def world():
    """This process's ``COMM_WORLD``: one rank, no mpiexec needed."""
    MPI = pytest.importorskip("mpi4py.MPI", reason="mpi4py is not installed (`make setup`)")
    return MPI.COMM_WORLD


@pytest.fixture
def work(monkeypatch):
    """Names of the ordering and solving steps solve_sequence_mpi began, in order."""
    from solvers.petsc import sequence

    begun = []

    def recording(name, real):
        def record(*args, **kwargs):
            begun.append(name)
            return real(*args, **kwargs)

        return record

    for name in ("order_systems", "solve_sequence"):
        monkeypatch.setattr(sequence, name, recording(name, getattr(sequence, name)))
    return begun


def small_family(count: int = 4) -> list:
    from solvers.problems import darcy

    return [darcy(8, rng=seed) for seed in range(count)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": np.ones((3, 2))}, ValueError, r"features must have one row per system \(4\)"),
        (
            {"features": np.ones((7, 2)), "order": np.arange(4)},
            ValueError,
            r"features must have one row per system \(4\)",
        ),
        ({"features": np.ones(4)}, ValueError, "features must be 2-D"),
        ({"features": np.ones((4, 2), dtype=int)}, TypeError, "features must have a real"),
        ({"progress": 5}, TypeError, "progress must be callable, got int"),
        ({"order": "random"}, ValueError, "order must be one of"),
        ({"order": np.array([0, 0, 1, 2])}, ValueError, "order must be a permutation"),
        ({"strategy": "magic"}, ValueError, "strategy must be one of"),
        ({"m": 5, "k": 5}, ValueError, "k must be < m"),
        ({"maxiter": 0}, ValueError, "maxiter must be >= 1"),
        ({"rtol": 0.0}, ValueError, "rtol and atol must not both"),
        ({"strategy": "direct"}, ValueError, "'direct' needs one constant"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, dict) else None,
)
def test_sequence_mpi_refuses_what_solve_sequence_refuses_before_any_work(
    world, work, kwargs, error, match
):
    """The distributed function checks its arguments as the serial one does: same
    exception, same message, before the sequence is ordered or any system solved."""
    from solvers.petsc.sequence import solve_sequence_mpi
    from solvers.recycle import solve_sequence

    systems = small_family()
    with pytest.raises(error, match=match) as serial:
        solve_sequence(systems, **kwargs)
    with pytest.raises(error, match=match) as distributed:
        solve_sequence_mpi(systems, comm=world, **kwargs)
    assert str(distributed.value) == str(serial.value)
    assert work == []


@pytest.mark.parametrize("root", [0, np.int64(0), np.int32(0), None])
def test_sequence_mpi_takes_any_integer_rank_as_root(world, root):
    from solvers.petsc.sequence import solve_sequence_mpi

    systems = small_family(3)
    out = solve_sequence_mpi(systems, comm=world, root=root, rtol=1e-8)
    assert out.info["converged"] and out.info["ranks"] == 1
    for system, x in zip(systems, out.solutions, strict=True):
        assert np.linalg.norm(system.b - system.A @ x) <= 1e-8 * np.linalg.norm(system.b)


@pytest.mark.parametrize(
    ("root", "error", "match"),
    [
        (True, TypeError, "root must be an integer, got bool"),
        (0.0, TypeError, "root must be an integer, got float"),
        (-1, ValueError, "root must be >= 0"),
        (1, ValueError, r"root must be None or a rank in \[0, 1\)"),
    ],
)
def test_sequence_mpi_refuses_a_root_that_is_not_a_rank(world, work, root, error, match):
    from solvers.petsc.sequence import solve_sequence_mpi

    with pytest.raises(error, match=match):
        solve_sequence_mpi(small_family(), comm=world, root=root)
    assert work == []


def _petsc_world():
    return pytest.importorskip("petsc4py.PETSc").COMM_WORLD


@pytest.mark.parametrize(
    ("comm", "kind"),
    [(lambda: "x", "builtins.str"), (_petsc_world, "petsc4py.PETSc.Comm")],
    ids=["str", "petsc4py"],
)
def test_distributed_functions_want_an_mpi4py_communicator(world, work, tmp_path, comm, kind):
    from solvers.petsc.dataset import generate_dataset_mpi
    from solvers.petsc.sequence import solve_sequence_mpi

    match = rf"comm must be an mpi4py communicator \(mpi4py.MPI.Comm\), got {kind}"
    with pytest.raises(TypeError, match=match):
        solve_sequence_mpi(small_family(), comm=comm())
    assert work == []
    with pytest.raises(TypeError, match=match):
        generate_dataset_mpi("darcy", 4, tmp_path / "out", n=8, comm=comm())
    assert not (tmp_path / "out").exists()


def test_dataset_mpi_warns_of_inexact_samples_as_the_serial_generator(world, tmp_path, monkeypatch):
    from solvers.datasets import generate as ds_generate
    from solvers.datasets import generate_dataset
    from solvers.petsc.dataset import generate_dataset_mpi

    real = ds_generate.solve_sequence

    def inexact(*args, **kwargs):  # every solution zero: relative residual 1
        result = real(*args, **kwargs)
        return dataclasses.replace(result, solutions=[0 * x for x in result.solutions])

    monkeypatch.setattr(ds_generate, "solve_sequence", inexact)
    options = {"n": 8, "shard_size": 3, "seed": 7, "progress": False}
    with pytest.warns(UserWarning, match="relative residual above rtol") as serial:
        generate_dataset("darcy", 4, tmp_path / "serial", **options)
    with pytest.warns(UserWarning, match="relative residual above rtol") as distributed:
        generate_dataset_mpi("darcy", 4, tmp_path / "mpi", comm=world, **options)
    expected = [str(w.message) for w in serial]
    assert len(expected) == 2  # one per shard: 3 samples and 1
    assert [str(w.message) for w in distributed] == expected
    assert {w.filename for w in serial} == {w.filename for w in distributed} == {__file__}


@pytest.mark.mpi
@pytest.mark.slow
def test_petsc_suite_records_both_rank_counts_and_every_peer():
    if _skip_reason() is not None:
        pytest.skip(_skip_reason())
    from validation.suites.petsc import NUMLIB, PCS, PEERS, RANKS, darcy_sequence

    records = darcy_sequence("small", repeat=1)
    assert len(records) == len(RANKS) * len(PCS) * len(NUMLIB) * len(PEERS)
    assert {record.metrics["basis_precision"] for record in records} == {"working", "single"}
    for record in records:
        assert record.skipped is None, record.skipped
        assert record.method.startswith("gcrodr-petsc-") and record.peer.startswith("petsc-")
        assert ("-single-" in record.method) == (record.metrics["basis_precision"] == "single")
        for metrics in (record.metrics, record.peer_metrics):
            assert metrics["converged"] and metrics["rel_residual"] <= 1e-8 * 1.01
        # Single rows cost a system about one more cycle: the fewer iterations are
        # claimed for double rows only at this size (8 systems of 576 unknowns).
        if record.metrics["basis_precision"] == "working":
            assert record.metrics["iterations"] < record.peer_metrics["iterations"]
        if record.metrics["ranks"] > 1:
            assert record.metrics["strong_scaling_efficiency"] > 0
            assert record.peer_metrics["per_iteration_scaling_efficiency"] > 0
        assert record.metrics["timed_runs"] == record.peer_metrics["timed_runs"] == 1
        assert record.metrics["job_started_at"].endswith("Z")
