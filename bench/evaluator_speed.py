"""Serial vs batched (vmap) population evaluation: candidates per second and agreement.

One TaylorGLO generation (CMA-ES ``ask`` of ``--popsize`` Taylor losses, sigma 1.2, seed 0)
is scored twice with the same fitness (a fresh, identically seeded base model trained for
``--steps`` SGD steps; validation error): by the serial reference evaluator and by the
batched evaluator. Reports seconds, candidates/second, the speed-up and the largest
fitness difference (the batched evaluator promises equal ``ok`` flags and error rates
within 2 / len(val)).

    python bench/evaluator_speed.py   # digits-mlp (25 x 500 steps) + mnist-lenet5 (10 x 50)
    python bench/evaluator_speed.py --tasks digits-mlp --device cuda
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from common import write_result  # noqa: I001

from metaloss import tasks
from metaloss.evaluators import SerialEvaluator, TrainFitness
from metaloss.evaluators.batched import BatchedEvaluator, auto_chunk_size
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.evolution import CMAES, VectorFamily


def compare(name: str, steps: int, popsize: int, device: str, chunk: int | None) -> dict:
    """Time both evaluators on one generation of ``popsize`` Taylor candidates."""
    task = tasks.get(name, device=device)
    cands = CMAES(VectorFamily(TaylorLoss()), sigma=1.2, popsize=popsize, seed=0).ask()
    fit = TrainFitness(task, steps=steps)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    batched_ev = BatchedEvaluator(fit, chunk_size=chunk)
    batched_ev.evaluate(cands[:2])  # warm-up (allocator, kernels)
    sync()
    t0 = time.perf_counter()
    batched = batched_ev.evaluate(cands)
    sync()
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    serial = SerialEvaluator(fit).evaluate(cands)
    sync()
    t_serial = time.perf_counter() - t0

    diffs = [abs(s.value - b.value) for s, b in zip(serial, batched) if s.ok and b.ok]
    row = {
        "task": name,
        "device": str(task.device),
        "steps": steps,
        "popsize": popsize,
        "chunk_size": chunk or auto_chunk_size(task, fit.train_config(), popsize),
        "serial_s": round(t_serial, 3),
        "batched_s": round(t_batched, 3),
        "serial_cand_per_s": round(popsize / t_serial, 3),
        "batched_cand_per_s": round(popsize / t_batched, 3),
        "speedup": round(t_serial / t_batched, 2),
        "ok_serial": sum(f.ok for f in serial),
        "ok_flags_equal": all(s.ok == b.ok for s, b in zip(serial, batched)),
        "max_abs_val_diff": max(diffs, default=0.0),
        "tolerance": 2 / len(task.val),
        "best_val_error": min((f.value for f in serial if f.ok), default=math.inf),
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", nargs="+", default=["digits-mlp", "mnist-lenet5"])
    ap.add_argument("--steps", type=int, default=500, help="fitness steps for digits-mlp")
    ap.add_argument("--mnist-steps", type=int, default=50, help="fitness steps for mnist-*")
    ap.add_argument("--popsize", type=int, default=25)
    ap.add_argument("--mnist-popsize", type=int, default=10, help="population for mnist-*")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--chunk-size", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.tasks:
        mnist = name.startswith("mnist")
        steps = args.mnist_steps if mnist else args.steps
        popsize = args.mnist_popsize if mnist else args.popsize
        rows.append(compare(name, steps, popsize, args.device, args.chunk_size))
    write_result("evaluator_speed", {"args": vars(args), "results": rows})


if __name__ == "__main__":
    main()
