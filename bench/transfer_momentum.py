"""Does a loss learned with plain SGD transfer to a run with (Nesterov) momentum?

ML³ meta-trains on MNIST / LeNet-5 with plain SGD (500 meta steps); the loss is then used on
CIFAR-10 / LeNet-5 with the CIFAR protocol (Nesterov momentum 0.9, weight decay 5e-4) and with
plain SGD (same lr 0.01), next to cross-entropy under both.

    python bench/transfer_momentum.py --seeds 1 --steps 3000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import write_result

import metaloss as ml
from metaloss.training import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--meta-steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source, target = ml.tasks.get("mnist-lenet5"), ml.tasks.get("cifar10-lenet5")
    ce = ml.losses.get_baseline("ce")
    runs: dict[str, list[float]] = {}
    optimisers = {
        "nesterov": {"momentum": 0.9, "nesterov": True},
        "plain_sgd": {"momentum": 0.0, "nesterov": False},
    }
    for seed in range(args.seeds):
        learned = ml.learn("ml3", source, seed=seed, meta_steps=args.meta_steps).loss
        for opt_name, kw in optimisers.items():
            for loss_name, loss in (("ce", ce), ("ml3", learned)):
                res = train(target, loss, seed=seed, steps=args.steps, **kw)
                runs.setdefault(f"{loss_name}/{opt_name}", []).append(res.test_metric)
                print(f"seed {seed} {loss_name:>3} {opt_name:>9}: test error {res.test_metric:.4f}")
    write_result(
        "transfer_momentum",
        {
            "args": vars(args),
            "test_error": runs,
            "mean": {k: float(np.mean(v)) for k, v in runs.items()},
            "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
