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
    ap.add_argument(
        "--meta-grad",
        nargs="+",
        default=["jvp", "exact"],
        choices=["jvp", "exact"],
        help="meta-gradient implementations to time (all in the same run)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = ml.tasks.get(args.task, device=args.device)
    ce = ml.losses.get_loss("ce")
    ce_s: list[float] = []
    ada_s: dict[str, list[float]] = {m: [] for m in args.meta_grad}
    for _ in range(args.repeats):  # interleaved, so all see the same machine load
        ce_s.append(train(task, ce, steps=args.steps, seed=0).seconds)
        for method in args.meta_grad:
            cfg = AdaLFLConfig(
                steps=args.steps, snapshots=0, adapt_every=args.adapt_every, meta_grad=method
            )
            ada_s[method].append(online_train(NeuralLoss.adalfl(), task, cfg)["seconds"])
    ce_ms = 1000 * min(ce_s) / args.steps
    result = {"args": vars(args), "ce_seconds": ce_s, "ce_ms_per_step": ce_ms}
    for method, secs in ada_s.items():
        ms = 1000 * min(secs) / args.steps
        result[method] = {"seconds": secs, "ms_per_step": ms, "ratio": ms / ce_ms}
    write_result(f"adalfl_overhead_{args.task}_{args.device}_every{args.adapt_every}", result)


if __name__ == "__main__":
    main()
