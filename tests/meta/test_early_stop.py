"""Early stopping of hopeless candidates: the rule, the evaluators' agreement, resume.

Oracles: a stopped run's partial value is the validation metric of the same training run
cut at the checkpoint (``train(..., steps=checkpoint)``: same seed, same batches); runs
that do not stop are exactly the runs without early stopping; thresholds are hand-computed
quantiles of the previous generation's recorded checkpoint metrics.
"""

from __future__ import annotations

import math

import pytest
import torch

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, Fitness, SerialEvaluator, TrainFitness
from metaloss.evaluators.batched import BatchedEvaluator
from metaloss.evaluators.pool import ProcessPoolEvaluator
from metaloss.losses.symbolic import SymbolicLoss
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.configs import EvoMALConfig, TaylorGLOConfig
from metaloss.meta.early_stop import EarlyStop, early_stop_of, rescue_generation
from metaloss.meta.gp import learn_evomal
from metaloss.meta.search import run_search, summarise
from metaloss.meta.taylorglo import learn_taylorglo
from metaloss.training import checkpoint_split, evaluate_model

CE_TAYLOR = [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0]
HOPELESS = "mul(y, y_hat)"  # a constant gradient that lowers the target's logit: error 1.0


def population() -> list[Candidate]:
    """Two working losses and a hopeless one, with a 25 % checkpoint at error 0.7."""
    cands = [
        Candidate(0, {"kind": "cross_entropy"}),
        Candidate.from_loss(1, TaylorLoss(CE_TAYLOR)),
        Candidate.from_loss(2, SymbolicLoss.from_string(HOPELESS)),
    ]
    for c in cands:
        c.early_stop = ((0.25, 0.7), (0.5, math.inf))
    return cands


def test_hopeless_candidate_stops_with_its_partial_metric(digits):
    fit = TrainFitness(digits, steps=100)
    fits = SerialEvaluator(fit).evaluate(population())
    assert [f.ok for f in fits] == [True, True, True]
    hopeless = fits[2]
    assert hopeless.info["stopped_at"] == 0.25 and hopeless.info["train_steps"] == 25
    cut = ml.train(digits, SymbolicLoss.from_string(HOPELESS), steps=25, seed=0, test=False)
    assert hopeless.value == cut.val_metric == hopeless.info["checkpoints"]["0.25"]
    for f, c in zip(fits[:2], population()[:2]):  # the others: the same as without stopping
        plain = SerialEvaluator(fit).evaluate([Candidate(c.id, c.spec, c.tensors)])[0]
        assert "stopped_at" not in f.info and f.value == plain.value
        assert f.info["train_steps"] == 100 and set(f.info["checkpoints"]) == {"0.25", "0.5"}
        assert f.info["checkpoints"]["0.25"] <= 0.7
    summary = summarise(0, fits, 1.0)
    assert summary["stopped"] == 1 and summary["train_steps"] == 100 + 100 + 25


def test_serial_batched_and_pool_agree_on_stopping(digits):
    fit = TrainFitness(digits, steps=100)
    serial = SerialEvaluator(fit).evaluate(population())
    batched = BatchedEvaluator(fit).evaluate(population())
    with ProcessPoolEvaluator(fit, workers=2) as ev:
        pooled = ev.evaluate(population())
        assert ev.fallback_reason is None
    for s, b, p in zip(serial, batched, pooled):
        assert (s.ok, s.value, s.info) == (p.ok, p.value, p.info)  # bitwise, one thread each
        assert s.ok == b.ok and s.info.get("stopped_at") == b.info.get("stopped_at")
        assert s.info["train_steps"] == b.info["train_steps"]
        assert abs(s.value - b.value) <= 2 / len(digits.val) + 1e-9
        for k, v in s.info["checkpoints"].items():
            assert abs(v - b.info["checkpoints"][k]) <= 2 / len(digits.val) + 1e-9


