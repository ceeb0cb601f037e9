"""ML3 sine regression (Bechtle et al.): meta-train on sin(x - pi), test on 10 random sines.

Protocol: meta-train a neural loss on y = sin(x - pi), x ~ U[-2, 2]; meta-test on 10
sines with amplitude U[0.2, 5], phase U[-pi, pi], x ~ U[-5, 5]; model 1-100-10-1 ReLU;
100 SGD steps, lr 1e-3. Reports the test-MSE curve of ML3 vs MSE over seeds.

    python bench/ml3_sine.py --seeds 5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from common import RESULTS, write_result  # noqa: I001

from metaloss.losses import get_loss
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.unrolled import ML3Config, meta_train
from metaloss.tasks.base import Split, Task, TrainConfig
from metaloss.tasks.models import build_model
from metaloss.training import train


def sine_task(amp: float, phase: float, lo: float, hi: float, n: int, seed: int) -> Task:
    """A raw (unstandardised) sine regression task y = amp * sin(x + phase)."""
    g = torch.Generator().manual_seed(seed)

    def split(m: int) -> Split:
        x = torch.rand(m, 1, generator=g) * (hi - lo) + lo
        return Split(x, amp * torch.sin(x[:, 0] + phase))

    return Task(
        name="sine",
        kind="regression",
        train=split(n),
        val=split(n),
        test=split(n),
        in_shape=(1,),
        num_outputs=1,
        model_factory=lambda: build_model("mlp", (1,), 1, hidden=(100, 10)),
        defaults=TrainConfig(steps=100, lr=1e-3, batch_size=n),
        model_name="mlp",
    )


def curve(task: Task, loss, steps: int, lr: float, seed: int) -> list[float]:
    """Test MSE after every step of a run with ``loss``."""
    out: list[float] = []

    def on_eval(step, model):
        with torch.no_grad():
            out.append(float(task.metric(model(task.test.x), task.test.y)))

    train(task, loss, steps=steps, lr=lr, seed=seed, eval_every=1, on_eval=on_eval)
    return out


def run(seeds: int, meta_steps: int, n_sines: int, steps: int, lr: float, inner_lr: float):
    results = {"ml3": [], "mse": []}
    meta_seconds = []
    for seed in range(seeds):
        train_task = sine_task(1.0, -math.pi, -2, 2, 100, seed=1000 + seed)
        loss = NeuralLoss.ml3(seed=seed)
        cfg = ML3Config(
            meta_steps=meta_steps,
            inner_steps=1,
            inner_lr=inner_lr,
            meta_lr=1e-3,
            batch_size=100,
            query="same",
        )
        t0 = time.perf_counter()
        meta_train(loss, train_task, cfg, seed=seed)
        meta_seconds.append(time.perf_counter() - t0)
        rng = np.random.default_rng(seed)
        for k in range(n_sines):
            amp, phase = rng.uniform(0.2, 5.0), rng.uniform(-math.pi, math.pi)
            test_task = sine_task(amp, phase, -5, 5, 100, seed=10_000 * seed + k)
            results["ml3"].append(curve(test_task, loss, steps, lr, seed * 100 + k))
            results["mse"].append(curve(test_task, get_loss("mse"), steps, lr, seed * 100 + k))
    per_seed = {
        name: np.asarray(c).reshape(seeds, n_sines, steps)[:, :, -1].mean(1).tolist()
        for name, c in results.items()
    }
    return results, per_seed, meta_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--meta-steps", type=int, default=1000)
    ap.add_argument("--sines", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--inner-lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    results, per_seed, meta_seconds = run(
        args.seeds, args.meta_steps, args.sines, args.steps, args.lr, args.inner_lr
    )
    from metaloss.plots import plot_curves

    mean_curves = {k: np.asarray(v).mean(0) for k, v in results.items()}
    plot_curves(
        {k: (range(1, args.steps + 1), v) for k, v in mean_curves.items()},
        RESULTS / "ml3_sine.png",
        xlabel="SGD step",
        ylabel="test MSE (mean over sines and seeds)",
        title="ML3 vs MSE on 10 random sines",
    )
    summary = {
        name: {
            "final_mean": float(np.mean(v)),
            "final_std": float(np.std(v, ddof=1) if len(v) > 1 else 0.0),
        }
        for name, v in per_seed.items()
    }
    write_result(
        "ml3_sine",
        {
            "args": vars(args),
            "summary": summary,
            "per_seed_final": per_seed,
            "meta_seconds": meta_seconds,
            "meta_steps_per_s": args.meta_steps / float(np.mean(meta_seconds)),
        },
    )


if __name__ == "__main__":
    main()
