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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from metaloss.errors import ConfigError
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators import make_evaluator
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.evaluators.serial import TrainFitness
from metaloss.losses.symbolic import (
    SymbolicLoss,
    Tree,
    canonical,
    double_tournament,
    one_point_crossover,
    ramped_half_and_half,
    subtree_mutation,
)
from metaloss.meta.search import run_search
from metaloss.meta.unrolled import MetaStepper, ML3Config
from metaloss.results import LearnResult
from metaloss.seeds import search_seed
from metaloss.tasks.base import Task
from metaloss.validate import typed_options


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
    ) -> None:
        if population < 2 or not 0 <= crossover <= 1 or not 0 <= mutation <= 1:
            raise ConfigError("gp: population >= 2, crossover and mutation in [0, 1]")
        if not 0 <= elitism < population:
            raise ConfigError("gp: elitism must be in [0, population)")
        self.population, self.crossover, self.mutation = population, crossover, mutation
        self.tournament, self.parsimony, self.max_height = tournament, parsimony, max_height
        self.init_depth, self.elitism, self.hof_size = tuple(init_depth), elitism, hof_size
        self.learn_weights, self.seed = learn_weights, seed
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

    # -- variation -------------------------------------------------------------------------
    def _offspring(self) -> list[Tree]:
        fits = [m.fitness for m in self.members]
        sizes = [m.tree.size for m in self.members]
        n = self.population - self.elitism
        idx = double_tournament(
            range(len(self.members)), fits, sizes, n, self.rng, self.tournament, self.parsimony
        )
        kids = [self.members[i].tree for i in idx]
        for i in range(1, len(kids), 2):
            if self.rng.random() < self.crossover:
                kids[i - 1], kids[i] = one_point_crossover(
                    kids[i - 1], kids[i], self.rng, self.max_height
                )
        for i in range(len(kids)):
            if self.rng.random() < self.mutation:
                kids[i] = subtree_mutation(kids[i], self.rng, max_height=self.max_height)
        return kids

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
            if member is None:
                member = Member(tree, key)
                self._pending[key] = member
                loss = SymbolicLoss(tree, learn_weights=self.learn_weights, seed=self._next_id)
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

    def loss_of(self, member: Member) -> SymbolicLoss:
        loss = SymbolicLoss(member.tree, learn_weights=self.learn_weights)
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
    loss: torch.nn.Module, task: Task, seed: int = 0, n: int = 256, steps: int = 50, lr: float = 0.5
) -> tuple[bool, str]:
    """Minimise the loss directly over free predictions for a fixed batch of real targets.

    Accept when that lowers the task metric (error rate / MSE) of the free predictions:
    a loss that cannot even fit free outputs cannot train a model. Seeded, cheap.
    """
    g = torch.Generator().manual_seed(search_seed(seed, "filter"))
    y = task.val.y[:n]
    shape = (len(y), task.num_outputs)
    z = (0.1 * torch.randn(shape, generator=g)).to(task.device).requires_grad_()
    start = float(task.metric(z.detach(), y))
    opt = torch.optim.SGD([z], lr=lr)
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

    def prepare(self, candidate: Candidate) -> tuple[Candidate, dict[str, torch.Tensor]] | Fitness:
        """The cheap-first steps before training: the filter, then the local search.

        Returns the tuned candidate and its tuned tensors, or a failure record.
        """
        loss = candidate.build().to(self.task.device)
        if self.filter_steps:
            ok, reason = rejection_filter(loss, self.task, self.seed, steps=self.filter_steps)
            if not ok:
                return Fitness.failure(reason)
        tensors: dict[str, torch.Tensor] = {}
        if self.local_steps and any(p.requires_grad for p in loss.parameters()):
            cfg = ML3Config(meta_steps=self.local_steps, meta_lr=self.local_lr)
            stepper = MetaStepper(loss, self.task, cfg, seed=self.seed)
            for _ in range(self.local_steps):
                stepper.step()
            if not all(torch.isfinite(p).all() for p in loss.parameters()):
                return Fitness.failure("local search: non-finite weights")
            tensors = {"weights": loss.weights.detach().cpu().clone()}
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


