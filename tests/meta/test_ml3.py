"""ML3: learned losses beat MSE on the sine protocol; no memory growth; checkpoint resume."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import metaloss as ml
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.unrolled import MetaStepper, ML3Config, meta_train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_meta_training_lowers_the_meta_objective(digits):
    loss = NeuralLoss.ml3(seed=0)
    hist = meta_train(loss, digits, ML3Config(meta_steps=150, inner_lr=0.1, meta_lr=3e-3))
    first = sum(h["meta_loss"] for h in hist[:20]) / 20
    last = sum(h["meta_loss"] for h in hist[-20:]) / 20
    assert last < first


def test_no_memory_growth_and_no_graph_leak(iris):
    loss = NeuralLoss.ml3()
    cfg = ML3Config(meta_steps=0, reinit=False, inner_steps=2, inner_lr=0.1)
    stepper = MetaStepper(loss, iris, cfg)
    for _ in range(100):
        stepper.step()
    before = _rss_mb()
    for _ in range(1500):
        stepper.step()
    assert _rss_mb() - before < 30
    assert all(p.grad_fn is None for p in stepper.params.values())
    # the module used for functional calls is never mutated
    assert all(p.grad is None for p in stepper.model.parameters())


def test_checkpoint_resume_matches_uninterrupted(iris, tmp_path):
    cfg = ML3Config(meta_steps=40, inner_lr=0.1, reinit=False, reset_every=15)
    full = NeuralLoss.ml3(seed=1)
    h_full = meta_train(full, iris, cfg, seed=2)
    part = NeuralLoss.ml3(seed=1)
    half = ML3Config(**{**cfg.__dict__, "meta_steps": 20})
    meta_train(part, iris, half, seed=2, run_dir=tmp_path, checkpoint_every=10)
    resumed = NeuralLoss.ml3(seed=1)
    h_res = meta_train(resumed, iris, cfg, seed=2, run_dir=tmp_path, checkpoint_every=10)
    for a, b in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [h["meta_loss"] for h in h_res] == [h["meta_loss"] for h in h_full]


def test_learn_ml3_result_saves_and_loads(iris, tmp_path):
    res = ml.learn("ml3", iris, meta_steps=5, inner_lr=0.1, hidden=[8, 8])
    res.save(tmp_path)
    loaded = ml.load(tmp_path)
    x, y = iris.test.x, iris.test.y
    out = torch.randn(len(y), 3)
    torch.testing.assert_close(loaded(out, y), res.loss(out, y))
    assert "meta_steps_per_s" in res.info and len(x) == len(y)


@pytest.mark.slow
def test_ml3_beats_mse_on_sine():
    """The paper's sine protocol, reduced: meta-train 300 steps, test on 3 random sines."""
    import ml3_sine

    _, per_seed, _ = ml3_sine.run(
        seeds=1, meta_steps=300, n_sines=3, steps=100, lr=1e-3, inner_lr=1e-3
    )
    assert per_seed["ml3"][0] < 0.8 * per_seed["mse"][0]


@pytest.mark.slow
def test_shaped_loss_reaches_the_true_frequency_more_often_than_mse():
    """Fast variant of bench/ml3_shaped_sine.py (one seed, fewer meta steps and test runs)."""
    import ml3_shaped_sine as shaped

    args = shaped.parser().parse_args(
        ["--meta-steps", "800", "--test-tasks", "2", "--test-inits", "20", "--test-steps", "200"]
    )
    mse = shaped.success_rate(None, 0, args)[0]
    learned = shaped.meta_train("shaped", args.meta_steps, 0, args)
    assert shaped.success_rate(learned, 0, args)[0] > mse + 0.2


@pytest.mark.slow
def test_mnist_pair_transfer_runs(data_root, tmp_path, monkeypatch):
    """Fast variant of bench/ml3_mnist_pairs.py: end to end, results written."""
    import common
    import ml3_mnist_pairs as pairs

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    out = pairs.main(
        ["--seeds", "1", "--meta-steps", "20", "--test-pairs", "4,9", "--budgets", "20",
         "--data-dir", str(data_root / "mnist")]
    )  # fmt: skip
    assert set(out["summary"]["4v9@20"]) == {"ce", "ml3"}
    assert (tmp_path / "ml3_mnist_pairs.json").exists()
