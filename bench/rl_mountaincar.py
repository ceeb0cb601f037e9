"""ML3 on Mountain Car through a differentiable simulator: task loss vs plain vs shaped loss.

Per seed: meta-train a per-step loss over (x, v, a, goal distance) with the task loss as
meta-objective ("plain") and with a privileged intermediate-goal meta-objective ("shaped":
first reach the left hill x <= -0.9, then the goal); then train a fresh policy with each
of task loss / plain / shaped for ``--train-steps`` steps and measure the success rate
(reaching x >= 0.5 within the episode) from the standard start x ~ U[-0.6, -0.4], v = 0.

    python bench/rl_mountaincar.py --seeds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, write_result  # noqa: I001

from metaloss.io import save_loss
from metaloss.rl.mountaincar import MCConfig, meta_train_loss, train_and_eval

METHODS = ("task", "plain", "shaped")


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--meta-steps", type=int, default=60)
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--inner-lr", type=float, default=0.3)
    ap.add_argument("--meta-lr", type=float, default=1e-2)
    ap.add_argument("--fixed-init", action="store_true", help="one policy init per seed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = MCConfig(
        meta_steps=args.meta_steps,
        train_steps=args.train_steps,
        inner_lr=args.inner_lr,
        train_lr=args.inner_lr,
        meta_lr=args.meta_lr,
        fixed_init=args.fixed_init,
    )
    rows: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    trajectories: dict[str, np.ndarray] = {}
    meta_hist: dict[str, list[list[float]]] = {"plain": [], "shaped": []}
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        losses = {"task": None}
        for variant in ("plain", "shaped"):
            loss, hist = meta_train_loss(cfg, variant, seed)
            meta_hist[variant].append([r["meta_loss"] for r in hist])
            losses[variant] = loss
            if seed == 0:
                save_loss(RESULTS / f"rl_mountaincar_{variant}_loss", loss, meta=cfg.to_dict())
        for name, loss in losses.items():
            res = train_and_eval(loss, cfg, seed, keep_states=seed == 0)
            for key in ("success", "final_distance", "min_x"):
                rows[name].setdefault(key, []).append(res[key])
            if seed == 0:
                trajectories[name] = res["x"][:10].numpy()
        print(seed, {m: rows[m]["success"][-1] for m in METHODS}, flush=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, name in zip(axes[:3], METHODS):
        for x in trajectories[name]:
            ax.plot(x, alpha=0.7)
        ax.axhline(0.5, color="g", ls="--", label="goal")
        ax.axhline(cfg.subgoal, color="r", ls=":", label="subgoal (shaped meta-train only)")
        succ = _stats(rows[name]["success"])["mean"]
        ax.set(title=f"{name}: success {succ:.2f}", xlabel="step", ylabel="x", ylim=(-1.25, 0.65))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for variant, hs in meta_hist.items():
        axes[3].plot(np.asarray(hs).mean(0), label=variant)
    axes[3].set(title="meta-objective (mean over seeds)", xlabel="meta step")
    axes[3].grid(alpha=0.3)
    axes[3].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_mountaincar.png", dpi=110)
    write_result(
        "rl_mountaincar",
        {
            "args": vars(args),
            "config": cfg.to_dict(),
            "summary": {m: {k: _stats(v) for k, v in rows[m].items()} for m in METHODS},
            "per_seed": rows,
            "seconds": time.perf_counter() - t_start,
        },
    )


if __name__ == "__main__":
    main()
