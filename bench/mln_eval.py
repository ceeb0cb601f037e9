"""MLN (Hai et al.): evolve a neural loss on generated linear tasks, compare it with CE and MSE.

Per seed: meta-learn an MLN with OpenAI-ES (``learn_mln``), then train fresh models with the
MLN, cross-entropy, MSE and a *gradient-matched* cross-entropy control (CE multiplied by the
MLN's gradient-norm ratio to CE, i.e. CE with a larger learning rate: it separates "the MLN
learned a step size" from "the MLN learned a better loss") on

* held-out generated linear tasks (an unused task stream, the default 300-step protocol,
  longer than the meta-training runs): angle between learned and true classifier (degrees,
  classes centred, mean over classes) and test accuracy;
* generated nonlinear tasks (tanh-MLP teacher, MLP student): test accuracy;
* public sets with their registered protocols: digits-linear, breast_cancer-linear,
  wine-linear, mnist1d-mlp (and mnist-logistic with ``--mnist-steps N``): test accuracy.

Reports mean +- std over seeds of the per-seed means, Welch's p against cross-entropy, and
a PNG of the meta-training fitness over generations (population best / median, and
cross-entropy on the same task batches).

    python bench/mln_eval.py --seeds 5
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

import numpy as np
import torch
from common import RESULTS, ROOT, write_result  # noqa: I001

from metaloss import tasks
from metaloss.losses import get_loss
from metaloss.meta.mln import MLNFitness, learn_mln, task_seeds
from metaloss.results import welch_p
from metaloss.tasks.generated import make_linear_task, make_nonlinear_task
from metaloss.training import train

PUBLIC = ("digits-linear", "breast_cancer-linear", "wine-linear", "mnist1d-mlp")
EVAL_STREAM = 2  # task stream of the held-out tasks (0: meta-training, 1: learn_mln's held-out)


class ScaledLoss(torch.nn.Module):
    """``scale * loss``: with SGD, the same as ``loss`` at a learning rate times ``scale``."""

    def __init__(self, loss: torch.nn.Module, scale: float) -> None:
        super().__init__()
        self.loss, self.scale = loss, float(scale)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return self.scale * self.loss(y_pred, y_true)


def grad_ratio(loss: torch.nn.Module, seed: int = 0) -> float:
    """Median over class counts / logit scales of ``|d loss / d logits| / |d CE / d logits|``."""
    g = torch.Generator().manual_seed(seed)
    ce = get_loss("ce")
    ratios = []
    for classes in (2, 3, 5, 10):
        for scale in (0.1, 0.5, 1.0, 2.0):
            logits = torch.randn(256, classes, generator=g) * scale
            y = torch.randint(0, classes, (256,), generator=g)
            grads = []
            for fn in (loss, ce):
                z = logits.clone().requires_grad_(True)
                fn(z, y).backward()
                grads.append(z.grad.norm())
            ratios.append(float(grads[0] / grads[1]))
    return float(np.median(ratios))


def class_angle(w: torch.Tensor, w_star: torch.Tensor) -> float:
    """Mean over classes of the angle (degrees) between centred learned and true rows."""
    a = w.double() - w.double().mean(0, keepdim=True)
    b = w_star.double() - w_star.double().mean(0, keepdim=True)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)
    return float(torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean())


def evaluate_seed(
    seed: int, losses: dict[str, torch.nn.Module], args: argparse.Namespace, public: dict
) -> dict[str, dict[str, float]]:
    """Per-loss metrics of one seed (means over the tasks of each group)."""
    out: dict[str, dict[str, float]] = {name: {} for name in losses}
    classes = [int(c) for c in args.classes.split(",")]
    lin_seeds = task_seeds(seed, EVAL_STREAM, 0, args.linear_tasks)
    lin = [
        make_linear_task(args.dim, classes[k % len(classes)], seed=s)
        for k, s in enumerate(lin_seeds)
    ]
    non_seeds = task_seeds(seed, EVAL_STREAM, 1, args.nonlinear_tasks)
    non = [
        make_nonlinear_task(args.dim, classes[k % len(classes)], seed=s)
        for k, s in enumerate(non_seeds)
    ]
    for name, loss in losses.items():
        row = out[name]
        angles, accs = [], []
        for g in lin:
            res = train(g.task, loss, seed=seed)
            angles.append(class_angle(res.model[1].weight.detach(), g.w))
            accs.append(1.0 - res.test_metric)
        row["linear_angle_deg"], row["linear_test_acc"] = (
            float(np.mean(angles)),
            float(np.mean(accs)),
        )
        if non:
            accs = [1.0 - train(g.task, loss, seed=seed).test_metric for g in non]
            row["nonlinear_test_acc"] = float(np.mean(accs))
        for tname, task in public.items():
            steps = args.mnist_steps if tname == "mnist-logistic" else None
            res = train(task, loss, seed=seed, steps=steps)
            row[f"{tname}_test_acc"] = 1.0 - res.test_metric
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--popsize", type=int, default=20)
    ap.add_argument("--sigma", type=float, default=0.02)
    ap.add_argument("--es-lr", type=float, default=0.01)
    ap.add_argument("--tasks-per-eval", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=100, help="steps of a fitness run")
    ap.add_argument("--init", default="ce", choices=("ce", "random"))
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--classes", default="2,5,10", help="class counts (meta-train and test)")
    ap.add_argument("--linear-tasks", type=int, default=9)
    ap.add_argument("--nonlinear-tasks", type=int, default=3)
    ap.add_argument("--public", default=",".join(PUBLIC), help="comma list ('' for none)")
    ap.add_argument("--mnist-steps", type=int, default=0, help="add mnist-logistic (0: skip)")
    ap.add_argument("--no-scaled-ce", action="store_true", help="skip the gradient-matched CE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("METALOSS_DATA_DIR", str(ROOT.parent / "shared" / "datasets"))
    names = [n for n in args.public.split(",") if n]
    if args.mnist_steps:
        names.append("mnist-logistic")
    public = {n: tasks.get(n) for n in names}
    classes = [int(c) for c in args.classes.split(",")]

    per_seed: dict[str, dict[str, list[float]]] = {}
    curves: dict[str, list[list[float]]] = {"best": [], "median": [], "cross_entropy": []}
    meta: list[dict[str, Any]] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        res = learn_mln(
            None,
            seed=seed,
            generations=args.generations,
            popsize=args.popsize,
            sigma=args.sigma,
            lr=args.es_lr,
            dim=args.dim,
            classes=classes,
            tasks_per_eval=args.tasks_per_eval,
            train_steps=args.train_steps,
            init=args.init,
        )
        meta_s = time.perf_counter() - t0
        ce_fit = MLNFitness(
            dim=args.dim,
            classes=classes,
            tasks_per_eval=args.tasks_per_eval,
            train_steps=args.train_steps,
            popsize=args.popsize,
            seed=seed,
        )
        ce = get_loss("ce")
        curves["best"].append([h["best"] for h in res.history])
        curves["median"].append([h["median"] for h in res.history])
        curves["cross_entropy"].append([ce_fit.score(ce, g).value for g in range(args.generations)])
        ratio = grad_ratio(res.loss, seed)
        losses: dict[str, torch.nn.Module] = {"cross_entropy": ce, "mse": get_loss("mse")}
        losses["mln"] = res.loss
        if not args.no_scaled_ce:
            losses["ce_grad_matched"] = ScaledLoss(ce, ratio)
        t1 = time.perf_counter()
        rows = evaluate_seed(seed, losses, args, public)
        meta.append(
            {
                "seed": seed,
                "meta_seconds": meta_s,
                "eval_seconds": time.perf_counter() - t1,
                "grad_ratio_vs_ce": ratio,
                **{k: v for k, v in res.info.items()},
            }
        )
        for name, row in rows.items():
            for metric, value in row.items():
                per_seed.setdefault(metric, {}).setdefault(name, []).append(value)
        print(
            f"seed {seed}: meta {meta_s:.0f} s, eval {meta[-1]['eval_seconds']:.0f} s, "
            f"report-task fitness {res.info.get('final_initial_fitness'):.4f} -> "
            f"{res.info.get('final_fitness'):.4f}, grad ratio {ratio:.2f}",
            flush=True,
        )

    summary: dict[str, dict[str, dict[str, float]]] = {}
    for metric, by_loss in per_seed.items():
        base = by_loss["cross_entropy"]
        summary[metric] = {}
        for name, vals in by_loss.items():
            summary[metric][name] = {
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "p_vs_ce": math.nan if name == "cross_entropy" else welch_p(vals, base),
            }
    from metaloss.plots import plot_curves

    gens = range(args.generations)
    png = plot_curves(
        {
            f"{k} (mean of {args.seeds} seeds)": (gens, np.mean(np.asarray(v), 0))
            for k, v in curves.items()
        },
        RESULTS / "mln_eval.png",
        xlabel="generation",
        ylabel="fitness: 1 - cos(w, w*) on the generation's task batch",
        title="MLN meta-training (OpenAI-ES); cross-entropy on the same tasks",
    )
    lines = ["| metric | " + " | ".join(per_seed["linear_test_acc"]) + " |"]
    lines.append("|---" * (len(per_seed["linear_test_acc"]) + 1) + "|")
    for metric, by_loss in summary.items():
        cells = [
            f"{r['mean']:.4f} ± {r['std']:.4f}"
            + ("" if math.isnan(r["p_vs_ce"]) else f" (p={r['p_vs_ce']:.2f})")
            for r in by_loss.values()
        ]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    write_result(
        "mln_eval",
        {
            "args": vars(args),
            "summary": summary,
            "table": table,
            "per_seed": per_seed,
            "meta": meta,
            "fitness_curves": curves,
            "plot": str(png),
            "total_seconds": time.perf_counter() - start,
            "total_cpu_seconds": time.process_time() - cpu_start,
        },
    )


if __name__ == "__main__":
    main()
