import dataclasses
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from solvers.datasets import (
    FAMILIES,
    DatasetMismatchError,
    generate_dataset,
    load_dataset,
    main,
)
from solvers.datasets import config as ds_config
from solvers.datasets import families as ds_families
from solvers.datasets import generate as ds_generate
from solvers.fields import gaussian_random_field
from solvers.problems import convection_diffusion, darcy, heat_step, helmholtz, poisson2d

N = 8  # grid size of every test data set: solves take milliseconds
RTOL = 1e-8


def rebuild(family, input_field, n=N):
    """The system of one sample, rebuilt from its stored input by the problem gallery.

    Independent of solvers.datasets: it uses only the documented parametrisation and
    the family defaults (k = 10, dt = 1e-3, upwind convection, f = 1 or f = input).
    """
    if family == "darcy":
        system = darcy(n, coefficient=input_field)
        return system.A, system.b
    if family == "heat":
        system = heat_step(n, 1e-3, u_prev=input_field)
        return system.A, system.b
    if family == "poisson":
        return poisson2d(n).A, input_field.ravel()
    if family == "helmholtz":
        return helmholtz(n, 10.0).A, input_field.ravel()
    assert family == "convection_diffusion"
    vx, vy = input_field[0, 0, 0], input_field[1, 0, 0]
    # The channels are constant velocity fields Pe (cos θ, sin θ).
    assert np.all(input_field[0] == vx) and np.all(input_field[1] == vy)
    system = convection_diffusion(n, math.hypot(vx, vy), angle=math.atan2(vy, vx), scheme="upwind")
    return system.A, np.ones(n * n)


def shard_files(folder):
    return sorted(p.name for p in folder.glob("shard-*.npz"))


def temporaries(folder):
    return sorted(p.name for p in folder.glob("*.tmp"))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_solution_meets_rtol_against_an_independently_rebuilt_system(family, tmp_path):
    info = generate_dataset(family, 6, tmp_path, n=N, shard_size=4, seed=3, progress=False)
    inputs, solutions, index = load_dataset(tmp_path)
    np.testing.assert_array_equal(index, np.arange(6))
    assert solutions.shape == (6, N, N)
    assert inputs.shape == ((6, 2, N, N) if family == "convection_diffusion" else (6, N, N))
    stored = np.concatenate([np.load(p)["rel_residual"] for p in sorted(tmp_path.glob("*.npz"))])
    for field, x in zip(inputs, solutions, strict=True):
        A, b = rebuild(family, field)
        rel = np.linalg.norm(b - A @ x.ravel()) / np.linalg.norm(b)
        # A hair of slack for the convection matrix, rebuilt from Pe·w through
        # hypot/atan2 and so equal to the original only up to rounding.
        assert rel <= RTOL * (1 + 1e-6)
    assert stored.max() <= RTOL
    assert info.max_rel_residual <= RTOL
    assert info.unconverged == 0
    assert (info.shards_written, info.shards_skipped) == (2, 0)


@pytest.mark.parametrize("family", ["darcy", "heat", "poisson", "helmholtz"])
def test_sample_i_is_drawn_from_its_own_generator(family, tmp_path):
    seed = 11
    generate_dataset(family, 5, tmp_path, n=N, shard_size=2, seed=seed, progress=False)
    inputs, _, _ = load_dataset(tmp_path)
    for i in range(5):
        field = gaussian_random_field(
            (N, N), alpha=2.5, tau=7.0, rng=np.random.default_rng([seed, i])
        )
        np.testing.assert_array_equal(inputs[i], np.exp(field) if family == "darcy" else field)


def test_inputs_do_not_depend_on_sharding(tmp_path):
    generate_dataset("darcy", 7, tmp_path / "a", n=N, shard_size=2, progress=False)
    generate_dataset("darcy", 7, tmp_path / "b", n=N, shard_size=7, progress=False)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    # Solutions come from different solve sequences: equal to the tolerance only.
    assert np.abs(a[1] - b[1]).max() <= 1e-6 * np.abs(b[1]).max()


