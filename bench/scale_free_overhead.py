"""The time each scale-free option adds, measured back to back in one process.

    python bench/scale_free_overhead.py --task digits-mlp --rounds 3

ML3: seconds per meta step (``--meta-steps`` steps per measurement) with each option vs
off. Search fitness: seconds per candidate of a TaylorGLO fitness run (``--fitness-steps``)
plain, on a 3-point lr grid (one batched population), and normalised (``init``:
calibration on 4 batches; ``running``: two output-gradient evaluations per step).
Variants are interleaved and repeated ``--rounds`` times; the median is reported (the
machine is shared: ratios, not absolute times, are the result).
Writes ``bench/results/scale_free_overhead.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine, write_result  # noqa: I001

import metaloss as ml
from metaloss.evaluators import Candidate, TrainFitness
from metaloss.evaluators.lr_grid import ScaleFreeFitness
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.unrolled import MetaStepper, ML3Config

ML3_VARIANTS = {
    "off": {},
    "normalize=init": {"normalize": "init"},
    "normalize=running": {"normalize": "running"},
    "learn_lr": {"learn_lr": True},
}
FIT_VARIANTS = {
    "off": {},
    "fitness_lrs=0.25,1,4": {"lrs": (0.25, 1.0, 4.0)},
    "normalize=init": {"normalize": "init"},
    "normalize=running": {"normalize": "running"},
}


def ml3_seconds(task, options: dict, steps: int) -> float:
    stepper = MetaStepper(NeuralLoss.ml3(seed=0), task, ML3Config(**options))
    stepper.step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        stepper.step()
    return (time.perf_counter() - t0) / steps


def fitness_seconds(task, options: dict, steps: int) -> float:
    stage = TrainFitness(task, steps=steps, seed=1)
    fit = ScaleFreeFitness(stage, **options) if options else stage
    cand = Candidate.from_loss(0, TaylorLoss([0.0, 0.5, -1.0, 0.5, 0.2, 0.0, 0.1, 0.0]))
    t0 = time.perf_counter()
    fit(cand)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="digits-mlp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--meta-steps", type=int, default=30)
    ap.add_argument("--fitness-steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = ml.tasks.get(args.task)
    ml3 = {k: [] for k in ML3_VARIANTS}
    fit = {k: [] for k in FIT_VARIANTS}
    for _ in range(args.rounds):
        for k, opts in ML3_VARIANTS.items():
            ml3[k].append(ml3_seconds(task, opts, args.meta_steps))
        for k, opts in FIT_VARIANTS.items():
            fit[k].append(fitness_seconds(task, opts, args.fitness_steps))
    rows = []
    for part, table in (("ml3 meta step", ml3), ("taylorglo fitness", fit)):
        base = statistics.median(table["off"])
        for k, values in table.items():
            med = statistics.median(values)
            rows.append({"part": part, "variant": k, "seconds": med, "over_off": med / base})
            print(f"{part:18s} {k:22s} {med * 1000:9.1f} ms  x{med / base:.2f}", flush=True)
    write_result(
        "scale_free_overhead",
        {"task": args.task, "rounds": args.rounds, "rows": rows, "machine": machine()},
    )


if __name__ == "__main__":
    main()
