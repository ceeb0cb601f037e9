"""Training throughput: metaloss's trainer vs a plain DataLoader loop, same data, model, run.

Three loops train the same model with the same optimiser for the same number of steps:
  metaloss     - data resident as tensors on the device, batches are index draws;
  dataloader   - torch DataLoader over the same (already normalised) tensors, shuffle=True;
  per-sample   - DataLoader over uint8 images with a per-sample ToTensor+Normalize transform,
                 as the reference code does (torchvision-style pipeline).

    python bench/train_throughput.py --task mnist-lenet5 --steps 500
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import write_result  # noqa: I001
from torch.utils.data import DataLoader, Dataset, TensorDataset

import metaloss as ml
from metaloss.training import train


class PerSample(Dataset):
    """uint8 images, converted and normalised one sample at a time (ToTensor + Normalize)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: float, std: float) -> None:
        self.x = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        self.y, self.mean, self.std = y, mean, std

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.asarray(self.x[i], dtype=np.float32) / 255.0)
        return (img - self.mean) / self.std, self.y[i]


def loader_loop(task, loader, steps: int, seed: int) -> float:
    model = task.make_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=task.defaults.lr)
    done, start = 0, time.perf_counter()
    while done < steps:
        for x, y in loader:
            x, y = x.to(task.device), y.to(task.device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", default="mnist-lenet5")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = ml.tasks.get(args.task, device=args.device)
    ce = ml.losses.get_loss("ce")
    train(task, ce, steps=20, batch_size=args.batch_size)  # warm-up
    ours = train(task, ce, steps=args.steps, batch_size=args.batch_size, seed=0).seconds
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(task.train.x.cpu(), task.train.y.cpu())
    dl = DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=g, drop_last=True)
    plain = loader_loop(task, dl, args.steps, 0)
    raw = PerSample(task.train.x.cpu(), task.train.y.cpu(), 0.0, 1.0)
    dl2 = DataLoader(raw, batch_size=args.batch_size, shuffle=True, generator=g, drop_last=True)
    per_sample = loader_loop(task, dl2, args.steps, 0)
    rates = {
        "metaloss_steps_per_s": args.steps / ours,
        "dataloader_steps_per_s": args.steps / plain,
        "per_sample_dataloader_steps_per_s": args.steps / per_sample,
    }
    rates["speedup_vs_dataloader"] = plain / ours
    rates["speedup_vs_per_sample_dataloader"] = per_sample / ours
    write_result(f"train_throughput_{args.task}_{args.device}", {"args": vars(args), **rates})


if __name__ == "__main__":
    main()
