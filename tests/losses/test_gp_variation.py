"""EvoMAL's reference variation (varOr), half-and-half mutation, edge weights without a root
weight, the target-log rejection and the model-started rejection filter."""

from __future__ import annotations

import random

import pytest
import torch

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.losses.symbolic import SymbolicLoss, Tree, ramped_half_and_half, var_and, var_or
from metaloss.losses.symbolic.gp import log_of_target, subtree_mutation
from metaloss.meta.gp import GPSearch, rejection_filter
from metaloss.seeds import search_seed


def _population(n: int, seed: int = 0) -> list[Tree]:
    rng = random.Random(seed)
    return [ramped_half_and_half(rng, 2, 4) for _ in range(n)]


def test_var_or_without_operators_reproduces_every_parent() -> None:
    parents = _population(20)
    assert var_or(parents, 1, crossover=0.0, mutation=0.0) == parents


def test_var_or_makes_fewer_clones_than_var_and() -> None:
    # varAnd leaves a child untouched with probability (1 - 0.7) * (1 - 0.25) = 22.5 %;
    # varOr copies a parent only on its reproduction draw, 1 - 0.7 - 0.25 = 5 %.
    parents = _population(600)
    kids_and = var_and(parents, 3, crossover=0.7, mutation=0.25)
    kids_or = var_or(parents, 3, crossover=0.7, mutation=0.25)
    clones_and = sum(k == p for k, p in zip(kids_and, parents)) / len(parents)
    clones_or = sum(k == p for k, p in zip(kids_or, parents)) / len(parents)
    assert 0.17 < clones_and < 0.30
    assert clones_or < 0.12
    assert all(k.uses_both() and k.height <= 10 for k in kids_or)


def test_var_or_refuses_probabilities_over_one() -> None:
    with pytest.raises(ConfigError, match="crossover \\+ mutation <= 1"):
        var_or(_population(2), 0, crossover=0.8, mutation=0.3)


def test_half_and_half_mutation_differs_from_grow_and_stays_valid() -> None:
    parents = _population(200, seed=5)
    grow = [subtree_mutation(t, random.Random(i), method="grow") for i, t in enumerate(parents)]
    half = [subtree_mutation(t, random.Random(i), method="half") for i, t in enumerate(parents)]
    assert grow != half
    assert all(t.uses_both() and t.height <= 10 for t in half)
    with pytest.raises(ConfigError, match="mutation method"):
        subtree_mutation(parents[0], 0, method="full")


def test_root_weight_false_fixes_the_root_edge_at_one() -> None:
    tree = "mul(-1, mul(y, plog(y_hat)))"
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    free = SymbolicLoss.from_string(tree, seed=3)
    fixed = SymbolicLoss.from_string(tree, seed=3, root_weight=False)
    with torch.no_grad():
        free.weights[0] = 2.0
        fixed.weights[0] = 2.0
    # Oracle: with a root weight the whole loss scales; without, the root weight is ignored.
    ref = SymbolicLoss.from_string(tree, seed=3)
    with torch.no_grad():
        ref.weights[0] = 1.0
    assert torch.allclose(free(logits, labels), 2 * ref(logits, labels))
    assert torch.allclose(fixed(logits, labels), ref(logits, labels))
    fixed(logits, labels).backward()
    assert fixed.weights.grad[0] == 0 and fixed.weights.grad[1:].abs().sum() > 0
    again = ml.losses.build_loss(fixed.spec())  # the setting survives a save/load
    again.load_state_dict(fixed.state_dict())
    assert not again.root_weight
    assert torch.allclose(again(logits, labels), fixed(logits, labels))


def test_log_of_target_flags_only_target_only_arguments() -> None:
    assert log_of_target(Tree.parse("mul(y_hat, plog(y))"))
    assert log_of_target(Tree.parse("add(y_hat, plog(sub(y, 1)))"))
    assert not log_of_target(Tree.parse("mul(y, plog(y_hat))"))
    assert not log_of_target(Tree.parse("plog(mul(y, y_hat))"))


def test_search_rejects_target_logs_before_evaluation() -> None:
    bad = "mul(y_hat, plog(y))"
    search = GPSearch(population=4, seed_trees=[bad, "ce"], reject_target_log=True, seed=0)
    cands = search.ask()
    assert len(cands) <= 3 and search.rejected_early == 1
    member = next(m for m in search.cache.values() if m.tree == Tree.parse(bad))
    assert member.fitness == float("inf") and "disguised constant" in member.reason
    plain = GPSearch(population=4, seed_trees=[bad, "ce"], seed=0)
    assert len(plain.ask()) == len(cands) + 1


def test_model_started_filter_begins_at_the_untrained_models_outputs() -> None:
    task = ml.tasks.get("iris-linear")
    ce = SymbolicLoss.from_string("mul(-1, mul(y, plog(y_hat)))", learn_weights=False)
    anti = SymbolicLoss.from_string("mul(y, plog(y_hat))", learn_weights=False)
    ok, _ = rejection_filter(ce, task, seed=0, n=100, steps=100, lr=0.5, start_from="model")
    bad, reason = rejection_filter(anti, task, seed=0, n=100, steps=100, lr=0.5, start_from="model")
    assert ok and not bad and "did not improve" in reason
    # Oracle: the starting metric is the untrained model's error on the first 100 inputs.
    model = task.make_model(search_seed(0, "filter") % 2**32)
    start = float(task.metric(model(task.train.x[:100]).detach(), task.train.y[:100]))
    assert f"({start:.3f} ->" in reason
    with pytest.raises(ConfigError, match="start_from"):
        rejection_filter(ce, task, start_from="zeros")


def test_the_reference_order_filters_after_the_local_search(monkeypatch):
    from metaloss.evaluators.base import Candidate
    from metaloss.meta import gp

    calls: list[str] = []
    real_filter, real_step = gp.rejection_filter, gp.MetaStepper.step

    def spy_filter(loss, *args, **kwargs):
        calls.append("filter")
        return real_filter(loss, *args, **kwargs)

    def spy_step(self):
        calls.append("local")
        return real_step(self)

    monkeypatch.setattr(gp, "rejection_filter", spy_filter)
    monkeypatch.setattr(gp.MetaStepper, "step", spy_step)
    task = ml.tasks.get("iris-linear")
    loss = SymbolicLoss.from_string("mul(-1, mul(y, plog(y_hat)))", seed=1)
    cand = Candidate(0, loss.spec(), {})
    orders = {False: ["filter", "local", "local"], True: ["local", "local", "filter"]}
    for after, expected in orders.items():
        calls.clear()
        fit = gp.EvoMALFitness(
            task, fitness_steps=5, local_steps=2, filter_steps=30, filter_start="model",
            filter_size=50, filter_lr=0.5, filter_after_local=after,
        )  # fmt: skip
        fit.prepare(cand)
        assert calls == expected
