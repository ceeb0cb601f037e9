"""AdaLFL at meta-test time: a saved loss keeps adapting online while it trains a model.

:func:`continue_online` is what ``evaluate`` / ``train`` do with an AdaLFL run directory;
:func:`is_online_loss` tells such a run from a frozen loss.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from metaloss.errors import ConfigError
from metaloss.meta.online import AdaLFLConfig, online_train
from metaloss.tasks.base import Task, TrainConfig
from metaloss.training import TrainResult, is_collapsed

# AdaLFL settings that define how the loss keeps adapting (read back from a run's config).
ONLINE_FIELDS = ("adapt_every", "meta_lr", "query", "meta_grad", "max_grad_norm")


def is_online_loss(spec: str | Path | Mapping[str, Any]) -> bool:
    """True when a run (its directory, its ``spec.json`` path or the parsed spec) was made by
    AdaLFL, whose loss is meant to keep adapting while it trains a model.

    Example:
        >>> is_online_loss({"method": "adalfl"}), is_online_loss({"method": "ml3"})
        (True, False)
    """
    if not isinstance(spec, Mapping):
        from metaloss import io

        spec, _ = io.read_spec(spec)
    return spec.get("method") == "adalfl"


@dataclass
class OnlineTrainResult(TrainResult):
    """A :class:`~metaloss.training.TrainResult` plus the loss as it was at the end of the
    run (adapted online, or the loss itself when frozen)."""

    loss: nn.Module | None = None


def continue_online(
    source: str | Path | nn.Module,
    task: Task,
    seed: int = 0,
    config: TrainConfig | None = None,
    frozen: bool = False,
    progress: bool = False,
    **options: Any,
) -> OnlineTrainResult:
    """Train a fresh model of ``task`` as AdaLFL does at meta-test time: the saved loss is the
    *starting* loss and keeps adapting online through the whole run.

    ``source`` is an AdaLFL run directory (its adaptation settings ``adapt_every``,
    ``meta_lr``, ``query``, ``meta_grad``, ``max_grad_norm`` are reused) or a loss module
    (AdaLFL's defaults). ``config`` is the training protocol (default: the task's);
    ``options`` override the adaptation settings. ``frozen=True`` trains with the loss as
    saved, never updated (:func:`metaloss.train`). The source loss is never modified: the
    adapted copy is returned in ``result.loss``.

    Example:
        >>> import metaloss as ml
        >>> task = ml.tasks.get("iris-linear")
        >>> loss = ml.losses.NeuralLoss.adalfl(seed=0)
        >>> res = continue_online(loss, task, seed=0, config=task.defaults.with_(steps=20))
        >>> res.steps, res.test_metric <= 1.0
        (20, True)
    """
    from metaloss import io
    from metaloss.training import train

    unknown = sorted(set(options) - set(ONLINE_FIELDS))
    if unknown:
        raise ConfigError(f"continue_online: unknown options {unknown}; use {list(ONLINE_FIELDS)}")
    if isinstance(source, nn.Module):
        loss, saved = copy.deepcopy(source), {}
    else:
        spec, run_dir = io.read_spec(source)
        if not frozen and not is_online_loss(spec):
            raise ConfigError(
                f"{run_dir}: not an AdaLFL run (method {spec.get('method')!r}); "
                "its loss can only be used frozen (frozen=True)"
            )
        loss = io.load(run_dir)
        saved = spec.get("config") if isinstance(spec.get("config"), dict) else {}
    config = config or task.defaults
    if frozen:
        res = train(task, loss, config, seed=seed, progress=progress)
        fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
        return OnlineTrainResult(**fields, loss=loss)
    settings = {k: saved[k] for k in ONLINE_FIELDS if saved.get(k) is not None}
    adalfl = AdaLFLConfig(init_steps=0, snapshots=0, checkpoint_every=0, **{**settings, **options})
    out = online_train(
        loss, dataclasses.replace(task, defaults=config), adalfl, seed=seed, progress=progress
    )
    return OnlineTrainResult(
        model=out["model"],
        val_metric=out["val_metric"],
        test_metric=out["test_metric"],
        metric=task.metric_name,
        steps=config.steps,
        seconds=out["seconds"],
        diverged=out["diverged"],
        history=out["history"],
        collapsed=not out["diverged"] and is_collapsed(task, out["val_metric"]),
        loss=loss,
    )
