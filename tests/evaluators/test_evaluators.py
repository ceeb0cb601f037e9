"""Batched and Ray evaluators against the serial reference evaluator.

Tolerance (see metaloss.evaluators.batched): equal ``ok`` flags; error rates within two
samples of the split (float summation order inside batched matmuls); on CPU they are equal.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest
import torch
from helpers.crashing import CrashingFitness, crashing
from torch import nn

from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, Fitness, SerialEvaluator, TrainFitness, make_evaluator
from metaloss.evaluators.batched import BatchedEvaluator, auto_chunk_size, member_bytes
from metaloss.evaluators.spec import (
    FitnessSpec,
    candidate_from_json,
    candidate_to_json,
    fitness_from_json,
    fitness_to_json,
    task_fingerprint,
)
from metaloss.evaluators.stacked import structure_key
from metaloss.losses import get_loss
from metaloss.losses.base import Loss
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.symbolic import SymbolicLoss
from metaloss.losses.taylor import TaylorLoss

CE_TAYLOR = [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0]  # (y_hat - y)^2 / 2, a working loss


def taylor(i: int, scale: float = 0.5) -> TaylorLoss:
    g = torch.Generator().manual_seed(i)
    return TaylorLoss((torch.tensor(CE_TAYLOR) + scale * torch.randn(8, generator=g)).tolist())


def population() -> list[Candidate]:
    """4 Taylor losses + cross-entropy + a neural loss + a symbolic loss."""
    losses = [taylor(i) for i in range(4)]
    losses += [
        get_loss("cross_entropy"),
        NeuralLoss.ml3(seed=0),
        SymbolicLoss.from_string("mul(-1, mul(y, plog(y_hat)))"),
    ]
    return [Candidate.from_loss(i, loss) for i, loss in enumerate(losses)]


def assert_same(serial: list[Fitness], other: list[Fitness], task) -> None:
    assert len(serial) == len(other)
    for s, o in zip(serial, other):
        assert s.ok == o.ok, (s, o)
        if s.ok:
            assert abs(s.value - o.value) <= 2 / len(task.val) + 1e-9, (s, o)
            assert "test" not in s.info and "test" not in o.info  # selection never reads test
        else:
            assert math.isinf(o.value) and o.reason


# -- batched ------------------------------------------------------------------------------


def test_batched_equals_serial_on_digits(digits):
    fit = TrainFitness(digits, steps=100)
    cands = population()
    serial = SerialEvaluator(fit).evaluate(cands)
    ev = make_evaluator("batched", fit)
    assert isinstance(ev, BatchedEvaluator) and ev.fallback_reason is None
    batched = ev.evaluate(cands)
    assert all(f.ok for f in serial)
    assert_same(serial, batched, digits)
    assert min(f.value for f in batched) < 0.3  # cross-entropy learns something in 100 steps


def test_nan_member_fails_without_touching_the_others(digits):
    fit = TrainFitness(digits, steps=100)
    good = [Candidate.from_loss(0, taylor(0)), Candidate(1, {"kind": "cross_entropy"})]
    bad = [
        Candidate.from_loss(10, TaylorLoss([math.nan] * 8)),  # NaN from the first step
        Candidate.from_loss(11, TaylorLoss([0, 0, 1e30, 1e30, 1e30, 0, 0, 0])),  # overflows
        Candidate.from_loss(12, NeuralLoss.ml3(extra_dim=1)),  # raises in forward
        Candidate(13, {"kind": "no_such_loss"}),  # cannot be built
    ]
    mixed = [bad[0], good[0], bad[1], bad[2], good[1], bad[3]]
    alone = BatchedEvaluator(fit).evaluate(good)
    together = BatchedEvaluator(fit).evaluate(mixed)
    serial = SerialEvaluator(fit).evaluate(mixed)
    assert_same(serial, together, digits)
    assert [f.ok for f in together] == [False, True, False, False, True, False]
    assert "diverged" in together[0].reason and "diverged" in together[2].reason
    assert "ConfigError" in together[3].reason and "no_such_loss" in together[5].reason
    for a, b in zip(alone, [together[1], together[4]]):
        assert a.ok and b.ok
        assert abs(a.value - b.value) <= 2 / len(digits.val) + 1e-9


@pytest.mark.parametrize(
    "overrides",
    [
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "milestones": (20, 40)},
        {"momentum": 0.5, "weight_decay": 1e-3, "eval_every": 25},
        {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-4},
    ],
)
def test_batched_optimizers_match_torch_optim(iris, overrides):
    """The batched trainer's parameters equal serial training's (torch.optim-exact functional
    optimisers), member by member: compared directly, not through a validation metric
    (on iris one validation error is 8 points)."""
    from metaloss.evaluators.stacked import train_stack
    from metaloss.training import train

    fit = TrainFitness(iris, steps=60, overrides=overrides)
    cands = [Candidate(0, {"kind": "cross_entropy"}), Candidate(1, {"kind": "mse"})]
    cands += [Candidate.from_loss(2 + i, taylor(i)) for i in range(3)]
    assert_same(SerialEvaluator(fit).evaluate(cands), BatchedEvaluator(fit).evaluate(cands), iris)
    config = iris.defaults.with_(steps=60, **overrides)
    losses = [c.build() for c in cands]
    final: dict[int, dict[str, torch.Tensor]] = {}
    train_stack(iris, config, 7, losses, check_every=10, final_params=final)
    assert sorted(final) == list(range(len(losses)))
    for i, loss in enumerate(losses):
        serial = dict(train(iris, loss, config, seed=7).model.named_parameters())
        assert serial.keys() == final[i].keys()
        for k, v in serial.items():
            torch.testing.assert_close(final[i][k], v.detach(), rtol=1e-5, atol=1e-6)


def families() -> list[Candidate]:
    """6 TaylorGLO losses, 4 neural losses of one architecture and spec (as an evolution
    strategy proposes them: one template, other weights), 2 odd ones (another architecture,
    another init seed: a spec of its own)."""
    cands = [Candidate.from_loss(i, taylor(i, scale=0.3)) for i in range(6)]
    template = NeuralLoss(hidden=(8,), seed=0)
    g = torch.Generator().manual_seed(1)
    for i in range(4):
        tensors = {
            k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in template.state_dict().items()
        }
        cands.append(Candidate(6 + i, template.spec(), tensors))
    cands.append(Candidate.from_loss(10, NeuralLoss(hidden=(4, 4), seed=0)))
    cands.append(Candidate.from_loss(11, NeuralLoss(hidden=(8,), seed=5)))
    return cands


def test_structure_keys_group_loss_families():
    keys = [structure_key(c.build()) for c in families()]
    assert len(set(keys[:6])) == 1 and len(set(keys[6:10])) == 1  # two stackable families
    assert len(set(keys)) == 4  # + the two odd neural losses, each on its own


@pytest.mark.parametrize("task_name", ["digits-mlp", "boston-mlp"])
def test_stacked_loss_families_equal_the_serial_oracle(task_name, monkeypatch):
    """TaylorGLO and neural-loss families are vmapped as stacks (no member falls back to
    the one-by-one path) and give the serial evaluator's fitness within float rounding."""
    from metaloss import tasks
    from metaloss.evaluators import stacked

    task = tasks.get(task_name)
    fit = TrainFitness(task, steps=60)
    cands = families()
    serial = SerialEvaluator(fit).evaluate(cands)
    calls: list[tuple[int, bool]] = []
    values = stacked._LossStack.values

    def spy(self, out, y, everyone):
        calls.append((len(self.rows), self.vmapped))
        return values(self, out, y, everyone)

    monkeypatch.setattr(stacked._LossStack, "values", spy)
    batched = BatchedEvaluator(fit).evaluate(cands)
    assert sorted(set(calls)) == [(1, True), (4, True), (6, True)]  # one vmap per family
    assert all(f.ok for f in serial) and [f.ok for f in batched] == [f.ok for f in serial]
    for s, b in zip(serial, batched):
        assert abs(s.value - b.value) <= 1e-5 * max(1.0, abs(s.value)), (s, b)


