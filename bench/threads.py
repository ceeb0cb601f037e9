"""Torch CPU threads vs training speed: ``ml.train`` on small models with 1, 2 and torch's
default thread count (the measurement behind metaloss.threads' automatic rule).

Each setting trains the same model, loss, seed and step count; settings are interleaved and
repeated, and the median wall time is reported with the load average before and after, since
other processes on a shared machine change the result.

    python bench/threads.py --steps 300 --repeats 3            # as the machine is
    python bench/threads.py --steps 300 --repeats 3 --load 1   # with one busy process beside
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import write_result  # noqa: I001

import metaloss as ml

# A busy loop that ends when this script does (even when it is killed).
_HOG = "import os\np = os.getppid()\nwhile os.getppid() == p: pass"
TASKS = ("digits-mlp", "mnist-mlp", "mnist-lenet5")


def run(task, loss, steps: int, setting: int) -> float:
    ml.set_threads(setting)
    start = time.perf_counter()
    ml.train(task, loss, steps=steps, seed=0)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--out", default="threads", help="result name: bench/results/OUT.json")
    ap.add_argument(
        "--load",
        type=int,
        default=0,
        help="busy-loop processes to run meanwhile (simulates a machine shared with other jobs)",
    )
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG]) for _ in range(args.load)]
    try:
        measure(args)
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def measure(args: argparse.Namespace) -> None:
    settings = {"1 thread": 1, "2 threads": 2, "torch default": 0}
    default = ml.threads.torch_default_threads()
    load_before = os.getloadavg()
    rows = []
    for name in args.tasks:
        task = ml.tasks.get(name)
        loss = ml.losses.get_loss("cross_entropy")
        params = sum(p.numel() for p in task.make_model(0).parameters())
        run(task, loss, 20, 1)  # warm-up (allocations, first-call overheads)
        times: dict[str, list[float]] = {k: [] for k in settings}
        for _ in range(args.repeats):
            for label, n in settings.items():
                times[label].append(run(task, loss, args.steps, n))
        row = {"task": name, "params": params, "steps": args.steps}
        for label in settings:
            med = statistics.median(times[label])
            row[label] = {"median_s": round(med, 3), "steps_per_s": round(args.steps / med, 1)}
            row[label]["runs_s"] = [round(t, 3) for t in times[label]]
        row["auto_rule_threads"] = ml.threads.auto_threads(params)
        rows.append(row)
        print(
            f"{name:14s} params {params:>8,d}  "
            + "  ".join(f"{k}: {row[k]['median_s']:.2f} s" for k in settings)
        )
    ml.set_threads("auto")
    load_after = os.getloadavg()
    write_result(
        args.out,
        {
            "busy_processes_started": args.load,
            "torch_default_threads": default,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "note": (
                "measured on a shared machine; other processes may have run (load average above, "
                "which includes busy_processes_started), so the figures are under load"
            ),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
