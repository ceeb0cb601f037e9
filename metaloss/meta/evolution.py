"""Evolution strategies over parametric losses (ask/tell): CMA-ES and OpenAI-ES.

A :class:`VectorFamily` maps real vectors to candidate losses by writing the vector into
a template loss's parameters (Taylor theta, neural-loss weights).

Example:
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> from metaloss.evaluators import Fitness
    >>> es = CMAES(VectorFamily(TaylorLoss()), sigma=1.2, popsize=6, seed=0)
    >>> cands = es.ask()
    >>> es.tell(cands, [Fitness(float(abs(c.tensors["theta"]).sum())) for c in cands])
    >>> len(cands), es.best_fitness < float("inf")
    (6, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.losses.base import Loss
from metaloss.meta.driver import Outcome


class VectorFamily:
    """Flatten / unflatten the trainable parameters of a template loss."""

    def __init__(self, template: Loss) -> None:
        self.template = template
        self.names = [n for n, p in template.named_parameters() if p.requires_grad]
        params = dict(template.named_parameters())
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dim = sum(self.sizes)
        if self.dim == 0:
            raise ConfigError(f"loss {template.kind!r} has no parameters to evolve")

    def x0(self) -> np.ndarray:
        params = dict(self.template.named_parameters())
        return np.concatenate([params[n].detach().cpu().numpy().ravel() for n in self.names])

    def tensors(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n, shape, size in zip(self.names, self.shapes, self.sizes):
            out[n] = torch.as_tensor(np.asarray(x[i : i + size]), dtype=torch.float32).reshape(
                shape
            )
            i += size
        return out

    def candidate(self, id: int, x: np.ndarray) -> Candidate:
        return Candidate(id, self.template.spec(), self.tensors(x))

    def loss(self, x: np.ndarray) -> Loss:
        return self.candidate(0, x).build()


class CMAES:
    """CMA-ES (the ``cma`` package) over a :class:`VectorFamily`; minimises fitness."""

    def __init__(
        self,
        family: VectorFamily,
        sigma: float = 1.2,
        popsize: int = 25,
        seed: int = 0,
        x0: np.ndarray | None = None,
    ) -> None:
        import cma

        if not sigma > 0 or popsize < 2:
            raise ConfigError("cma-es: sigma must be > 0 and popsize >= 2")
        self.family = family
        start = family.x0() if x0 is None else np.asarray(x0, float)
        opts = {"popsize": popsize, "seed": seed + 1, "verbose": -9, "CMA_diagonal": False}
        self.es = cma.CMAEvolutionStrategy(start, sigma, opts)
        self._next_id = 0
        self._xs: list[np.ndarray] = []
        self.best_x, self.best_fitness = start, math.inf

    def ask(self) -> list[Candidate]:
        self._xs = [np.asarray(x) for x in self.es.ask()]
        cands = [self.family.candidate(self._next_id + i, x) for i, x in enumerate(self._xs)]
        self._next_id += len(cands)
        return cands

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        values = [f.value if f.ok and math.isfinite(f.value) else 1e12 for f in fitnesses]
        self.es.tell(self._xs, values)
        for x, f in zip(self._xs, fitnesses):
            if f.ok and f.value < self.best_fitness:
                self.best_x, self.best_fitness = x, f.value

    def best_loss(self) -> Loss:
        return self.family.loss(self.best_x)

    def result(self) -> Outcome:
        """The best sample's loss and fitness (the driver's outcome)."""
        return Outcome(self.best_loss(), info={"best_fitness": self.best_fitness})


class OpenAIES:
    """OpenAI-ES (Salimans et al.): antithetic Gaussian perturbations, centred-rank fitness
    shaping, Adam on the search mean; minimises fitness."""

    def __init__(
        self,
        family: VectorFamily,
        sigma: float = 0.05,
        popsize: int = 20,
        lr: float = 0.02,
        seed: int = 0,
        weight_decay: float = 0.0,
    ) -> None:
        if popsize < 2 or popsize % 2:
            raise ConfigError("openai-es: popsize must be an even number >= 2 (antithetic pairs)")
        if sigma <= 0 or lr <= 0:
            raise ConfigError("openai-es: sigma and lr must be > 0")
        self.family, self.sigma, self.popsize, self.lr = family, sigma, popsize, lr
        self.weight_decay = weight_decay
        self.rng = np.random.default_rng(seed)
        self.mean = family.x0().astype(np.float64)
        self._opt = mf.adam(lr, weight_decay=weight_decay)  # on the mean, in float64
        self._opt_state = self._opt.init({"mean": torch.from_numpy(self.mean)})
        self._eps = np.zeros((0, family.dim))
        self._next_id = 0
        self.best_x, self.best_fitness = self.mean.copy(), math.inf

    def ask(self) -> list[Candidate]:
        half = self.rng.standard_normal((self.popsize // 2, self.family.dim))
        self._eps = np.concatenate([half, -half])
        xs = self.mean + self.sigma * self._eps
        cands = [self.family.candidate(self._next_id + i, x) for i, x in enumerate(xs)]
        self._next_id += len(cands)
        return cands

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None:
        values = np.array(
            [f.value if f.ok and math.isfinite(f.value) else np.inf for f in fitnesses]
        )
        for x_eps, f in zip(self._eps, fitnesses):
            if f.ok and f.value < self.best_fitness:
                self.best_x, self.best_fitness = self.mean + self.sigma * x_eps, f.value
        ranks = np.empty(len(values))
        ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
        shaped = ranks / (len(values) - 1) - 0.5  # best (lowest) -> -0.5
        grad = (shaped[:, None] * self._eps).sum(0) / (len(values) * self.sigma)
        new, self._opt_state = self._opt.update(
            {"mean": torch.from_numpy(self.mean)},
            {"mean": torch.from_numpy(grad)},
            self._opt_state,
        )
        self.mean = new["mean"].numpy()

    def mean_loss(self) -> Loss:
        return self.family.loss(self.mean)

    def best_loss(self) -> Loss:
        return self.family.loss(self.best_x)

    def result(self) -> Outcome:
        """The search mean's loss (what the ES optimises), the best sample's fitness."""
        return Outcome(self.mean_loss(), info={"best_sample_fitness": self.best_fitness})


def taylorglo_search(
    popsize: int = 25, sigma: float = 1.2, seed: int = 0, theta0: Sequence[float] | None = None
) -> CMAES:
    """TaylorGLO's search: CMA-ES over the 8 parameters of a Taylor loss.

    >>> s = taylorglo_search(popsize=4, seed=0)
    >>> len(s.ask()), s.family.dim
    (4, 8)
    """
    from metaloss.losses.taylor import TaylorLoss

    theta = list(theta0) if theta0 is not None else None
    return CMAES(VectorFamily(TaylorLoss(theta)), sigma=sigma, popsize=popsize, seed=seed)
