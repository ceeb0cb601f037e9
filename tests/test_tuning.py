"""Fair comparisons: lr tuning on validation, disjoint seeds, search streams, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.evaluators.batched import train_lr_grid
from metaloss.results import EvalReport, EvalRow, holm, welch_ci
from metaloss.seeds import REPORT_LIMIT, check_seed, same_stream, search_seed, tuning_seeds
from metaloss.tasks.base import Split
from metaloss.tuning import GridPoint, TuneConfig, choose, tune_lr


class PoisonedSplit(Split):
    """A split whose data raises when read: proves a code path never touches it."""

    @property
    def x(self):  # type: ignore[override]
        raise AssertionError("the test split was read")

    @x.setter
    def x(self, value):
        self._x = value


def _flipped_test(task):
    """The task with test labels shifted by one class: test disagrees with validation."""
    from dataclasses import replace

    k = task.num_outputs
    return replace(task, test=Split(task.test.x, (task.test.y + 1) % k))


def test_tuning_picks_by_validation_never_test():
    task = ml.tasks.get("digits-linear")
    ce = ml.losses.get_loss("ce")
    config = task.defaults.with_(steps=60, lr=0.01)
    tune = TuneConfig(factors=(1 / 8, 1, 8, 64), seeds=2, max_widen=0, batched=False)
    from dataclasses import replace

    poisoned = replace(task, test=PoisonedSplit(task.test.x, task.test.y))
    res = tune_lr(poisoned, ce, config, tune)  # would raise if the test split were read
    # oracle: serial runs, mean validation error per lr, on the tuning seeds
    flipped = _flipped_test(task)
    val, test = {}, {}
    for f in tune.factors:
        lr = 0.01 * f
        runs = [ml.train(flipped, ce, config, seed=s, lr=lr) for s in tuning_seeds(2)]
        val[lr] = np.mean([r.val_metric for r in runs])
        test[lr] = np.mean([r.test_metric for r in runs])
    best_val = min(sorted(val), key=lambda lr: val[lr])
    best_test = min(sorted(test), key=lambda lr: test[lr])
    assert res.lr == pytest.approx(best_val)
    assert best_test != best_val  # the constructed case: test would have chosen otherwise
    assert [p.mean for p in res.points] == pytest.approx([val[lr] for lr in sorted(val)])


def test_tie_rule_and_widening(monkeypatch):
    pts = [GridPoint(0.1, [0.2]), GridPoint(0.2, [0.1]), GridPoint(0.4, [0.1])]
    assert choose(pts).lr == 0.2  # tie -> the smaller lr
    diverged = [GridPoint(0.05, [math.nan]), *pts, GridPoint(0.8, [math.inf])]
    assert choose(diverged).lr == 0.2  # a diverged point never wins, even at the grid's start
    from metaloss import tuning

    calls: list[list[float]] = []

    def fake_runner(task, loss, config, batched, pool, runs=None):
        def run(seeds, lrs):
            calls.append(list(lrs))
            return [[abs(math.log2(lr / 0.08)) / 10 for lr in lrs] for _ in seeds]  # best: 0.08

        return run, False

    monkeypatch.setattr(tuning, "_grid_runner", fake_runner)
    task = ml.tasks.get("iris-linear")
    config = task.defaults.with_(lr=0.01)
    res = tune_lr(task, None, config, TuneConfig(factors=(1, 2), seeds=1, batched=False))
    assert res.lr == pytest.approx(0.08) and res.widened == 3  # 0.04, 0.08, then 0.16
    assert [p.lr for p in res.points] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16])
    assert res.note == ""
    capped = tune_lr(task, None, config, TuneConfig(factors=(1, 2), seeds=1, max_widen=1,
                                                    batched=False))  # fmt: skip
    assert capped.lr == pytest.approx(0.04) and "edge" in capped.note


def test_whole_run_tuning_widens_by_the_same_rule_as_the_grid_tuner(monkeypatch):
    """An online method (AdaLFL) gets the tuning every other loss gets: the same grid points,
    the same winner and the same widening when the winner lies on an edge; its runs see the
    validation split in place of test."""
    from metaloss import tuning
    from metaloss.tuning import tune_whole_runs

    def val_of(lr):
        return abs(math.log2(lr / 0.005)) / 10  # best below the grid's lower edge

    def fake_runner(task, loss, config, batched, pool, runs=None):
        return (lambda seeds, lrs: [[val_of(lr) for lr in lrs] for _ in seeds]), False

    monkeypatch.setattr(tuning, "_grid_runner", fake_runner)
    task = ml.tasks.get("iris-linear")
    seen: list[tuple[int, float]] = []

    def run(t, seed, lr):
        assert t.test is t.val  # tuning never reads test data
        seen.append((seed, lr))
        return val_of(lr)

    configs = (TuneConfig(factors=(1, 2, 4), seeds=2), TuneConfig(factors=(1, 2), seeds=1,
                                                                  max_widen=1))  # fmt: skip
    for cfg, runs in zip(configs, (2 * 6, 3)):  # 3 points + 3 widened on 2 seeds; 2 + 1 on 1
        seen.clear()
        ref = tune_lr(task, None, task.defaults.with_(lr=0.04), cfg)
        res = tune_whole_runs(task, run, 0.04, cfg)
        assert [p.lr for p in res.points] == pytest.approx([p.lr for p in ref.points])
        assert (res.lr, res.widened, res.note) == (ref.lr, ref.widened, ref.note)
        assert len(seen) == len(set(seen)) == runs  # no grid point is run twice
    assert res.lr == pytest.approx(0.02) and res.widened == 1 and "edge" in res.note


def test_a_tuning_round_trips_through_json_and_a_forged_winner_is_refused():
    import json

    from metaloss.errors import ArtifactError
    from metaloss.tuning import LrTuning

    pts = [GridPoint(0.1, [0.3, math.nan]), GridPoint(0.2, [0.1, 0.2]), GridPoint(0.4, [0.2, 0.2])]
    res = LrTuning(0.2, pts, [100, 101], widened=1, note="n", seconds=2.5, config={"seeds": 2})
    back = LrTuning.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.to_dict() == res.to_dict()
    assert math.isnan(back.points[0].values[1])
    forged = {**res.to_dict(), "lr": 0.4}
    with pytest.raises(ArtifactError, match="not the winner"):
        LrTuning.from_dict(forged)
    with pytest.raises(ArtifactError, match="one value per tuning seed"):
        LrTuning.from_dict({**res.to_dict(), "seeds": [100]})
    with pytest.raises(ArtifactError, match="'lr' must be a positive"):
        LrTuning.from_dict({**res.to_dict(), "lr": -1})


def test_tuning_and_reporting_seeds_are_disjoint():
    report = ml.evaluate(
        "ce", ml.tasks.get("iris-linear"), seeds=3, steps=20,
        tune_config=TuneConfig(factors=(1, 2), seeds=2, max_widen=0),
    )  # fmt: skip
    tuning = report.rows[0].tuning
    assert tuning is not None
    assert not any(same_stream(a, b) for a in tuning["seeds"] for b in report.seeds)
    with pytest.raises(ConfigError, match="seed"):
        ml.evaluate("ce", ml.tasks.get("iris-linear"), seeds=[REPORT_LIMIT], steps=5)
    with pytest.raises(ConfigError):
        check_seed(-1)


def test_search_streams_never_meet_reporting_or_tuning_seeds():
    for run in range(50):
        for stream in ("fitness", "filter", "meta-init", "meta-batches", "meta-fresh"):
            s = search_seed(run, stream)
            assert 2**31 <= s % 2**32 < 2**32 - 2**16
            for t in (run, run + 1, *tuning_seeds(4)):  # run + 1: the augmentation stream
                assert not same_stream(s, t)


def test_search_runs_differ_from_the_meta_test_run(monkeypatch):
    """Same user seed: fitness runs and meta-training use other inits and batch orders."""
    from metaloss.evaluators import serial
    from metaloss.meta.unrolled import MetaStepper, ML3Config
    from metaloss.training import Batcher

    task = ml.tasks.get("iris-linear")
    seed = 3
    seen: list[int] = []
    real_train = serial.train

    def spy(task_, loss, config=None, seed=0, **kw):
        seen.append(seed)
        return real_train(task_, loss, config, seed=seed, **kw)

    monkeypatch.setattr(serial, "train", spy)
    ml.learn("taylorglo", task, seed=seed, generations=1, popsize=2, fitness_steps=5,
             evaluator="serial")  # fmt: skip
    ml.learn("gplfl", task, seed=seed, population=4, generations=1, fitness_steps=5,
             seed_trees="baselines", evaluator="serial")  # fmt: skip
    assert seen and not any(same_stream(s, seed) or same_stream(s, seed + 1) for s in seen)

    stepper = MetaStepper(ml.losses.NeuralLoss.ml3(), task, ML3Config(meta_steps=1), seed=seed)
    meta_test = task.make_model(seed)
    for p, q in zip(stepper.model.parameters(), meta_test.parameters()):
        assert not torch.equal(p, q)
    for name, p in meta_test.named_parameters():
        assert not torch.equal(stepper.params[name], p)
    bs = task.defaults.batch_size
    assert not torch.equal(stepper.batches.next(), Batcher(len(task.train), bs, seed, "cpu").next())


@pytest.mark.parametrize("name", ["digits-mlp", "diabetes-mlp"])
def test_batched_lr_grid_equals_serial(name):
    torch.set_num_threads(1)
    task = ml.tasks.get(name)
    loss = task.task_loss()
    config = task.defaults.with_(steps=80, lr=0.01)
    lrs = [0.0025, 0.01, 0.04, 0.16]
    batched = train_lr_grid(task, loss, config, 7, lrs)
    serial = [ml.train(task, loss, config, seed=7, lr=lr, test=False).val_metric for lr in lrs]
    if task.classification:
        assert batched == serial
    else:  # MSE: continuous, equal up to float summation order
        assert batched == pytest.approx(serial, rel=1e-4)


def test_batched_lr_grid_momentum_and_adam_equal_serial():
    task = ml.tasks.get("diabetes-mlp")
    loss = task.task_loss()
    for cfg in (
        task.defaults.with_(steps=50, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3),
        task.defaults.with_(steps=50, lr=1e-3, optimizer="adam"),
    ):
        lrs = [cfg.lr / 2, cfg.lr, cfg.lr * 2]
        batched = train_lr_grid(task, loss, cfg, 1, lrs)
        serial = [ml.train(task, loss, cfg, seed=1, lr=lr, test=False).val_metric for lr in lrs]
        assert batched == pytest.approx(serial, rel=1e-4)


def test_holm_matches_hand_computed_example():
    # sorted p: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> monotone 0.09; 0.2*1 = 0.2
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([math.nan, 0.02])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.02)  # NaN is not a comparison


def test_welch_ci_matches_scipy():
    a, b = [0.1, 0.12, 0.15, 0.11], [0.2, 0.18, 0.25]
    lo, hi = welch_ci(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ref.low, ref.high))


def test_bold_only_when_holm_significant():
    base = EvalRow("ce", [0.10, 0.11, 0.12, 0.10, 0.11], [], 1.0)
    better = EvalRow("a", [0.05, 0.06, 0.05, 0.06, 0.05], [], 1.0)
    tie = EvalRow("b", [0.10, 0.12, 0.11, 0.10, 0.12], [], 1.0)
    report = EvalReport("t", "error", 10, list(range(5)), [base, better, tie])
    report.compare()
    assert better.verdict == "better" and tie.verdict == "tie"
    assert better.p_holm == pytest.approx(min(1.0, 2 * better.p_value))
    table = report.markdown()
    assert "**0.0540" in table and "**0.11" not in table


def test_evaluate_compares_learned_rows_with_the_best_hand_made_baseline():
    base = EvalRow("ce", [0.30, 0.31, 0.32, 0.30, 0.31], [], 1.0, hand_made=True)
    gce = EvalRow("gce", [0.24, 0.25, 0.23, 0.24, 0.25], [], 1.0, hand_made=True)
    sce = EvalRow("sce", [0.21, 0.22, 0.21, 0.22, 0.21], [], 1.0, hand_made=True)
    a = EvalRow("a", [0.15, 0.16, 0.15, 0.16, 0.15], [], 1.0)  # beats ce and sce
    b = EvalRow("b", [0.21, 0.23, 0.20, 0.22, 0.21], [], 1.0)  # beats ce, ties sce
    report = EvalReport("t", "error", 10, list(range(5)), [base, gce, sce, a, b], tuned=True)
    report.compare()
    assert report.best_baseline == "sce" and report.beats_both == ["a"]
    welch = [stats.ttest_ind(r.values, sce.values, equal_var=False).pvalue for r in (a, b)]
    assert [a.vs_best["p_holm"], b.vs_best["p_holm"]] == pytest.approx(holm(welch))
    assert b.vs_best["verdict"] == "tie" and gce.vs_best is None
    assert "**a beats both tuned ce and sce significantly.**" in report.markdown()
    assert report.to_dict()["best_baseline"] == "sce"
    report.compare(baseline="gce")  # against another row: the sentence names it
    assert report.best_baseline == "sce" and "a beats both tuned gce and sce" in report.markdown()
    alone = EvalReport("t", "error", 10, list(range(5)), [base, a])
    alone.compare()
    assert alone.best_baseline is None and "hand-made" not in alone.markdown()
    # evaluate marks the hand-made rows itself: a rescaled CE is a learned row
    task = ml.tasks.get("iris-linear")
    real = ml.evaluate(ml.losses.ScaledLoss("ce", 2.0), task, seeds=2, baselines=["ce", "sce"],
                       tune=None, steps=20, diagnose=False)  # fmt: skip
    assert [r.hand_made for r in real.rows] == [True, True, False]
    assert real.best_baseline == "sce" and "vs_best_baseline" in real.to_dict()["rows"][2]
    assert "the best hand-made baseline (sce" in real.markdown()  # untuned: not called tuned


def test_step_diagnostic_flags_rescaled_cross_entropy():
    from metaloss.diagnostics import step_diagnostic

    task = ml.tasks.get("digits-mlp")
    scaled = step_diagnostic(ml.losses.ScaledLoss("ce", 7.0), task)
    assert scaled.ratio == pytest.approx(7.0, rel=1e-5) and scaled.rescaled
    assert "rescaled cross-entropy" in scaled.message
    assert scaled.ratio_trained == pytest.approx(7.0, rel=1e-5)
    mse = step_diagnostic(ml.losses.get_loss("mse"), task, config=task.defaults.with_(lr=0.3))
    # at init softmax-MSE points where CE does; after CE training it no longer does
    assert mse.cosine > 0.98 and mse.cosine_trained < 0.98
    assert not mse.rescaled and mse.message == ""


def test_ce_step_control_search_picks_lowest_validation(tmp_path):
    task = ml.tasks.get("iris-linear")
    res = ml.learn("ce-step", task, meta="search", candidates=3, fitness_steps=20)
    best = min(r["fitness"] for r in res.hall_of_fame if r["fitness"] is not None)
    assert res.info["best_fitness"] == best
    chosen = next(r for r in res.hall_of_fame if r["fitness"] == best)
    assert res.loss.scale == pytest.approx(chosen["scale"], rel=1e-6)
    res.save(tmp_path / "run")
    loaded = ml.load(tmp_path / "run")
    assert loaded.kind == "scaled" and loaded.scale == pytest.approx(res.loss.scale, rel=1e-6)


def test_ce_step_control_unrolled_learns_only_a_scale():
    task = ml.tasks.get("iris-linear")
    res = ml.learn("ce-step", task, meta="unrolled", meta_steps=5, inner_lr=0.01)
    assert res.loss.kind == "scaled" and [n for n, _ in res.loss.named_parameters()] == [
        "log_scale"
    ]
    assert res.loss.scale != 1.0  # the meta-optimiser moved it


def test_ce_step_control_scales_another_base_loss_when_asked():
    from metaloss.losses.handcrafted import SymmetricCrossEntropyLoss

    task = ml.tasks.get("digits-linear")
    kw = dict(meta="search", candidates=3, fitness_steps=20)
    sce, ce = ml.learn("ce-step", task, base="sce", **kw), ml.learn("ce-step", task, **kw)
    logits, labels = torch.randn(5, 10), torch.tensor([0, 1, 2, 1, 9])
    expected = sce.loss.scale * SymmetricCrossEntropyLoss()(logits, labels)
    torch.testing.assert_close(sce.loss(logits, labels), expected)
    assert sce.config["base"] == "sce" and "base" not in ce.config
    assert all(r["formula"].endswith(" * sce") for r in sce.hall_of_fame)
    # the same scales, another loss: other fitness values
    by_scale = {r["scale"]: r["fitness"] for r in ce.hall_of_fame}
    assert any(by_scale[r["scale"]] != r["fitness"] for r in sce.hall_of_fame)
    iris = ml.tasks.get("iris-linear")
    online = ml.learn("ce-step", iris, meta="online", base="sce", init_steps=2, steps=10)
    assert online.loss.base_name == "sce" and online.config["base"] == "sce"
    unrolled = ml.learn("ce-step", iris, meta="unrolled", base="gce", meta_steps=2)
    assert unrolled.loss.base_name == "gce" and unrolled.config["base"] == "gce"
    # a loss that needs class labels is refused on a regression task before any training
    sine = ml.tasks.get("sine")
    with pytest.raises(ConfigError, match="ce-step: base 'gce' needs a classification task"):
        ml.learn("ce-step", sine, meta="search", base="gce", candidates=2, fitness_steps=5)
    with pytest.raises(ConfigError, match="residual 'sce' needs a classification task"):
        ml.learn("adalfl", sine, preset="fast", residual="sce")
    ml.learn("ml3", sine, meta_steps=1, residual="mae", residual_ce=1.0)  # MAE works there


def test_sanity_check_warns_only_for_a_worse_loss():
    from metaloss.sanity import sanity_check

    task = ml.tasks.get("digits-linear")
    crippled = sanity_check(ml.losses.ScaledLoss("ce", 1e-5), task, max_steps=100)
    assert crippled["worse"] and "WORSE" in crippled["message"]
    same = sanity_check(ml.losses.ScaledLoss("ce", 1.0), task, max_steps=100)
    assert not same["worse"] and same["learned_val"] == pytest.approx(same["baseline_val"])


def test_collapsed_runs_are_flagged_not_hidden():
    """A run that ends at chance level with finite outputs is flagged (not 'diverged')."""
    from metaloss.training import chance_metric

    task = ml.tasks.get("digits-linear")
    zero = ml.losses.ScaledLoss("ce", 1e-12)  # no step: the model stays at its initialisation
    res = ml.train(task, zero, steps=20, seed=0)
    majority = chance_metric(task, task.val)
    assert not res.diverged and res.collapsed and res.val_metric > majority - 0.08

    def constant(y_pred, y):  # pushes every prediction to class 0: a collapse by design
        return ((y_pred[:, 0] - 10.0) ** 2).mean()

    res = ml.train(task, constant, steps=200, seed=0, lr=0.01)
    assert res.collapsed and res.val_metric >= majority
    good = ml.train(task, ml.losses.get_loss("ce"), steps=200, seed=0)
    assert not good.collapsed
    report = ml.evaluate(zero, task, seeds=2, steps=20, tune=None, diagnose=False)
    assert report.rows[0].collapsed == 2 and "collapsed to chance" in " ".join(report.notes)
    # regression: the constant (training-mean) predictor's MSE is the threshold
    reg = ml.tasks.get("diabetes-mlp")
    mean = reg.train.y.float().mean(0)
    assert chance_metric(reg, reg.val) == pytest.approx(float(((reg.val.y - mean) ** 2).mean()))


def test_zero_variance_differences_are_untestable_not_significant():
    from metaloss.results import welch_p

    assert math.isnan(welch_p([0.01, 0.01, 0.01], [0.02, 0.02, 0.02]))
    assert welch_p([0.01, 0.01], [0.01, 0.01]) == 1.0
    base = EvalRow("ce", [0.0088] * 3, [], 1.0)
    other = EvalRow("x", [0.0175] * 3, [], 1.0)
    report = EvalReport("t", "error", 10, [0, 1, 2], [base, other])
    report.compare()
    assert other.verdict == "tie" and math.isnan(other.p_holm)