def test_a_generation_that_stopped_every_candidate_reruns_the_furthest_in_full(digits):
    fit = TrainFitness(digits, steps=100)
    cands = population()
    for c in cands:  # thresholds nobody meets: the whole generation stops at 25 %
        c.early_stop = ((0.25, -1.0), (0.5, math.inf))
    ev = SerialEvaluator(fit)
    stopped = ev.evaluate(cands)
    assert all(f.info["stopped_at"] == 0.25 for f in stopped)
    out = rescue_generation(EarlyStop((0.25, 0.5), rescue=1), cands, stopped, ev.evaluate)
    best = min(range(3), key=lambda i: (stopped[i].value, i))  # lowest partial metric
    plain = ev.evaluate([Candidate(best, cands[best].spec, cands[best].tensors)])[0]
    assert out[best].value == plain.value  # exactly the run without early stopping
    assert out[best].info["rescued"] == 0.25 and "stopped_at" not in out[best].info
    assert out[best].info["train_steps"] == 100 + 25  # both runs are counted
    assert [f for i, f in enumerate(out) if i != best] == [
        f for i, f in enumerate(stopped) if i != best
    ]
    assert rescue_generation(EarlyStop((0.25,), rescue=1), cands, out, ev.evaluate) == out
    summary = summarise(0, out, 1.0)
    assert (summary["stopped"], summary["rescued"], summary["train_steps"]) == (2, 1, 175)


def test_rescue_leaves_a_complete_candidate_in_every_generation_and_resumes(digits, tmp_path):
    kw = {"early_stop_reference": "elite", "early_stop_rescue": 1}
    plain = _taylorglo(digits, early_stop_reference="elite", early_stop_rescue=0)
    assert any(h["stopped"] == h["candidates"] for h in plain.history)  # the flaw it fixes
    full = _taylorglo(digits, **kw)
    assert all(h["candidates"] - h["stopped"] - h["rejects"] >= 1 for h in full.history)
    assert sum(h["rescued"] for h in full.history) > 0
    learn_taylorglo(digits, TaylorGLOConfig(generations=2, popsize=6, fitness_steps=60,
                    sigma=3.0), seed=1, early_stop=True, run_dir=tmp_path,
                    evaluator="serial", **kw)  # fmt: skip
    resumed = _taylorglo(digits, run_dir=tmp_path, **kw)
    keys = ("best", "median", "stopped", "rescued", "train_steps")
    assert [[h[k] for k in keys] for h in full.history] == [
        [h[k] for k in keys] for h in resumed.history
    ]
    assert torch.equal(full.loss.theta, resumed.loss.theta)


def test_checkpoints_on_a_validation_subset(digits):
    """``early_stop_examples``: the checkpoint metric is the cut run's metric on the fixed
    subset, a stopped candidate's value is that metric (not a second full pass), and the
    serial, pool and batched evaluators agree."""
    sub = checkpoint_split(digits.val, 50)
    assert len(sub) == 50 and torch.equal(sub.y, checkpoint_split(digits.val, 50).y)
    rows = [i for i in range(len(digits.val)) if (digits.val.x[i] == sub.x).all(1).any()]
    assert len(rows) >= 50  # a subset of the validation rows (duplicates allowed)
    cands = population()
    for c in cands:
        c.early_stop_examples = 50
    fit = TrainFitness(digits, steps=100)
    serial = SerialEvaluator(fit).evaluate(cands)
    for steps, label in ((25, "0.25"), (50, "0.5")):  # CE survives: both checkpoints
        cut = ml.train(digits, ml.losses.get_baseline("ce"), steps=steps, seed=0, test=False)
        on_sub = evaluate_model(digits, cut.model, sub)
        assert on_sub != cut.val_metric  # the subset's metric differs from the whole split's
        assert serial[0].info["checkpoints"][label] == on_sub
    assert serial[2].info["stopped_at"] == 0.25
    assert serial[2].value == serial[2].info["checkpoints"]["0.25"]
    whole = SerialEvaluator(fit).evaluate(population())
    for s, w in zip(serial[:2], whole[:2]):  # survivors: the full-validation final metric
        assert s.value == w.value and s.info["train_steps"] == 100
    with ProcessPoolEvaluator(fit, workers=2) as ev:
        pooled = ev.evaluate(cands)
    batched = BatchedEvaluator(fit).evaluate(cands)
    for s, p, b in zip(serial, pooled, batched):
        assert (s.value, s.info) == (p.value, p.info)
        assert s.info.get("stopped_at") == b.info.get("stopped_at")
        for k, v in s.info["checkpoints"].items():
            assert abs(v - b.info["checkpoints"][k]) <= 2 / 50 + 1e-9
    assert EarlyStop((0.5,), examples=50).examples == 50
    with pytest.raises(ConfigError, match="early_stop_examples"):
        EarlyStop((0.5,), examples=-1)