_EVOMAL_OPTIONS = ("fitness_steps", "local_steps", "local_lr", "filter_steps", "seed")
fitness_kinds.register(EvoMALFitness.kind, EvoMALFitness)


def _learn_gp(
    method: str,
    task: Task,
    seed: int,
    progress: bool,
    run_dir: str | Path | None,
    population: int,
    generations: int,
    fitness_steps: int,
    local_steps: int,
    evaluator: str,
    **options: Any,
) -> LearnResult:
    if generations < 1:
        raise ConfigError(f"{method}: generations must be >= 1")
    learn_weights = method == "evomal"
    gp_fields = {
        "crossover",
        "mutation",
        "tournament",
        "parsimony",
        "max_height",
        "init_depth",
        "seed_trees",
        "elitism",
        "hof_size",
    }
    ev_fields = {"address", "num_workers", "max_retries", "chunk_size", "threads_per_worker"}
    unknown = set(options) - gp_fields - ev_fields - {"filter_steps", "local_lr"}
    if unknown:
        raise ConfigError(f"{method}: unknown options {sorted(unknown)}")
    search = GPSearch(
        population=population,
        learn_weights=learn_weights,
        seed=seed,
        **{k: v for k, v in options.items() if k in gp_fields},
    )
    fitness = EvoMALFitness(
        task,
        fitness_steps=fitness_steps,
        local_steps=local_steps if learn_weights else 0,
        seed=seed,
        **{k: v for k, v in options.items() if k in ("filter_steps", "local_lr")},
    )
    ev = make_evaluator(evaluator, fitness, **{k: v for k, v in options.items() if k in ev_fields})
    start = time.perf_counter()
    history = run_search(search, ev, generations, run_dir, progress, f"{method} {task.name}")
    hof = search.hall_of_fame()
    if not hof:
        raise ConfigError(f"{method}: every candidate was rejected; try a larger budget")
    best = search.loss_of(hof[0])
    rows = []
    for m in hof:
        loss = search.loss_of(m)
        rows.append(
            {
                "fitness": m.fitness,
                "complexity": m.tree.size,
                "formula": loss.describe(),
                "canonical": m.key,
                "tree": m.tree.to_json(),
                "weights": None if m.weights is None else [float(w) for w in m.weights],
            }
        )
    return LearnResult(
        method=method,
        task=task.name,
        loss=best,
        seconds=time.perf_counter() - start,
        history=history,
        config={
            "population": population,
            "generations": generations,
            "fitness_steps": fitness_steps,
            "local_steps": local_steps if learn_weights else 0,
            "evaluator": evaluator,
            "seed": seed,
            **options,
        },
        hall_of_fame=rows,
        info={
            "best_fitness": hof[0].fitness,
            "evaluated": search.evaluated,
            "cache_hits": search.cache_hits,
            "rejected": search.rejections(),
        },
    )


@typed_options
def learn_evomal(
    task: Task,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    population: int = 25,
    generations: int = 50,
    fitness_steps: int = 500,
    local_steps: int = 250,
    evaluator: str = "serial",
    **options: Any,
) -> LearnResult:
    """``metaloss.learn("evomal", task)``: GP + gradient-tuned edge weights (reference budget)."""
    return _learn_gp(
        "evomal", task, seed, progress, run_dir, population, generations, fitness_steps,
        local_steps, evaluator, **options,
    )  # fmt: skip


@typed_options
def learn_gplfl(
    task: Task,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    population: int = 25,
    generations: int = 50,
    fitness_steps: int = 500,
    evaluator: str = "serial",
    **options: Any,
) -> LearnResult:
    """``metaloss.learn("gplfl", task)``: the same GP search with every weight fixed at 1."""
    return _learn_gp(
        "gplfl", task, seed, progress, run_dir, population, generations, fitness_steps, 0,
        evaluator, **options,
    )  # fmt: skip
