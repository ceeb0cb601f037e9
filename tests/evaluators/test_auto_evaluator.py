"""The automatic evaluator choice: the rule's answer for a few models, devices and CPUs."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from metaloss.evaluators import SerialEvaluator, TrainFitness, make_evaluator
from metaloss.evaluators.auto import BATCHED_MAX_PARAMS, choose_evaluator
from metaloss.evaluators.batched import BatchedEvaluator
from metaloss.meta.mln import MLNFitness


def conv_model(seed: int = 0) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10)
    )


def big_model(seed: int = 0) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 2000), nn.ReLU(), nn.Linear(2000, 1000), nn.Linear(1000, 10))


def dropout_model(seed: int = 0) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10))


def test_the_rule_for_models_devices_and_cpus(digits):
    mlp = TrainFitness(digits)
    conv = TrainFitness(replace(digits, model_factory=conv_model))
    big = TrainFitness(replace(digits, model_factory=big_model))
    drop = TrainFitness(replace(digits, model_factory=dropout_model))
    assert sum(p.numel() for p in big_model().parameters()) > BATCHED_MAX_PARAMS
    assert choose_evaluator(mlp, cpus=1)[0] == "batched"  # small dense: vmap pays on CPU
    assert choose_evaluator(conv, cpus=1)[0] == "serial"
    assert choose_evaluator(conv, cpus=4, idle=4) == (
        "pool", "convolutions, 4 CPUs: one worker each",
    )  # fmt: skip
    assert choose_evaluator(conv, cpus=4, idle=1.0)[0] == "serial"  # other jobs hold the CPUs
    assert choose_evaluator(big, cpus=2, idle=2)[0] == "pool"
    assert choose_evaluator(conv, cpus=1, device="cuda")[0] == "batched"  # GPU: batched
    assert choose_evaluator(drop, cpus=1, device="cuda")[0] == "serial"  # dropout: never vmap
    assert choose_evaluator(drop, cpus=2, idle=2)[0] == "pool"
    assert choose_evaluator(MLNFitness(tasks_per_eval=1, train_steps=5), cpus=8)[0] == "serial"


def test_make_evaluator_auto_builds_the_choice(digits):
    ev = make_evaluator("auto", TrainFitness(digits, steps=5), chunk_size=3, workers=2)
    assert isinstance(ev, BatchedEvaluator) and ev.chunk_size == 3
    mln = make_evaluator("auto", MLNFitness(tasks_per_eval=1, train_steps=5), workers=2)
    assert isinstance(mln, SerialEvaluator)


def test_a_fitness_the_workers_cannot_rebuild_stays_serial_without_warning(digits, recwarn):
    local = TrainFitness(replace(digits, name="my-own-task", model_factory=lambda: conv_model()))
    name, reason = choose_evaluator(local, cpus=4, idle=4)
    assert name == "serial" and "cannot rebuild" in reason
    assert not [w for w in recwarn if "pool evaluator" in str(w.message)]


def test_auto_is_the_searches_default_and_is_recorded():
    import metaloss as ml

    opts = dict(seed=1, generations=2, popsize=4, fitness_steps=10)
    default = ml.learn("taylorglo", "iris-linear", **opts)
    assert default.info["evaluator"]["evaluator"] == "batched"  # small dense model on a CPU
    assert default.config["evaluator"] == "auto"
    batched = ml.learn("taylorglo", "iris-linear", evaluator="batched", **opts)
    assert [h["best"] for h in default.history] == [h["best"] for h in batched.history]
    assert "evaluator" not in batched.info  # chosen by name: nothing to explain
    mln = ml.learn("mln", None, generations=1, popsize=2, tasks_per_eval=1, train_steps=5)
    assert mln.info["evaluator"]["evaluator"] == "serial"