class ItemLoss(Loss):
    """Cross-entropy times ``float(scale)``: ``.item()`` cannot run under vmap."""

    kind = "test_item_loss"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return float(self.scale) * nn.functional.cross_entropy(y_pred, y_true.long())

    def config(self) -> dict:
        return {}


def test_a_family_that_cannot_be_vmapped_runs_one_by_one(iris):
    from metaloss.evaluators.stacked import train_stack
    from metaloss.training import train

    config = iris.defaults.with_(steps=40)
    losses = [ItemLoss(s) for s in (0.5, 1.0, 2.0)] + [TaylorLoss(CE_TAYLOR)]
    for loss in losses:
        loss.requires_grad_(False)
    fits = train_stack(iris, config, 0, losses, check_every=10)
    for loss, f in zip(losses, fits):
        ref = train(iris, loss, config, seed=0, test=False)
        assert f.ok and abs(f.value - ref.val_metric) <= 1e-9, (loss, f, ref.val_metric)


def test_chunks_and_memory_estimate(iris):
    fit = TrainFitness(iris, steps=40)
    cands = [Candidate.from_loss(i, taylor(i)) for i in range(5)]
    whole = BatchedEvaluator(fit).evaluate(cands)
    chunked = BatchedEvaluator(fit, chunk_size=2).evaluate(cands)
    assert_same(whole, chunked, iris)
    assert member_bytes(iris, fit.train_config()) > 0
    assert auto_chunk_size(iris, fit.train_config(), 7) == 7
    with pytest.raises(ConfigError):
        BatchedEvaluator(fit, chunk_size=0)


