"""The config of every method: its options, defaults, help and presets (the single source).

``PRESETS`` holds the named budgets: ``fast`` (tests, demos), ``quick`` (the CPU ``quick``
suite), ``mnist`` (the MNIST / CIFAR-10 / transfer suites), ``reference`` (``bench
--budget reference``) and ``paper`` (what the paper and its reference code do: operators,
selection, weights, initialisation and budget; docs/presets.md lists every difference from
the defaults).
``ML3Config`` and ``AdaLFLConfig`` (in :mod:`metaloss.meta.unrolled` / ``online``) stay the
algorithms' internal settings; the method configs here are built into them.

Example:
    >>> from metaloss.meta.configs import CONFIGS, TaylorGLOConfig
    >>> TaylorGLOConfig.preset("quick").generations, sorted(CONFIGS)[:3]
    (6, ['adalfl', 'cestep', 'evomal'])
    >>> TaylorGLOConfig().with_options(popsize=1)
    Traceback (most recent call last):
    ...
    metaloss.errors.ConfigError: taylorglo: option popsize must be >= 2, got 1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from metaloss.errors import ConfigError
from metaloss.meta.config import MethodConfig, opt
from metaloss.meta.configs_control import BASES, CEStepConfig

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "softplus", "leaky_relu", "smooth_leaky_relu")
INITS = ("torch", "xavier", "kaiming")  # metaloss.losses.neural.INITS (no torch import here)
# "task" or a name of metaloss.losses.handcrafted.BASELINES (no torch import here)
META_OBJECTIVES = (
    "task", "ce", "mse", "focal", "label_smoothing", "mae", "gce", "sce", "poly1",
    "logit_adjusted", "class_balanced",
)  # fmt: skip
# option residual of the neural losses (metaloss.losses.neural.RESIDUALS): ce-step's bases
RESIDUALS = BASES
_RES_HELP = ("loss of the residual term: the task loss or a hand-made one, e.g. sce to learn "
             "a correction on top of symmetric cross-entropy")  # fmt: skip
# option normalize (metaloss.losses.normalized.NORMALIZE) and its help; scale-free options
NORMALIZE = ("none", "init", "running")
_NORM_HELP = ("rescale the learned loss to cross-entropy's gradient norm: at initialisation "
              "or on every batch (a running ratio); kept in the returned loss")  # fmt: skip
_LR_HELP = "meta-learn a learning-rate factor jointly, kept out of the loss (SGD only)"
# the early-stopping options of the population searches (metaloss.meta.early_stop)
_ES_HELP = ("stop a candidate whose validation metric at a checkpoint is above the "
            "reference metrics' quantile there (+ margin); off by default: on LeNet-5 it "
            "cost test error (docs/benchmarks.md)")  # fmt: skip
_ES_AT_HELP = "early-stopping checkpoints (fractions of fitness_steps)"
_ES_QUANTILE_HELP = ("quantile of the reference checkpoint metrics that a "
                     "candidate must not exceed")  # fmt: skip
_ES_MARGIN_HELP = "added to the early-stopping threshold (metric units)"
_ES_REF_HELP = ("early-stopping reference metrics: the previous generation's, or the best "
                "popsize ever recorded (elite)")  # fmt: skip
_ES_FLOOR_HELP = ("the early-stopping threshold is never below this quantile of the "
                  "previous generation's checkpoint metrics (0: no floor)")  # fmt: skip
_ES_RESCUE_HELP = ("when fewer candidates of a generation ran to the end, the stopped ones "
                   "that went furthest run again without stopping (0: never)")  # fmt: skip
_ES_EXAMPLES_HELP = ("validation examples measured at the checkpoints (a fixed subset; "
                     "0: all)")  # fmt: skip
_LRS_HELP = ("fitness = best validation metric over these multiples of the fitness run's "
             "learning rate, trained as one batched population (empty: off)")  # fmt: skip
# the NeuralLoss fields of ML3 / AdaLFL (the rest of their configs is meta-training)
LOSS_FIELDS = ("hidden", "activation", "output", "bias", "inputs", "residual_ce",
               "residual", "class_reduction", "beta", "gamma", "init")  # fmt: skip


@dataclass(frozen=True)
class ML3MethodConfig(MethodConfig):
    """ML3: offline meta-training of a neural loss through unrolled training steps."""

    method: ClassVar[str] = "ml3"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"meta_steps": 5},
        "quick": {"meta_steps": 300},
        "mnist": {"meta_steps": 500},
        "reference": {"meta_steps": 250},
        # ML3 reference (LearningToLearn): 2-50-50-1 ReLU, Softplus output, no biases,
        # Xavier init, Adam 1e-3, one inner step from a fresh model, the task loss on the
        # support batch itself, 500 meta steps (the sine experiment)
        "paper": {
            "meta_steps": 500,
            "query": "same",
            "init": "xavier",
            "hidden": (50, 50),
            "activation": "relu",
            "output": "softplus",
            "bias": False,
            "inner_steps": 1,
            "meta_lr": 1e-3,
            "reinit": True,
            "residual_ce": 0.0,
        },  # fmt: skip
    }

    meta_steps: int = opt(250, "meta (outer) steps", ge=0)
    inner_steps: int = opt(1, "differentiable base-model steps per meta step", ge=1)
    inner_lr: float | None = opt(None, "base-model learning rate (None: the task's)", gt=0)
    inner_optimizer: str = opt("sgd", "inner-loop optimiser", choices=("sgd", "adam"))
    inner_momentum: float = opt(0.0, "SGD momentum in the inner loop", ge=0)
    inner_nesterov: bool = opt(False, "Nesterov momentum in the inner loop")
    inner_weight_decay: float = opt(0.0, "L2 weight decay in the inner loop")
    meta_lr: float = opt(1e-3, "Adam learning rate of the loss parameters", gt=0)
    batch_size: int | None = opt(None, "support / query batch size (None: the task's)", gt=0)
    reinit: bool = opt(True, "re-initialise the base model every meta step")
    reset_every: int = opt(0, "with reinit=False: re-initialise every N meta steps (0: never)",
                           ge=0)  # fmt: skip
    query: str = opt("next", "query batch: another training batch, the support batch or val",
                     choices=("next", "same", "val"))  # fmt: skip
    grad_clip: float = opt(0.0, "clip the meta-gradient norm (0: off)", ge=0)
    inner_max_norm: float = opt(0.0, "clip the base model's gradient norm inside (0: off)", ge=0)
    checkpoint_every: int = opt(100, "checkpoint every N meta steps into the run dir", ge=0)
    hidden: tuple[int, ...] = opt((50, 50), "hidden layer widths of the loss network", gt=0)
    activation: str = opt("relu", "hidden activation", choices=ACTIVATIONS)
    output: str = opt("softplus", "output activation", choices=("softplus", "none"))
    bias: bool = opt(False, "biases in the loss network")
    inputs: str = opt("prob", "prediction input", choices=("prob", "logprob"))
    residual_ce: float = opt(0.0, "weight of the residual loss added to the learned loss", ge=0)
    residual: str = opt("task", _RES_HELP, choices=RESIDUALS)
    class_reduction: str = opt("sum", "reduction over classes", choices=("sum", "mean"))
    beta: float = opt(10.0, "smooth_leaky_relu sharpness", gt=0)
    gamma: float = opt(0.01, "smooth_leaky_relu negative slope")
    init: str = opt("torch", "weight initialisation of the loss network", choices=INITS)
    normalize: str = opt("none", _NORM_HELP, choices=NORMALIZE)
    learn_lr: bool = opt(False, _LR_HELP)
    lr_meta_lr: float = opt(0.01, "Adam learning rate of the log learning rate (learn_lr)", gt=0)

    def check(self) -> None:
        if self.inner_nesterov and not self.inner_momentum > 0:
            raise ConfigError("ml3: option inner_nesterov needs inner_momentum > 0")

    def loss_options(self) -> dict[str, Any]:
        """The :class:`~metaloss.losses.neural.NeuralLoss` arguments."""
        return {k: getattr(self, k) for k in LOSS_FIELDS}

    def meta_options(self) -> dict[str, Any]:
        """The :class:`~metaloss.meta.unrolled.ML3Config` arguments."""
        skip = {*LOSS_FIELDS, "checkpoint_every"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}


@dataclass(frozen=True)
class AdaLFLMethodConfig(MethodConfig):
    """AdaLFL: an ML3 initialisation offline, then online adaptation over one training run."""

    method: ClassVar[str] = "adalfl"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"init_steps": 5, "steps": 30},
        "quick": {"init_steps": 300},
        "mnist": {"init_steps": 500},
        "reference": {"init_steps": 2500},
        # the paper's form: no cross-entropy residual; 2,500 offline steps (Algorithm 1)
        "paper": {"init_steps": 2500, "residual_ce": 0.0},
    }

    init_steps: int = opt(2500, "offline (ML3) initialisation steps", ge=0)
    adapt_every: int = opt(1, "adapt the loss every N training steps", ge=1)
    meta_lr: float = opt(1e-3, "Adam learning rate of the loss (0: no adaptation)", ge=0)
    query: str = opt("train", "batch of the online meta-objective", choices=("train", "val"))
    meta_objective: str = opt(
        "task",
        "loss of the meta-objective, offline and online: the task loss (the paper) or a "
        "hand-made one, e.g. sce under label noise",
        choices=META_OBJECTIVES,
    )
    meta_grad: str = opt("auto", "online meta-gradient: forward-mode, double backward or auto",
                         choices=("auto", "jvp", "exact"))  # fmt: skip
    max_grad_norm: float = opt(0.0, "clip the base model's gradient norm (0: off)", ge=0)
    snapshots: int = opt(5, "loss snapshots saved along the online run", ge=0)
    checkpoint_every: int | None = opt(
        None, "checkpoint every N steps (None: 500 with a run dir, else never)", ge=0
    )
    steps: int | None = opt(None, "training steps of the online run (None: the task's)", gt=0)
    lr: float | None = opt(None, "base-model learning rate (None: the task's)", gt=0)
    optimizer: str | None = opt(None, "base-model optimiser (None: the task's)",
                                choices=("sgd", "adam"))  # fmt: skip
    momentum: float | None = opt(None, "SGD momentum (None: the task's)", ge=0)
    nesterov: bool | None = opt(None, "Nesterov momentum (None: the task's)")
    weight_decay: float | None = opt(None, "weight decay (None: the task's)", ge=0)
    batch_size: int | None = opt(None, "batch size (None: the task's)", gt=0)
    init_lr: float | None = opt(None, "learning rate of the offline phase (None: lr)", gt=0)
    hidden: tuple[int, ...] = opt((40, 40), "hidden layer widths of the loss network", gt=0)
    activation: str = opt("smooth_leaky_relu", "hidden activation", choices=ACTIVATIONS)
    output: str = opt("none", "output activation", choices=("softplus", "none"))
    bias: bool = opt(True, "biases in the loss network")
    inputs: str = opt("prob", "prediction input", choices=("prob", "logprob"))
    residual_ce: float = opt(1.0, "weight of the residual loss added (0: the paper's form)", ge=0)
    residual: str = opt("task", _RES_HELP, choices=RESIDUALS)
    class_reduction: str = opt("mean", "reduction over classes", choices=("sum", "mean"))
    beta: float = opt(10.0, "smooth_leaky_relu sharpness", gt=0)
    gamma: float = opt(0.01, "smooth_leaky_relu negative slope")
    init: str = opt("torch", "weight initialisation of the loss network", choices=INITS)
    normalize: str = opt("none", _NORM_HELP, choices=NORMALIZE)
    learn_lr: bool = opt(False, _LR_HELP)
    lr_meta_lr: float = opt(0.01, "Adam learning rate of the log learning rate (learn_lr)", gt=0)

    def loss_options(self) -> dict[str, Any]:
        """The :class:`~metaloss.losses.neural.NeuralLoss` arguments."""
        return {k: getattr(self, k) for k in LOSS_FIELDS}

    def online_options(self, run_dir: Any = None) -> dict[str, Any]:
        """The :class:`~metaloss.meta.online.AdaLFLConfig` arguments."""
        out = {k: v for k, v in self.__dict__.items() if k not in (*LOSS_FIELDS, "init_lr")}
        if out["checkpoint_every"] is None:
            out["checkpoint_every"] = 500 if run_dir is not None else 0
        return out


@dataclass(frozen=True)
class TaylorGLOConfig(MethodConfig):
    """TaylorGLO: CMA-ES over the 8 parameters of a Taylor-polynomial loss."""

    method: ClassVar[str] = "taylorglo"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"generations": 2, "popsize": 4, "fitness_steps": 20},
        "quick": {"generations": 6, "popsize": 10, "fitness_steps": 300},
        "mnist": {"generations": 4, "popsize": 8, "fitness_steps": 300},
        "reference": {"generations": 50, "popsize": 25, "fitness_steps": 500},
        # CMA-ES sigma 1.2, population 25, 500-step fitness (the EvoMAL comparison)
        "paper": {
            "generations": 50,
            "popsize": 25,
            "sigma": 1.2,
            "fitness_steps": 500,
            "early_stop": False,
        },  # fmt: skip
    }

    generations: int = opt(50, "CMA-ES generations", ge=1)
    popsize: int = opt(25, "candidates per generation", ge=2)
    sigma: float = opt(1.2, "initial CMA-ES step size", gt=0)
    fitness_steps: int = opt(500, "training steps of each candidate's fitness run", ge=1)
    theta0: tuple[float, ...] | None = opt(None, "start of the search (None: TaylorLoss's)")
    fitness_lrs: tuple[float, ...] = opt((), _LRS_HELP, gt=0)
    normalize: str = opt("none", _NORM_HELP, choices=NORMALIZE)
    early_stop: bool = opt(False, _ES_HELP)
    early_stop_at: tuple[float, ...] = opt((0.1, 0.2, 0.4), _ES_AT_HELP, gt=0)
    early_stop_quantile: float = opt(0.5, _ES_QUANTILE_HELP, gt=0)
    early_stop_margin: float = opt(0.0, _ES_MARGIN_HELP)
    early_stop_reference: str = opt("elite", _ES_REF_HELP, choices=("previous", "elite"))
    early_stop_examples: int = opt(1000, _ES_EXAMPLES_HELP, ge=0)
    early_stop_floor: float = opt(0.0, _ES_FLOOR_HELP, ge=0)
    early_stop_rescue: int = opt(1, _ES_RESCUE_HELP, ge=0)


@dataclass(frozen=True)
class MLNConfig(MethodConfig):
    """MLN: evolve a neural loss on generated linear tasks with known ground truth."""

    method: ClassVar[str] = "mln"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {
            "generations": 2,
            "popsize": 4,
            "tasks_per_eval": 1,
            "train_steps": 20,
            "eval_tasks": 1,
            "n_train": 100,
            "n_val": 50,
        },  # fmt: skip
        "quick": {"generations": 30, "popsize": 16},
        "mnist": {"generations": 30, "popsize": 16},
        "reference": {"generations": 200, "popsize": 40},
        # the paper's settings are not public: its reference budget, our operators
        "paper": {"generations": 200, "popsize": 40},
    }

    generations: int = opt(30, "evolution generations", ge=1)
    popsize: int = opt(20, "candidates per generation (even for OpenAI-ES)", ge=2)
    es: str = opt("openai", "evolution strategy", choices=("openai", "cma"))
    sigma: float = opt(0.02, "ES noise / CMA-ES step size", gt=0)
    lr: float = opt(0.01, "OpenAI-ES Adam learning rate", gt=0)
    weight_decay: float = opt(0.0, "OpenAI-ES L2 pull of the mean towards 0", ge=0)
    dim: int = opt(10, "input dimension of the generated tasks", ge=1)
    classes: tuple[int, ...] = opt((2, 5, 10), "class counts of the generated tasks", ge=2)
    tasks_per_eval: int = opt(3, "generated tasks per fitness evaluation", ge=1)
    train_steps: int = opt(100, "training steps on each generated task", ge=1)
    objective: str = opt("cosine", "fitness", choices=("cosine", "val_error"))
    n_train: int = opt(500, "training examples per generated task", ge=1)
    n_val: int = opt(200, "validation examples per generated task", ge=1)
    margin: float = opt(0.0, "class margin of the generated tasks", ge=0)
    label_noise: float = opt(0.0, "label-noise fraction of the generated tasks", ge=0)
    train_lr: float = opt(0.1, "learning rate on the generated tasks", gt=0)
    batch_size: int = opt(64, "batch size on the generated tasks", ge=1)
    include_bias: bool = opt(False, "the models on generated tasks have a bias")
    resample: bool = opt(True, "fresh generated tasks every generation")
    eval_tasks: int = opt(6, "held-out tasks choosing ES mean vs best sample (0: mean)", ge=0)
    hidden: tuple[int, ...] = opt((16, 16), "hidden layer widths of the loss network", gt=0)
    activation: str = opt("relu", "hidden activation", choices=ACTIVATIONS)
    output: str = opt("softplus", "output activation", choices=("softplus", "none"))
    inputs: str = opt("logprob", "prediction input", choices=("prob", "logprob"))
    init: str = opt("ce", "initial loss: fitted to cross-entropy or random",
                    choices=("ce", "random"))  # fmt: skip

    def check(self) -> None:
        if self.es == "openai" and self.popsize % 2:
            raise ConfigError(f"mln: option popsize must be even for es=openai, got {self.popsize}")


#: EvoMAL's reference search (Decadz/Evolved-Model-Agnostic-Loss, ``ea.py`` and the MNIST
#: config): varOr, double tournament with parsimony 1 and fitness_first False, half-and-half
#: mutation, whole-population replacement (no elitism), random trees only, weights on
#: child -> parent edges only, the protected log as it is; the rejection filter from an
#: untrained model's predictions (100 of them, 100 SGD steps) after the local search.
GP_PAPER: dict[str, Any] = {
    "population": 25, "generations": 50, "fitness_steps": 500, "crossover": 0.7,
    "mutation": 0.25, "tournament": 4, "parsimony": 1.0, "fitness_first": False,
    "max_height": 10, "init_depth": (2, 4), "elitism": 0, "seed_trees": None,
    "variation": "or", "mutation_method": "half", "root_weight": False,
    "reject_target_log": False, "filter_steps": 100, "filter_start": "model",
    "filter_size": 100, "filter_after_local": True, "early_stop": False,
}  # fmt: skip


@dataclass(frozen=True)
class GPLFLConfig(MethodConfig):
    """GP-LFL: genetic programming over symbolic losses, every edge weight fixed at 1."""

    method: ClassVar[str] = "gplfl"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"population": 4, "generations": 2, "fitness_steps": 20},
        "quick": {
            "population": 12,
            "generations": 6,
            "fitness_steps": 300,
            "seed_trees": "baselines",
        },  # fmt: skip
        "mnist": {
            "population": 10,
            "generations": 4,
            "fitness_steps": 300,
            "seed_trees": "baselines",
        },  # fmt: skip
        "reference": {"population": 25, "generations": 50, "fitness_steps": 500},
        "paper": GP_PAPER,
    }

    population: int = opt(25, "population size", ge=2)
    generations: int = opt(50, "GP generations", ge=1)
    fitness_steps: int = opt(500, "training steps of each candidate's fitness run", ge=1)
    filter_steps: int = opt(50, "steps of the rejection filter (0: off)", ge=0)
    filter_start: str = opt("random", "filter's starting predictions: random logits or an "
                            "untrained model's outputs", choices=("random", "model"))  # fmt: skip
    filter_size: int = opt(256, "predictions the filter optimises", ge=1)
    filter_lr: float | None = opt(None, "filter SGD learning rate (None: 0.5 for random, the "
                                  "task's for model)", gt=0)  # fmt: skip
    filter_after_local: bool = opt(False, "filter after the local search (the reference's "
                                   "order) instead of before it")  # fmt: skip
    crossover: float = opt(0.7, "crossover probability", ge=0)
    mutation: float = opt(0.25, "mutation probability", ge=0)
    tournament: int = opt(4, "tournament size", ge=1)
    parsimony: float = opt(1.4, "parsimony tournament size (double tournament)", gt=0)
    max_height: int = opt(10, "tree height limit", ge=1)
    init_depth: tuple[int, ...] = opt((2, 4), "min, max depth of the initial trees", ge=1)
    seed_trees: str | tuple[str, ...] | None = opt(
        None, "trees in the initial population (baselines, names or prefix strings)"
    )
    elitism: int = opt(1, "members kept unchanged each generation", ge=0)
    hof_size: int = opt(10, "hall-of-fame size", ge=1)
    variation: str = opt("and", "DEAP varAnd (crossover then mutation) or varOr (one of them)",
                         choices=("and", "or"))  # fmt: skip
    fitness_first: bool = opt(True, "double tournament: fitness round first, then size")
    mutation_method: str = opt("grow", "subtree mutation: grow or half-and-half",
                               choices=("grow", "half"))  # fmt: skip
    root_weight: bool = opt(True, "a weight on the root edge (False: the EvoMAL reference)")
    reject_target_log: bool = opt(True, "reject trees taking the log of the target unevaluated")
    fitness_lrs: tuple[float, ...] = opt((), _LRS_HELP, gt=0)
    normalize: str = opt("none", _NORM_HELP, choices=NORMALIZE)
    early_stop: bool = opt(False, _ES_HELP)
    early_stop_at: tuple[float, ...] = opt((0.1, 0.2, 0.4), _ES_AT_HELP, gt=0)
    early_stop_quantile: float = opt(0.5, _ES_QUANTILE_HELP, gt=0)
    early_stop_margin: float = opt(0.0, _ES_MARGIN_HELP)
    early_stop_reference: str = opt("elite", _ES_REF_HELP, choices=("previous", "elite"))
    early_stop_examples: int = opt(1000, _ES_EXAMPLES_HELP, ge=0)
    early_stop_floor: float = opt(0.0, _ES_FLOOR_HELP, ge=0)
    # 0: the GP population keeps its evaluated members, so a generation of new trees that
    # all stop still selects among complete fitness values (measured: a rescue cost 23-49 %
    # more steps and changed no found loss; docs/benchmarks.md)
    early_stop_rescue: int = opt(0, _ES_RESCUE_HELP, ge=0)

    def check(self) -> None:
        low, high = (self.init_depth + (0, 0))[:2]
        if self.crossover > 1 or self.mutation > 1:
            raise ConfigError(f"{self.method}: options crossover and mutation must be <= 1")
        if self.variation == "or" and self.crossover + self.mutation > 1:
            raise ConfigError(f"{self.method}: variation 'or' needs crossover + mutation <= 1")
        if len(self.init_depth) != 2 or low > high:
            raise ConfigError(
                f"{self.method}: option init_depth must be min,max with min <= max, "
                f"got {self.init_depth!r}"
            )

    def gp_options(self) -> dict[str, Any]:
        """The :class:`~metaloss.meta.gp.GPSearch` arguments."""
        keys = ("crossover", "mutation", "tournament", "parsimony", "max_height", "init_depth",
                "seed_trees", "elitism", "hof_size", "variation", "fitness_first",
                "mutation_method", "root_weight", "reject_target_log")  # fmt: skip
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class EvoMALConfig(GPLFLConfig):
    """EvoMAL: GP-LFL plus a local search of the edge weights by unrolled differentiation."""

    method: ClassVar[str] = "evomal"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"population": 4, "generations": 2, "fitness_steps": 20, "local_steps": 5},
        "quick": {
            "population": 12,
            "generations": 6,
            "fitness_steps": 300,
            "local_steps": 50,
            "seed_trees": "baselines",
        },  # fmt: skip
        "mnist": {
            "population": 10,
            "generations": 4,
            "fitness_steps": 300,
            "local_steps": 50,
            "seed_trees": "baselines",
        },  # fmt: skip
        "reference": {
            "population": 25,
            "generations": 50,
            "fitness_steps": 500,
            "local_steps": 250,
        },  # fmt: skip
        "paper": {**GP_PAPER, "local_steps": 250, "local_lr": 1e-3},
    }

    local_steps: int = opt(250, "unrolled steps tuning each candidate's edge weights", ge=0)
    local_lr: float = opt(1e-3, "learning rate of the local search", gt=0)


CONFIGS: dict[str, type[MethodConfig]] = {
    "ml3": ML3MethodConfig,
    "adalfl": AdaLFLMethodConfig,
    "taylorglo": TaylorGLOConfig,
    "mln": MLNConfig,
    "evomal": EvoMALConfig,
    "gplfl": GPLFLConfig,
    "cestep": CEStepConfig,
}


def config_class(method: str) -> type[MethodConfig]:
    """The config class of a method name (``ce-step`` and ``cestep`` alike).

    Example:
        >>> config_class("taylorglo").fast().popsize
        4
    """
    key = method.lower().replace("-", "").replace("_", "")
    if key not in CONFIGS:
        raise ConfigError(f"unknown method {method!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[key]


def preset_differences(
    method: str, a: str = "default", b: str = "paper"
) -> list[tuple[str, Any, Any]]:
    """The options whose values differ between presets ``a`` and ``b`` of a method:
    ``(option, value in a, value in b)`` in declaration order (docs/presets.md lists them
    for ``default`` vs ``paper``; a test keeps the page in step).

    Example:
        >>> preset_differences("adalfl")
        [('residual_ce', 1.0, 0.0)]
        >>> preset_differences("taylorglo", "default", "fast")
        [('generations', 50, 2), ('popsize', 25, 4), ('fitness_steps', 500, 20)]
    """
    cls = config_class(method)
    first, second = cls.preset(a), cls.preset(b)
    return [
        (name, getattr(first, name), getattr(second, name))
        for name in cls.option_names()
        if getattr(first, name) != getattr(second, name)
    ]