def test_order_is_saved_and_features_are_drawn_in_chunks(tmp_path, monkeypatch):
    run(tmp_path / "a")
    # One sample per feature chunk must give the same global order.
    monkeypatch.setattr(ds_generate, "_FEATURE_CHUNK_VALUES", N * N)
    run(tmp_path / "b")
    order = np.load(tmp_path / "a" / "order.npy", allow_pickle=False)
    np.testing.assert_array_equal(order, np.load(tmp_path / "b" / "order.npy"))
    np.testing.assert_array_equal(np.sort(order), np.arange(10))
    # Shards hold consecutive runs of that order.
    stored = np.concatenate([np.load(p)["index"] for p in sorted((tmp_path / "a").glob("*.npz"))])
    np.testing.assert_array_equal(stored, order)


@pytest.mark.parametrize("order", ["curve", "none"])
def test_other_orderings(tmp_path, order):
    run(tmp_path, order=order)
    saved = np.load(tmp_path / "order.npy")
    if order == "none":
        np.testing.assert_array_equal(saved, np.arange(10))
    np.testing.assert_array_equal(load_dataset(tmp_path)[2], np.arange(10))


def test_constant_matrix_family_is_factorised_once(tmp_path):
    info = generate_dataset("poisson", 6, tmp_path, n=N, shard_size=6, progress=False)
    assert info.strategy == "direct"


def interrupt_on_call(monkeypatch, call):
    """Make the ``call``-th solve_sequence call raise KeyboardInterrupt (Ctrl-C)."""
    real = ds_generate.solve_sequence
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ds_generate, "solve_sequence", flaky)


def run(folder, **kwargs):
    options = {"n": N, "shard_size": 3, "seed": 5, "progress": False} | kwargs
    return generate_dataset("darcy", 10, folder, **options)