def test_batchnorm_is_batched_and_the_rest_falls_back(digits):
    def bn_model() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
        )

    def dropout_model() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10))

    cands = [Candidate(0, {"kind": "cross_entropy"}), Candidate.from_loss(1, taylor(1))]
    bn = TrainFitness(replace(digits, model_factory=bn_model), steps=50)
    ev = BatchedEvaluator(bn)
    assert ev.fallback_reason is None
    assert_same(SerialEvaluator(bn).evaluate(cands), ev.evaluate(cands), digits)

    class DataDependent(nn.Module):  # vmap cannot trace Python control flow on values
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.fc(x.flatten(1))
            return out if out.sum() > -1e9 else -out

    odd = TrainFitness(replace(digits, model_factory=DataDependent), steps=20)
    ev = BatchedEvaluator(odd, chunk_size=1)
    with pytest.warns(UserWarning, match="vmap"):
        fits = ev.evaluate(cands)
    assert ev.fallback_reason is not None and "vmap" in ev.fallback_reason
    assert_same(SerialEvaluator(odd).evaluate(cands), fits, digits)

    with pytest.warns(UserWarning, match="dropout"):
        ev = BatchedEvaluator(TrainFitness(replace(digits, model_factory=dropout_model), steps=5))
    assert ev.fallback_reason is not None and "dropout" in ev.fallback_reason
    assert all(f.ok for f in ev.evaluate(cands))


def test_augmentation_stream_is_shared(digits):
    from metaloss.tasks.base import Split

    def images(split: Split) -> Split:
        return Split(split.x.reshape(-1, 1, 8, 8), split.y)

    task = replace(
        digits,
        train=images(digits.train),
        val=images(digits.val),
        test=images(digits.test),
        in_shape=(1, 8, 8),
        augment="crop_flip",
        model_factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
    )
    fit = TrainFitness(task, steps=40)
    assert fit.train_config().augment
    cands = [Candidate(0, {"kind": "cross_entropy"}), Candidate.from_loss(1, taylor(1))]
    assert_same(SerialEvaluator(fit).evaluate(cands), BatchedEvaluator(fit).evaluate(cands), task)


def test_batched_runs_the_evomal_pipeline(iris):
    from metaloss.meta.gp import EvoMALFitness, GPSearch

    cands = GPSearch(population=6, seed=0).ask()
    fit = EvoMALFitness(iris, fitness_steps=30, local_steps=3, filter_steps=20)
    serial = SerialEvaluator(fit).evaluate(cands)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        batched = BatchedEvaluator(fit).evaluate(cands)
    assert_same(serial, batched, iris)
    assert any(f.ok for f in serial)
    for s, b in zip(serial, batched):
        assert s.reason == b.reason
        assert s.tensors.keys() == b.tensors.keys()
        for k in s.tensors:
            assert torch.equal(s.tensors[k], b.tensors[k])


# -- specs and wire format ----------------------------------------------------------------


