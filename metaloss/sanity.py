"""The check at the end of ``metaloss learn``: is the learned loss worse than cross-entropy?

Both the learned loss and the task loss (cross-entropy; MSE for regression) get the same
small learning-rate tuning (x1/4, x1, x4 of the task default, one tuning seed, at most
``max_steps`` steps) and their best validation metrics are compared. A learned loss that is
worse than the tuned task loss gets a visible warning; the record is saved in the run's
``spec.json`` (``info.sanity``). It is a quick check on validation data only, not the fair
evaluation (``metaloss evaluate``).

Example:
    >>> import metaloss as ml
    >>> from metaloss.sanity import sanity_check
    >>> task = ml.tasks.get("iris-linear")
    >>> rec = sanity_check(ml.losses.ScaledLoss("ce", 1.0), task, max_steps=50)
    >>> rec["worse"]
    False
"""

from __future__ import annotations

from typing import Any

from torch import nn

from metaloss.tasks.base import Task
from metaloss.tuning import TuneConfig, tune_lr

__all__ = ["sanity_check"]

QUICK = TuneConfig(factors=(0.25, 1.0, 4.0), seeds=1, max_widen=0)


def sanity_check(loss: nn.Module, task: Task, max_steps: int = 1000) -> dict[str, Any]:
    """Best validation metric of ``loss`` and of the task loss under the same quick tuning."""
    config = task.defaults.with_(steps=min(task.defaults.steps, max_steps), eval_every=0)
    learned = tune_lr(task, loss, config, QUICK)
    base = tune_lr(task, task.task_loss(), config, QUICK)
    name = "cross-entropy" if task.classification else "MSE"
    margin = 1.0 / len(task.val) if task.classification else 0.0
    worse = learned.best.mean > base.best.mean + margin
    metric = task.metric_name
    message = (
        f"the learned loss is WORSE than a tuned {name} on a short validation run "
        f"(val {metric} {learned.best.mean:.4f} at lr {learned.lr:g} vs "
        f"{base.best.mean:.4f} at lr {base.lr:g}, {config.steps} steps)"
        if worse
        else f"short validation run ({config.steps} steps, lr tuned x1/4..x4): learned "
        f"{learned.best.mean:.4f} vs tuned {name} {base.best.mean:.4f} (val {metric})"
    )
    return {
        "learned_val": learned.best.mean,
        "learned_lr": learned.lr,
        "baseline_val": base.best.mean,
        "baseline_lr": base.lr,
        "baseline": name,
        "steps": config.steps,
        "worse": bool(worse),
        "message": message,
    }
