"""MLN: generated tasks with ground truth, the cosine fitness, the ES loop, learn_mln."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from metaloss import io
from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, Fitness, SerialEvaluator
from metaloss.losses import get_loss
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.evolution import CMAES, OpenAIES, VectorFamily
from metaloss.meta.mln import MLNFitness, learn_mln, mln_template, task_seeds
from metaloss.tasks.generated import cosine_distance, make_linear_task, make_nonlinear_task
from metaloss.tasks.models import build_model
from metaloss.training import train

TINY = dict(
    generations=8,
    popsize=8,
    tasks_per_eval=1,
    train_steps=30,
    classes=3,
    dim=5,
    n_train=200,
    n_val=50,
    eval_tasks=2,
    init="random",
    sigma=0.1,
    lr=0.1,
)


def _gaps(g, split) -> torch.Tensor:
    top2 = g.true_logits(split.x).topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


# ---------------------------------------------------------------------------------------
# generated tasks


@pytest.mark.parametrize("classes", [2, 4, 10])
def test_linear_task_is_labelled_by_its_ground_truth(classes):
    g = make_linear_task(dim=6, classes=classes, n_train=300, n_val=100, n_test=100, seed=3)
    t = g.task
    assert t.kind == "classification" and t.num_outputs == classes and t.in_shape == (6,)
    assert tuple(g.w.shape) == (classes, 6) and tuple(g.b.shape) == (classes,)
    for split in (t.train, t.val, t.test):
        assert g.accuracy(split) == 1.0
        assert torch.equal(split.y, (split.x @ g.w.T + g.b).argmax(-1))
    assert isinstance(t.make_model(0)[1], torch.nn.Linear)
    assert len(torch.unique(t.train.y)) >= 2


def test_margin_is_respected():
    g = make_linear_task(dim=4, classes=3, n_train=400, n_val=100, n_test=100, margin=0.5, seed=1)
    for split in (g.task.train, g.task.val, g.task.test):
        assert len(split) in (400, 100) and float(_gaps(g, split).min()) >= 0.5
    free = make_linear_task(dim=4, classes=3, n_train=400, n_val=100, n_test=100, seed=1)
    assert float(_gaps(free, free.task.train).min()) < 0.5  # the option does something
    with pytest.raises(ConfigError, match="margin"):
        make_linear_task(dim=2, classes=2, n_train=10, n_val=1, n_test=1, margin=100.0)


def test_generation_is_deterministic_per_seed():
    a, b = (make_linear_task(dim=5, classes=3, label_noise=0.1, seed=7) for _ in range(2))
    c = make_linear_task(dim=5, classes=3, label_noise=0.1, seed=8)
    for s in ("train", "val", "test"):
        sa, sb = getattr(a.task, s), getattr(b.task, s)
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
    assert torch.equal(a.w, b.w) and torch.equal(a.noisy, b.noisy)
    assert not torch.equal(a.w, c.w) and not torch.equal(a.task.train.x, c.task.train.x)
    n1, n2 = (make_nonlinear_task(dim=4, classes=3, seed=2) for _ in range(2))
    assert torch.equal(n1.task.train.y, n2.task.train.y)
    assert torch.equal(n1.true_logits(n1.task.test.x), n2.true_logits(n2.task.test.x))


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.25])
def test_label_noise_fraction(noise):
    g = make_linear_task(dim=5, classes=4, n_train=400, label_noise=noise, seed=0)
    k = round(noise * 400)
    assert int(g.noisy.sum()) == k
    assert int((g.task.train.y != g.clean_train_y).sum()) == k  # a flip changes the class
    assert g.accuracy(g.task.train) == pytest.approx(1 - noise)
    assert g.accuracy(g.task.val) == 1.0 and g.accuracy(g.task.test) == 1.0


def test_nonlinear_task_is_not_linearly_trivial():
    g = make_nonlinear_task(dim=5, classes=3, n_train=1000, n_val=200, n_test=500, seed=0)
    assert g.w is None and g.b is None and g.task.model_name == "mlp"
    for split in (g.task.train, g.task.val, g.task.test):
        assert g.accuracy(split) == 1.0  # the teacher MLP labelled them
    counts = np.bincount(g.task.train.y.numpy(), minlength=3)
    assert counts.min() > 50  # the output bias keeps the classes populated
    linear = replace(g.task, model_factory=lambda: build_model("linear", (5,), 3))
    res = train(linear, get_loss("ce"), steps=1500, lr=0.1, seed=0)
    train_err = float(linear.metric(res.model(linear.train.x), linear.train.y))
    assert train_err > 0.05  # no linear classifier fits it


def test_cosine_distance_invariances():
    torch.manual_seed(0)
    w = torch.randn(4, 6)
    shifted = 3.0 * w + torch.randn(1, 6)  # positive scale, same vector added to all rows
    assert float(cosine_distance(shifted, w)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_distance(-w, w)) == pytest.approx(2.0, abs=1e-6)
    assert 0.0 < float(cosine_distance(torch.randn(4, 6), w)) < 2.0
    assert float(cosine_distance(torch.zeros(4, 6), w)) == 1.0
    with pytest.raises(ConfigError):
        cosine_distance(torch.zeros(3, 6), w)


# ---------------------------------------------------------------------------------------
# fitness and ES


def test_fitness_ranks_cross_entropy_above_bad_losses():
    fit = MLNFitness(dim=6, classes=[3, 5], tasks_per_eval=2, train_steps=100, n_train=300)
    ce = fit(Candidate(0, {"kind": "cross_entropy"}))
    again = fit(Candidate(0, {"kind": "cross_entropy"}))
    mse = fit(Candidate(1, {"kind": "mse"}))
    bad = fit(Candidate.from_loss(2, NeuralLoss(hidden=(8,), inputs="logprob", seed=1)))
    assert ce.ok and mse.ok and bad.ok and ce.value == again.value
    assert ce.value < 0.1 and ce.value < mse.value < bad.value
    val = replace(fit, objective="val_error")(Candidate(0, {"kind": "cross_entropy"}))
    assert val.value == pytest.approx(ce.info["val_error"])
    with pytest.raises(ConfigError, match="objective"):
        MLNFitness(objective="accuracy")


def test_fitness_tasks_follow_the_generation():
    fit = MLNFitness(dim=4, classes=3, tasks_per_eval=2, popsize=4)
    assert fit.generation_of(Candidate(3, {})) == 0 and fit.generation_of(Candidate(4, {})) == 1
    g0 = [g.seed for g in fit.tasks(0)]
    assert g0 == task_seeds(0, 0, 0, 2) and g0 != [g.seed for g in fit.tasks(1)]
    assert replace(fit, resample=False).generation_of(Candidate(9, {})) == 0
    held = task_seeds(0, 1, 0, 2)
    assert not set(held) & set(g0)


def test_es_ask_tell_round_trip():
    family = VectorFamily(mln_template(hidden=(4,), init="random"))
    for search in (
        OpenAIES(family, sigma=0.1, popsize=6, lr=0.05, seed=0),
        CMAES(family, sigma=0.1, popsize=6, seed=0),
    ):
        cands = search.ask()
        assert len(cands) == 6 and len({c.id for c in cands}) == 6
        built = cands[0].build()
        assert isinstance(built, NeuralLoss) and built.inputs == "logprob"
        x = np.concatenate([cands[0].tensors[n].numpy().ravel() for n in family.names])
        assert np.allclose(VectorFamily(built).x0(), x)
        target = family.x0() + 1.0
        fits = [Fitness(float(((VectorFamily(c.build()).x0() - target) ** 2).sum())) for c in cands]
        search.tell(cands, fits)
        assert search.best_fitness == min(f.value for f in fits)
        assert search.ask()[0].id == 6  # ids continue: generation = id // popsize


# ---------------------------------------------------------------------------------------
# learn_mln


def test_learn_mln_improves_and_saves(tmp_path):
    res = learn_mln(None, seed=0, **TINY)
    assert res.method == "mln" and len(res.history) == TINY["generations"]
    assert res.info["final_fitness"] < res.info["final_initial_fitness"] - 0.3
    assert res.info["chosen"] in ("mean", "best")
    out = res.save(tmp_path / "run")
    loaded = io.load(out)
    assert isinstance(loaded, NeuralLoss)
    x, y = torch.randn(16, 7), torch.randint(0, 7, (16,))  # any class count works
    assert torch.allclose(loaded(x, y), res.loss(x, y))
    g = make_linear_task(dim=5, classes=3, n_train=200, seed=123)
    assert not train(g.task, loaded, steps=20).diverged


def test_learn_mln_reports_fitness_on_tasks_outside_the_selection():
    """final_fitness is the chosen loss's score on tasks disjoint from those that chose it."""

    opts = {**TINY, "generations": 1, "eval_tasks": 3}
    res = learn_mln(None, seed=2, **opts)
    chosen_on, reported_on = res.info["selection_task_seeds"], res.info["report_task_seeds"]
    assert len(chosen_on) == len(reported_on) == 3 and not set(chosen_on) & set(reported_on)
    meta_train_seeds = {s for g in range(5) for s in task_seeds(2, 0, g, TINY["tasks_per_eval"])}
    assert not set(reported_on) & meta_train_seeds
    common = {k: res.config[k] for k in ("dim", "train_steps", "n_train", "n_val", "seed")}
    report = MLNFitness(
        classes=res.config["classes"],
        tasks_per_eval=3,
        stream=3,
        lr=res.config["train_lr"],
        **common,
    )
    assert [g.seed for g in report.tasks()] == reported_on
    assert report.score(res.loss).value == pytest.approx(res.info["final_fitness"], abs=1e-12)
    chosen = res.info[f"{res.info['chosen']}_fitness"]
    assert chosen != res.info["final_fitness"]  # a different task set gives another value


