"""The two verbs of the public API: :func:`learn` a loss, :func:`evaluate` losses.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> report = ml.evaluate(["cross_entropy", "mse"], task, seeds=2, steps=100)
    >>> [r.name for r in report.rows], report.tuned
    (['cross_entropy', 'mse'], True)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss
from metaloss.meta.config import EvaluatorSpec, MethodConfig
from metaloss.results import EvalReport, EvalRow, LearnResult
from metaloss.tasks.base import Task, TrainConfig
from metaloss.threads import accepts_threads
from metaloss.tuning import TuneConfig

METHODS: dict[str, str] = {
    "ml3": "metaloss.meta.unrolled:learn_ml3",
    "adalfl": "metaloss.meta.online:learn_adalfl",
    "taylorglo": "metaloss.meta.taylorglo:learn_taylorglo",
    "mln": "metaloss.meta.mln:learn_mln",
    "evomal": "metaloss.meta.gp:learn_evomal",
    "gplfl": "metaloss.meta.gp:learn_gplfl",
    "cestep": "metaloss.meta.control:learn_ce_step",
}


def method_fn(name: str) -> Callable[..., LearnResult]:
    """The learner function of a method name (imported on demand)."""
    from importlib import import_module

    key = name.lower().replace("-", "").replace("_", "")
    if key not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    module, fn = METHODS[key].split(":")
    return getattr(import_module(module), fn)


@accepts_threads  # threads= keyword (metaloss.threads)
def learn(
    method: str,
    task: Task | str | None,
    config: MethodConfig | None = None,
    *,
    preset: str | None = None,
    seed: int = 0,
    progress: bool | None = None,
    evaluator: EvaluatorSpec | None = None,
    evaluator_options: dict[str, Any] | None = None,
    device: str = "cpu",
    run_dir: str | Path | None = None,
    **overrides: Any,
) -> LearnResult:
    """Meta-learn a loss for ``task`` with ``method`` (ml3, adalfl, taylorglo, mln, evomal,
    gplfl, ce-step).

    ``config`` is the method's config (:mod:`metaloss.meta.configs`; default: its
    ``default()``), or ``preset`` names one of its presets (``paper``: the paper's and
    reference code's settings; ``fast``, ``quick``...); the result's ``info["preset"]``
    records which (``custom`` for a config object). ``overrides`` are its fields, validated once:
    an unknown name or a value of the wrong type is a :class:`ConfigError` naming the option
    (with a suggestion). ``task`` may be a :class:`Task` or a registered name (built on
    ``device``); MLN ignores it (``None``). ``evaluator`` (population searches only) is a
    name (``auto``, the default: batched, pool or serial by the rule of
    :func:`~metaloss.evaluators.auto.choose_evaluator`; ``serial``, ``batched``, ``pool``,
    ``ray``; ``evaluator_options`` build it) or a factory of the fitness function. Progress
    bars show by default when stderr is a terminal (``progress=None``). The result records
    the task's data (name, variant, data files with sha256) for :meth:`LearnResult.save`.

    Example:
        >>> import metaloss as ml
        >>> from metaloss.meta.configs import TaylorGLOConfig
        >>> res = ml.learn("taylorglo", "iris-linear", TaylorGLOConfig.fast(), generations=3)
        >>> res.method, res.config["generations"]
        ('taylorglo', 3)
        >>> ml.learn("taylorglo", "iris-linear", genertions=3)
        Traceback (most recent call last):
        ...
        metaloss.errors.ConfigError: taylorglo: unknown option 'genertions' (did you mean 'generations'?); valid: generations, popsize, sigma, fitness_steps, theta0, fitness_lrs, normalize, early_stop, early_stop_at, early_stop_quantile, early_stop_margin, early_stop_reference, early_stop_examples, early_stop_floor, early_stop_rescue
    """  # noqa: E501
    from metaloss import tasks
    from metaloss.meta.configs import config_class

    fn = method_fn(method)
    cls = config_class(method)
    if preset is not None and config is not None:
        raise ConfigError(f"{method}: pass a config or a preset, not both")
    rl = getattr(task, "kind", None) == "rl" or (
        isinstance(task, str) and task.split("+")[0].startswith("rl-")
    )
    cfg = None if rl else cls.resolve(cls.preset(preset) if preset else config, overrides)
    if isinstance(task, str):  # after validation: a misspelt option loads no data
        task = tasks.get(task, device=device)
    run: dict[str, Any] = {"seed": seed, "progress": progress, "run_dir": run_dir}
    if progress is None:
        run["progress"] = _progress_default()
    if run_dir is None:
        del run["run_dir"]
    if rl:  # an RLTask: its own settings (metaloss.rl)
        if fn is not method_fn("ml3"):
            raise ConfigError(f"RL tasks ({task.name}) are meta-learned with ml3, not {method}")
        if config is not None or preset is not None:
            raise ConfigError(
                f"{task.name}: RL tasks take their settings as options, not a config or preset"
            )
        result = fn(task, **run, **overrides)
        result.info.setdefault("preset", "default")
        return result
    if evaluator is not None or evaluator_options:
        if not _takes(fn, "evaluator"):
            raise ConfigError(f"{method}: no evaluator option (not a population search)")
        run["evaluator"] = evaluator if evaluator is not None else "auto"
        run["evaluator_options"] = evaluator_options
    if _takes(fn, "device"):
        run["device"] = device
    result = fn(task, config=cfg, **run)
    if isinstance(task, Task) and not result.data:
        result.record_data(task)  # runs remember their data (tasks.provenance)
    result.info.setdefault("preset", preset or ("custom" if config is not None else "default"))
    if overrides:
        result.info.setdefault("overrides", sorted(overrides))
    return result


def _takes(fn: Callable[..., Any], name: str) -> bool:
    """Whether a method's learner has the keyword argument ``name``."""
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin or odd callable
        return False


def _progress_default() -> bool:
    """Progress bars by default when stderr is a terminal (``progress=None``)."""
    import sys

    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def resolve_loss(spec: str | Loss | Path, task: Task | None = None) -> tuple[str, Loss]:
    """A loss and its display name from a baseline name, a run directory or a module.

    ``task`` gives the long-tail baselines (``logit_adjusted``, ``class_balanced``) the
    class counts of its training split."""
    from metaloss import io
    from metaloss.losses import get_baseline
    from metaloss.losses.handcrafted import BASELINES

    if isinstance(spec, Loss):
        return spec.kind, spec
    text = str(spec)
    if text.lower().replace("-", "_") in BASELINES:
        return text, get_baseline(text, task=task)
    if Path(text).exists():
        return Path(text).name, io.load(text)
    raise ConfigError(
        f"loss {text!r} is neither a baseline ({', '.join(sorted(BASELINES))}) "
        "nor an existing run directory"
    )


@accepts_threads  # threads= keyword (metaloss.threads)
def evaluate(
    losses: Sequence[str | Loss | Path] | str | Loss,
    task: Task,
    seeds: int | Sequence[int] = 5,
    baselines: Sequence[str] = (),
    config: TrainConfig | None = None,
    progress: bool | None = None,
    tune: str | None = "lr",
    tune_config: TuneConfig | None = None,
    diagnose: bool = True,
    frozen: bool = False,
    tune_workers: int = 1,
    data_dir: str | None = None,
    **overrides: Any,
) -> EvalReport:
    """Train a fresh model per seed with every loss; mean +- std of the test metric.

    Baselines come first; every row is compared with the first one: Welch's t-test,
    Holm-Bonferroni over the table's comparisons, a 95 % confidence interval of the
    difference. With ``tune="lr"`` (the default) every loss first gets the same
    learning-rate tuning (:func:`metaloss.tuning.tune_lr`: a grid around the task default,
    chosen by mean validation metric over tuning seeds disjoint from ``seeds``); the
    reporting runs then use each loss's chosen learning rate. ``tune=None`` trains every
    loss at the configured learning rate (not a fair comparison of losses). With
    ``diagnose`` every learned (non-baseline) loss gets the step diagnostic against the
    task loss (:func:`metaloss.diagnostics.step_diagnostic`).

    An AdaLFL run directory keeps adapting its loss online in every training run, as the
    method defines (:func:`metaloss.meta.online.continue_online`; its row is named
    ``NAME (online)``); ``frozen=True`` trains with the saved loss, never updated.
    A progress bar shows by default when stderr is a terminal (``progress=None``).

    ``tune_workers`` > 1 trains the unbatched grids (an AdaLFL run's online runs, a
    convolutional model's grid on a CPU, a model with dropout) in that many worker processes
    (:class:`~metaloss.evaluators.run_pool.RunPool`; ``data_dir``: the folder ``task``
    was read from, for the workers to read it too).
    """
    from metaloss.evaluators.run_pool import RunPool
    from metaloss.losses.handcrafted import BASELINES
    from metaloss.meta.whole_run import ContinuedRunFitness
    from metaloss.progress import progress_bar
    from metaloss.seeds import check_seed
    from metaloss.training import train
    from metaloss.tuning import tune_lr, tune_whole_runs

    if progress is None:
        progress = _progress_default()
    if isinstance(losses, str | Loss | Path):
        losses = [losses]
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("evaluate: at least one seed is needed")
    for s in seed_list:
        check_seed(s, "evaluate: seed")
    if tune not in (None, "none", "lr"):
        raise ConfigError(f"evaluate: tune must be 'lr' or None, got {tune!r}")
    tune = None if tune == "none" else tune
    config = (config or task.defaults).with_(**overrides)
    named = [(*resolve_loss(b, task), None) for b in baselines]
    named += [(*resolve_loss(x, task), _online_source(x, frozen)) for x in losses]
    tune_config = tune_config or TuneConfig()
    grid = len(tune_config.factors) * tune_config.seeds if tune else 0
    total = len(named) * (len(seed_list) + grid)
    rows = []
    pool = RunPool(tune_workers, data_dir) if tune and tune_workers != 1 else None
    with (
        pool or contextlib.nullcontext(),
        progress_bar(total, f"evaluate {task.name}", enabled=progress) as advance,
    ):
        for name, loss, online in named:
            tuning = None
            row_config = config
            if tune:
                if online is not None:
                    from metaloss.meta.online_eval import continue_online

                    def one_run(t: Task, s: int, lr: float, run: Path = online) -> float:
                        return continue_online(
                            run, t, seed=s, config=config.with_(lr=lr)
                        ).val_metric

                    def described(s: int, lr: float, run: Path = online) -> Any:
                        return ContinuedRunFitness(task, str(run.resolve()), s, config.with_(lr=lr))

                    tuning = tune_whole_runs(
                        task, one_run, config.lr, tune_config, advance, pool, described
                    )
                else:
                    tuning = tune_lr(task, loss, config, tune_config, advance, pool)
                row_config = config.with_(lr=tuning.lr)
            vals, val_vals, collapsed = [], [], 0
            start = time.perf_counter()
            for s in seed_list:
                if online is not None:
                    from metaloss.meta.online_eval import continue_online

                    res = continue_online(online, task, seed=s, config=row_config)
                else:
                    res = train(task, loss, row_config, seed=s)
                vals.append(res.test_metric)
                val_vals.append(res.val_metric)
                collapsed += int(getattr(res, "collapsed", False))
                advance(1)
            row = EvalRow(
                f"{name} (online)" if online is not None else name,
                vals,
                val_vals,
                time.perf_counter() - start,
                lr=row_config.lr,
                tuning=tuning.to_dict() if tuning else None,
                collapsed=collapsed,
                hand_made=online is None and isinstance(loss, tuple(BASELINES.values())),
            )
            if diagnose and str(name).lower().replace("-", "_") not in BASELINES:
                from metaloss.diagnostics import step_diagnostic

                row.diagnostic = step_diagnostic(loss, task, config=row_config).to_dict()
            rows.append(row)
    report = EvalReport(
        task.name, task.metric_name, config.steps, seed_list, rows, tuned=bool(tune)
    )
    if not tune:
        report.notes.append(
            f"untuned: every loss trained at lr {config.lr:g}; not a fair comparison of losses"
        )
    for r in rows:
        if r.tuning and r.tuning["note"]:
            report.notes.append(f"{r.name}: {r.tuning['note']}")
        if r.collapsed:
            report.notes.append(
                f"{r.name}: {r.collapsed} of {len(r.values)} runs collapsed to chance level "
                "(validation metric no better than a constant predictor)"
            )
        if r.diagnostic and r.diagnostic.get("message"):
            report.notes.append(f"{r.name}: {r.diagnostic['message']}")
    report.compare()
    return report


def _online_source(spec: str | Loss | Path, frozen: bool) -> Path | None:
    """The run directory of an AdaLFL run that keeps adapting online (None otherwise)."""
    if frozen or isinstance(spec, Loss) or not Path(str(spec)).is_dir():
        return None
    from metaloss.meta.online_eval import is_online_loss

    return Path(str(spec)) if is_online_loss(Path(str(spec))) else None
