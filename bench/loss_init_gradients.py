"""Gradient scale of an untrained ML3 loss network against cross-entropy, per initialisation.

For each ``NeuralLoss(init=...)`` and seed: a fresh base model of the task, one training
batch, and the ratio ||grad_theta L_phi|| / ||grad_theta CE|| of the base model's parameter
gradients. A ratio far below 1 means the learned loss starts by barely moving the model.

    python bench/loss_init_gradients.py --task digits-mlp --seeds 5
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import write_result

import metaloss as ml
from metaloss import functional as mf
from metaloss.losses.neural import INITS, NeuralLoss


def grad_norm(value: torch.Tensor, params: mf.Params) -> float:
    grads = mf.grad(value, params).values()
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


def ratio(task: ml.tasks.Task, loss: torch.nn.Module, seed: int, batch: int) -> float:
    model = task.make_model(seed)
    params = mf.params_of(model)
    x, y = task.train.x[:batch], task.train.y[:batch]
    learned = grad_norm(loss(mf.forward(model, params, x), y), params)
    return learned / grad_norm(task.task_loss()(mf.forward(model, params, x), y), params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="digits-mlp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--preset", default="ml3", choices=["ml3", "adalfl"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = ml.tasks.get(args.task)
    rows = {}
    for init in INITS:
        vals = []
        for s in range(args.seeds):
            kw = {"residual_ce": 0.0} if args.preset == "adalfl" else {}
            loss = getattr(NeuralLoss, args.preset)(init=init, seed=s, **kw)
            vals.append(ratio(task, loss, s, args.batch))
        rows[init] = vals
        print(
            f"{args.preset} init={init:<8} grad-norm ratio vs CE: "
            f"mean {statistics.mean(vals):.4f}  min {min(vals):.4f}  max {max(vals):.4f}"
        )
    write_result(f"loss_init_gradients_{args.preset}_{args.task}", {"args": vars(args), **rows})


if __name__ == "__main__":
    main()
