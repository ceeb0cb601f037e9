"""Model-based ML3 on the 2-link reacher: learned loss vs task loss through a learned model.

Per seed: collect random rollouts in the true simulator, fit a dynamics ensemble, meta-train
a per-step loss (fingertip-goal distance, torques, joint velocities) through the model on
goals in the upper half-plane, then train a fresh policy through the model on unseen goals
in the lower half-plane with the learned loss or directly with the task loss (final
distance), for each of ``--train-steps``, and report the final fingertip-goal distance in
the TRUE simulator.

    python bench/rl_reacher.py --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from common import RESULTS, write_result  # noqa: I001

from metaloss.io import save_loss
from metaloss.rl.reacher import (
    ReacherConfig,
    fit_dynamics,
    meta_train_loss,
    model_error,
    train_and_eval,
)


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--meta-steps", type=int, default=100)
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--train-steps", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--random-init", action="store_true", help="fresh policy init each step")
    ap.add_argument("--refit-every", type=int, default=0, help="on-policy model refit period")
    ap.add_argument("--name", default="rl_reacher", help="result file name")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = ReacherConfig(
        meta_steps=args.meta_steps,
        inner_steps=args.inner_steps,
        members=args.members,
        fixed_init=not args.random_init,
        refit_every=args.refit_every,
    )
    results: dict[str, dict[str, list[float]]] = {}
    curves: dict[str, list[list[float]]] = {}
    model_errors, meta_curves = [], []
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        model = fit_dynamics(cfg, seed)
        loss, hist = meta_train_loss(model, cfg, seed)  # refits the model with --refit-every
        model_errors.append(model_error(model, cfg, seed))
        meta_curves.append([r["meta_loss"] for r in hist])
        if seed == 0 and args.name == "rl_reacher":
            save_loss(RESULTS / "rl_reacher_loss", loss, meta=cfg.to_dict())
        for steps in args.train_steps:
            c = dataclasses.replace(cfg, train_steps=steps)
            for name, fn in (("task", None), ("ml3", loss)):
                res = train_and_eval(fn, model, c, seed)
                key = f"{name}@{steps}"
                results.setdefault(key, []).append(res["final_distance"])
                results.setdefault(f"{key} (model)", []).append(res["model_final_distance"])
                results.setdefault("start_distance", []).append(res["start_distance"])
                if steps == max(args.train_steps):
                    curves.setdefault(name, []).append(res["train_curve"])
        print(seed, {k: round(v[-1], 3) for k, v in results.items()}, flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(np.asarray(meta_curves).mean(0))
    axes[0].set(title="meta-objective (model final distance)", xlabel="meta step")
    keys = [k for k in results if "(model)" not in k and k != "start_distance"]
    means = [_stats(results[k])["mean"] for k in keys]
    stds = [_stats(results[k])["std"] for k in keys]
    axes[1].bar(keys, means, yerr=stds, capsize=4)
    axes[1].set(title="final distance in the true simulator (unseen goals)", ylabel="distance")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)
    results["start_distance"] = results["start_distance"][:: 2 * len(args.train_steps)]
    write_result(
        args.name,
        {
            "args": vars(args),
            "config": cfg.to_dict(),
            "summary": {k: _stats(v) for k, v in results.items()},
            "per_seed": results,
            "model_one_step_nmse": model_errors,
            "seconds": time.perf_counter() - t_start,
        },
    )


if __name__ == "__main__":
    main()