def test_resume_after_interruption_is_byte_identical(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run(reference)
    expected = load_dataset(reference)

    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        interrupt_on_call(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            run(resumed)
    assert shard_files(resumed) == ["shard-00000.npz", "shard-00001.npz"]
    assert temporaries(resumed) == []
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == shard_files(resumed)
    assert not manifest["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        load_dataset(resumed)
    _, _, partial = load_dataset(resumed, allow_partial=True)
    assert partial.size == 6

    info = run(resumed)
    assert (info.shards_skipped, info.shards_written) == (2, 2)
    for got, want in zip(load_dataset(resumed), expected, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    assert temporaries(resumed) == []
    assert json.loads((resumed / "manifest.json").read_text())["complete"]

    again = run(resumed)
    assert (again.shards_skipped, again.shards_written) == (4, 0)


def test_samples_above_rtol_are_kept_and_reported_once_per_shard(tmp_path, monkeypatch):
    real = ds_generate.solve_sequence

    def inexact(*args, **kwargs):  # every solution zero: relative residual 1
        result = real(*args, **kwargs)
        return dataclasses.replace(result, solutions=[0 * x for x in result.solutions])

    monkeypatch.setattr(ds_generate, "solve_sequence", inexact)
    with pytest.warns(UserWarning, match="relative residual above rtol") as caught:
        info = run(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"{size} sample(s) in shard-0000{k}.npz have a relative residual above rtol=1e-08 "
        "(largest 1); kept and recorded in the manifest"
        for k, size in enumerate([3, 3, 3, 1])
    ]
    assert {w.filename for w in caught} == {__file__}  # the caller's line
    assert info.unconverged == 10
    _, solutions, _ = load_dataset(tmp_path)
    assert not solutions.any()


def test_global_random_state_is_left_alone(tmp_path):
    # pyamg draws from numpy's legacy generator; solve_sequence seeds it for each
    # AMG setup, and the caller's global state must come back untouched.
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    run(tmp_path)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_interruption_while_writing_leaves_no_temporary(tmp_path, monkeypatch):
    def broken_savez(file, **arrays):
        file.write(b"PK half a zip")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ds_generate.np, "savez", broken_savez)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path)
    assert shard_files(tmp_path) == []
    assert temporaries(tmp_path) == []


def test_corrupt_leftover_temporary_is_removed_and_not_counted(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run(reference)
    folder = tmp_path / "data"
    with monkeypatch.context() as patch:
        interrupt_on_call(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run(folder)
    # What a killed process (SIGKILL, power cut) can leave behind mid-write.
    (folder / "shard-00001.npz.tmp").write_bytes(b"PK\x03\x04 truncated")
    (folder / "manifest.json.tmp").write_text('{"format": ')
    (folder / "notes.tmp").write_text("not ours")
    info = run(folder)
    assert (info.shards_skipped, info.shards_written) == (1, 3)
    assert temporaries(folder) == ["notes.tmp"]
    for got, want in zip(load_dataset(folder), load_dataset(reference), strict=True):
        np.testing.assert_array_equal(got, want)


def test_damaged_shard_is_solved_again(tmp_path):
    run(tmp_path)
    expected = load_dataset(tmp_path)
    (tmp_path / "shard-00002.npz").write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="shard-00002.npz is unreadable"):
        info = run(tmp_path)
    assert (info.shards_skipped, info.shards_written) == (3, 1)
    for got, want in zip(load_dataset(tmp_path), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_shard_missing_from_manifest_is_recognised(tmp_path):
    # The run can stop between a shard's rename and the manifest's: the shard file
    # is complete, must count as done, and its manifest entry is rebuilt from it.
    run(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(manifest | {"shards": manifest["shards"][:1], "complete": False}))
    info = run(tmp_path)
    assert (info.shards_skipped, info.shards_written) == (4, 0)
    assert json.loads(path.read_text()) == manifest


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"seed": 6}, "seed"),
        ({"n": 9}, "n"),
        ({"shard_size": 4}, "shard_size"),
        ({"rtol": 1e-6}, "rtol"),
        ({"strategy": "gmres"}, "strategy"),
        ({"order": "none"}, "order"),
        ({"family_options": {"tau": 5.0}}, "family_options"),
    ],
)
def test_different_configuration_in_existing_folder_is_refused(tmp_path, change, key):
    run(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(DatasetMismatchError, match=f"{key}: folder has"):
        run(tmp_path, **change)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_defaults_given_explicitly_are_the_same_configuration(tmp_path):
    run(tmp_path)
    info = run(tmp_path, family_options={"alpha": 2.5, "tau": 7})
    assert info.shards_written == 0


def test_other_family_or_size_is_refused(tmp_path):
    run(tmp_path)
    with pytest.raises(DatasetMismatchError, match="family"):
        generate_dataset("heat", 10, tmp_path, n=N, shard_size=3, seed=5, progress=False)
    with pytest.raises(DatasetMismatchError, match="n_samples"):
        generate_dataset("darcy", 11, tmp_path, n=N, shard_size=3, seed=5, progress=False)


def test_shards_without_manifest_are_refused(tmp_path):
    run(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(DatasetMismatchError, match=r"no manifest\.json"):
        run(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"family": "stokes"}, ValueError, "family must be one of"),
        ({"strategy": "magic"}, ValueError, "strategy must be one of"),
        ({"order": "random"}, ValueError, "order must be one of"),
        ({"strategy": "direct"}, ValueError, "different matrix per sample"),
        ({"family": "helmholtz", "strategy": "cg"}, ValueError, "symmetric positive definite"),
        (
            {"family": "convection_diffusion", "strategy": "amg-reuse"},
            ValueError,
            "symmetric positive definite",
        ),
        ({"n_samples": 0}, ValueError, "n_samples must be >= 1"),
        ({"n_samples": 2.5}, TypeError, "n_samples must be an integer"),
        ({"shard_size": 0}, ValueError, "shard_size must be >= 1"),
        ({"n": 1}, ValueError, "n must be >= 2"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"rtol": 0.0}, ValueError, "rtol must be in"),
        ({"rtol": 1.0}, ValueError, "rtol must be in"),
        ({"rtol": float("nan")}, ValueError, "rtol must be in"),
        ({"rtol": "1e-8"}, TypeError, "rtol must be a real number"),
        ({"family_options": {"kappa": 1.0}}, ValueError, "unknown key.*'kappa'"),
        ({"family_options": {"tau": -1.0}}, ValueError, r"family_options\['tau'\] must be > 0"),
        ({"family_options": [1]}, TypeError, "family_options must be a dict"),
        (
            {"family": "helmholtz", "family_options": {"k": "10"}},
            TypeError,
            r"family_options\['k'\] must be a real number",
        ),
        (
            {"family": "convection_diffusion", "family_options": {"scheme": "donor"}},
            ValueError,
            r"family_options\['scheme'\] must be one of",
        ),
        (
            {"family": "convection_diffusion", "family_options": {"peclet_min": 60.0}},
            ValueError,
            "peclet_min <= peclet_max",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, error, match):
    args = {"family": "darcy", "n_samples": 4, "n": N} | kwargs
    family, n_samples = args.pop("family"), args.pop("n_samples")
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        generate_dataset(family, n_samples, out, progress=False, **args)
    assert not out.exists()


