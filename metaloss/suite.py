"""Benchmark suites: methods x tasks x seeds, resumable, with a markdown table.

Every cell (task, method, seed) meta-learns a loss with that seed (baselines need no
meta-learning), trains a fresh model with it under the task's meta-test protocol, and
appends one JSON line to ``cells.jsonl``; an interrupted suite resumes by skipping the
cells already there. Every learning-rate tuning (a baseline's, AdaLFL's grid of whole online
runs, a learned loss's, with the loss's digest) goes to ``tunings.jsonl`` as it ends, and each
unbatched run of a grid to ``tuning-runs.jsonl``: a resume under the same settings reuses them.
A resume under other settings (steps, budget and the budgets it names, preset, tuning, source
task, data) is refused. The table reports mean +- std of the test metric, the difference to
cross-entropy (MSE for regression), Welch's t-test and the meta-training time.

Example:
    >>> from metaloss.suite import SUITES
    >>> sorted(SUITES)[:2]
    ['paper-cifar10', 'paper-mnist']
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaloss import io, rundir
from metaloss.errors import ConfigError
from metaloss.suite_resume import (
    Tunings,
    canonical,
    code_version,
    context_key,
    loss_digest,
    refuse_other_protocol,
    refuse_other_settings,
)
from metaloss.suite_table import BASELINES, CONTROLS, markdown, summarise
from metaloss.tasks.registry import OLD_DEFAULT_LR
from metaloss.tuning import TuneConfig

ONLINE = ("adalfl", "ce-step-adalfl")  # the meta-test run is the method's own online run


@dataclass
class Suite:
    """A named grid of tasks x methods with per-method budgets and per-task step counts."""

    name: str
    tasks: list[str]
    methods: list[str]
    seeds: int = 5
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)  # meta-test steps per task (default)
    description: str = ""
    transfer: dict[str, str] = field(default_factory=dict)  # task -> task the loss is learned on
    learn_on: str | None = None  # where losses of tasks missing from ``transfer`` are learned


SUITE_METHODS = ("ml3", "adalfl", "taylorglo", "gplfl", "evomal", "mln")


def preset_budgets(preset: str) -> dict[str, dict[str, Any]]:
    """Per method, the options of its config's ``preset`` (:mod:`metaloss.meta.configs`):
    the suites state no budget of their own.

    Example:
        >>> preset_budgets("quick")["taylorglo"]
        {'generations': 6, 'popsize': 10, 'fitness_steps': 300}
    """
    from metaloss.meta.configs import config_class

    return {m: config_class(m).preset_options(preset) for m in SUITE_METHODS}


#: The options that set a budget (how much work a search does), not what the method is: a
#: suite keeps its own budgets for these under ``--preset``.
BUDGET_FIELDS = frozenset(
    {"meta_steps", "init_steps", "steps", "generations", "popsize", "population",
     "fitness_steps", "local_steps"}
)  # fmt: skip


def preset_method_options(preset: str) -> dict[str, dict[str, Any]]:
    """Per suite method, the NON-budget options of its config's ``preset``.

    ``bench SUITE --preset paper`` merges them over the suite's budgets: the paper's
    operators, selection, initialisation... at the suite's budget. A method without that
    preset is absent; ``default`` changes nothing.

    Example:
        >>> preset_method_options("paper")["adalfl"]
        {'residual_ce': 0.0}
        >>> preset_method_options("default")
        {}
    """
    from metaloss.meta.configs import config_class

    if preset == "default":
        return {}
    out: dict[str, dict[str, Any]] = {}
    for m in SUITE_METHODS:
        cls = config_class(m)
        if preset in cls.PRESETS:
            out[m] = {k: v for k, v in cls.PRESETS[preset].items() if k not in BUDGET_FIELDS}
    if not out:
        raise ConfigError(f"bench --preset: no suite method has a preset {preset!r}")
    return out


QUICK_BUDGETS = preset_budgets("quick")
MNIST_BUDGETS = preset_budgets("mnist")
REFERENCE_BUDGETS = preset_budgets("reference")

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "quick",
        tasks=["digits-mlp", "mnist1d-mlp", "breast_cancer-linear", "yacht-mlp"],
        methods=["ce", "ce@old-lr", "ml3", "adalfl", "taylorglo", "gplfl", "evomal", *CONTROLS],
        seeds=3,
        budgets=QUICK_BUDGETS,
        description="CPU, minutes: small offline tasks, reduced budgets",
    ),
    "paper-mnist": Suite(
        "paper-mnist",
        tasks=["mnist-logistic", "mnist-mlp", "mnist-lenet5"],
        methods=[
            "ce",
            "ce@old-lr",
            "ml3",
            "taylorglo",
            "gplfl",
            "evomal",
            "adalfl",
            "mln",
            *CONTROLS,
        ],  # fmt: skip
        seeds=5,
        budgets=MNIST_BUDGETS,
        description="MNIST, reference meta-test protocol (10,000 SGD steps); reduced search "
        "budgets on CPU (pass --budget reference on a GPU)",
    ),
    "paper-cifar10": Suite(
        "paper-cifar10",
        tasks=["cifar10-allcnnc", "cifar10-resnet18", "cifar10-vgg16"],
        methods=["ce", "ml3", "taylorglo", "gplfl", "evomal", "adalfl"],
        seeds=3,
        budgets=MNIST_BUDGETS,
        steps={},
        description="GPU: CIFAR-10, reference 150k-step schedule (--steps for a shorter one)",
    ),
    "transfer": Suite(
        "transfer",
        tasks=["mnist-mlp", "cifar10-lenet5"],
        methods=["ce", "ml3", "evomal"],
        seeds=3,
        budgets=MNIST_BUDGETS,
        transfer={"mnist-mlp": "mnist-lenet5", "cifar10-lenet5": "mnist-lenet5"},
        learn_on="mnist-lenet5",
        description="learn on MNIST/LeNet-5, evaluate on MNIST/MLP and CIFAR-10 (or any task: "
        "-t fashion-lenet5 --data-dir DIR)",
    ),
}


def _budget(
    chosen: dict[str, dict[str, Any]],
    method: str,
    preset_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Method options of a suite budget, with a preset's non-budget options over them; a
    control gets the budget of its method (and no preset: ce-step has none)."""
    from metaloss.meta.configs import LOSS_FIELDS

    own = chosen.get(method, {})  # a control's own options (e.g. base=sce) come last

    def meta_budget(of: str) -> dict[str, Any]:  # the loss network's options are not the control's
        return {k: v for k, v in chosen.get(of, {}).items() if k not in LOSS_FIELDS}

    if method == "ce-step-ml3":
        return {"meta": "unrolled", **meta_budget("ml3"), **own}
    if method == "ce-step-adalfl":
        return {"meta": "online", **meta_budget("adalfl"), **own}
    if method == "ce-step-search":  # as many candidates as EvoMAL's budget evaluates
        from metaloss.meta.configs import EvoMALConfig

        evo = EvoMALConfig(**chosen.get("evomal", {}))
        n = evo.population * evo.generations
        return {"meta": "search", "candidates": n, "fitness_steps": evo.fitness_steps, **own}
    return {**chosen.get(method, {}), **(preset_options or {}).get(method, {})}


