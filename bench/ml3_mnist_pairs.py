"""ML3's binary class-pair transfer on MNIST: meta-train on one digit pair, test on others.

For every seed: meta-train an ML3 loss on the binary task of one pair (default 3 vs 8),
then train fresh models on other pairs with the learned loss and with cross-entropy and
compare the test error after a short and a longer training budget.

    python bench/ml3_mnist_pairs.py --seeds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import write_result

from metaloss.losses import get_loss
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.unrolled import ML3Config, meta_train
from metaloss.tasks import data as ds
from metaloss.tasks.base import TrainConfig
from metaloss.tasks.registry import TaskSpec, build_task
from metaloss.training import train


def pair_task(data: ds.ArrayData, a: int, b: int, model: str, seed: int):
    """The binary task ``a`` (label 0) vs ``b`` (label 1)."""

    def select(x, y):
        keep = (y == a) | (y == b)
        return x[keep], (y[keep] == b).astype(np.int64)

    xtr, ytr = select(data.x_train, data.y_train)
    xte, yte = select(data.x_test, data.y_test)
    sub = ds.ArrayData(xtr, ytr, xte, yte, classes=[str(a), str(b)], source=f"MNIST {a} vs {b}")
    kw = {"hidden": (100,)} if model == "mlp" else {}
    spec = TaskSpec(f"mnist-{a}v{b}", "", model, "", model_kwargs=kw,
                    defaults=TrainConfig(steps=1000, lr=0.01))  # fmt: skip
    return build_task(spec, sub, seed=seed)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train-pair", default="3,8")
    ap.add_argument("--test-pairs", default="4,9;1,7;5,6;2,3;0,6")
    ap.add_argument("--model", default="mlp", help="mlp (784-100-2) or lenet5")
    ap.add_argument("--meta-steps", type=int, default=500)
    ap.add_argument("--budgets", default="50,500", help="test steps, comma separated")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="ml3_mnist_pairs")
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)
    data = ds.load_idx_dataset(ds.find_data_dir("mnist", args.data_dir))
    a, b = (int(v) for v in args.train_pair.split(","))
    pairs = [tuple(int(v) for v in p.split(",")) for p in args.test_pairs.split(";")]
    budgets = [int(v) for v in args.budgets.split(",")]
    rows: dict[str, dict[str, list[float]]] = {}
    meta_seconds = []
    for seed in range(args.seeds):
        source = pair_task(data, a, b, args.model, seed)
        loss = NeuralLoss.ml3(seed=seed)
        t0 = time.perf_counter()
        meta_train(loss, source, ML3Config(meta_steps=args.meta_steps), seed=seed)
        meta_seconds.append(time.perf_counter() - t0)
        for pa, pb in pairs:
            task = pair_task(data, pa, pb, args.model, seed)
            for steps in budgets:
                for name, fn in (("ce", get_loss("ce")), ("ml3", loss)):
                    key = f"{pa}v{pb}@{steps}"
                    err = train(task, fn, steps=steps, seed=seed).test_metric
                    rows.setdefault(key, {}).setdefault(name, []).append(err)
        print(seed, {k: {n: round(v[-1], 4) for n, v in r.items()} for k, r in rows.items()},
              flush=True)  # fmt: skip
    summary = {
        key: {n: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0}
              for n, v in r.items()}
        for key, r in rows.items()
    }  # fmt: skip
    payload = {
        "args": vars(args),
        "summary": summary,
        "per_seed": rows,
        "meta_seconds": meta_seconds,
    }
    write_result(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
