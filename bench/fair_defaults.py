"""Tune cross-entropy's learning rate on every registered task (the fair task defaults).

For each task: the learning-rate grid of :mod:`metaloss.tuning` (x1/4 ... x64 around the
old default, widened while the best lies on an edge) with cross-entropy (MSE for
regression), chosen by mean validation metric over tuning seeds. Prints old and new
learning rates and writes ``bench/results/fair_defaults.json``. The registry's defaults
are set from this output (docs/benchmarks.md records both).

    python bench/fair_defaults.py --tasks digits-mlp mnist1d-mlp --seeds 3
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, write_result  # noqa: I001

import metaloss as ml
from metaloss.tuning import TuneConfig, tune_lr

SMALL = [
    "iris-linear", "wine-linear", "digits-linear", "digits-mlp", "breast_cancer-linear",
    "breast_cancer-mlp", "mnist1d-mlp", "diabetes-mlp", "yacht-mlp", "concrete-mlp",
    "energy-mlp", "boston-mlp",
]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", nargs="*", default=SMALL)
    ap.add_argument("--seeds", type=int, default=3, help="tuning seeds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="override the task's steps")
    ap.add_argument("--old-lr", type=float, default=None, help="grid centre (default: task's)")
    ap.add_argument("--out", default="fair_defaults")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.tasks:
        task = ml.tasks.get(name)
        config = task.defaults.with_(steps=args.steps, lr=args.old_lr)
        t0 = time.perf_counter()
        res = tune_lr(task, task.task_loss(), config, TuneConfig(seeds=args.seeds))
        row = {
            "task": name,
            "steps": config.steps,
            "old_lr": config.lr,
            "new_lr": res.lr,
            "factor": res.lr / config.lr,
            "best_mean_val": res.best.mean,
            "note": res.note,
            "seconds": time.perf_counter() - t0,
            "batched": res.batched,
            "grid": [p.to_dict() for p in res.points],
        }
        rows.append(row)
        print(
            f"{name:>22}: lr {config.lr:g} -> {res.lr:g} (x{row['factor']:g}), "
            f"mean val {res.best.mean:.4f}, {row['seconds']:.0f} s {res.note}",
            flush=True,
        )
    path = write_result(args.out, {"machine": machine(), "seeds": args.seeds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
