"""AdaLFL stability probe: one seed, one configuration, the look-ahead task loss over training.

    python bench/adalfl_stability.py --task mnist-mlp --seed 2 --steps 3000 \
        --set residual_ce=0            # the paper's form: collapses on this seed
    python bench/adalfl_stability.py --task mnist-mlp --seed 2 --steps 3000   # our default

``--set`` takes AdaLFL options (``residual_ce``, ``inputs``, ``max_grad_norm``, ``meta_lr``,
...). Prints the online look-ahead task loss every other logging step and the final errors.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import write_result

import metaloss as ml
from metaloss.cli import _parse_options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="mnist-mlp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--init-steps", type=int, default=500)
    ap.add_argument("--set", action="append", default=[], help="option=value (JSON value)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = _parse_options(args.set)  # the CLI's --set syntax
    task = ml.tasks.get(args.task)
    start = time.perf_counter()
    res = ml.learn(
        "adalfl", task, seed=args.seed, init_steps=args.init_steps, steps=args.steps, **options
    )
    online = [r for r in res.history if r.get("phase") == "online"]
    curve = [(r["step"], round(r.get("look_ahead", float("nan")), 4)) for r in online]
    print("look-ahead task loss:", curve[1::2])
    write_result(
        f"adalfl_stability_{args.task}_seed{args.seed}_"
        + "_".join(f"{k}-{v}" for k, v in sorted(options.items())),
        {
            "args": vars(args),
            "options": options,
            "look_ahead": curve,
            "val_metric": res.info["val_metric"],
            "test_metric": res.info["test_metric"],
            "seconds": time.perf_counter() - start,
        },
    )


if __name__ == "__main__":
    main()
