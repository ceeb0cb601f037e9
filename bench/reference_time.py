"""Time per search: ML3's sine meta-training, ours beside the reference code's.

The reference is facebookresearch/LearningToLearn (``ml3/sine_regression_task.py``), run
unchanged from a checkout named with ``--reference-dir`` (it needs the ``higher`` package
on ``PYTHONPATH``; nothing of it is copied here). The same work on both sides: a 1-100-10-1
ReLU model, one sine y = sin(x - pi) with 100 points, a 2-50-50-1 neural loss, one
unrolled SGD step (lr 1e-3) per meta step, Adam (lr 1e-3) on the loss, 500 meta steps.

Measured per seed, one torch thread, interleaved:

* ``reference`` - the reference's ``main`` as its experiment script calls it; it also
  evaluates MSE and ML3 on the train and test sines every 10 meta steps (4 x 10 runs of
  100 SGD steps each time) and saves its log;
* ``reference_no_eval`` - the same with that periodic evaluation replaced by a no-op: the
  meta-training alone;
* ``ours`` - ``metaloss.meta.unrolled.meta_train`` with the sine bench's configuration
  (``bench/ml3_sine.py``, reference protocol).

    PYTHONPATH=/path/to/higher python bench/reference_time.py --reference-dir L2L --seeds 3
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
import tempfile
import time

import torch
from common import write_result  # noqa: I001
from ml3_sine import sine_task

from metaloss.losses.neural import NeuralLoss
from metaloss.meta.unrolled import ML3Config, meta_train


def reference_cfg(seed: int, meta_steps: int, log_dir: str) -> dict:
    """``run_sine_regression_exp.py``'s configuration."""
    return {
        "seed": seed,
        "num_train_tasks": 1,
        "num_test_tasks": 10,
        "n_outer_iter": meta_steps,
        "n_gradient_steps_at_test": 100,
        "inner_lr": 0.001,
        "outer_lr": 0.001,
        "model": {"in_dim": 1, "hidden_dim": [100, 10]},
        "metaloss": {"in_dim": 2, "hidden_dim": [50, 50]},
        "log_dir": log_dir,
        "exp_log_file_name": f"sine_regression_seed_{seed}.pt",
    }


def time_reference(task_module, seed: int, meta_steps: int, evaluate: bool) -> float:
    real_eval = task_module.eval
    if not evaluate:
        task_module.eval = lambda **kw: {"nmse": [0.0], "mse": [0.0], "loss_trace": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            task_module.main(reference_cfg(seed, meta_steps, tmp))
            return time.perf_counter() - t0
    finally:
        task_module.eval = real_eval


def time_ours(seed: int, meta_steps: int) -> float:
    task = sine_task(1.0, -math.pi, -2, 2, 100, seed=1000 + seed)
    loss = NeuralLoss.ml3(seed=seed)
    cfg = ML3Config(meta_steps=meta_steps, inner_steps=1, inner_lr=1e-3, meta_lr=1e-3,
                    batch_size=100, query="same")  # fmt: skip
    t0 = time.perf_counter()
    meta_train(loss, task, cfg, seed=seed)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reference-dir", required=True, help="a LearningToLearn checkout")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--meta-steps", type=int, default=500)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, args.reference_dir)
    task_module = importlib.import_module("ml3.sine_regression_task")
    rows = []
    for seed in range(args.seeds):
        row = {
            "seed": seed,
            "ours": time_ours(seed, args.meta_steps),
            "reference_no_eval": time_reference(task_module, seed, args.meta_steps, False),
            "reference": time_reference(task_module, seed, args.meta_steps, True),
        }
        rows.append(row)
        print(row, flush=True)
    summary = {k: statistics.median(r[k] for r in rows) for k in ("ours", "reference_no_eval",
                                                                   "reference")}  # fmt: skip
    summary["reference_no_eval_over_ours"] = summary["reference_no_eval"] / summary["ours"]
    summary["meta_steps_per_s_ours"] = args.meta_steps / summary["ours"]
    summary["meta_steps_per_s_reference_no_eval"] = args.meta_steps / summary["reference_no_eval"]
    print(summary)
    write_result("reference_time_ml3_sine", {"rows": rows, "summary": summary,
                                             "meta_steps": args.meta_steps}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
