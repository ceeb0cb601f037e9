"""Benchmark suites: methods x tasks x seeds, resumable, with a markdown table.

Every cell (task, method, seed) meta-learns a loss with that seed (baselines need no
meta-learning), trains a fresh model with it under the task's meta-test protocol, and
appends one JSON line to ``cells.jsonl``; an interrupted suite resumes by skipping the
cells already there. The table reports mean +- std of the test metric, the difference to
cross-entropy (MSE for regression), Welch's t-test and the meta-training time.

Example:
    >>> from metaloss.suite import SUITES
    >>> sorted(SUITES)[:2]
    ['paper-cifar10', 'paper-mnist']
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaloss import io
from metaloss.errors import ConfigError
from metaloss.results import welch_p

BASELINES = ("ce", "mse", "focal", "label_smoothing", "mae", "gce", "sce", "poly1")


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


QUICK_BUDGETS: dict[str, dict[str, Any]] = {
    "ml3": {"meta_steps": 300},
    "adalfl": {"init_steps": 300},
    "taylorglo": {"generations": 6, "popsize": 10, "fitness_steps": 300},
    "gplfl": {"population": 12, "generations": 6, "fitness_steps": 300, "seed_trees": "baselines"},
    "evomal": {
        "population": 12,
        "generations": 6,
        "fitness_steps": 300,
        "local_steps": 50,
        "seed_trees": "baselines",
    },
    "mln": {"generations": 30, "popsize": 16},
}
MNIST_BUDGETS: dict[str, dict[str, Any]] = {
    "ml3": {"meta_steps": 500},
    "adalfl": {"init_steps": 500},
    "taylorglo": {"generations": 4, "popsize": 8, "fitness_steps": 300},
    "gplfl": {"population": 10, "generations": 4, "fitness_steps": 300, "seed_trees": "baselines"},
    "evomal": {
        "population": 10,
        "generations": 4,
        "fitness_steps": 300,
        "local_steps": 50,
        "seed_trees": "baselines",
    },
    "mln": {"generations": 30, "popsize": 16},
}
REFERENCE_BUDGETS: dict[str, dict[str, Any]] = {
    "ml3": {"meta_steps": 250},
    "adalfl": {"init_steps": 2500},
    "taylorglo": {"generations": 50, "popsize": 25, "fitness_steps": 500},
    "gplfl": {"population": 25, "generations": 50, "fitness_steps": 500},
    "evomal": {"population": 25, "generations": 50, "fitness_steps": 500, "local_steps": 250},
    "mln": {"generations": 200, "popsize": 40},
}

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "quick",
        tasks=["digits-mlp", "mnist1d-mlp", "breast_cancer-linear", "yacht-mlp"],
        methods=["ce", "ml3", "adalfl", "taylorglo", "gplfl", "evomal"],
        seeds=3,
        budgets=QUICK_BUDGETS,
        description="CPU, minutes: small offline tasks, reduced budgets",
    ),
    "paper-mnist": Suite(
        "paper-mnist",
        tasks=["mnist-logistic", "mnist-mlp", "mnist-lenet5"],
        methods=["ce", "ml3", "taylorglo", "gplfl", "evomal", "adalfl", "mln"],
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
) -> dict[str, Any]:
    """Run (or resume) a suite into ``out``; returns the summary written to ``summary.json``.

    ``learn_on`` (a task name) learns every loss there and evaluates it on the suite's tasks;
    the ``transfer`` suite does that by default (MNIST / LeNet-5). ``data_dir`` applies to
    the evaluated tasks; the source task finds its data in the usual places. A loss learned
    on a source is reused by every task evaluated with it (same method and seed).
    ``first_seed`` runs seeds ``first_seed .. first_seed + seeds - 1`` (to shard a suite over
    processes or machines; merge the folders with ``bench/merge_tables.py``).
    """
    import metaloss as ml
    from metaloss.training import train

    if isinstance(suite, str):
        if suite not in SUITES:
            raise ConfigError(f"unknown suite {suite!r}; known: {', '.join(sorted(SUITES))}")
        suite = SUITES[suite]
    budgets = {"suite": suite.budgets, "reference": REFERENCE_BUDGETS, "quick": QUICK_BUDGETS}
    if budget not in budgets:
        raise ConfigError(f"budget must be suite, quick or reference, got {budget!r}")
    chosen = budgets[budget]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells_path = out / "cells.jsonl"
    done = {(c["task"], c["method"], c["seed"]) for c in io.read_jsonl(cells_path)}
    n_seeds = seeds or suite.seeds
    task_names = list(tasks or suite.tasks)
    method_names = list(methods or suite.methods)
    io.write_json(
        out / "suite.json",
        {
            "suite": suite.name,
            "tasks": task_names,
            "methods": method_names,
            "seeds": n_seeds,
            "budget": budget,
            "budgets": chosen,
            "steps": steps,
            "learn_on": learn_on,
            "first_seed": first_seed,
        },
    )
    mln_cache: dict[int, Any] = {}
    learned: dict[tuple[str, str, int], Any] = {}  # (source, method, seed) -> LearnResult
    sources: dict[str, Any] = {}
    for task_name in task_names:
        task = ml.tasks.get(task_name, data_dir=data_dir, device=device)
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
            for seed in range(first_seed, first_seed + n_seeds):
                if (task_name, method, seed) in done:
                    continue
                t0 = time.perf_counter()
                meta_seconds, info = 0.0, {}
                name = _baseline_for(method, task.classification)
                if name in BASELINES:
                    loss = ml.losses.get_baseline(name)
                elif method == "mln":
                    if seed not in mln_cache:
                        mln_cache[seed] = ml.learn("mln", None, seed=seed, **chosen.get("mln", {}))
                    res = mln_cache[seed]
                    loss, meta_seconds = res.loss, res.seconds
                elif method == "adalfl" and source is task:
                    # AdaLFL trains the model while the loss adapts: that model is the result.
                    res = ml.learn(method, task, seed=seed, steps=steps, **chosen.get(method, {}))
                    loss, info = res.loss, {"formula": res.loss.describe()}
                    meta_seconds = res.seconds - res.info.get("online_seconds", 0.0)
                else:
                    key = (source_name, method, seed)
                    if source is not task and key in learned:
                        res = learned[key]
                    else:
                        res = ml.learn(method, source, seed=seed, **chosen.get(method, {}))
                        learned[key] = res
                    loss, meta_seconds = res.loss, res.seconds
                    info = {"formula": loss.describe()}
                if method == "adalfl" and source is task:
                    test, val = res.info["test_metric"], res.info["val_metric"]
                    train_seconds = res.info.get("online_seconds", 0.0)
                else:
                    tr = train(task, loss, seed=seed, steps=steps, progress=progress)
                    test, val, train_seconds = tr.test_metric, tr.val_metric, tr.seconds
                cell = {
                    "task": task_name,
                    "method": method,
                    "seed": seed,
                    "metric": task.metric_name,
                    "test": test,
                    "val": val,
                    "meta_seconds": meta_seconds,
                    "train_seconds": train_seconds,
                    "seconds": time.perf_counter() - t0,
                    "learned_on": source_name,
                    **info,
                }
                io.append_jsonl(cells_path, [cell])
                log(
                    f"{task_name:>22} {method:>10} seed {seed}: test {task.metric_name} "
                    f"{test:.4f} (meta {meta_seconds:.0f} s, train {train_seconds:.0f} s)"
                )
    summary = summarise(io.read_jsonl(cells_path))
    io.write_json(out / "summary.json", summary)
    (out / "table.md").write_text(markdown(summary))
    return summary


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task and method: mean, std, delta and Welch p against the baseline."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for c in cells:
        by.setdefault(c["task"], {}).setdefault(c["method"], []).append(c)
    tasks_out = {}
    for task, methods in by.items():
        base_name = "ce" if "ce" in methods else next(iter(methods))
        base = [c["test"] for c in methods[base_name]]
        rows = {}
        for method, cs in methods.items():
            vals = [float(c["test"]) for c in cs]
            rows[method] = {
                "n": len(vals),
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "delta": float(np.mean(vals) - np.mean(base)),
                "p_value": math.nan if method == base_name else welch_p(vals, base),
                "meta_seconds": float(np.mean([c["meta_seconds"] for c in cs])),
                "metric": cs[0]["metric"],
                "formula": cs[0].get("formula", ""),
            }
        tasks_out[task] = {"baseline": base_name, "rows": rows}
    return {"tasks": tasks_out}


def markdown(summary: dict[str, Any]) -> str:
    """The suite table: one block per task."""
    lines = []
    for task, block in summary["tasks"].items():
        metric = next(iter(block["rows"].values()))["metric"]
        lines += [
            f"### {task} (test {metric})",
            "",
            f"| method | test {metric} (mean ± std) | n | Δ vs {block['baseline']} | p (Welch) | "
            "meta-train time |",
            "|---|---|---|---|---|---|",
        ]
        for method, r in block["rows"].items():
            base = method == block["baseline"]
            delta = "" if base else f"{r['delta']:+.4f}"
            p = "" if base or math.isnan(r["p_value"]) else f"{r['p_value']:.3f}"
            meta = "" if base else f"{r['meta_seconds']:.0f} s"
            lines.append(
                f"| {method} | {r['mean']:.4f} ± {r['std']:.4f} | {r['n']} | {delta} | {p} "
                f"| {meta} |"
            )
        lines.append("")
    return "\n".join(lines)
