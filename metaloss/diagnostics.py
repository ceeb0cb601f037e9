"""The step diagnostic: is a learned loss a new shape, or the task loss with another step?

At initialisation, on a few training batches, compare the parameter gradient of the loss
with that of the task loss (cross-entropy; MSE for regression):

- ``ratio``: ``|grad L| / |grad CE|``, the loss's effective step relative to CE at the
  same learning rate (mean over batches);
- ``cosine``: the cosine between the two gradients (mean over batches).

At initialisation almost every classification loss points where cross-entropy does
(near-uniform predictions make softmax-MSE's gradient ~ CE's: cosine 0.99 on digits), so
the same two numbers are also measured after ``warm_steps`` steps of cross-entropy
training (``ratio_trained``, ``cosine_trained``). A cosine above 0.98 at *both* points
means the loss moves the model almost exactly as cross-entropy does, only ``ratio``
times faster: essentially a rescaled cross-entropy, which a tuned learning rate
reproduces. The diagnostic is shown wherever a loss is shown (``metaloss show``, the
report, the end of ``metaloss learn``, ``metaloss evaluate``).

Example:
    >>> import metaloss as ml
    >>> from metaloss.diagnostics import step_diagnostic
    >>> task = ml.tasks.get("iris-linear")
    >>> ce = ml.losses.get_loss("cross_entropy")
    >>> d = step_diagnostic(ml.losses.ScaledLoss(ce, 3.0), task)
    >>> round(d.ratio, 4), round(d.cosine, 4), d.rescaled
    (3.0, 1.0, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metaloss.seeds import search_seed
from metaloss.tasks.base import Task, TrainConfig

__all__ = ["StepDiagnostic", "step_diagnostic", "describe", "RESCALED_COSINE"]

RESCALED_COSINE = 0.98


@dataclass
class StepDiagnostic:
    """Gradient-norm ratio and cosine of a loss against the task loss at initialisation."""

    ratio: float
    cosine: float
    batches: int
    reference: str
    ratio_trained: float = float("nan")
    cosine_trained: float = float("nan")
    warm_steps: int = 0

    @property
    def rescaled(self) -> bool:
        """True when the loss is essentially a rescaled task loss (cosine > 0.98 at init
        and, when measured, after the warm-up)."""
        trained = self.cosine_trained != self.cosine_trained or (
            self.cosine_trained > RESCALED_COSINE
        )
        return self.cosine > RESCALED_COSINE and trained

    @property
    def message(self) -> str:
        """A plain sentence for reports (empty when the loss differs in shape)."""
        if not self.rescaled:
            return ""
        return (
            f"essentially a rescaled {self.reference}: its gradient is {self.ratio:.2f}x "
            f"{self.reference}'s with cosine {self.cosine:.3f}, so a tuned learning rate "
            "reproduces most of its effect"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "grad_norm_ratio": self.ratio,
            "cosine": self.cosine,
            "batches": self.batches,
            "reference": self.reference,
            "grad_norm_ratio_trained": self.ratio_trained,
            "cosine_trained": self.cosine_trained,
            "warm_steps": self.warm_steps,
            "rescaled": self.rescaled,
            "message": self.message,
        }

    def __str__(self) -> str:
        text = f"step vs {self.reference}: gradient x{self.ratio:.3g}, cosine {self.cosine:.3f}"
        if self.warm_steps:
            text += (
                f" at init; x{self.ratio_trained:.3g}, cosine {self.cosine_trained:.3f} "
                f"after {self.warm_steps} {self.reference} steps"
            )
        return f"{text} ({self.message})" if self.message else text


def _flat_grad(loss: Callable[[Tensor, Tensor], Tensor], model, x, y) -> Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    value = loss(model(x), y)
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
    )


def _compare(loss, reference, model, task, gen, bs, batches) -> tuple[float, float]:
    ratios, cosines = [], []
    for _ in range(max(1, batches)):
        idx = torch.randperm(len(task.train), generator=gen)[:bs].to(task.device)
        x, y = task.train.x[idx], task.train.y[idx]
        g_loss = _flat_grad(loss, model, x, y)
        g_ref = _flat_grad(reference, model, x, y)
        n_loss, n_ref = g_loss.norm(), g_ref.norm()
        ratios.append(float(n_loss / n_ref) if n_ref > 0 else float("nan"))
        denom = n_loss * n_ref
        cosines.append(float(g_loss @ g_ref / denom) if denom > 0 else float("nan"))
    return sum(ratios) / len(ratios), sum(cosines) / len(cosines)


def step_diagnostic(
    loss: Callable[[Tensor, Tensor], Tensor],
    task: Task,
    config: TrainConfig | None = None,
    batches: int = 4,
    seed: int = 0,
    warm_steps: int = 100,
) -> StepDiagnostic:
    """Compare ``loss``'s parameter gradient with the task loss's (see the module doc).

    Uses ``batches`` training batches of ``config.batch_size`` (default: the task's) and
    a model initialised from the diagnostic stream of ``seed`` (never a reporting run's);
    then again after ``warm_steps`` steps of task-loss training at ``config.lr``
    (``warm_steps=0``: initialisation only).
    """
    from metaloss.training import train

    config = config or task.defaults
    reference = task.task_loss()
    ref_name = "cross-entropy" if task.classification else "MSE"
    model = task.make_model(search_seed(seed, "diagnostic"))
    model.train()
    if isinstance(loss, torch.nn.Module):
        loss = loss.to(task.device)
    gen = torch.Generator().manual_seed(search_seed(seed, "diagnostic-batches"))
    bs = min(config.batch_size, len(task.train))
    ratio, cosine = _compare(loss, reference, model, task, gen, bs, batches)
    ratio_t = cosine_t = float("nan")
    if warm_steps > 0:
        warm = config.with_(steps=warm_steps, eval_every=0)
        trained = train(task, reference, warm, seed=search_seed(seed, "diagnostic"),
                        test=False).model  # fmt: skip
        trained.train()
        ratio_t, cosine_t = _compare(loss, reference, trained, task, gen, bs, batches)
    return StepDiagnostic(
        ratio=ratio,
        cosine=cosine,
        batches=max(1, batches),
        reference=ref_name,
        ratio_trained=ratio_t,
        cosine_trained=cosine_t,
        warm_steps=max(0, warm_steps),
    )


def describe(record: dict[str, Any]) -> str:
    """One line for a saved diagnostic (:meth:`StepDiagnostic.to_dict`), as ``str`` gives.

    >>> describe({"grad_norm_ratio": 2.0, "cosine": 0.5, "batches": 4,
    ...           "reference": "cross-entropy"})
    'step vs cross-entropy: gradient x2, cosine 0.500'
    """
    try:
        diag = StepDiagnostic(
            float(record["grad_norm_ratio"]),
            float(record["cosine"]),
            int(record.get("batches", 0)),
            str(record.get("reference", "cross-entropy")),
            float(record.get("grad_norm_ratio_trained", float("nan"))),
            float(record.get("cosine_trained", float("nan"))),
            int(record.get("warm_steps", 0)),
        )
    except (KeyError, TypeError, ValueError):
        return "step diagnostic: unreadable record"
    return str(diag)
