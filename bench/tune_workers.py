"""Learning-rate grids in worker processes (``--tune-workers``) vs one process, in one run.

    python bench/tune_workers.py --workers 2

Two grids, each timed in one process and in a RunPool of ``--workers`` processes (one torch
thread each), with their values compared bit for bit:

* ``lenet5_grid``: cross-entropy's lr grid on MNIST / LeNet-5 (``--lenet-steps`` steps,
  ``--factors`` grid points x ``--tune-seeds`` seeds). One process: the default batched
  grid (vmap) and serial runs; workers: serial runs side by side.
* ``adalfl_grid``: AdaLFL's whole online runs on digits-mlp (``--adalfl-steps`` steps),
  one process vs workers.

Run it on an idle machine: other processes on the cores distort the ratios. Writes
``bench/results/tune_workers.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, write_result  # noqa: I001

import metaloss as ml
from metaloss.evaluators.run_pool import RunPool
from metaloss.meta.whole_run import WholeRunFitness
from metaloss.tuning import TuneConfig, tune_lr, tune_whole_runs


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def vals(tuning):
    return [p.values for p in tuning.points]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--factors", type=int, default=4, help="grid points (x1, x2, x4, ...)")
    ap.add_argument("--tune-seeds", type=int, default=2)
    ap.add_argument("--lenet-steps", type=int, default=400)
    ap.add_argument("--adalfl-steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    factors = tuple(2.0**k for k in range(args.factors))
    rows = {}

    task = ml.tasks.get("mnist-lenet5")
    config = task.defaults.with_(steps=args.lenet_steps)
    loss = task.task_loss()
    base = {"factors": factors, "seeds": args.tune_seeds, "max_widen": 0}
    batched, t_b = timed(lambda: tune_lr(task, loss, config, TuneConfig(**base, batched=True)))
    serial, t_s = timed(lambda: tune_lr(task, loss, config, TuneConfig(**base, batched=False)))
    with RunPool(args.workers) as pool:
        pooled, t_p = timed(lambda: tune_lr(task, loss, config, TuneConfig(**base), pool=pool))
    rows["lenet5_grid"] = {
        "runs": len(factors) * args.tune_seeds,
        "steps": args.lenet_steps,
        "batched_s": t_b,
        "serial_s": t_s,
        "workers_s": t_p,
        "serial_over_workers": t_s / t_p,
        "batched_over_workers": t_b / t_p,
        "workers_equal_serial": vals(pooled) == vals(serial),
        "batched_equal_serial": vals(batched) == vals(serial),
        "lr": {"batched": batched.lr, "serial": serial.lr, "workers": pooled.lr},
    }
    print("lenet5_grid", rows["lenet5_grid"], flush=True)

    task = ml.tasks.get("digits-mlp")
    opts = {"steps": args.adalfl_steps, "init_steps": 50, "snapshots": 0}

    def describe(seed: int, lr: float) -> WholeRunFitness:
        return WholeRunFitness(task, "adalfl", seed, {**opts, "lr": lr})

    tune = TuneConfig(factors=factors, seeds=args.tune_seeds, max_widen=0)
    lr0 = task.defaults.lr / 4
    one, t_1 = timed(lambda: tune_whole_runs(task, None, lr0, tune, describe=describe))
    with RunPool(args.workers) as pool:
        many, t_w = timed(
            lambda: tune_whole_runs(task, None, lr0, tune, pool=pool, describe=describe)
        )
    rows["adalfl_grid"] = {
        "runs": len(factors) * args.tune_seeds,
        "steps": args.adalfl_steps,
        "one_process_s": t_1,
        "workers_s": t_w,
        "one_over_workers": t_1 / t_w,
        "workers_equal_one": vals(one) == vals(many),
        "lr": {"one": one.lr, "workers": many.lr},
    }
    print("adalfl_grid", rows["adalfl_grid"], flush=True)
    write_result("tune_workers", {"machine": machine(), "workers": args.workers, **rows})


if __name__ == "__main__":
    main()
