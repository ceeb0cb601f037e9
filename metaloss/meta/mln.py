"""MLN (Hai et al.): evolve a neural loss on generated linear tasks with known ground truth.

Every generation of an evolution strategy (OpenAI-ES by default, or CMA-ES) draws a fresh
batch of random linear classification tasks (:func:`metaloss.tasks.generated.make_linear_task`).
A candidate loss trains a fresh logistic-regression model on each task for a short run; its
fitness is the angle between the learned and the true classifier, ``1 - cos(w_c, w*_c)``
averaged over the classes (both matrices centred over classes, since softmax ignores a
vector added to every class row) and over the task batch. The cosine is scale-invariant, so
a loss is not rewarded for growing ``|w|`` (which cross-entropy keeps doing) but only for
finding the right direction; ``objective="val_error"`` uses the validation error instead.

All candidates of a generation see the same tasks and model initialisations: the task batch
is a function of ``(seed, generation)`` and the generation of a candidate is
``candidate.id // popsize`` (searches number their candidates consecutively), so the fitness
is a pure function of the candidate, as the serial / batched / Ray evaluators and
:func:`~metaloss.meta.search.run_search`'s resume require.

The learned loss is an output-wise :class:`~metaloss.losses.neural.NeuralLoss` (log-softmax
and one-hot target per class -> scalar, summed over classes), so the saved run directory
works on any classification task (``metaloss train --loss RUN_DIR``).

Example:
    >>> from metaloss.meta.mln import learn_mln
    >>> res = learn_mln(generations=2, popsize=4, tasks_per_eval=1, train_steps=20,
    ...                 eval_tasks=1, init="random")
    >>> res.method, len(res.history), res.loss.kind
    ('mln', 2, 'neural')
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.losses.base import Loss
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.config import EvaluatorSpec, build_evaluator, evaluator_name
from metaloss.meta.configs import MLNConfig
from metaloss.meta.driver import Budget, run
from metaloss.meta.evolution import CMAES, OpenAIES, VectorFamily
from metaloss.results import LearnResult
from metaloss.tasks.base import TrainConfig
from metaloss.tasks.generated import GeneratedTask, cosine_distance, make_linear_task
from metaloss.training import train

__all__ = ["MLNFitness", "fit_to_cross_entropy", "learn_mln", "mln_template", "task_seeds"]

OBJECTIVES = ("cosine", "val_error")
# task-seed streams: meta-training, the held-out tasks that choose between the ES mean and
# its best sample, and the report tasks on which the chosen loss is scored (no selection).
# bench/mln_eval.py evaluates on stream 2.
_TRAIN_STREAM, _HELDOUT_STREAM, _REPORT_STREAM = 0, 1, 3


def task_seeds(seed: int, stream: int, index: int, count: int) -> list[int]:
    """``count`` task seeds for ``(seed, stream, index)`` (independent streams, no overlap).

    Stream 0 is meta-training (``index`` = generation), stream 1 the held-out tasks on
    which :func:`learn_mln` chooses its final loss, stream 3 those it reports the chosen
    loss's fitness on; other streams are free for evaluations.

    Example:
        >>> task_seeds(0, 0, 3, 2) == task_seeds(0, 0, 3, 2) != task_seeds(0, 0, 4, 2)
        True
    """
    if min(seed, stream, index) < 0 or count < 0:
        raise ConfigError("task_seeds: seed, stream, index and count must be >= 0")
    state = np.random.SeedSequence([seed, stream, index]).generate_state(count, np.uint32)
    return [int(s) & 0x7FFFFFFF for s in state]


@dataclass
class MLNFitness:
    """Fitness of a candidate loss on a batch of generated linear tasks (lower is better).

    Attributes:
        dim: input dimension of the generated tasks.
        classes: number of classes, or a list of them (task ``k`` of a batch uses
            ``classes[k % len(classes)]``, so a batch mixes class counts).
        tasks_per_eval: tasks per batch (the fitness is their mean).
        train_steps: SGD steps of each training run.
        popsize: candidates per generation (generation = ``candidate.id // popsize``);
            ``None`` makes every candidate generation 0.
        resample: draw a new task batch every generation (else generation 0's always).
        objective: ``cosine`` (``1 - cos`` to the ground truth) or ``val_error``.
        include_bias: append the bias to each weight row before comparing.
        n_train, n_val: training / validation points per task.
        margin, label_noise: see :func:`~metaloss.tasks.generated.make_linear_task`.
        lr, batch_size: the SGD protocol of the training runs.
        seed, stream: base seed and stream of the task seeds (:func:`task_seeds`); stream 0
            is meta-training, 1 the held-out tasks of :func:`learn_mln`.
        device: where the training runs happen.

    Example:
        >>> from metaloss.evaluators import Candidate
        >>> fit = MLNFitness(tasks_per_eval=2, train_steps=50)
        >>> f = fit(Candidate(0, {"kind": "cross_entropy"}))
        >>> f.ok, 0 <= f.value < 0.5, sorted(f.info)
        (True, True, ['cosine', 'generation', 'val_error'])
    """

    dim: int = 10
    classes: int | Sequence[int] = 5
    tasks_per_eval: int = 4
    train_steps: int = 100
    popsize: int | None = None
    resample: bool = True
    objective: str = "cosine"
    include_bias: bool = False
    n_train: int = 500
    n_val: int = 200
    margin: float = 0.0
    label_noise: float = 0.0
    lr: float = 0.1
    batch_size: int = 64
    seed: int = 0
    stream: int = _TRAIN_STREAM
    device: str = "cpu"
    _cache: dict[int, list[GeneratedTask]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"mln: objective must be one of {OBJECTIVES}, got {self.objective!r}")
        classes = [self.classes] if isinstance(self.classes, int) else list(self.classes)
        if not classes or any(int(c) < 2 for c in classes):
            raise ConfigError(f"mln: classes must be integers >= 2, got {self.classes!r}")
        self.classes = classes[0] if len(classes) == 1 else [int(c) for c in classes]
        if self.tasks_per_eval < 1 or self.train_steps < 1:
            raise ConfigError("mln: tasks_per_eval and train_steps must be >= 1")
        if self.popsize is not None and self.popsize < 1:
            raise ConfigError("mln: popsize must be >= 1")

    @property
    def class_list(self) -> list[int]:
        return [self.classes] if isinstance(self.classes, int) else list(self.classes)

    def config(self) -> TrainConfig:
        """The training protocol of a candidate's runs."""
        return TrainConfig(steps=self.train_steps, lr=self.lr, batch_size=self.batch_size)

    def generation_of(self, candidate: Candidate) -> int:
        """The generation a candidate belongs to (0 without ``popsize`` or ``resample``)."""
        if not self.resample or self.popsize is None:
            return 0
        return int(candidate.id) // self.popsize

    def tasks(self, generation: int = 0) -> list[GeneratedTask]:
        """The task batch of a generation (cached: only the latest one is kept)."""
        if generation not in self._cache:
            seeds = task_seeds(self.seed, self.stream, generation, self.tasks_per_eval)
            classes = self.class_list
            batch = [
                make_linear_task(
                    self.dim,
                    classes[k % len(classes)],
                    n_train=self.n_train,
                    n_val=self.n_val,
                    n_test=1,
                    margin=self.margin,
                    label_noise=self.label_noise,
                    seed=s,
                ).to(self.device)
                for k, s in enumerate(seeds)
            ]
            self._cache.clear()
            self._cache[generation] = batch
        return self._cache[generation]

    def score(self, loss: Loss | torch.nn.Module, generation: int = 0) -> Fitness:
        """Train on every task of ``generation``'s batch with ``loss``; the mean objective."""
        cos, err, seconds = [], [], 0.0
        for g in self.tasks(generation):
            res = train(g.task, loss, self.config(), seed=g.seed)
            seconds += res.seconds
            if res.diverged or not math.isfinite(res.val_metric):
                return Fitness.failure("training diverged (non-finite loss or weights)", seconds)
            cos.append(float(self.distance(res.model, g)))
            err.append(res.val_metric)
        info = {"cosine": float(np.mean(cos)), "val_error": float(np.mean(err))}
        value = info["cosine"] if self.objective == "cosine" else info["val_error"]
        return Fitness(value, seconds=seconds, info={**info, "generation": generation})

    def distance(self, model: torch.nn.Module, g: GeneratedTask) -> torch.Tensor:
        """``1 - cos`` between a trained linear model and the ground truth of ``g``."""
        lin = _last_linear(model)
        w, w_star = lin.weight.detach().cpu(), g.w
        if w_star is None:
            raise ConfigError("mln: the cosine objective needs a linear ground truth")
        if self.include_bias:
            w = torch.cat([w, lin.bias.detach().cpu()[:, None]], 1)
            w_star = torch.cat([w_star, g.b[:, None]], 1)  # type: ignore[index]
        return cosine_distance(w, w_star)

    def __call__(self, candidate: Candidate) -> Fitness:
        return self.score(candidate.build(), self.generation_of(candidate))


def _last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        raise ConfigError("mln: the base model has no linear layer to compare")
    return layers[-1]


# --------------------------------------------------------------------------------------
# the meta-loss network


def mln_template(
    hidden: Sequence[int] = (16, 16),
    activation: str = "relu",
    output: str = "softplus",
    inputs: str = "logprob",
    bias: bool = True,
    init: str = "ce",
    seed: int = 0,
) -> NeuralLoss:
    """The MLN: a small output-wise :class:`NeuralLoss` ``f(log p_c, y_c)``, summed over classes.

    ``init="ce"`` pre-fits it to cross-entropy's per-class term ``-y_c log p_c`` (see
    :func:`fit_to_cross_entropy`), so that evolution starts from a working loss;
    ``init="random"`` keeps the seeded random initialisation.

    Example:
        >>> import torch
        >>> loss = mln_template(init="ce")
        >>> logits, y = torch.randn(64, 5), torch.randint(0, 5, (64,))
        >>> ce = torch.nn.functional.cross_entropy(logits, y)
        >>> bool(abs(loss(logits, y) - ce) < 0.1 * ce)
        True
    """
    if init not in ("ce", "random"):
        raise ConfigError(f"mln: init must be 'ce' or 'random', got {init!r}")
    loss = NeuralLoss(
        hidden=tuple(int(h) for h in hidden),
        activation=activation,
        output=output,
        bias=bias,
        inputs=inputs,
        class_reduction="sum",
        seed=seed,
    )
    if init == "ce":
        key = json.dumps(loss.spec(), sort_keys=True)
        if key not in _CE_INIT:  # the fit is deterministic: reuse it within a process
            fit_to_cross_entropy(loss, seed=seed)
            _CE_INIT[key] = {k: v.detach().clone() for k, v in loss.state_dict().items()}
        loss.load_state_dict(_CE_INIT[key])
    return loss


_CE_INIT: dict[str, dict[str, torch.Tensor]] = {}


def fit_to_cross_entropy(
    loss: NeuralLoss, steps: int = 400, points: int = 1024, lr: float = 2e-2, seed: int = 0
) -> float:
    """Regress ``loss.pointwise`` on cross-entropy's per-class term; returns the final MSE.

    Inputs are the loss's own inputs (log-softmax or softmax of random logits with scales
    from 0.3 to 6 over 2 to 10 classes) and one-hot targets; the target value is
    ``-y log p``. Deterministic for ``seed`` (Adam, full batch, on the CPU).
    """
    gen = torch.Generator().manual_seed(seed)
    chunks_p, chunks_t = [], []
    per = max(1, points // 9 // 8)
    for classes in range(2, 11):
        for scale in (0.3, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
            logits = torch.randn(per, classes, generator=gen) * scale
            y = torch.randint(0, classes, (per,), generator=gen)
            chunks_p.append(torch.log_softmax(logits, -1).reshape(-1))
            chunks_t.append(torch.nn.functional.one_hot(y, classes).float().reshape(-1))
    logp, t = torch.cat(chunks_p), torch.cat(chunks_t)
    target = -t * logp
    p = logp if loss.inputs == "logprob" else logp.exp()
    weight = 1.0 + t  # the true-class term carries the gradient of cross-entropy
    params = [q for q in loss.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    value = math.inf
    for i in range(steps):
        if i == steps * 2 // 3:
            for group in opt.param_groups:
                group["lr"] = lr / 10
        err = (weight * (loss.pointwise(p, t) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
        value = float(err.detach())
    loss.zero_grad(set_to_none=True)
    return value


# --------------------------------------------------------------------------------------
# the learner


def _es_mean(search: OpenAIES | CMAES) -> np.ndarray:
    if isinstance(search, OpenAIES):
        return np.asarray(search.mean, dtype=float)
    return np.asarray(search.es.mean, dtype=float)


def learn_mln(
    task: Any = None,
    config: MLNConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    evaluator: EvaluatorSpec = "auto",
    evaluator_options: Mapping[str, Any] | None = None,
    device: str = "cpu",
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("mln", None)``: evolve an MLN on generated linear tasks.

    Args:
        task: ignored (MLN meta-trains on generated tasks only); kept for the common API.
        config: an :class:`~metaloss.meta.configs.MLNConfig` (default: its defaults);
            ``overrides`` are its fields. ``generations``, ``popsize``: evolution budget;
            ``es``: ``openai`` (antithetic sampling, centred ranks, Adam; ``sigma``, ``lr``)
            or ``cma`` (CMA-ES with step size ``sigma``); the task options (``dim``,
            ``classes``, ``tasks_per_eval``...) are :class:`MLNFitness`'s; ``hidden``,
            ``activation``, ``output``, ``inputs``, ``init`` are :func:`mln_template`'s.
            ``eval_tasks``: held-out tasks on which the initial loss, the ES mean and the
            best sample are scored after the search; the better of mean and best is
            returned (0: return the ES mean without scoring). The returned and the initial
            loss are then scored on ``eval_tasks`` further tasks that took no part in the
            choice.
        evaluator: ``serial``, ``batched``, ``pool`` or ``ray`` (built with
            ``evaluator_options``), or a factory of the fitness function.
        device: where the generated tasks and models live.

    The scores are in ``result.info``: on the selection tasks ``initial_fitness``,
    ``mean_fitness``, ``best_fitness`` and ``chosen``; on the report tasks (unbiased by the
    choice) ``final_fitness`` (the returned loss) and ``final_initial_fitness`` (the
    initial loss, for comparison); the task seeds of both sets are recorded too.

    Example:
        >>> res = learn_mln(None, MLNConfig.fast(), init="random")
        >>> res.config["generations"], res.loss.kind
        (2, 'neural')
    """
    cfg = MLNConfig.resolve(config, overrides)
    generations, popsize, es, sigma, lr = cfg.generations, cfg.popsize, cfg.es, cfg.sigma, cfg.lr
    hidden, activation, output, inputs = cfg.hidden, cfg.activation, cfg.output, cfg.inputs
    init, eval_tasks, weight_decay = cfg.init, cfg.eval_tasks, cfg.weight_decay
    tasks_per_eval, resample, dim = cfg.tasks_per_eval, cfg.resample, cfg.dim
    classes = cfg.classes[0] if len(cfg.classes) == 1 else list(cfg.classes)
    template = mln_template(hidden, activation, output, inputs, init=init, seed=seed)
    family = VectorFamily(template)
    search: OpenAIES | CMAES
    if es == "openai":
        search = OpenAIES(
            family, sigma=sigma, popsize=popsize, lr=lr, seed=seed, weight_decay=weight_decay
        )
    else:
        search = CMAES(family, sigma=sigma, popsize=popsize, seed=seed)
    common = dict(
        dim=dim,
        classes=classes,
        train_steps=cfg.train_steps,
        objective=cfg.objective,
        include_bias=cfg.include_bias,
        n_train=cfg.n_train,
        n_val=cfg.n_val,
        margin=cfg.margin,
        label_noise=cfg.label_noise,
        lr=cfg.train_lr,
        batch_size=cfg.batch_size,
        seed=seed,
        device=device,
    )
    fitness = MLNFitness(
        tasks_per_eval=tasks_per_eval, popsize=popsize, resample=resample, **common
    )
    ev = build_evaluator(evaluator, fitness, evaluator_options, "mln")
    hof: list[dict[str, Any]] = []

    def record(gen: int, cands: list[Candidate], fits: list[Fitness]) -> None:
        for c, f in zip(cands, fits):
            if f.ok:
                row = {"fitness": f.value, "formula": f"candidate {c.id} (generation {gen})"}
                hof.append({**row, "generation": gen, "candidate": c.id, **f.info})
        hof.sort(key=lambda r: r["fitness"])
        del hof[10:]

    start = time.perf_counter()
    found = run(
        search,
        ev,
        Budget(generations),
        [record],
        method="mln",
        task="generated-linear",
        config={**cfg.to_dict(), "evaluator": evaluator_name(evaluator), "seed": seed},
        run_dir=run_dir,
        progress=progress,
        name=f"mln generated-linear d{dim}",
    )
    history = found.history
    x_mean, x_best, x0 = _es_mean(search), np.asarray(search.best_x, float), family.x0()
    info: dict[str, Any] = {"best_sample_fitness": search.best_fitness}
    if "evaluator" in found.info:  # evaluator="auto": what it chose and why
        info["evaluator"] = found.info["evaluator"]
    chosen, x_final = "mean", x_mean
    if eval_tasks:
        held = MLNFitness(tasks_per_eval=eval_tasks, stream=_HELDOUT_STREAM, **common)
        scores = {k: held.score(family.loss(x)) for k, x in (("initial", x0), ("mean", x_mean))}
        scores["best"] = held.score(family.loss(x_best))
        for k, f in scores.items():
            info[f"{k}_fitness"] = f.value if f.ok else None
        if scores["best"].value < scores["mean"].value:
            chosen, x_final = "best", x_best
        report = MLNFitness(tasks_per_eval=eval_tasks, stream=_REPORT_STREAM, **common)
        for k, x in (("final", x_final), ("final_initial", x0)):
            f = report.score(family.loss(x))
            info[f"{k}_fitness"] = f.value if f.ok else None
        info["selection_task_seeds"] = [g.seed for g in held.tasks()]
        info["report_task_seeds"] = [g.seed for g in report.tasks()]
    info["chosen"] = chosen
    loss = family.loss(x_final)
    return LearnResult(
        method="mln",
        task="generated-linear",
        loss=loss,
        seconds=time.perf_counter() - start,
        history=history,
        config={
            **cfg.to_dict(),  # every option under its own name (train_lr is not the ES lr)
            "evaluator": evaluator_name(evaluator),
            "seed": seed,
            "device": str(device),
        },
        hall_of_fame=hof,
        info=info,
    )