def _row_options(record: Any, method: str) -> str | None:
    """The options a recorded suite (its ``suite.json``) ran ``method``'s row with, as
    :func:`~metaloss.suite_resume.canonical` text; None when the record cannot say."""
    if not isinstance(record, dict) or not isinstance(record.get("budgets"), dict):
        return None
    presets = record.get("preset_options")
    try:
        return canonical(_budget(record["budgets"], method, presets if isinstance(presets, dict)
                                  else {}))  # fmt: skip
    except (ConfigError, TypeError, ValueError, AttributeError):
        return None


def _cell_preset(method: str, preset_options: dict[str, dict[str, Any]], preset: str) -> Any:
    """What a cell records as its preset: None for a hand-made loss, else the preset its
    method ran with (``default`` where the method has no such preset)."""
    if method in BASELINES or method == "ce@old-lr":
        return None
    return preset if method in preset_options else "default"


def _learn(
    method: str, task: Any, seed: int, options: dict[str, Any], progress: bool = False
) -> Any:
    import metaloss as ml

    return ml.learn(_name(method), task, seed=seed, progress=progress, **options)


def _name(method: str) -> str:  # the metaloss.learn method of a suite row
    return "ce-step" if method in CONTROLS else method


def _baseline_for(method: str, classification: bool) -> str:
    """The hand-made loss behind a baseline method name (CE becomes MSE for regression)."""
    if method in ("ce", "mse"):
        return "ce" if classification else "mse"
    return method


