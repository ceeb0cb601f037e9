"""Scale-free meta-objectives (issue 19, item 1) vs off, under the fair protocol.

    python bench/scale_free.py --tasks digits-mlp mnist1d-mlp --seeds 3

For each task: ML3 (off, ``normalize=init``, ``normalize=running``, ``learn_lr``,
``learn_lr`` + ``normalize=running``) and TaylorGLO (off, ``fitness_lrs=0.25,1,4``,
``normalize=init``) are meta-trained once (seed 0, reduced budgets below), then every
learned loss and cross-entropy go through ``ml.evaluate(..., tune="lr")`` (each loss's
learning rate tuned on tuning seeds, then ``--seeds`` reporting seeds; Welch + Holm vs
cross-entropy) with the step diagnostic (gradient-norm ratio and cosine vs cross-entropy).
The meta-training time of each option is reported next to its method's "off" time.
Writes ``bench/results/scale_free.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, write_result  # noqa: I001

import metaloss as ml
from metaloss.tuning import TuneConfig

ML3 = {"meta_steps": 150}
TAYLOR = {"generations": 3, "popsize": 6, "fitness_steps": 200}
VARIANTS = [
    ("ml3", "off", {}),
    ("ml3", "normalize=init", {"normalize": "init"}),
    ("ml3", "normalize=running", {"normalize": "running"}),
    ("ml3", "learn_lr", {"learn_lr": True}),
    ("ml3", "learn_lr+running", {"learn_lr": True, "normalize": "running"}),
    ("taylorglo", "off", {}),
    ("taylorglo", "fitness_lrs", {"fitness_lrs": (0.25, 1.0, 4.0)}),
    ("taylorglo", "normalize=init", {"normalize": "init"}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", nargs="*", default=["digits-mlp", "mnist1d-mlp"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tune-seeds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None, help="method:variant names to run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = []
    for name in args.tasks:
        task = ml.tasks.get(name)
        losses, learned = {}, []
        for method, variant, options in VARIANTS:
            label = f"{method}:{variant}"
            if args.only and label not in args.only:
                continue
            budget = ML3 if method == "ml3" else TAYLOR
            t0 = time.perf_counter()
            res = ml.learn(method, task, seed=0, **budget, **options)
            seconds = time.perf_counter() - t0
            losses[label] = res.loss
            keep = ("learned_lr", "learned_lr_factor", "best_fitness")
            learned.append(
                {
                    "method": method,
                    "variant": variant,
                    "options": {
                        k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
                    },  # fmt: skip
                    "learn_seconds": seconds,
                    "info": {k: v for k, v in res.info.items() if k in keep},
                    "loss": res.loss.describe()[:200],
                }
            )
            print(f"{name} {label}: learned in {seconds:.1f} s {learned[-1]['info']}", flush=True)
        for row in learned:
            off = next(r for r in learned if r["method"] == row["method"] and r["variant"] == "off")
            row["learn_time_over_off"] = row["learn_seconds"] / off["learn_seconds"]
        t0 = time.perf_counter()
        report = ml.evaluate(
            list(losses.values()),
            task,
            seeds=args.seeds,
            baselines=["ce"],
            tune="lr",
            tune_config=TuneConfig(seeds=args.tune_seeds),
        )
        eval_seconds = time.perf_counter() - t0
        names = ["ce", *losses]
        rows = []
        for label, r in zip(names, report.rows):
            rows.append({**r.to_dict(), "name": label})
            diag = r.diagnostic or {}
            print(
                f"{name} {label:28s} test {r.mean:.4f} +- {r.std:.4f} lr {r.lr} "
                f"p_holm {r.p_holm:.3g} {r.verdict} diag {diag}",
                flush=True,
            )
        out.append({"task": name, "learned": learned, "eval": rows, "eval_seconds": eval_seconds})
    payload = {
        "seeds": args.seeds,
        "tune_seeds": args.tune_seeds,
        "budgets": {"ml3": ML3, "taylorglo": TAYLOR},
        "tasks": out,
        "machine": machine(),
    }
    write_result("scale_free", payload)


if __name__ == "__main__":
    main()
