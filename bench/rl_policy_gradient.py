"""Model-free ML3: a learned loss vs REINFORCE on CartPole (and Pendulum), over seeds.

Per seed: meta-train a per-step loss over (log-prob, normalised return-to-go, t/T)
ML3-style (meta-objective: REINFORCE surrogate of the updated policy on fresh episodes,
or the differentiable pendulum's return), then train a fresh policy for ``--train-steps``
updates with the learned loss, with REINFORCE, and with REINFORCE whose every step is
normalised to the clipping norm (same optimiser, lr and clipping) and report the mean
episode return of the final policy.

    python bench/rl_policy_gradient.py --seeds 5 --envs cartpole pendulum
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, write_result  # noqa: I001

from metaloss.io import save_loss
from metaloss.rl.policy_gradient import PGConfig, meta_train_loss, train_and_eval


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--envs", nargs="+", default=["cartpole", "pendulum"])
    ap.add_argument("--meta-steps", type=int, default=100)
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--horizon", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--pendulum-objective", default="surrogate", choices=["surrogate", "return"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    payload: dict = {"args": vars(args), "envs": {}}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.envs), figsize=(5 * len(args.envs), 4), squeeze=False)
    for ax, env in zip(axes[0], args.envs):
        cfg = PGConfig(
            env=env,
            horizon=args.horizon,
            meta_steps=args.meta_steps,
            train_steps=args.train_steps,
            inner_lr=args.lr,
            train_lr=args.lr,
            meta_objective=args.pendulum_objective if env == "pendulum" else "surrogate",
        )
        names = ("reinforce", "reinforce-normalised", "ml3")
        rows: dict[str, list[float]] = {k: [] for k in names}
        curves: dict[str, list[list[float]]] = {k: [] for k in names}
        meta_seconds = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            loss, hist = meta_train_loss(cfg, seed)
            meta_seconds.append(time.perf_counter() - t0)
            if seed == 0:
                save_loss(RESULTS / f"rl_pg_{env}_loss", loss, meta={"config": cfg.to_dict()})
            for name, fn, scale in (
                ("reinforce", None, 1.0),
                ("reinforce-normalised", None, 1e3),
                ("ml3", loss, 1.0),
            ):
                res = train_and_eval(fn, cfg, seed, reinforce_scale=scale)
                rows[name].append(res["return"])
                curves[name].append(res["train_curve"])
            print(env, seed, {k: round(v[-1], 1) for k, v in rows.items()}, flush=True)
        for name, c in curves.items():
            ax.plot(np.asarray(c).mean(0), label=f"{name} ({_stats(rows[name])['mean']:.1f})")
        ax.set(title=env, xlabel="policy update", ylabel="episode return (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend()
        payload["envs"][env] = {
            "config": cfg.to_dict(),
            "summary": {k: _stats(v) for k, v in rows.items()},
            "per_seed": rows,
            "meta_seconds": meta_seconds,
        }
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_policy_gradient.png", dpi=110)
    write_result("rl_policy_gradient", payload)


if __name__ == "__main__":
    main()
