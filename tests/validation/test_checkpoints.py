"""An interrupted numlib-bench run resumes: finished cases and steps are kept on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from validation import registry
from validation.checkpoints import Store, cached, cached_json, resumable
from validation.cli import main
from validation.registry import Case, Record


def _record(name: str, **extra: object) -> Record:
    return Record("scratch", "steps", "small", name, "peer", 1.0, 2.0, {"x": 1.5}, {}, **extra)


def test_saved_records_come_back_as_written(tmp_path: Path) -> None:
    records = [
        _record("a", history=np.array([1.0, 0.1]), peer_history=np.array([1.0, 0.5, 0.2])),
        Record("scratch", "steps", "small", "b", "p", 3.0, 1.0, {"alpha": math.nan}),
        Record.skip("scratch", "steps", "small", "no CUDA device"),
    ]
    store = Store(tmp_path / "partial", resume=True)
    store.save("case--nm-2:4", records)
    loaded = store.load("case--nm-2:4")
    assert loaded is not None
    assert [r.to_json() for r in loaded] == [r.to_json() for r in records]
    assert loaded[1].metrics["alpha"] is None  # non-finite numbers are stored as null
    np.testing.assert_array_equal(loaded[0].history, records[0].history)
    np.testing.assert_array_equal(loaded[0].peer_history, records[0].peer_history)
    assert loaded[1].history is None
    assert Store(tmp_path / "partial", resume=False).load("case--nm-2:4") is None


def test_cached_steps_are_reused_only_when_resuming(tmp_path: Path) -> None:
    calls: list[str] = []

    def step(name: str) -> list[Record]:
        calls.append(name)
        return [_record(name)]

    def case() -> list[Record]:
        return cached("one", lambda: step("one")) + cached("two", lambda: step("two"))

    assert len(cached("case", case)) == 2  # no store: computed
    with resumable(Store(tmp_path, resume=False)):
        cached("case", case)
    assert calls == ["one", "two"] * 2
    assert (tmp_path / "case.json").is_file() and (tmp_path / "case" / "one.json").is_file()
    # As if interrupted during step "two": neither it nor the case finished.
    (tmp_path / "case.json").unlink()
    (tmp_path / "case" / "two.json").unlink()
    with resumable(Store(tmp_path, resume=True)):
        again = cached("case", case)
    assert calls == ["one", "two"] * 2 + ["two"]
    assert [r.method for r in again] == ["one", "two"]


def test_a_step_that_raises_saves_nothing(tmp_path: Path) -> None:
    def broken() -> list[Record]:
        raise RuntimeError("exploded")

    with resumable(Store(tmp_path, resume=True)), pytest.raises(RuntimeError):
        cached("broken", broken)
    assert not (tmp_path / "broken.json").exists()


def test_cached_json_keeps_only_what_keep_accepts(tmp_path: Path) -> None:
    outcomes = iter(["worker failed", {"iterations": 7}, {"iterations": 9}])
    with resumable(Store(tmp_path, resume=True)):

        def launch() -> object:
            return cached_json("np1", lambda: next(outcomes), keep=lambda o: isinstance(o, dict))

        assert launch() == "worker failed"  # a failure reported as a value: not saved
        assert launch() == {"iterations": 7}
        assert launch() == {"iterations": 7}  # saved: reused
    assert next(outcomes) == {"iterations": 9}


_RUNS: list[str] = []


def _counted(size: str, *, repeat: int) -> Record:
    """Stand for a case that takes long."""
    _RUNS.append(size)
    return Record("scratch", "counted", size, "numlib.x", "peer.x", 1.0, 2.0, {"iterations": 3})


def test_resume_reuses_the_cases_a_run_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        registry._REGISTRY, ("scratch", "counted"), Case("scratch", "counted", ("small",), _counted)
    )
    _RUNS.clear()
    argv = ["--suite", "scratch", "--size", "small", "--repeat", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    first = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert main([*argv, "--resume"]) == 0
    assert _RUNS == ["small"]  # not run again
    assert json.loads((tmp_path / "results.json").read_text())["cases"] == first
    assert main(argv) == 0  # without --resume: a fresh run
    assert _RUNS == ["small", "small"]