def test_learn_mln_resumes_and_accepts_cli_call(tmp_path):
    opts = {**TINY, "generations": 2, "eval_tasks": 0}
    first = learn_mln(None, seed=1, progress=True, device="cpu", run_dir=tmp_path, **opts)
    more = learn_mln(None, seed=1, run_dir=tmp_path, **{**opts, "generations": 3})
    assert [h["best"] for h in more.history[:2]] == [h["best"] for h in first.history]
    fresh = learn_mln(None, seed=1, **{**opts, "generations": 3})
    assert [h["best"] for h in fresh.history] == [h["best"] for h in more.history]
    assert more.info["chosen"] == "mean"


def test_learn_mln_cma_and_bad_options():
    res = learn_mln(None, es="cma", **{**TINY, "generations": 1, "popsize": 4, "eval_tasks": 1})
    assert len(res.history) == 1 and res.config["es"] == "cma"
    with pytest.raises(ConfigError, match="unknown option"):
        learn_mln(None, **TINY, tasks_per_evl=3)
    with pytest.raises(ConfigError, match="es must be"):
        learn_mln(None, es="pso")


def test_ce_init_matches_cross_entropy():
    loss = mln_template(hidden=(16, 16), init="ce")
    logits, y = torch.randn(256, 5) * 2, torch.randint(0, 5, (256,))
    ce = torch.nn.functional.cross_entropy(logits, y)
    with torch.no_grad():
        assert float(loss(logits, y)) == pytest.approx(float(ce), rel=0.05)
    fit = MLNFitness(dim=4, classes=3, tasks_per_eval=1, train_steps=50)
    cands = [Candidate.from_loss(0, loss), Candidate(1, {"kind": "cross_entropy"})]
    by_loss, by_ce = SerialEvaluator(fit).evaluate(cands)
    assert by_loss.value == pytest.approx(by_ce.value, abs=0.02)