def flat(pairs) -> list[float]:
    return [x for pair in pairs for x in pair]


def test_thresholds_are_hand_computed_quantiles():
    prev = [
        Fitness(0.1, info={"checkpoints": {"0.25": 0.4, "0.5": 0.2}}),
        Fitness(0.2, info={"checkpoints": {"0.25": 0.6, "0.5": 0.3}}),
        Fitness(0.9, info={"checkpoints": {"0.25": 0.9}, "stopped_at": 0.25}),
        Fitness(0.3, info={"checkpoints": {"0.25": 0.5, "0.5": 0.4}}),
        Fitness.failure("diverged"),  # failures do not count
    ]
    assert flat(EarlyStop((0.25, 0.5), 0.5, 0.1).thresholds(prev)) == pytest.approx(
        [0.25, 0.55 + 0.1, 0.5, 0.3 + 0.1]
    )
    # quantile 0.25 of (0.4, 0.5, 0.6, 0.9) by linear interpolation: 0.475
    assert flat(EarlyStop((0.25, 0.75), 0.25).thresholds(prev)) == pytest.approx(
        [0.25, 0.475, 0.75, math.inf]
    )
    with pytest.raises(ConfigError, match="early_stop_at"):
        EarlyStop((0.5, 1.0))
    with pytest.raises(ConfigError, match="early_stop_at"):
        learn_taylorglo(ml.tasks.get("iris-linear"), TaylorGLOConfig.fast(), early_stop=True,
                        early_stop_at=(0.0,))  # fmt: skip


class ThreeCandidates:
    """A search of three candidates per generation whose spec names its generation."""

    def __init__(self):
        self.gen = 0

    def ask(self):
        return [Candidate(i, {"kind": "cross_entropy", "g": self.gen}) for i in range(3)]

    def tell(self, cands, fits):
        self.gen += 1


def thresholds_seen(value, generations: int, rule: EarlyStop) -> tuple[list[tuple], list]:
    """Run ``ThreeCandidates`` with checkpoint metric ``value(generation, id)`` at 50 %:
    the thresholds each candidate was given, and the history."""
    seen: list[tuple] = []

    def fitness(c: Candidate) -> Fitness:
        seen.append(c.early_stop)
        v = value(c.spec["g"], c.id)
        return Fitness(v, info={"checkpoints": {"0.5": v}, "train_steps": 10})

    hist = run_search(ThreeCandidates(), SerialEvaluator(fitness), generations, early_stop=rule)
    return seen, hist


def test_the_driver_gives_thresholds_from_the_previous_generation_only():
    seen, hist = thresholds_seen(lambda g, i: 0.1 * (i + 1) + g, 3, EarlyStop((0.5,)))
    assert seen[0] == ((0.5, math.inf),)
    assert flat(seen[3]) == pytest.approx([0.5, 0.2])  # the median of generation 0
    assert flat(seen[6]) == pytest.approx([0.5, 1.2])  # the median of generation 1
    assert [h["train_steps"] for h in hist] == [30, 30, 30]


