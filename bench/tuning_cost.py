"""Cost of a tuned evaluation vs an untuned one, and batched vs serial grids, in one run.

    python bench/tuning_cost.py --tasks digits-mlp mnist1d-mlp --seeds 5

For each task and the task loss: ``ml.evaluate`` untuned (the reporting seeds only), tuned
with the batched lr grid, and tuned with serial grid runs; wall times and their ratios, and
whether both tunings chose the same learning rate. Writes ``bench/results/tuning_cost.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, write_result  # noqa: I001

import metaloss as ml
from metaloss.tuning import TuneConfig


def timed(losses, task, **kw):
    """``ml.evaluate(losses, task, **kw)`` and its wall time."""
    t0 = time.perf_counter()
    out = ml.evaluate(losses, task, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", nargs="*", default=["digits-mlp", "mnist1d-mlp"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tune-seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.tasks:
        task = ml.tasks.get(name)
        loss = [task.task_loss()]
        kw = {"seeds": args.seeds, "diagnose": False}
        _, untuned = timed(loss, task, tune=None, **kw)
        cfg_b = TuneConfig(seeds=args.tune_seeds, batched=True)
        cfg_s = TuneConfig(seeds=args.tune_seeds, batched=False)
        rep_b, batched = timed(loss, task, tune_config=cfg_b, **kw)
        rep_s, serial = timed(loss, task, tune_config=cfg_s, **kw)
        row = {
            "task": name,
            "untuned_s": untuned,
            "tuned_batched_s": batched,
            "tuned_serial_s": serial,
            "tuned_over_untuned_batched": batched / untuned,
            "tuned_over_untuned_serial": serial / untuned,
            "serial_over_batched": serial / batched,
            "grid_points": len(rep_b.rows[0].tuning["grid"]),
            "lr_batched": rep_b.rows[0].lr,
            "lr_serial": rep_s.rows[0].lr,
        }
        rows.append(row)
        print(
            f"{name}: untuned {untuned:.1f} s, tuned batched {batched:.1f} s "
            f"(x{row['tuned_over_untuned_batched']:.1f}), tuned serial {serial:.1f} s "
            f"(x{row['tuned_over_untuned_serial']:.1f}); batched {row['serial_over_batched']:.2f}x "
            f"faster; lr {row['lr_batched']:g} / {row['lr_serial']:g}",
            flush=True,
        )
    write_result("tuning_cost", {"machine": machine(), "seeds": args.seeds, "rows": rows})


if __name__ == "__main__":
    main()