def run_suite(
    suite: Suite | str,
    out: str | Path,
    seeds: int | None = None,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    budget: str = "suite",
    steps: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    progress: bool = False,
    log: Any = print,
    learn_on: str | None = None,
    first_seed: int = 0,
    tune: bool = True,
    tune_seeds: int = 2,
    preset: str = "default",
    reuse_tunings: str | Path | None = None,
    tune_workers: int = 1,
) -> dict[str, Any]:
    """Run (or resume) a suite into ``out``; returns the summary written to ``summary.json``.

    ``preset`` (e.g. ``paper``): every learned method with that preset runs its preset's
    non-budget options (:func:`preset_method_options`) at the suite's budget; recorded in
    ``suite.json`` and in every cell (``preset``), and shown in the table.

    ``learn_on`` (a task name) learns every loss there and evaluates it on the suite's tasks;
    the ``transfer`` suite does that by default (MNIST / LeNet-5). ``data_dir`` applies to
    the evaluated tasks; the source task finds its data in the usual places. A loss learned
    on a source is reused by every task evaluated with it (same method and seed).
    ``first_seed`` runs seeds ``first_seed .. first_seed + seeds - 1`` (to shard a suite over
    processes or machines; merge the folders with ``bench/merge_tables.py``).

    ``tune`` (default) gives every row the same learning-rate tuning
    (:func:`metaloss.tuning.tune_lr`, ``tune_seeds`` tuning seeds disjoint from the
    reporting seeds): baselines once per task, each learned loss on its own, AdaLFL and its
    control as whole online runs. The ``ce@old-lr`` row is cross-entropy at the task's
    pre-tuning default (``OLD_DEFAULT_LR``), untuned, for comparison with older tables.

    ``reuse_tunings`` (another bench folder, or its ``tunings.jsonl``) reuses the tunings
    recorded there, exactly as a resume does: only under the same context (steps, budget,
    preset, tuning grid, data folder, training protocol), and a learned loss's only for the
    same seed and loss digest (copied into ``out``'s ``tunings.jsonl``). ``tune_workers`` > 1
    runs unbatched grids (online runs, a CPU conv model's) in that many processes. A
    replication on new reporting seeds (``first_seed``) then runs at the chosen lrs without
    tuning again; tuning seeds never overlap reporting seeds, so this is fair.
    """
    import metaloss as ml
    from metaloss.diagnostics import step_diagnostic
    from metaloss.evaluators.run_pool import RunPool, check_workers
    from metaloss.meta.whole_run import WholeRunFitness
    from metaloss.seeds import check_seed
    from metaloss.training import is_collapsed, train
    from metaloss.tuning import tune_lr, tune_whole_runs

    check_seed(first_seed, "first_seed")
    check_workers(tune_workers)

    if isinstance(suite, str):
        if suite not in SUITES:
            raise ConfigError(f"unknown suite {suite!r}; known: {', '.join(sorted(SUITES))}")
        suite = SUITES[suite]
    budgets = {"suite": suite.budgets, "reference": REFERENCE_BUDGETS, "quick": QUICK_BUDGETS}
    if budget not in budgets:
        raise ConfigError(f"budget must be suite, quick or reference, got {budget!r}")
    chosen = budgets[budget]
    preset_options = preset_method_options(preset)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".metaloss-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"bench --out {out}: cannot write there ({exc.strerror or exc})"
        ) from None
    cells_path = out / rundir.CELLS
    folder = str(Path(data_dir).expanduser().resolve()) if data_dir else None
    settings = {"suite": suite.name, "preset": preset, "steps": steps, "budget": budget,
                "tune": tune, "tune_seeds": tune_seeds, "learn_on": learn_on,
                "data_dir": folder,
                "budgets": json.loads(json.dumps(chosen))}  # fmt: skip
    started = any((out / f).exists() for f in (rundir.CELLS, rundir.TUNINGS, rundir.TUNING_RUNS))
    protocols: dict[str, Any] = {}  # task -> its training protocol, as recorded in suite.json
    if started and (out / rundir.SUITE).exists():
        before = io.read_json(out / rundir.SUITE)
        refuse_other_settings(out, before, settings)
        if isinstance(before.get("train"), dict):
            protocols = dict(before["train"])
    done = {(c["task"], c["method"], c["seed"]) for c in io.read_jsonl(cells_path)}
    n_seeds = seeds or suite.seeds
    task_names = list(tasks or suite.tasks)
    method_names = list(methods or suite.methods)
    code = code_version()
    suite_record = {
        "suite": suite.name,
        "tasks": task_names,
        "methods": method_names,
        "seeds": n_seeds,
        "budget": budget,
        "budgets": chosen,
        "preset": preset,
        "preset_options": preset_options,
        "steps": steps,
        "learn_on": learn_on,
        "first_seed": first_seed,
        "tune": tune,
        "tune_seeds": tune_seeds,
        "data_dir": settings["data_dir"],
        "train": protocols,
        "code": code,
    }
    io.write_json(out / rundir.SUITE, suite_record)
    mln_cache: dict[int, Any] = {}
    learned: dict[tuple[str, str, int], Any] = {}  # (source, method, seed) -> LearnResult
    sources: dict[str, Any] = {}
    tune_config = TuneConfig(seeds=tune_seeds)
    tuning_context = {"steps": steps, "budget": budget, "preset": preset,
                      "tune": tune_config.to_dict(), "data_dir": settings["data_dir"]}  # fmt: skip
    pool = RunPool(tune_workers, folder) if tune_workers > 1 else None
    if pool is not None:  # a CPU conv model's grid then trains unbatched (float rounding)
        tuning_context["tune_pool"] = True
    # finished tunings and grid runs, reused by a resume only under the same context
    tunings = Tunings(out, tune_config, pool, progress, log)
    if reuse_tunings is not None:

        def same_options(record: Any, method: str) -> bool:
            if method in BASELINES or method == "ce@old-lr":  # a hand-made loss: no options
                return True
            return _row_options(record, method) == canonical(
                _budget(chosen, method, preset_options)
            )

        source_path, n_reused, skipped = tunings.reuse(reuse_tunings, same_options)
        suite_record["reused_tunings_from"] = str(source_path)
        io.write_json(out / rundir.SUITE, suite_record)
        log(f"reused {n_reused} tunings from {source_path}")
        if skipped:
            shown = ", ".join(skipped)
            log(f"not reused (run there with other options, or no suite.json): {shown}")

    for task_name in task_names:
        task = ml.tasks.get(task_name, data_dir=data_dir, device=device)
        config = task.defaults.with_(steps=steps)
        protocol = json.loads(json.dumps(config.to_dict()))
        refuse_other_protocol(out, task_name, protocols.get(task_name, protocol), protocol)
        if task_name not in protocols:
            protocols[task_name] = protocol
            io.write_json(out / rundir.SUITE, suite_record)
        ctx = context_key({**tuning_context, "train": protocol})  # its protocol included
        source_name = learn_on or suite.transfer.get(task_name, suite.learn_on or task_name)
        if source_name == task_name:
            source = task
        else:
            if source_name not in sources:
                sources[source_name] = ml.tasks.get(source_name, device=device)
            source = sources[source_name]
        for method in method_names:
            if method == "mln" and not task.classification:
                continue
            online = method in ONLINE and source is task
            for seed in range(first_seed, first_seed + n_seeds):
                if (task_name, method, seed) in done:
                    continue
                t0 = time.perf_counter()
                meta_seconds, info, tuning = 0.0, {}, None
                name = _baseline_for(method, task.classification)
                cell_config = config
                if method == "ce@old-lr":
                    loss = ml.losses.get_baseline(_baseline_for("ce", task.classification))
                    cell_config = config.with_(lr=OLD_DEFAULT_LR.get(task_name, config.lr))
                elif online:
                    # AdaLFL trains the model while the loss adapts: the whole online run is
                    # tuned (a grid of online runs on tuning seeds), then run on ``seed``.
                    kw = {**_budget(chosen, method, preset_options), "steps": steps}
                    if tune:

                        def one_run(
                            s: int, lr: float, m: str = method, t: Any = task, o: Any = kw
                        ) -> Any:
                            return WholeRunFitness(t, _name(m), s, {**o, "lr": lr})

                        tuning = tunings.get((task_name, method, ctx), f"{method} {task_name}",
                                             tune_whole_runs, task, None, task.defaults.lr,
                                             describe=one_run)  # fmt: skip
                        kw["lr"] = tuning.lr
                    res = _learn(method, task, seed, kw, progress)
                    loss, info = res.loss, {"formula": res.loss.describe()}
                    meta_seconds = res.seconds - res.info.get("online_seconds", 0.0)
                elif name in BASELINES:  # long-tail losses read this task's class counts
                    loss = ml.losses.get_baseline(name, task=task)
                elif method == "mln":
                    if seed not in mln_cache:
                        mln_cache[seed] = ml.learn(
                            "mln", None, seed=seed, progress=progress,
                            **_budget(chosen, "mln", preset_options),
                        )  # fmt: skip
                    res = mln_cache[seed]
                    loss, meta_seconds = res.loss, res.seconds
                else:
                    key3 = (source_name, method, seed)
                    if source is not task and key3 in learned:
                        res = learned[key3]
                    else:
                        opts = _budget(chosen, method, preset_options)
                        res = _learn(method, source, seed, opts, progress)
                        learned[key3] = res
                    loss, meta_seconds = res.loss, res.seconds
                    info = {"formula": loss.describe()}
                if online:
                    test, val = res.info["test_metric"], res.info["val_metric"]
                    train_seconds = res.info.get("online_seconds", 0.0)
                    diverged = bool(res.info.get("diverged"))
                    collapsed = not diverged and is_collapsed(task, val)
                    cell_lr = tuning.lr if tuning is not None else config.lr
                else:
                    if tune and method != "ce@old-lr":
                        if name in BASELINES:  # the same loss on every seed: tune once
                            key = (task_name, method, ctx)
                        else:  # this seed's learned loss, recorded with its digest
                            key = (task_name, method, seed, loss_digest(loss), ctx)
                        tuning = tunings.get(key, f"{method} {task_name}", tune_lr, task, loss,
                                             config)  # fmt: skip
                        cell_config = config.with_(lr=tuning.lr)
                    tr = train(task, loss, cell_config, seed=seed, progress=progress)
                    test, val, train_seconds = tr.test_metric, tr.val_metric, tr.seconds
                    collapsed, diverged = tr.collapsed, tr.diverged
                    cell_lr = cell_config.lr
                if name not in BASELINES and method != "ce@old-lr":
                    info["diagnostic"] = step_diagnostic(loss, task, config=config).to_dict()
                cell = {
                    "task": task_name,
                    "method": method,
                    "seed": seed,
                    "metric": task.metric_name,
                    "test": test,
                    "val": val,
                    "lr": cell_lr,
                    "tuned": tuning is not None,
                    "collapsed": collapsed,
                    "diverged": diverged,
                    "meta_seconds": meta_seconds,
                    "train_seconds": train_seconds,
                    "tune_seconds": tuning.seconds if tuning is not None else 0.0,
                    "seconds": time.perf_counter() - t0,
                    "learned_on": source_name,
                    "preset": _cell_preset(method, preset_options, preset),
                    "code_commit": code["commit"],
                    "code_dirty": code["dirty"],
                    **({"tuning": tuning.to_dict()} if tuning is not None else {}),
                    **info,
                }
                io.append_jsonl(cells_path, [cell])
                log(
                    f"{task_name:>22} {method:>14} seed {seed}: test {task.metric_name} {test:.4f} "
                    f"at lr {cell_lr:g} (meta {meta_seconds:.0f} s, train {train_seconds:.0f} s)"
                )
    if pool is not None:
        pool.close()
    summary = summarise(io.read_jsonl(cells_path))
    io.write_json(out / rundir.SUMMARY, summary)
    (out / rundir.TABLE).write_text(markdown(summary))
    return summary
