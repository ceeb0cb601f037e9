"""Results of a loss search / meta-training run, and evaluation reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaloss.losses.base import Loss


@dataclass
class LearnResult:
    """What :func:`metaloss.learn` returns: the learned loss and how it was found."""

    method: str
    task: str
    loss: Loss
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    hall_of_fame: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)  # extra arrays, e.g. loss snapshots

    def __str__(self) -> str:
        lines = [
            f"method   {self.method}",
            f"task     {self.task}",
            f"loss     {self.loss.describe()}",
            f"time     {self.seconds:.1f} s",
        ]
        for k, v in self.info.items():
            lines.append(f"{k:<8} {v}")
        for i, row in enumerate(self.hall_of_fame[:5]):
            lines.append(f"hof[{i}]   {row.get('fitness')}  {row.get('formula')}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the run directory: spec.json, loss.safetensors, history.jsonl."""
        from metaloss import io

        meta = {
            "method": self.method,
            "task": self.task,
            "seconds": self.seconds,
            "config": self.config,
            "hall_of_fame": self.hall_of_fame,
            "info": self.info,
        }
        out = io.save_loss(path, self.loss, meta=meta, history=self.history)
        if self.tensors:
            io.save_tensors(out / "extra.safetensors", self.tensors)
        return out


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided Welch's t-test p-value (nan when undefined, e.g. fewer than 2 values)."""
    from scipy import stats

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    if len(a_) < 2 or len(b_) < 2 or not (np.isfinite(a_).all() and np.isfinite(b_).all()):
        return math.nan
    if a_.std() == 0 and b_.std() == 0:
        return 1.0 if a_.mean() == b_.mean() else 0.0
    return float(stats.ttest_ind(a_, b_, equal_var=False).pvalue)


@dataclass
class EvalRow:
    """Test metric of one loss over several seeds."""

    name: str
    values: list[float]
    val_values: list[float]
    seconds: float
    p_value: float = math.nan
    delta: float = math.nan

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mean": self.mean,
            "std": self.std,
            "values": self.values,
            "val_values": self.val_values,
            "seconds": self.seconds,
            "delta_vs_baseline": self.delta,
            "p_value": self.p_value,
        }


@dataclass
class EvalReport:
    """Mean +- std of the test metric per loss, with Welch's t-test against the baseline."""

    task: str
    metric: str
    steps: int
    seeds: list[int]
    rows: list[EvalRow]

    def compare(self, baseline: str | None = None) -> None:
        """Fill ``delta`` and ``p_value`` of every row against ``baseline`` (default: first)."""
        base = next((r for r in self.rows if r.name == baseline), self.rows[0])
        for r in self.rows:
            r.delta = r.mean - base.mean
            r.p_value = welch_p(r.values, base.values) if r is not base else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "steps": self.steps,
            "seeds": self.seeds,
            "rows": [r.to_dict() for r in self.rows],
        }

    def markdown(self) -> str:
        head = f"| loss | test {self.metric} (mean ± std) | Δ vs baseline | p (Welch) | time/run |"
        lines = [head, "|---|---|---|---|---|"]
        for r in self.rows:
            d = (
                ""
                if math.isnan(r.delta) or r.delta == 0 and math.isnan(r.p_value)
                else f"{r.delta:+.4f}"
            )
            p = "" if math.isnan(r.p_value) else f"{r.p_value:.3f}"
            t = r.seconds / max(1, len(r.values))
            lines.append(f"| {r.name} | {r.mean:.4f} ± {r.std:.4f} | {d} | {p} | {t:.1f} s |")
        return "\n".join(lines)
