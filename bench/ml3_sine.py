"""ML3 sine regression (Bechtle et al.): meta-train on sin(x - pi), test on 10 random sines.

Protocol: meta-train a neural loss on y = sin(x - pi), x ~ U[-2, 2]; meta-test on 10
sines with amplitude U[0.2, 5], phase U[-pi, pi], x ~ U[-5, 5]; model 1-100-10-1 ReLU;
100 SGD steps, lr 1e-3. Reports the test-MSE curve of ML3 vs MSE over seeds.

Two protocols (``--protocol``; ``both`` runs each and records both):

* ``reference`` - as facebookresearch/LearningToLearn's sine experiment measures it: 500
  meta steps, and the MSE of each test sine on the 100 points its model was trained on
  (a fitting error).
* ``heldout`` - ours: 1,000 meta steps, and the MSE on 100 fresh points of each test sine.

    python bench/ml3_sine.py --seeds 5 --protocol both
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from common import RESULTS, write_result  # noqa: I001

from metaloss.diagnostics import step_diagnostic
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


def curve(
    task: Task, loss, steps: int, lr: float, seed: int, on_train: bool = False
) -> list[float]:
    """MSE after every step of a run with ``loss``: on the test points, or with
    ``on_train`` on the points the model is trained on (the reference's measure)."""
    out: list[float] = []
    split = task.train if on_train else task.test

    def on_eval(step, model):
        with torch.no_grad():
            out.append(float(task.metric(model(split.x), split.y)))

    train(task, loss, steps=steps, lr=lr, seed=seed, eval_every=1, on_eval=on_eval)
    return out


GRID = [2.0**k for k in range(-2, 7)]  # learning-rate factors of the tuned rows


def run(
    seeds: int,
    meta_steps: int,
    n_sines: int,
    steps: int,
    lr: float,
    inner_lr: float,
    on_train: bool = False,
    tune: bool = False,
):
    """Per seed: meta-train, then every loss on ``n_sines`` test sines. With ``tune`` each
    loss also runs at its own learning rate, chosen from ``lr`` x 1/4 ... 64 by the mean
    final MSE on ``n_sines`` separate validation sines (fresh points): the fair rows."""
    results: dict[str, list] = {"ml3": [], "mse": []}
    if tune:
        results.update({"ml3 (tuned lr)": [], "mse (tuned lr)": []})
    chosen: dict[str, list[float]] = {"ml3": [], "mse": []}
    diagnostics: list[dict] = []
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
        losses = {"ml3": loss, "mse": get_loss("mse")}
        tuned_lr = {}
        if tune:
            vrng = np.random.default_rng(2**30 + seed)  # validation sines: not the test ones
            val = [
                sine_task(
                    vrng.uniform(0.2, 5.0),
                    vrng.uniform(-math.pi, math.pi),
                    -5,
                    5,
                    100,
                    seed=2**30 + 10_000 * seed + k,
                )  # fmt: skip
                for k in range(n_sines)
            ]
            for name, fn in losses.items():
                scores = {}
                for f in GRID:
                    finals = [curve(t, fn, steps, lr * f, 2**30 + k)[-1] for k, t in enumerate(val)]
                    ok = np.isfinite(finals).all()
                    scores[lr * f] = float(np.mean(finals)) if ok else np.inf
                tuned_lr[name] = min(scores, key=lambda x: (scores[x], x))
                chosen[name].append(tuned_lr[name])
        rng = np.random.default_rng(seed)
        for k in range(n_sines):
            amp, phase = rng.uniform(0.2, 5.0), rng.uniform(-math.pi, math.pi)
            test_task = sine_task(amp, phase, -5, 5, 100, seed=10_000 * seed + k)
            if k == 0:  # the step diagnostic vs MSE, full batch, on the first test sine
                diag = step_diagnostic(loss, test_task, batches=1, seed=seed, warm_steps=0)
                diagnostics.append({"ratio": diag.ratio, "cosine": diag.cosine})
            s = seed * 100 + k
            results["ml3"].append(curve(test_task, loss, steps, lr, s, on_train))
            results["mse"].append(curve(test_task, get_loss("mse"), steps, lr, s, on_train))
            for name, lr_ in tuned_lr.items():
                tuned_curve = curve(test_task, losses[name], steps, lr_, s, on_train)
                results[f"{name} (tuned lr)"].append(tuned_curve)
    per_seed = {
        name: np.asarray(c).reshape(seeds, n_sines, steps)[:, :, -1].mean(1).tolist()
        for name, c in results.items()
    }
    extra = {"meta_seconds": meta_seconds, "chosen_lr": chosen, "diagnostics": diagnostics}
    return results, per_seed, extra


PROTOCOLS = {"reference": (500, True), "heldout": (1000, False)}  # meta steps, on_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both")
    ap.add_argument("--meta-steps", type=int, default=0, help="0: the protocol's (500 / 1000)")
    ap.add_argument("--sines", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--inner-lr", type=float, default=1e-3)
    ap.add_argument("--no-tune", action="store_true", help="skip the tuned-lr rows")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    from metaloss.plots import plot_curves

    names = list(PROTOCOLS) if args.protocol == "both" else [args.protocol]
    out = {"args": vars(args), "protocols": {}}
    for name in names:
        meta_steps, on_train = PROTOCOLS[name]
        meta_steps = args.meta_steps or meta_steps
        results, per_seed, meta_seconds = run(
            args.seeds,
            meta_steps,
            args.sines,
            args.steps,
            args.lr,
            args.inner_lr,
            on_train,
            tune=not args.no_tune,
        )
        chosen, diagnostics = meta_seconds["chosen_lr"], meta_seconds["diagnostics"]
        meta_seconds = meta_seconds["meta_seconds"]
        mean_curves = {k: np.asarray(v).mean(0) for k, v in results.items()}
        where = "training points" if on_train else "fresh points"
        plot_curves(
            {k: (range(1, args.steps + 1), v) for k, v in mean_curves.items()},
            RESULTS / f"ml3_sine_{name}.png",
            xlabel="SGD step",
            ylabel=f"MSE on the {where} (mean over sines and seeds)",
            title=f"ML3 vs MSE on 10 random sines ({name} protocol)",
        )
        summary = {
            k: {
                "final_mean": float(np.mean(v)),
                "final_std": float(np.std(v, ddof=1) if len(v) > 1 else 0.0),
            }
            for k, v in per_seed.items()
        }
        out["protocols"][name] = {
            "meta_steps": meta_steps,
            "measured_on": where,
            "summary": summary,
            "per_seed_final": per_seed,
            "meta_seconds": meta_seconds,
            "tuned_lr_per_seed": chosen,
            "step_diagnostic_vs_mse": diagnostics,  # per seed: grad-norm ratio, cosine
            "meta_steps_per_s": meta_steps / float(np.mean(meta_seconds)),
        }
        print(name, meta_steps, where, json.dumps(summary))
        print(name, "step diagnostic vs MSE per seed", json.dumps(diagnostics))
    write_result("ml3_sine", out)


if __name__ == "__main__":
    main()
