"""The one driver of population searches: a user's own search through ``metaloss.meta.run``
with the serial and batched evaluators; the methods' searches are exported."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metaloss.meta as meta
from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, SerialEvaluator, TrainFitness
from metaloss.evaluators.batched import BatchedEvaluator
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta import Budget, EarlyStop, Outcome, run

CE_TAYLOR = np.array([0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0])


class RandomTaylor:
    """A user's search: random Taylor losses around a working one; keeps every score."""

    def __init__(self, seed: int, size: int = 4) -> None:
        self.rng, self.size, self.seen = np.random.default_rng(seed), size, []
        self.next_id = 0

    def ask(self) -> list[Candidate]:
        out = []
        for _ in range(self.size):
            theta = CE_TAYLOR + 0.7 * self.rng.standard_normal(8)
            out.append(Candidate.from_loss(self.next_id, TaylorLoss(theta.tolist())))
            self.next_id += 1
        return out

    def tell(self, candidates, fitnesses) -> None:
        self.seen += [(f.value, c) for c, f in zip(candidates, fitnesses) if f.ok]

    def result(self) -> Outcome:
        value, best = min(self.seen, key=lambda p: p[0])
        return Outcome(best.build(), [{"fitness": value}], {"scored": len(self.seen)})


def test_a_users_search_runs_through_the_driver_with_serial_and_batched(digits):
    fit = TrainFitness(digits, steps=60)
    calls = []
    serial_search = RandomTaylor(3)
    res = run(
        serial_search, SerialEvaluator(fit), Budget(3), [lambda g, c, f: calls.append(g)],
        method="random-taylor", task=digits.name, config={"size": 4},
    )  # fmt: skip
    batched = run(RandomTaylor(3), BatchedEvaluator(fit), Budget(3), method="random-taylor")
    assert calls == [0, 1, 2] and len(res.history) == 3
    assert (res.method, res.task, res.config, res.info) == (
        "random-taylor", digits.name, {"size": 4}, {"scored": 12},
    )  # fmt: skip
    # oracle: the best of every candidate's own training run
    best_value, best = min(serial_search.seen, key=lambda p: p[0])
    assert fit(best).value == best_value == res.hall_of_fame[0]["fitness"]
    assert torch.equal(res.loss.theta, best.tensors["theta"])
    assert abs(batched.hall_of_fame[0]["fitness"] - best_value) <= 2 / len(digits.val)
    assert [h["train_steps"] for h in res.history] == [4 * 60] * 3


def test_the_driver_passes_early_stopping_and_needs_a_way_to_name_the_loss(digits):
    fit = TrainFitness(digits, steps=60)
    res = run(RandomTaylor(5, size=6), SerialEvaluator(fit), Budget(3, EarlyStop((0.25,))))
    assert res.history[0]["stopped"] == 0
    assert sum(h["train_steps"] for h in res.history) == 18 * 60 - 45 * sum(
        h["stopped"] for h in res.history
    )

    class NoResult:
        def ask(self):
            return [Candidate(0, {"kind": "cross_entropy"})]

        def tell(self, c, f):
            pass

    with pytest.raises(ConfigError, match="neither result"):
        run(NoResult(), SerialEvaluator(fit), Budget(1))
    with pytest.raises(ConfigError, match="generations"):
        Budget(0)


def test_the_searches_are_exported():
    assert {"run", "Budget", "CMAES", "OpenAIES", "GPSearch", "EarlyStop"} <= set(meta.__all__)
    search = meta.taylorglo_search(popsize=4, seed=0)
    cands = search.ask()
    search.tell(cands, [meta_fitness(i) for i in range(4)])
    assert search.result().info["best_fitness"] == 0.0
    gp = meta.GPSearch(population=4, seed=0)
    assert len(gp.ask()) >= 1
    with pytest.raises(AttributeError):
        meta.nothing  # noqa: B018


def meta_fitness(i: int):
    from metaloss.evaluators import Fitness

    return Fitness(float(i)) if i < 3 else Fitness(math.inf, ok=False)
