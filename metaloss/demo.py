"""``make demo``: meta-learn a loss on an offline task and compare it with cross-entropy.

A small EvoMAL search (genetic programming + gradient-tuned edge weights) on scikit-learn's
digits with an MLP, a short ML3 meta-training for comparison, then a fresh evaluation of the
learned losses against cross-entropy on the untouched test set over several seeds. A few
minutes on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table


def run_demo(quick: bool = False, console: Console | None = None, out: str = "runs/demo") -> dict:
    """Run the demo; returns the numbers it printed."""
    import metaloss as ml
    from metaloss.losses import get_baseline
    from metaloss.plots import plot_losses

    console = console or Console()
    torch.set_num_threads(1)  # small models: one thread is fastest and deterministic
    task = ml.tasks.get("digits-mlp")
    budget = (
        dict(population=6, generations=2, fitness_steps=150, local_steps=10)
        if quick
        else dict(population=16, generations=8, fitness_steps=500, local_steps=50)
    )
    budget["seed_trees"] = "baselines"  # start from CE and squared error: small budgets pay off
    seeds, steps = (2, 300) if quick else (5, 1000)
    console.rule("[bold]metaloss demo: EvoMAL on digits-mlp")
    console.print(
        f"task: {task.source}; {len(task.train)} train / {len(task.val)} val / "
        f"{len(task.test)} test; model {task.model_name}"
    )
    console.print(f"search budget: {budget}")
    start = time.perf_counter()
    result = ml.learn("evomal", task, seed=0, progress=True, **budget)
    search_s = time.perf_counter() - start
    result.save(Path(out))
    console.print(f"found in {search_s:.0f} s: [bold]{result.loss.describe()}[/]")
    console.print(
        f"evaluated {result.info['evaluated']} trees, "
        f"{result.info['cache_hits']} cache hits, rejected {result.info['rejected']}"
    )
    console.print(f"structure (sympy, weights aside): {result.hall_of_fame[0]['canonical']}")
    ml3_steps = 30 if quick else 300
    ml3 = ml.learn("ml3", task, seed=0, meta_steps=ml3_steps, progress=True)
    ml3.save(Path(out) / "ml3")
    console.print(f"ML3 loss ({ml3_steps} meta steps) learned in {ml3.seconds:.0f} s")
    report = ml.evaluate(
        [result.loss, ml3.loss], task, seeds=seeds, baselines=["cross_entropy"], steps=steps
    )
    report.rows[1].name = "evomal (learned)"
    report.rows[2].name = "ml3 (learned)"
    table = Table(title=f"test error on digits, {steps} SGD steps, {seeds} seeds")
    for col in ("loss", "test error (mean ± std)", "Δ vs CE", "p (Welch)"):
        table.add_column(col)
    for r in report.rows:
        first = r is report.rows[0]
        table.add_row(
            r.name,
            f"{r.mean:.4f} ± {r.std:.4f}",
            "" if first else f"{r.delta:+.4f}",
            "" if first else f"{r.p_value:.3f}",
        )
    console.print(table)
    png = plot_losses(
        {"evomal": result.loss, "ml3": ml3.loss, "cross_entropy": get_baseline("ce")},
        Path(out) / "loss.png",
        title="learned loss vs cross-entropy",
    )
    console.print(f"run directory: {out} (spec.json, loss.safetensors, history.jsonl, {png.name})")
    console.print(f"total {time.perf_counter() - start:.0f} s")
    return {
        "search_seconds": search_s,
        "report": report.to_dict(),
        "formula": result.loss.describe(),
    }
