"""ML3 with extra information at meta-train time ("shaped" losses) on y = sin(theta x).

The model has one parameter, the frequency theta. Under MSE the loss landscape over theta
has many local minima. ML3 meta-trains a neural loss f(y_hat, y, x) in two ways:
  plain   - meta-objective: MSE of the updated model on the data (the task loss);
  shaped  - meta-objective: (theta' - theta*)^2, privileged information (the true frequency)
            available only at meta-train time.
At test time each loss trains theta by gradient descent from many initial values; we count
the share of runs that reach the true frequency (|theta - theta*| < tol), and plot the
landscapes. By default theta* = 1 as in the paper; ``--lo-star/--hi-star`` draw theta* at
random per task (a harder, generalising variant).

    python bench/ml3_shaped_sine.py --seeds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, write_result

from metaloss.losses.neural import NeuralLoss


def sample_x(n: int, g: torch.Generator, span: float) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2 - 1) * span


def loss_value(loss, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-theta loss for a batch of thetas (T,) on shared data x, y (N,)."""
    pred = torch.sin(theta[:, None] * x[None, :])  # (T, N)
    if loss is None:
        return ((pred - y[None, :]) ** 2).mean(1)
    t, n = pred.shape
    value = loss.pointwise(pred.reshape(-1, 1), y.expand(t, n).reshape(-1, 1),
                           x.expand(t, n).reshape(-1, 1))  # fmt: skip
    return value.reshape(t, n).mean(1)


def meta_train(objective: str, steps: int, seed: int, args) -> NeuralLoss:
    g = torch.Generator().manual_seed(seed)
    loss = NeuralLoss(hidden=(40, 40), activation="tanh", output="none", bias=True,
                      extra_dim=1, seed=seed)  # fmt: skip
    opt = torch.optim.Adam(loss.parameters(), lr=args.meta_lr)
    for _ in range(steps):
        theta_star = torch.rand(1, generator=g) * (args.hi_star - args.lo_star) + args.lo_star
        x = sample_x(args.n, g, args.span)
        y = torch.sin(theta_star * x)
        theta = (torch.rand(args.batch, generator=g) * args.theta_max).requires_grad_()
        th = theta
        traj = []
        for _ in range(args.inner_steps):
            (grad,) = torch.autograd.grad(loss_value(loss, th, x, y).sum(), th, create_graph=True)
            th = th - args.inner_lr * grad
            traj.append(((th - theta_star) ** 2).mean())
        traj = traj[:-1]
        if objective == "shaped":
            meta = ((th - theta_star) ** 2).mean()
            traj.append(meta)
            meta = torch.stack(traj).mean() if args.trajectory else meta
        else:
            meta = loss_value(None, th, x, y).mean()
        opt.zero_grad()
        meta.backward()
        opt.step()
    return loss


def success_rate(loss, seed: int, args) -> tuple[float, list[float]]:
    g = torch.Generator().manual_seed(10_000 + seed)
    hits, finals = 0, []
    for _ in range(args.test_tasks):
        theta_star = torch.rand(1, generator=g) * (args.hi_star - args.lo_star) + args.lo_star
        x = sample_x(args.n, g, args.span)
        y = torch.sin(theta_star * x)
        theta = torch.linspace(0.0, args.theta_max, args.test_inits).requires_grad_()
        for _ in range(args.test_steps):
            (grad,) = torch.autograd.grad(loss_value(loss, theta, x, y).sum(), theta)
            theta = (theta - args.inner_lr * grad).detach().requires_grad_()
        err = (theta.detach() - theta_star).abs()
        hits += int((err < args.tol).sum())
        finals.append(float(err.median()))
    return hits / (args.test_tasks * args.test_inits), finals


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--meta-steps", type=int, default=1500)
    ap.add_argument("--meta-lr", type=float, default=3e-3)
    ap.add_argument("--inner-steps", type=int, default=3)
    ap.add_argument("--inner-lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=32, help="initial thetas per meta step")
    ap.add_argument("--n", type=int, default=64, help="data points per task")
    ap.add_argument("--span", type=float, default=4.0, help="x ~ U[-span, span]")
    ap.add_argument("--theta-max", type=float, default=3.0)
    ap.add_argument("--lo-star", type=float, default=1.0)
    ap.add_argument("--hi-star", type=float, default=1.0)
    ap.add_argument("--test-tasks", type=int, default=10)
    ap.add_argument("--test-inits", type=int, default=30)
    ap.add_argument("--test-steps", type=int, default=300)
    ap.add_argument("--tol", type=float, default=0.1)
    ap.add_argument("--trajectory", type=int, default=1, help="shaped: average over inner steps")
    return ap


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(1)
    rates: dict[str, list[float]] = {"mse": [], "ml3_plain": [], "ml3_shaped": []}
    losses = {}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        plain = meta_train("plain", args.meta_steps, seed, args)
        shaped = meta_train("shaped", args.meta_steps, seed, args)
        losses[seed] = {"mse": None, "ml3_plain": plain, "ml3_shaped": shaped}
        for name, loss in losses[seed].items():
            rates[name].append(success_rate(loss, seed, args)[0])
        print(seed, {k: v[-1] for k, v in rates.items()}, flush=True)
    # landscape plot for seed 0, theta* = 1.0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(0)
    x = sample_x(args.n, g, args.span)
    y = torch.sin(1.0 * x)
    grid = torch.linspace(0, args.theta_max, 400)
    fig, ax = plt.subplots(figsize=(7, 4))
    with torch.no_grad():
        for name, loss in losses[0].items():
            v = loss_value(loss, grid, x, y).numpy()
            ax.plot(grid.numpy(), (v - v.min()) / (np.ptp(v) + 1e-12), label=name)
    ax.axvline(1.0, color="k", ls="--", lw=0.8)
    ax.set(xlabel="theta", ylabel="loss (min-max scaled)",
           title="loss landscape over the frequency (theta* = 1)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "ml3_shaped_sine.png", dpi=110)
    summary = {
        k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
        for k, v in rates.items()
    }
    write_result(
        "ml3_shaped_sine",
        {"args": vars(args), "success_rate": summary, "per_seed": rates,
         "seconds": time.perf_counter() - t0},
    )  # fmt: skip


if __name__ == "__main__":
    main()
