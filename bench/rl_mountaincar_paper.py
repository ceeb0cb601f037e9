"""ML3 Mountain Car under the paper's protocol: shaped vs plain learned loss vs task objective.

Per seed (one fixed policy initialisation and one loss initialisation per seed): meta-train
a loss with the task objective ("plain") and with the privileged left-hill subgoal
("shaped"); then, from the same policy initialisation, take ``inner_steps`` SGD steps with
each loss (and 2 steps, as the paper's test script does), and with the task objective itself
(same steps, and 100 steps), and roll out.
Also measured: the same losses on ``--other-inits`` policy initialisations never used at
meta-train time (generalisation, which the paper does not claim).

    python rl_mountaincar_paper.py --seeds 5                      # one process
    python rl_mountaincar_paper.py --seeds 3 --first-seed 0 --tag a  # shards ...
    python rl_mountaincar_paper.py --merge a b                     # ... merged: table + plot
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from common import RESULTS, ROOT, write_result  # noqa: I001

from metaloss.io import save_loss
from metaloss.rl.envs import FrictionMountainCar
from metaloss.rl.mountaincar_paper import PaperMCConfig, meta_train_loss, train_and_eval

ROWS = (
    "task (inner steps)",
    "task (100 steps)",
    "plain",
    "shaped",
    "plain (2 steps)",
    "shaped (2 steps)",
)
STEPS = {"task (100 steps)": 100, "plain (2 steps)": 2, "shaped (2 steps)": 2}
NAME = "rl_mountaincar_paper"
SHARDS = ROOT / "runs"


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def _name(cfg: dict) -> str:
    """Result name of a configuration: the default, or marked ``_hardclip`` / ``_last`` /
    ``_restartsN`` / ``_straightthrough`` / ``_freshinits`` / ``_metaN`` (meta steps other
    than 1000)."""
    name = NAME + ("" if cfg["soft_clip"] else "_hardclip") + ("" if cfg["keep_best"] else "_last")
    name += f"_restarts{cfg['restarts']}" if cfg["restarts"] > 1 else ""
    name += "_straightthrough" if cfg.get("straight_through") else ""
    name += "_freshinits" if cfg.get("fresh_inits") else ""
    return name + (f"_meta{cfg['meta_steps']}" if cfg["meta_steps"] != 1000 else "")


def run_seed(cfg: PaperMCConfig, seed: int, other_inits: int) -> dict:
    out: dict = {"seed": seed, "success": {}, "max_x": {}, "min_x": {}, "x": {}, "other": {}}
    losses: dict = {"task (inner steps)": None, "task (100 steps)": None}
    meta = {}
    for variant in ("plain", "shaped"):
        loss, hist = meta_train_loss(cfg, variant, seed)
        losses[variant] = losses[f"{variant} (2 steps)"] = loss
        meta[variant] = [h["meta_loss"] for h in hist]
        if seed == 0:
            save_loss(RESULTS / f"{_name(cfg.to_dict())}_{variant}_loss", loss, meta=cfg.to_dict())
    for name in ROWS:
        loss, steps = losses[name], STEPS.get(name)
        res = train_and_eval(loss, cfg, seed, steps=steps)
        out["success"][name] = float(res["success"])
        out["max_x"][name] = res["max_x"]
        out["min_x"][name] = res["min_x"]
        out["x"][name] = res["x"].tolist()
        out["other"][name] = float(
            np.mean(
                [
                    train_and_eval(loss, cfg, seed, steps=steps, init_seed=10_000 + 100 * seed + i)[
                        "success"
                    ]
                    for i in range(other_inits)
                ]
            )
        )
    out["meta_curve"] = meta
    return out


def report(cfg: dict, seeds: list[dict], seconds: float, args: dict) -> None:
    name_out = _name(cfg)
    rows = [name for name in ROWS if all(name in s["success"] for s in seeds)]
    summary = {
        name: {
            "success": _stats([s["success"][name] for s in seeds]),
            "max_x": _stats([s["max_x"][name] for s in seeds]),
            "success_other_inits": _stats([s["other"][name] for s in seeds]),
        }
        for name in rows
    }
    print(f"{'policy trained with':22s} success  max x            other inits")
    for name, row in summary.items():
        print(
            f"{name:22s} {row['success']['mean']:.2f}     "
            f"{row['max_x']['mean']:+.3f} ± {row['max_x']['std']:.3f}   "
            f"{row['success_other_inits']['mean']:.2f} ± {row['success_other_inits']['std']:.2f}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = FrictionMountainCar()
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, name in zip(axes[:3], ("task (100 steps)", "plain", "shaped")):
        for s in seeds:
            ax.plot(s["x"][name], alpha=0.8, label=f"seed {s['seed']}")
        ax.axhline(env.goal, color="g", ls="--")
        ax.axhline(cfg["subgoal_x"], color="r", ls=":")
        ax.axvline(cfg["subgoal_steps"], color="r", ls=":", alpha=0.4)
        ax.set(
            title=f"{name}: success {summary[name]['success']['mean']:.2f}",
            xlabel="step (0.1 s)",
            ylabel="x",
            ylim=(-1.25, 0.6),
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for variant in ("plain", "shaped"):
        curves = np.asarray([s["meta_curve"][variant] for s in seeds])
        axes[3].plot(curves.mean(0), label=variant)
    axes[3].set(title="meta-objective (mean over seeds)", xlabel="meta step")
    axes[3].grid(alpha=0.3)
    axes[3].legend()
    clip = "soft-clipped" if cfg["soft_clip"] else "clipped"
    kept = "best" if cfg["keep_best"] else "last"
    fig.suptitle(
        f"ML3 Mountain Car, paper protocol: {clip} actions, {kept} loss kept "
        "(red: privileged subgoal, green: goal)"
    )
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name_out}.png", dpi=110)
    for s in seeds:
        s["meta_curve"] = {k: [round(v, 4) for v in c] for k, c in s["meta_curve"].items()}
    write_result(
        name_out,
        {
            "args": args,
            "config": cfg,
            "summary": summary,
            "per_seed": seeds,
            "seconds": seconds,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--meta-steps", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--hard-clip", action="store_true", help="clip actions as in the paper")
    ap.add_argument("--last", action="store_true", help="keep the last loss, not the best")
    ap.add_argument(
        "--straight-through",
        action="store_true",
        help="gradients pass the simulator's limits (as in the reference code)",
    )
    ap.add_argument(
        "--fresh-inits", action="store_true", help="a new policy initialisation every meta step"
    )
    ap.add_argument("--other-inits", type=int, default=10)
    ap.add_argument("--tag", default="", help="write a shard runs/<NAME>_<tag>.json instead")
    ap.add_argument("--merge", nargs="*", help="merge shards with these tags, then report")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.merge:
        shards = [json.loads((SHARDS / f"{NAME}_{t}.json").read_text()) for t in args.merge]
        seeds = sorted((s for sh in shards for s in sh["seeds"]), key=lambda s: s["seed"])
        if any(sh["config"] != shards[0]["config"] for sh in shards):
            raise SystemExit(f"--merge: shards {args.merge} ran different configurations")
        if len({s["seed"] for s in seeds}) != len(seeds):
            raise SystemExit(f"--merge: shards {args.merge} repeat a seed")
        report(shards[0]["config"], seeds, sum(sh["seconds"] for sh in shards), shards[0]["args"])
        return
    cfg = PaperMCConfig(
        meta_steps=args.meta_steps,
        restarts=args.restarts,
        soft_clip=not args.hard_clip,
        keep_best=not args.last,
        fresh_inits=args.fresh_inits,
        straight_through=args.straight_through,
    )
    start = time.perf_counter()
    seeds = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        seeds.append(run_seed(cfg, seed, args.other_inits))
        print(seed, seeds[-1]["success"], flush=True)
    seconds = time.perf_counter() - start
    if args.tag:
        SHARDS.mkdir(exist_ok=True)
        shard = {"args": vars(args), "config": cfg.to_dict(), "seeds": seeds, "seconds": seconds}
        (SHARDS / f"{NAME}_{args.tag}.json").write_text(json.dumps(shard))
        return
    report(cfg.to_dict(), seeds, seconds, vars(args))


if __name__ == "__main__":
    main()
