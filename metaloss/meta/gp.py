"""EvoMAL and GP-LFL: genetic programming over symbolic losses (Raymond et al.).

The search (:class:`GPSearch`, ask/tell) evolves expression trees with ramped
half-and-half initialisation, one-point crossover, uniform subtree mutation, double
tournament selection, a height limit, elitism and a hall of fame. Trees are
de-duplicated by their canonical sympy form *before* evaluation, rejected trees included.

Each new candidate then goes through the cheap-first pipeline of :class:`EvoMALFitness`:
a seeded rejection filter (can the loss, minimised directly over free predictions, lower
the error?) -> local search of the edge weights by unrolled differentiation (EvoMAL only;
GP-LFL keeps every weight at 1) -> the fitness, a short training run of a fresh,
identically seeded base model.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> res = ml.learn("gplfl", task, population=4, generations=2, fitness_steps=20)
    >>> res.method, len(res.hall_of_fame) > 0
    ('gplfl', True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from metaloss.errors import ConfigError
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.evaluators.lr_grid import with_scale_free
from metaloss.evaluators.serial import TrainFitness
from metaloss.losses.normalized import normalize
from metaloss.losses.symbolic import (
    SymbolicLoss,
    Tree,
    canonical,
    double_tournament,
    ramped_half_and_half,
    var_and,
    var_or,
)
from metaloss.losses.symbolic.gp import TARGET_LOG_REASON, log_of_target
from metaloss.meta.config import EvaluatorSpec, build_evaluator, evaluator_name
from metaloss.meta.configs import EvoMALConfig, GPLFLConfig
from metaloss.meta.driver import Budget, Outcome, run, task_identity
from metaloss.meta.early_stop import early_stop_of
from metaloss.meta.unrolled import MetaStepper, ML3Config
from metaloss.results import LearnResult
from metaloss.seeds import search_seed
from metaloss.tasks.base import Task


@dataclass
class Member:
    tree: Tree
    key: str
    fitness: float = math.inf
    weights: torch.Tensor | None = None
    reason: str = ""


class GPSearch:
    """Genetic programming over :class:`~metaloss.losses.symbolic.Tree` losses (ask/tell)."""

    def __init__(
        self,
        population: int = 25,
        crossover: float = 0.7,
        mutation: float = 0.25,
        tournament: int = 4,
        parsimony: float = 1.4,
        max_height: int = 10,
        init_depth: tuple[int, int] = (2, 4),
        seed_trees: Sequence[str] | str | None = None,
        elitism: int = 1,
        hof_size: int = 10,
        learn_weights: bool = True,
        seed: int = 0,
        variation: str = "and",
        fitness_first: bool = True,
        mutation_method: str = "grow",
        root_weight: bool = True,
        reject_target_log: bool = False,
    ) -> None:
        if population < 2 or not 0 <= crossover <= 1 or not 0 <= mutation <= 1:
            raise ConfigError("gp: population >= 2, crossover and mutation in [0, 1]")
        if variation not in ("and", "or"):
            raise ConfigError(f"gp: variation must be 'and' or 'or', got {variation!r}")
        if variation == "or" and crossover + mutation > 1:
            raise ConfigError("gp: variation 'or' needs crossover + mutation <= 1")
        if mutation_method not in ("grow", "half"):
            raise ConfigError(f"gp: mutation_method must be grow or half, got {mutation_method!r}")
        if not 0 <= elitism < population:
            raise ConfigError("gp: elitism must be in [0, population)")
        self.population, self.crossover, self.mutation = population, crossover, mutation
        self.tournament, self.parsimony, self.max_height = tournament, parsimony, max_height
        self.init_depth, self.elitism, self.hof_size = tuple(init_depth), elitism, hof_size
        self.learn_weights, self.seed = learn_weights, seed
        self.variation, self.fitness_first = variation, bool(fitness_first)
        self.mutation_method, self.root_weight = mutation_method, bool(root_weight)
        self.reject_target_log = bool(reject_target_log)
        self.seed_trees = [Tree.parse(t) for t in resolve_seed_trees(seed_trees)]
        if len(self.seed_trees) > population:
            raise ConfigError("gp: more seed_trees than the population size")
        self.rng = random.Random(seed)
        self.members: list[Member] = []
        self.cache: dict[str, Member] = {}
        self.generation = 0
        self._pending: dict[str, Member] = {}
        self._next_id = 0
        self.evaluated = 0
        self.cache_hits = 0
        self.rejected_early = 0

    # -- variation -------------------------------------------------------------------------
    def _offspring(self) -> list[Tree]:
        fits = [m.fitness for m in self.members]
        sizes = [m.tree.size for m in self.members]
        n = self.population - self.elitism
        idx = double_tournament(
            range(len(self.members)),
            fits,
            sizes,
            n,
            self.rng,
            self.tournament,
            self.parsimony,
            self.fitness_first,
        )
        parents = [self.members[i].tree for i in idx]
        vary = var_or if self.variation == "or" else var_and
        return vary(
            parents, self.rng, self.crossover, self.mutation, self.max_height, self.mutation_method
        )

    def _key(self, tree: Tree) -> str:
        return canonical(tree)

    def ask(self) -> list[Candidate]:
        """New, never-seen trees of the next generation (cached ones are not re-evaluated)."""
        if not self.members:
            lo, hi = self.init_depth
            trees = list(self.seed_trees) + [
                ramped_half_and_half(self.rng, lo, hi, self.max_height)
                for _ in range(self.population - len(self.seed_trees))
            ]
            elites: list[Member] = []
        else:
            ranked = sorted(self.members, key=lambda m: (m.fitness, m.tree.size))
            elites = ranked[: self.elitism]
            trees = self._offspring()
        self._next = list(elites)
        self._pending = {}
        cands = []
        for tree in trees:
            key = self._key(tree)
            if key in self.cache:
                self.cache_hits += 1
                self._next.append(self.cache[key])
                continue
            member = self._pending.get(key)
            if member is None and self.reject_target_log and log_of_target(tree):
                member = Member(tree, key, reason=TARGET_LOG_REASON)
                self.cache[key] = member  # rejected before evaluation: fitness stays inf
                self.rejected_early += 1
            elif member is None:
                member = Member(tree, key)
                self._pending[key] = member
                loss = SymbolicLoss(
                    tree,
                    learn_weights=self.learn_weights,
                    seed=self._next_id,
                    root_weight=self.root_weight,
                )
                cands.append(Candidate(self._next_id, loss.spec(), {}))
                self._next_id += 1
            self._next.append(member)
        self._order = list(self._pending.values())
        return cands

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        for member, fit in zip(self._order, fitnesses):
            member.fitness = fit.value if fit.ok else math.inf
            member.reason = fit.reason
            member.weights = fit.tensors.get("weights")
            self.cache[member.key] = member
        self.evaluated += len(candidates)
        self.members = self._next
        self.generation += 1

    # -- results ---------------------------------------------------------------------------
    def hall_of_fame(self) -> list[Member]:
        """The best distinct trees seen so far (by fitness, then size)."""
        ok = [m for m in self.cache.values() if math.isfinite(m.fitness)]
        return sorted(ok, key=lambda m: (m.fitness, m.tree.size))[: self.hof_size]

    def result(self) -> Outcome:
        """The best tree's loss, the hall of fame as rows, and the search's counters (the
        driver's :class:`~metaloss.meta.driver.Outcome`)."""
        hof = self.hall_of_fame()
        if not hof:
            raise ConfigError("gp search: every candidate was rejected; try a larger budget")
        rows = [
            {"fitness": m.fitness, "complexity": m.tree.size,
             "formula": self.loss_of(m).describe(), "canonical": m.key,
             "tree": m.tree.to_json(),
             "weights": None if m.weights is None else [float(w) for w in m.weights]}
            for m in hof
        ]  # fmt: skip
        info = {"best_fitness": hof[0].fitness, "evaluated": self.evaluated,
                "cache_hits": self.cache_hits, "rejected": self.rejections()}  # fmt: skip
        return Outcome(self.loss_of(hof[0]), rows, info)

    def loss_of(self, member: Member) -> SymbolicLoss:
        loss = SymbolicLoss(
            member.tree, learn_weights=self.learn_weights, root_weight=self.root_weight
        )
        if member.weights is not None:
            loss.load_state_dict({"weights": member.weights})
        return loss

    def rejections(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.cache.values():
            if not math.isfinite(m.fitness):
                key = m.reason.split(":")[0][:60] or "unknown"
                out[key] = out.get(key, 0) + 1
        return out


BASELINE_TREES = {
    "ce": "mul(-1, mul(y, plog(y_hat)))",  # cross-entropy on probabilities
    "mse": "square(sub(y, y_hat))",
}


def resolve_seed_trees(seed_trees: Sequence[str] | str | None) -> list[str]:
    """Trees to put into the initial population, as prefix strings.

    ``"baselines"`` means cross-entropy and squared error; names in :data:`BASELINE_TREES`
    and prefix strings such as ``"abs(sub(y, y_hat))"`` may be mixed in a list. The
    reference EvoMAL starts from random trees only (``None``); seeding makes small budgets
    useful, because elitism then never loses the seeded losses.
    """
    if seed_trees is None:
        return []
    items = [seed_trees] if isinstance(seed_trees, str) else list(seed_trees)
    out: list[str] = []
    for item in items:
        if item == "baselines":
            out += list(BASELINE_TREES.values())
        else:
            out.append(BASELINE_TREES.get(item, item))
    return out


def rejection_filter(
    loss: torch.nn.Module,
    task: Task,
    seed: int = 0,
    n: int = 256,
    steps: int = 50,
    lr: float = 0.5,
    start_from: str = "random",
    momentum: float = 0.0,
    nesterov: bool = False,
) -> tuple[bool, str]:
    """Minimise the loss directly over free predictions for a fixed batch of real targets.

    Accept when that lowers the task metric (error rate / MSE) of the free predictions:
    a loss that cannot even fit free outputs cannot train a model. Seeded, cheap.

    ``start_from`` picks the starting predictions: ``"random"`` (small random logits for
    ``n`` validation targets) or ``"model"`` (the EvoMAL reference's protocol: the outputs
    of an untrained model of the task on the first ``n`` training inputs, optimised by SGD
    with the given ``lr``, ``momentum`` and ``nesterov``). Both draws come from the search
    stream of ``seed`` (:func:`metaloss.seeds.search_seed`), never a meta-test seed.
    """
    if start_from not in ("random", "model"):
        raise ConfigError(f"filter: start_from must be 'random' or 'model', got {start_from!r}")
    stream = search_seed(seed, "filter")
    if start_from == "model":
        y = task.train.y[:n]
        model = task.make_model(stream % 2**32).to(task.device)
        # train mode, as the reference calls its fresh network; the model is thrown away
        with torch.no_grad():
            z0 = model(task.train.x[:n].to(task.device))
        z = z0.detach().clone().requires_grad_()
    else:
        g = torch.Generator().manual_seed(stream)
        y = task.val.y[:n]
        shape = (len(y), task.num_outputs)
        z = (0.1 * torch.randn(shape, generator=g)).to(task.device).requires_grad_()
    start = float(task.metric(z.detach(), y))
    opt = torch.optim.SGD([z], lr=lr, momentum=momentum, nesterov=nesterov)
    for _ in range(steps):
        value = loss(z, y)
        if not torch.isfinite(value):
            return False, "filter: non-finite loss on free predictions"
        opt.zero_grad()
        value.backward()
        opt.step()
    end = float(task.metric(z.detach(), y)) if torch.isfinite(z).all() else math.inf
    if not end < start:
        return False, f"filter: metric did not improve ({start:.3f} -> {end:.3f})"
    return True, ""


@dataclass
class EvoMALFitness:
    """The per-candidate pipeline: filter -> local search (EvoMAL) -> training fitness.

    A staged fitness (:mod:`metaloss.evaluators.fitness`): ``prepare`` (filter, local
    search) then ``train_fitness()``; registered as the fitness kind ``"evomal"``.
    """

    kind: ClassVar[str] = "evomal"

    task: Task
    fitness_steps: int = 500
    local_steps: int = 250
    local_lr: float = 1e-3
    filter_steps: int = 50
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    filter_start: str = "random"
    filter_size: int = 256
    filter_lr: float | None = None
    filter_after_local: bool = False

    def _filter(self, loss: torch.nn.Module) -> Fitness | None:
        """The rejection filter (:func:`rejection_filter`); a failure record or None."""
        if not self.filter_steps:
            return None
        model_start = self.filter_start == "model"
        d = self.task.defaults
        lr = self.filter_lr if self.filter_lr is not None else (d.lr if model_start else 0.5)
        ok, reason = rejection_filter(
            loss, self.task, self.seed, n=self.filter_size, steps=self.filter_steps, lr=lr,
            start_from=self.filter_start, momentum=d.momentum if model_start else 0.0,
            nesterov=d.nesterov if model_start else False,
        )  # fmt: skip
        return None if ok else Fitness.failure(reason)

    def prepare(self, candidate: Candidate) -> tuple[Candidate, dict[str, torch.Tensor]] | Fitness:
        """The steps before training: the filter, then the local search (cheap first), or
        with ``filter_after_local`` the local search, then the filter on the tuned loss (the
        reference's order).

        Returns the tuned candidate and its tuned tensors, or a failure record.
        """
        loss = candidate.build().to(self.task.device)
        if not self.filter_after_local and (failed := self._filter(loss)) is not None:
            return failed
        tensors: dict[str, torch.Tensor] = {}
        if self.local_steps and any(p.requires_grad for p in loss.parameters()):
            cfg = ML3Config(meta_steps=self.local_steps, meta_lr=self.local_lr)
            stepper = MetaStepper(loss, self.task, cfg, seed=self.seed)
            for _ in range(self.local_steps):
                stepper.step()
            if not all(torch.isfinite(p).all() for p in loss.parameters()):
                return Fitness.failure("local search: non-finite weights")
            tensors = {"weights": loss.weights.detach().cpu().clone()}
        if self.filter_after_local and (failed := self._filter(loss)) is not None:
            return failed
        return Candidate(candidate.id, candidate.spec, tensors or candidate.tensors), tensors

    def train_fitness(self) -> TrainFitness:
        """The final stage: a short training run of a fresh, identically seeded model.

        Its seed comes from the search stream of ``seed``: never a meta-test run's.
        """
        seed = search_seed(self.seed, "fitness")
        return TrainFitness(self.task, self.fitness_steps, seed, overrides=self.overrides)

    def to_options(self) -> dict[str, Any]:
        """Everything but the task, as JSON-able data (the fitness kind's options)."""
        return {k: getattr(self, k) for k in _EVOMAL_OPTIONS} | {"overrides": dict(self.overrides)}

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> EvoMALFitness:
        unknown = set(options) - set(_EVOMAL_OPTIONS) - {"overrides"}
        if unknown:
            raise ConfigError(f"evomal fitness: unknown options {sorted(unknown)}")
        return cls(task, **options)

    def __call__(self, candidate: Candidate) -> Fitness:
        return fitness_kinds.staged_call(self, candidate)


_EVOMAL_OPTIONS = ("fitness_steps", "local_steps", "local_lr", "filter_steps", "seed",
                   "filter_start", "filter_size", "filter_lr", "filter_after_local")  # fmt: skip
fitness_kinds.register(EvoMALFitness.kind, EvoMALFitness)


def _learn_gp(
    cfg: GPLFLConfig,
    task: Task,
    seed: int,
    progress: bool,
    run_dir: str | Path | None,
    evaluator: EvaluatorSpec,
    evaluator_options: Mapping[str, Any] | None,
) -> LearnResult:
    method = cfg.method
    stop = early_stop_of(cfg)  # checked before any work
    learn_weights = isinstance(cfg, EvoMALConfig)
    search = GPSearch(
        population=cfg.population, learn_weights=learn_weights, seed=seed, **cfg.gp_options()
    )
    fitness = EvoMALFitness(
        task,
        fitness_steps=cfg.fitness_steps,
        local_steps=cfg.local_steps if isinstance(cfg, EvoMALConfig) else 0,
        local_lr=cfg.local_lr if isinstance(cfg, EvoMALConfig) else 1e-3,
        filter_steps=cfg.filter_steps,
        seed=seed,
        filter_start=cfg.filter_start,
        filter_size=cfg.filter_size,
        filter_lr=cfg.filter_lr,
        filter_after_local=cfg.filter_after_local,
    )
    fitness = with_scale_free(fitness, cfg.fitness_lrs, cfg.normalize)  # scale-free options
    ev = build_evaluator(evaluator, fitness, evaluator_options, method)
    res = run(
        search,
        ev,
        Budget(cfg.generations, stop),
        method=method,
        task=task.name,
        config={**cfg.to_dict(), "evaluator": evaluator_name(evaluator), "seed": seed},
        run_dir=run_dir,
        progress=progress,
        data=task_identity(task),
    )
    res.loss = normalize(res.loss, cfg.normalize, task, seed)  # as its fitness saw it
    return res


def learn_evomal(
    task: Task,
    config: EvoMALConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    evaluator: EvaluatorSpec = "auto",
    evaluator_options: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("evomal", task)``: GP + gradient-tuned edge weights.

    ``config`` is an :class:`~metaloss.meta.configs.EvoMALConfig` (default: the reference
    budget); ``overrides`` are its fields. ``evaluator``: a name (built with
    ``evaluator_options``) or a factory of the fitness function.

    Example:
        >>> import metaloss as ml
        >>> res = learn_evomal(ml.tasks.get("iris-linear"), EvoMALConfig.fast())
        >>> res.method, res.config["local_steps"]
        ('evomal', 5)
    """
    cfg = EvoMALConfig.resolve(config, overrides)
    return _learn_gp(cfg, task, seed, progress, run_dir, evaluator, evaluator_options)


def learn_gplfl(
    task: Task,
    config: GPLFLConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    evaluator: EvaluatorSpec = "auto",
    evaluator_options: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("gplfl", task)``: the same GP search with every weight fixed at 1.

    ``config`` is a :class:`~metaloss.meta.configs.GPLFLConfig`; ``overrides`` its fields.

    Example:
        >>> import metaloss as ml
        >>> res = learn_gplfl(ml.tasks.get("iris-linear"), population=4, generations=2,
        ...                   fitness_steps=20)
        >>> res.method, res.config["population"]
        ('gplfl', 4)
    """
    cfg = GPLFLConfig.resolve(config, overrides)
    if type(cfg) is not GPLFLConfig:  # an EvoMALConfig is a GPLFLConfig too
        raise ConfigError(f"gplfl: config must be a GPLFLConfig, got {type(cfg).__name__}")
    return _learn_gp(cfg, task, seed, progress, run_dir, evaluator, evaluator_options)
