"""Early stopping of hopeless candidates: training steps, wall time and result quality.

For every task x method x seed, the same search runs with early stopping off and on
(back to back in one process, one torch thread). Reported per run: the total training
steps of the fitness runs (``train_steps``, summed over generations; a stopped candidate
counts its steps up to the checkpoint, a rejected one 0), candidates stopped, wall time of
the search, the best fitness, and the found loss's test error under the fair protocol
(``ml.evaluate([loss], task, tune="lr", seeds=3)``, i.e. a learning-rate grid tuned on
validation, then 3 reporting seeds at the task's full training budget), and its step
diagnostic against cross-entropy (``diagnostic``: gradient-norm ratio and cosine).

    python bench/early_stop.py                       # digits-mlp + mnist1d-mlp, 3 seeds
    python bench/early_stop.py --tasks digits-mlp --seeds 1 --methods taylorglo
    python bench/early_stop.py --rules 0.25,0.5   # one rule (default: two, see --rules)
    python bench/early_stop.py --tasks mnist-mlp --eval-seeds 0   # no fair evaluation
    python bench/early_stop.py --examples 0 1000  # checkpoints on all / 1,000 val examples
    python bench/early_stop.py --arms off --out off.json   # one arm per process
    python bench/early_stop.py --save-losses runs/es-losses   # keep the found losses
    python bench/early_stop.py --reference elite --floor 0.25  # elite thresholds, floored
    python bench/early_stop.py --reference elite --rescue 1  # >= 1 complete run a generation

Budgets are reduced (a few minutes per run on one CPU core): see ``BUDGETS``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from common import write_result  # noqa: I001

import metaloss as ml
from metaloss.diagnostics import step_diagnostic
from metaloss.meta.configs import EvoMALConfig, TaylorGLOConfig
from metaloss.meta.gp import learn_evomal
from metaloss.meta.taylorglo import learn_taylorglo

BUDGETS = {
    "taylorglo": TaylorGLOConfig(generations=10, popsize=12, fitness_steps=300),
    "evomal": EvoMALConfig.preset("quick").with_options(
        generations=6, population=12, fitness_steps=300, local_steps=20
    ),
}
LEARN = {"taylorglo": learn_taylorglo, "evomal": learn_evomal}


def one(
    task: ml.Task,
    method: str,
    seed: int,
    stop: dict,
    eval_seeds: int,
    evaluator: str = "serial",
    save_dir: str | None = None,
) -> dict:
    """One search (early stopping per ``stop``) and the fair evaluation of its loss; with
    ``save_dir`` the found loss is saved as a run directory there (``metaloss evaluate`` and
    ``ml.evaluate`` read it), named by task, method, seed and arm."""
    cfg = BUDGETS[method].with_options(**stop)
    t0 = time.perf_counter()
    res = LEARN[method](task, cfg, seed=seed, evaluator=evaluator)
    wall = time.perf_counter() - t0
    saved = None
    if save_dir is not None:
        arm = "off"
        if stop["early_stop"]:
            arm = "on-" + "-".join(map(str, stop["early_stop_at"]))
            arm += f"-x{stop['early_stop_examples']}"
            arm += f"-f{stop['early_stop_floor']:g}" if stop.get("early_stop_floor") else ""
            arm += f"-r{stop['early_stop_rescue']}" if stop.get("early_stop_rescue") else ""
        saved = str(res.save(Path(save_dir) / f"{task.name}-{method}-s{seed}-{arm}"))
    t0 = time.perf_counter()
    values = [math.nan]
    if eval_seeds > 0:  # 0: no fair evaluation (the best fitness is the quality measure)
        report = ml.evaluate([res.loss], task, seeds=eval_seeds, tune="lr", diagnose=False)
        values = report.rows[-1].values
    out = {
        "task": task.name,
        "method": method,
        "seed": seed,
        "early_stop": stop,
        "train_steps": sum(h["train_steps"] for h in res.history),
        "stopped": sum(h["stopped"] for h in res.history),
        # per generation: a generation whose every candidate stopped ranked them by an
        # early checkpoint metric alone
        "stopped_per_generation": [h["stopped"] for h in res.history],
        "rescued_per_generation": [h.get("rescued", 0) for h in res.history],
        "best_per_generation": [h["best"] for h in res.history],
        "candidates": sum(h["candidates"] for h in res.history),
        "search_s": round(wall, 2),
        "best_fitness": res.info.get("best_fitness"),
        "test_error": statistics.mean(values),
        "test_errors": values,
        "eval_s": round(time.perf_counter() - t0, 2),
        "formula": res.loss.describe(),
        # the found loss's step vs cross-entropy (gradient-norm ratio and cosine at init)
        "diagnostic": step_diagnostic(res.loss, task).to_dict(),
        "saved": saved,
    }
    print(out, flush=True)
    return out


def _ratio(off: list[dict], on: list[dict], key: str, floor: float) -> float | None:
    """Sum of ``key`` without early stopping over the sum with it; None when one arm did
    not run in this process (``--arms``)."""
    if not (off and on):
        return None
    return sum(r[key] for r in off) / max(floor, sum(r[key] for r in on))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", nargs="+", default=["digits-mlp", "mnist1d-mlp"])
    ap.add_argument("--methods", nargs="+", default=["taylorglo", "evomal"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed+1...")
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument(
        "--rules",
        nargs="+",
        default=["0.25,0.5", "0.1,0.2,0.4"],
        help="checkpoint sets to compare with no early stopping (comma-separated fractions)",
    )
    ap.add_argument("--quantile", type=float, default=0.5)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--floor", type=float, default=0.0, help="early_stop_floor of the rules")
    ap.add_argument("--rescue", type=int, default=0, help="early_stop_rescue of the rules")
    ap.add_argument(
        "--reference", default="previous", choices=("previous", "elite"),
        help="early_stop_reference of the rules",
    )  # fmt: skip
    ap.add_argument(
        "--examples", nargs="+", type=int, default=[1000],
        help="early_stop_examples of the rules (validation examples measured at checkpoints; "
        "0: all); several values: one rule each",
    )  # fmt: skip
    ap.add_argument("--evaluator", default="serial", help="the searches' evaluator (both arms)")
    ap.add_argument(
        "--arms", nargs="+", default=["off", "on"], choices=("off", "on"),
        help="which arms to run: off (no early stopping), on (each rule); one per process "
        "lets two processes share the cores",
    )  # fmt: skip
    ap.add_argument("--save-losses", default=None, help="save each found loss in this folder")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rules = [
        {
            "early_stop": True,
            "early_stop_at": tuple(float(f) for f in rule.split(",")),
            "early_stop_quantile": args.quantile,
            "early_stop_margin": args.margin,
            "early_stop_reference": args.reference,
            "early_stop_examples": examples,
            "early_stop_floor": args.floor,
            "early_stop_rescue": args.rescue,
        }
        for rule in args.rules
        for examples in args.examples
    ]
    arms = [{"early_stop": False}] if "off" in args.arms else []
    arms += rules if "on" in args.arms else []
    runs = []
    for name in args.tasks:
        task = ml.tasks.get(name)
        for method in args.methods:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for stop in arms:
                    runs.append(
                        one(
                            task,
                            method,
                            seed,
                            stop,
                            args.eval_seeds,
                            args.evaluator,
                            args.save_losses,
                        )
                    )
    summary = []
    for name in args.tasks:
        for method in args.methods:
            mine = [r for r in runs if (r["task"], r["method"]) == (name, method)]
            base = [r for r in mine if not r["early_stop"]["early_stop"]]
            for rule in rules:
                es = [r for r in mine if r["early_stop"] == rule]
                summary.append(
                    {
                        "task": name,
                        "method": method,
                        "early_stop_at": rule["early_stop_at"],
                        "early_stop_examples": rule["early_stop_examples"],
                        "steps_off": sum(r["train_steps"] for r in base),
                        "steps_on": sum(r["train_steps"] for r in es),
                        "step_ratio": _ratio(base, es, "train_steps", 1),
                        "wall_ratio": _ratio(base, es, "search_s", 1e-9),
                        "test_error_off": [round(r["test_error"], 4) for r in base],
                        "test_error_on": [round(r["test_error"], 4) for r in es],
                        "best_fitness_off": [r["best_fitness"] for r in base],
                        "best_fitness_on": [r["best_fitness"] for r in es],
                    }
                )
                print(summary[-1], flush=True)
    name = "early_stop_" + "_".join(args.tasks)
    meta = {"evaluator": args.evaluator}
    write_result(name, {"runs": runs, "summary": summary, "rules": rules, **meta}, args.out)


if __name__ == "__main__":
    main()