def test_fitness_spec_round_trip_and_checks(iris):
    fit = TrainFitness(iris, steps=20, seed=3, overrides={"milestones": (5,)})
    spec = FitnessSpec.from_fitness(fit)
    assert spec.task == "iris-linear" and spec.kind == "train"
    assert (spec.options["steps"], spec.options["seed"]) == (20, 3)
    again = FitnessSpec.from_json(spec.to_json())
    assert again == FitnessSpec.from_dict(spec.to_dict())
    rebuilt = again.build()
    assert isinstance(rebuilt, TrainFitness)
    assert rebuilt.train_config() == fit.train_config()
    cand = Candidate(0, {"kind": "cross_entropy"})
    assert rebuilt(cand).value == fit(cand).value

    with pytest.raises(ConfigError, match="registry"):
        FitnessSpec.from_fitness(TrainFitness(replace(iris, name="my-task")))
    with pytest.raises(ConfigError, match="differs"):
        replace(spec, task_seed=1).build_task()  # another validation split
    with pytest.raises(ConfigError):
        FitnessSpec.from_dict({"task": "iris-linear", "bogus": 1})
    with pytest.raises(ConfigError, match="unknown fitness kind 'pickle'"):
        FitnessSpec(task="iris-linear", kind="pickle")
    with pytest.raises(ConfigError, match="unknown options"):
        replace(spec, options={"steps": 5, "bogus": 1}).build()
    assert task_fingerprint(iris) == spec.fingerprint


def test_wire_format_round_trip():
    c = Candidate.from_loss(7, taylor(1))
    back = candidate_from_json(candidate_to_json(c))
    assert back.id == 7 and back.spec == c.spec
    assert torch.equal(back.tensors["theta"], c.tensors["theta"])
    f = Fitness(0.125, seconds=1.5, info={"test": 0.25}, tensors={"weights": torch.ones(3)})
    g = fitness_from_json(fitness_to_json(f))
    assert (g.value, g.ok, g.info, g.seconds) == (0.125, True, {"test": 0.25}, 1.5)
    assert torch.equal(g.tensors["weights"], f.tensors["weights"])
    fail = fitness_from_json(fitness_to_json(Fitness.failure("boom")))
    assert not fail.ok and math.isinf(fail.value) and fail.reason == "boom"


# -- Ray ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_evaluator(tmp_path_factory):
    pytest.importorskip("ray")
    from metaloss import tasks
    from metaloss.evaluators.ray import RayEvaluator

    task = tasks.get("digits-mlp")
    # like TrainFitness, but ids 101 (once) and 102 (always) kill the worker; the Ray
    # workers import the test module that registers this fitness kind
    marker = str(tmp_path_factory.mktemp("crash"))
    fit = crashing(
        TrainFitness(task, steps=100), crash_ids=[101], always_ids=[102], marker_dir=marker
    )
    spec = FitnessSpec.from_fitness(fit)
    assert spec.kind == "crash_test" and spec.module == CrashingFitness.__module__
    ev = RayEvaluator(spec, num_workers=2, max_retries=1, startup_timeout=600)
    try:
        ev.start()
        yield task, ev
    finally:
        import ray

        ev.close()
        if ray.is_initialized():
            ray.shutdown()


@pytest.mark.slow
def test_ray_equals_serial(ray_evaluator):
    task, ev = ray_evaluator
    cands = population()[3:] + [Candidate(50, {"kind": "no_such_loss"})]
    serial = SerialEvaluator(TrainFitness(task, steps=100)).evaluate(cands)
    remote = ev.evaluate(cands)
    assert_same(serial, remote, task)
    for s, r in zip(serial, remote):
        if s.ok:
            assert (s.value, s.info) == (r.value, r.info)  # same device and thread count
    assert "no_such_loss" in remote[-1].reason


@pytest.mark.slow
def test_ray_dead_worker_loses_no_candidates(ray_evaluator):
    task, ev = ray_evaluator
    before = ev.restarts
    cands = [
        Candidate(101, {"kind": "cross_entropy"}),  # kills its worker once, then succeeds
        Candidate(102, {"kind": "cross_entropy"}),  # kills every worker it meets
        Candidate.from_loss(103, taylor(0)),
    ]
    remote = ev.evaluate(cands)
    serial = SerialEvaluator(TrainFitness(task, steps=100)).evaluate(cands)
    assert remote[0].ok and remote[0].value == serial[0].value
    assert remote[2].ok and remote[2].value == serial[2].value
    assert not remote[1].ok and "worker died 2 times" in remote[1].reason
    assert ev.restarts - before == 3  # one for 101, two for 102 (max_retries=1)
    again = ev.evaluate([Candidate(1, {"kind": "mse"})])  # the pool still works
    assert again[0].ok