def test_wavenumber_on_an_eigenvalue_is_refused_before_any_work(tmp_path):
    # k² = λ_11 of the n = 8 Laplacian makes the Helmholtz matrix singular.
    k = math.sqrt(8 * 81 * math.sin(math.pi / 18) ** 2)
    with pytest.raises(ValueError, match="singular"):
        generate_dataset(
            "helmholtz", 4, tmp_path / "out", n=N, family_options={"k": k}, progress=False
        )
    assert not (tmp_path / "out").exists()


def test_load_refuses_pickled_shards(tmp_path):
    run(tmp_path)
    path = tmp_path / "shard-00000.npz"
    with np.load(path) as data:
        arrays = dict(data)
    arrays["input"] = np.array([object()] * 3, dtype=object)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_dataset(tmp_path)


def test_load_requires_a_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_dataset(tmp_path)


def test_progress_bar_runs(tmp_path, capsys):
    generate_dataset("heat", 4, tmp_path, n=N, shard_size=2, progress=True)
    assert "4/4" in capsys.readouterr().err


def test_cli_writes_a_tiny_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["darcy", "--samples", "6", "--grid", "8", "--out", str(out), "--shard-size", "4"]
    assert main([*argv, "--no-progress"]) == 0
    assert shard_files(out) == ["shard-00000.npz", "shard-00001.npz"]
    inputs, solutions, index = load_dataset(out)
    assert inputs.shape == solutions.shape == (6, 8, 8)
    np.testing.assert_array_equal(index, np.arange(6))
    assert "6 samples" in capsys.readouterr().out
    # The same command again finds everything done.
    assert main([*argv, "--no-progress"]) == 0
    assert "0 shard(s) written, 2 skipped" in capsys.readouterr().out


def test_cli_family_options(tmp_path):
    out = tmp_path / "cli"
    argv = ["helmholtz", "--samples", "2", "--grid", "8", "--out", str(out), "--no-progress"]
    assert main([*argv, "--option", "k=3", "--option", "tau=5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family_options"] == {"k": 3.0, "alpha": 2.5, "tau": 5.0}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--samples", "0"], "n_samples must be >= 1"),
        (["--grid", "1"], "n must be >= 2"),
        (["--shard-size", "0"], "shard_size must be >= 1"),
        (["--rtol", "2"], "rtol must be in"),
        (["--strategy", "magic"], "invalid choice"),
        (["--order", "random"], "invalid choice"),
        (["--option", "nope"], "KEY=VALUE"),
        (["--option", "kappa=1"], "kappa"),
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path, capsys, extra, match):
    argv = ["darcy", "--samples", "4", "--grid", "8", "--out", str(tmp_path / "o"), *extra]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_unknown_family_and_foreign_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["stokes", "--samples", "4", "--grid", "8", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
    run(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["darcy", "--samples", "4", "--grid", "8", "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    assert "argument --out" in capsys.readouterr().err


def test_cli_interrupt_keeps_finished_shards(tmp_path, monkeypatch, capsys):
    interrupt_on_call(monkeypatch, 2)
    argv = ["darcy", "--samples", "6", "--grid", "8", "--out", str(tmp_path), "--shard-size", "3"]
    assert main([*argv, "--no-progress"]) == 130
    assert "rerun to resume" in capsys.readouterr().err
    assert shard_files(tmp_path) == ["shard-00000.npz"]


def test_matrices_of_constant_families_are_shared(tmp_path):
    # solve_sequence can then see the matrix is constant without comparing entries.
    config = ds_config._config("heat", 3, N, 0, 3, "auto", "greedy", RTOL, None)
    spec = ds_families._FAMILIES["heat"]
    shared = spec.shared(N, config["family_options"])
    systems = [
        spec.build(p, N, config["family_options"], shared)
        for _, p in ds_generate._draw(config, [0, 1])
    ]
    assert systems[0][0] is systems[1][0]
    assert isinstance(systems[0][0], sp.csr_array)
