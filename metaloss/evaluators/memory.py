"""Memory estimate of the batched evaluator: how many population members fit at once.

Per member, 4 bytes x (parameters x (3 + optimiser states) + 3 x training activations of
one batch), measured with forward hooks on one batch; plus a fixed 2 x the largest
activation at ``eval_batch_size`` rows (evaluation runs members x rows ~
``eval_batch_size`` per forward). The budget is 60 % of the free GPU memory
(``torch.cuda.mem_get_info``) or, on CPU, 40 % of ``MemAvailable`` in ``/proc/meminfo``
(4 GiB when that file is missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from metaloss.tasks.base import Task, TrainConfig

__all__ = ["auto_chunk_size", "available_memory", "member_bytes"]


def available_memory(device: torch.device | str) -> int:
    """Bytes the batched evaluator may use on ``device`` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.6 * free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(0.4 * int(line.split()[1]) * 1024)
    except OSError:
        pass
    return 4 << 30


def member_bytes(task: Task, config: TrainConfig, model: nn.Module | None = None) -> int:
    """Estimated bytes one population member needs (parameters, optimiser, activations)."""
    return _footprint(task, config, model)[0]


def _footprint(task: Task, config: TrainConfig, model: nn.Module | None) -> tuple[int, int]:
    """(bytes per member, fixed bytes of the evaluation forward), 4-byte floats."""
    model = model if model is not None else task.make_model(0)
    n_params = sum(p.numel() for p in model.parameters())
    states = 2 if config.optimizer == "adam" else (1 if config.momentum else 0)
    sizes: list[int] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            sizes.append(out.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    bs = min(config.batch_size, len(task.train))
    try:
        with torch.no_grad():
            model(task.train.x[:bs])
    except Exception:  # noqa: BLE001 - a broken model fails later, with a reason
        sizes = [task.train.x[:bs].numel()]
    finally:
        for h in handles:
            h.remove()
    act_train = sum(sizes) + task.train.x[:bs].numel()
    act_eval = 2 * max(sizes, default=0) * config.eval_batch_size // max(bs, 1)
    return 4 * (n_params * (3 + states) + 3 * act_train), 4 * act_eval


def auto_chunk_size(
    task: Task, config: TrainConfig, population: int, model: nn.Module | None = None
) -> int:
    """The largest number of members (<= ``population``) that fits the memory budget.

    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> auto_chunk_size(task, task.defaults, 25)
    25
    """
    per, fixed = _footprint(task, config, model)
    budget = available_memory(task.device) - fixed
    return max(1, min(population, budget // max(per, 1)))