def test_the_elite_reference_uses_the_best_records_of_every_earlier_generation():
    values = {0: (0.3, 0.1, 0.5), 1: (0.9, 0.8, 0.7), 2: (0.2, 0.6, 0.4)}
    rule = EarlyStop((0.5,), reference="elite")
    seen, _ = thresholds_seen(lambda g, i: values[g][i], 4, rule)
    assert seen[0] == ((0.5, math.inf),)
    assert flat(seen[3]) == pytest.approx([0.5, 0.3])  # median of (0.1, 0.3, 0.5)
    # generation 1 was worse: elite keeps generation 0's best three, previous would take 0.8
    assert flat(seen[6]) == pytest.approx([0.5, 0.3])
    assert flat(seen[9]) == pytest.approx([0.5, 0.2])  # median of the best three (0.1, 0.2, 0.3)
    with pytest.raises(ConfigError, match="early_stop_reference"):
        EarlyStop((0.5,), reference="best")


def test_the_floor_keeps_elite_thresholds_from_stopping_a_whole_generation():
    # generation 0 holds one lucky early record (0.1); generations 1 and 2 are alike
    values = {0: (0.1, 0.5, 0.9), 1: (0.4, 0.5, 0.6), 2: (0.44, 0.5, 0.55)}
    elite = EarlyStop((0.5,), reference="elite")
    seen, _ = thresholds_seen(lambda g, i: values[g][i], 3, elite)
    t = flat(seen[6])[1]
    assert t == pytest.approx(0.4)  # median of the best three records (0.1, 0.4, 0.5)
    assert all(v > t for v in values[2])  # every candidate of generation 2 would stop
    floored = EarlyStop((0.5,), reference="elite", floor=0.25)
    seen, _ = thresholds_seen(lambda g, i: values[g][i], 3, floored)
    t = flat(seen[6])[1]
    assert t == pytest.approx(0.45)  # quantile 0.25 of generation 1's (0.4, 0.5, 0.6)
    assert sum(v <= t for v in values[2]) == 1
    assert flat(seen[3]) == pytest.approx([0.5, 0.5])  # elite 0.5 is above the floor (0.3)
    # a generation that stopped every candidate at the first checkpoint leaves no floor at
    # the later ones: its successors are not judged there (without the floor they would be)
    prev = [Fitness(0.8, info={"checkpoints": {"0.1": 0.8}, "stopped_at": 0.1})] * 3
    hist = [Fitness(0.1, info={"checkpoints": {"0.1": 0.3, "0.2": 0.2}})] * 3 + prev
    rule = EarlyStop((0.1, 0.2), reference="elite", floor=0.25)
    assert flat(rule.thresholds(prev, hist)) == pytest.approx([0.1, 0.8, 0.2, math.inf])
    unfloored = EarlyStop((0.1, 0.2), reference="elite").thresholds(prev, hist)
    assert flat(unfloored) == pytest.approx([0.1, 0.3, 0.2, 0.2])
    cfg = TaylorGLOConfig(early_stop=True, early_stop_floor=0.25)
    assert early_stop_of(cfg).floor == 0.25
    assert early_stop_of(TaylorGLOConfig(early_stop=True)).floor == 0.0
    assert early_stop_of(TaylorGLOConfig()) is None  # off by default
    with pytest.raises(ConfigError, match="early_stop_floor"):
        EarlyStop((0.5,), floor=1.5)


def test_elite_early_stopping_resumes_exactly(digits, tmp_path):
    full = _taylorglo(digits, early_stop_reference="elite")
    prev = _taylorglo(digits)
    assert sum(h["stopped"] for h in full.history) >= sum(h["stopped"] for h in prev.history) > 0
    learn_taylorglo(digits, TaylorGLOConfig(generations=2, popsize=6, fitness_steps=60,
                    sigma=3.0), seed=1, early_stop=True, early_stop_reference="elite",
                    run_dir=tmp_path, evaluator="serial")  # fmt: skip
    resumed = _taylorglo(digits, run_dir=tmp_path, early_stop_reference="elite")
    keys = ("best", "median", "stopped", "train_steps")
    assert [[h[k] for k in keys] for h in full.history] == [
        [h[k] for k in keys] for h in resumed.history
    ]
    assert torch.equal(full.loss.theta, resumed.loss.theta)


