"""AdaLFL's overhead: time per step of online loss adaptation vs plain cross-entropy training.

Both train the same model of the same task for the same number of steps in one run;
the ratio is (AdaLFL seconds per step) / (cross-entropy seconds per step).

    python bench/adalfl_overhead.py --task mnist-lenet5 --steps 300
"""

from __future__ import annotations

import argparse

import torch
from common import write_result

import metaloss as ml
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.online import AdaLFLConfig, online_train
from metaloss.training import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="mnist-lenet5")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--adapt-every", type=int, default=1, help="adapt the loss every k steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = ml.tasks.get(args.task, device=args.device)
    ce = ml.losses.get_loss("ce")
    ce_s, ada_s = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        ce_s.append(train(task, ce, steps=args.steps, seed=0).seconds)
        out = online_train(
            NeuralLoss.adalfl(),
            task,
            AdaLFLConfig(steps=args.steps, snapshots=0, adapt_every=args.adapt_every),
        )
        ada_s.append(out["seconds"])
    ratio = min(ada_s) / min(ce_s)
    write_result(
        f"adalfl_overhead_{args.task}_{args.device}_every{args.adapt_every}",
        {
            "args": vars(args),
            "ce_seconds": ce_s,
            "adalfl_seconds": ada_s,
            "ce_ms_per_step": 1000 * min(ce_s) / args.steps,
            "adalfl_ms_per_step": 1000 * min(ada_s) / args.steps,
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
