"""Process-pool vs serial population evaluation: speed-up on N cores against one process.

One TaylorGLO generation (CMA-ES ``ask`` of ``--popsize`` Taylor losses, sigma 1.2, seed 0)
is scored by the serial evaluator in this process (one torch thread) and by the process
pool with ``--workers`` workers (one torch thread each). The pool's start-up (spawning the
workers, importing torch, rebuilding the task) is timed separately from a generation on
the warm pool, which is what a search pays every generation after the first. The fitness
values must be identical (same seeds, one thread everywhere).

    python bench/pool_speed.py                      # digits-mlp, 8 x 500 steps, 2 workers
    python bench/pool_speed.py --task mnist-lenet5 --steps 100 --popsize 4
    python bench/pool_speed.py --steps 1500 --popsize 4 --one-worker --repeats 3

``mean_training_s_per_candidate`` (the training loop of one candidate, without start-up or
evaluation) shows whether the workers really ran side by side: on a machine whose other
sessions keep the cores busy, the kernel's autogroup scheduler gives this session a fixed
share of the CPUs, and two workers then train each candidate about twice as slowly as one.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import write_result  # noqa: I001

from metaloss import tasks
from metaloss.evaluators import SerialEvaluator, TrainFitness
from metaloss.evaluators.pool import ProcessPoolEvaluator, available_cpus
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.evolution import CMAES, VectorFamily


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="digits-mlp")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="timed generations of each")
    ap.add_argument("--one-worker", action="store_true", help="also time a 1-worker pool")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = tasks.get(args.task)
    fit = TrainFitness(task, steps=args.steps)
    cands = CMAES(VectorFamily(TaylorLoss()), sigma=1.2, popsize=args.popsize, seed=0).ask()

    ev = ProcessPoolEvaluator(fit, workers=args.workers)
    t0 = time.perf_counter()
    ev.evaluate(cands[: args.workers])  # start the workers (spawn, import, build the task)
    startup = time.perf_counter() - t0
    one = ProcessPoolEvaluator(fit, workers=1) if args.one_worker else None
    if one is not None:
        one.evaluate(cands[:1])
    serial_s, pool_s, one_s, per_cand = [], [], [], {"serial": [], "pool": [], "one": []}
    for _ in range(args.repeats):  # interleaved, so that both see the same machine load
        t0 = time.perf_counter()
        serial = SerialEvaluator(fit).evaluate(cands)
        serial_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pooled = ev.evaluate(cands)
        pool_s.append(time.perf_counter() - t0)
        per_cand["serial"] += [f.seconds for f in serial]
        per_cand["pool"] += [f.seconds for f in pooled]
        if one is not None:
            t0 = time.perf_counter()
            per_cand["one"] += [f.seconds for f in one.evaluate(cands)]
            one_s.append(time.perf_counter() - t0)
    ev.close()
    if one is not None:
        one.close()
    identical = all(
        (s.ok, s.value, s.info) == (p.ok, p.value, p.info) for s, p in zip(serial, pooled)
    )
    row = {
        "task": args.task,
        "steps": args.steps,
        "popsize": args.popsize,
        "workers": args.workers,
        "available_cpus": available_cpus(),
        "pool_startup_s": round(startup, 2),
        "serial_s": [round(t, 2) for t in serial_s],
        "pool_s": [round(t, 2) for t in pool_s],
        "speedup": round(min(serial_s) / min(pool_s), 2),
        "speedup_incl_startup": round(min(serial_s) / (min(pool_s) + startup), 2),
        "identical_fitness": identical,
        "one_worker_pool_s": [round(t, 2) for t in one_s],
        "mean_training_s_per_candidate": {
            k: round(sum(v) / len(v), 3) for k, v in per_cand.items() if v
        },
        "ok": sum(f.ok for f in serial),
    }
    write_result(f"pool_speed_{args.task}", {"args": vars(args), **row})


if __name__ == "__main__":
    main()