def _taylorglo(task, **kw):
    cfg = TaylorGLOConfig(generations=4, popsize=6, fitness_steps=60, sigma=3.0)
    kw.setdefault("evaluator", "serial")
    return learn_taylorglo(task, cfg, seed=1, early_stop=True, **kw)


def test_taylorglo_early_stopping_resumes_exactly_and_batched_agrees(digits, tmp_path):
    full = _taylorglo(digits)
    assert sum(h["stopped"] for h in full.history) > 0  # the test exercises stopping
    assert full.history[0]["stopped"] == 0  # generation 0 only records
    steps = [h["train_steps"] for h in full.history]
    assert sum(steps) < 4 * 6 * 60
    learn_taylorglo(digits, TaylorGLOConfig(generations=2, popsize=6, fitness_steps=60,
                    sigma=3.0), seed=1, early_stop=True, run_dir=tmp_path,
                    evaluator="serial")  # fmt: skip
    resumed = _taylorglo(digits, run_dir=tmp_path)
    for a, b in zip(full.history, resumed.history):
        assert (a["best"], a["median"], a["stopped"], a["train_steps"]) == (
            b["best"], b["median"], b["stopped"], b["train_steps"],
        )  # fmt: skip
    assert torch.equal(full.loss.theta, resumed.loss.theta)
    batched = _taylorglo(digits, evaluator="batched")
    assert [h["stopped"] for h in batched.history] == [h["stopped"] for h in full.history]
    assert steps == [h["train_steps"] for h in batched.history]


def test_evomal_has_the_option_and_serial_equals_batched(iris):
    cfg = EvoMALConfig.fast().with_options(
        generations=3, population=6, fitness_steps=40, early_stop=True, early_stop_margin=-0.05
    )
    serial = learn_evomal(iris, cfg, seed=0)
    batched = learn_evomal(iris, cfg, seed=0, evaluator="batched")
    keys = ("stopped", "train_steps", "rejects")
    assert [[h[k] for k in keys] for h in serial.history] == [
        [h[k] for k in keys] for h in batched.history
    ]
    assert sum(h["stopped"] for h in serial.history) > 0
    assert serial.loss.describe() == batched.loss.describe()


def test_early_stopping_is_off_by_default_and_in_the_paper_presets(digits):
    """Off since it cost LeNet-5 test error (docs/benchmarks.md); the rule it turns on keeps
    its measured settings, and the default run trains every candidate to the end."""
    for cls, rescue in ((TaylorGLOConfig, 1), (EvoMALConfig, 0)):
        cfg = cls()
        assert (cfg.early_stop, cfg.early_stop_at, cfg.early_stop_reference,
                cfg.early_stop_examples, cfg.early_stop_floor, cfg.early_stop_rescue) == (
                False, (0.1, 0.2, 0.4), "elite", 1000, 0.0, rescue)  # fmt: skip
        assert cls.preset("paper").early_stop is False
    kw = dict(generations=3, popsize=6, fitness_steps=60, sigma=3.0, seed=1)
    default = ml.learn("taylorglo", digits, **kw)
    assert sum(h["stopped"] for h in default.history) == 0
    assert [h["train_steps"] for h in default.history] == [6 * 60] * 3
    on = ml.learn("taylorglo", digits, early_stop=True, **kw)
    assert on.history[0]["stopped"] == 0 and sum(h["stopped"] for h in on.history) > 0
    assert sum(h["train_steps"] for h in on.history) < 3 * 6 * 60
