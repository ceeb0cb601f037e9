"""Results of a loss search / meta-training run, and evaluation reports."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaloss.io import json_float
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
    data: dict[str, Any] = field(default_factory=dict)  # the task's data (tasks.provenance)

    def record_data(self, task: Any) -> None:
        """Remember ``task``'s name, variant and data files (path, sha256) for :meth:`save`."""
        from metaloss.tasks.provenance import data_record

        if task is not None:
            self.data = data_record(task)

    def __str__(self) -> str:
        lines = [
            f"method   {self.method}",
            f"task     {self.task}",
            f"loss     {self.loss.describe()}",
            f"time     {self.seconds:.1f} s",
        ]
        for k, v in self.info.items():
            if k == "step_diagnostic" and isinstance(v, dict):
                from metaloss.diagnostics import describe

                k, v = "step", describe(v)
            elif k == "sanity" and isinstance(v, dict):
                v = v.get("message", "")
            lines.append(f"{k:<8} {v}")
        for i, row in enumerate(self.hall_of_fame[:5]):
            lines.append(f"hof[{i}]   {row.get('fitness')}  {row.get('formula')}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the run directory: spec.json, loss.safetensors, history.jsonl.

        ``spec.json`` also records the task's data (``data``, see
        :mod:`metaloss.tasks.provenance`) when :meth:`record_data` was called."""
        from metaloss import io, rundir

        meta = {
            "method": self.method,
            "task": self.task,
            "seconds": self.seconds,
            "config": self.config,
            "hall_of_fame": self.hall_of_fame,
            "info": self.info,
            **({"data": self.data} if self.data else {}),
        }
        out = io.save_loss(path, self.loss, meta=meta, history=self.history)
        if self.tensors:
            io.save_tensors(out / rundir.EXTRA, self.tensors)
        return out

    @classmethod
    def load(cls, path: str | Path) -> LearnResult:
        """A run saved by :meth:`save`, read back (a run directory or its ``spec.json``).

        As safe as :func:`metaloss.io.load`: no code is executed, every file is size-capped
        and must lie inside the run directory, the weights are checked against the spec.
        Values come back as JSON gives them (tuples as lists; infinities written as
        ``"inf"``). A malformed field raises :class:`~metaloss.errors.ArtifactError`.

        Example:
            >>> import tempfile
            >>> from metaloss.losses.taylor import TaylorLoss
            >>> r = LearnResult("taylorglo", "iris-linear", TaylorLoss(), 1.5, [{"step": 0}])
            >>> back = LearnResult.load(r.save(tempfile.mkdtemp()))
            >>> back.method, back.seconds, back.history, type(back.loss).__name__
            ('taylorglo', 1.5, [{'step': 0}], 'TaylorLoss')
        """
        from metaloss import io, rundir
        from metaloss.errors import ArtifactError

        spec, run_dir = io.read_spec(path)
        loss = io.load(run_dir)
        where = run_dir / rundir.SPEC
        fields: dict[str, Any] = {}
        for key, kind in (("method", str), ("task", str), ("data", dict)):
            value = spec.get(key)
            if value is not None and not isinstance(value, kind):
                raise ArtifactError(f"{where}: field {key!r} must be a JSON {kind.__name__}")
            fields[key] = value
        seconds = spec.get("seconds", math.nan)
        if seconds is None:  # NaN is written as null
            seconds = math.nan
        try:
            seconds = float(seconds)  # also "inf" / "-inf" as written for infinities
        except (TypeError, ValueError):
            raise ArtifactError(f"{where}: field 'seconds' must be a number") from None
        history = io.read_jsonl(io.confined(run_dir, rundir.HISTORY))
        extra = io.confined(run_dir, rundir.EXTRA)
        tensors = io.load_tensors(extra) if extra.exists() or extra.is_symlink() else {}
        return cls(
            method=fields["method"] or "?",
            task=fields["task"] or "?",
            loss=loss,
            seconds=seconds,
            history=history,
            config=spec.get("config") or {},
            hall_of_fame=spec.get("hall_of_fame") or [],
            info=spec.get("info") or {},
            tensors=dict(tensors),
            data=fields["data"] or {},
        )


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided Welch's t-test p-value (nan when undefined, e.g. fewer than 2 values).

    Two samples without any variance (every seed gives the same test error, as on a small
    fixed test set) are 1.0 when equal and NaN (untestable, never "significant") when not.
    """
    from scipy import stats

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    if len(a_) < 2 or len(b_) < 2 or not (np.isfinite(a_).all() and np.isfinite(b_).all()):
        return math.nan
    with warnings.catch_warnings():  # near-identical samples / overflow: scipy/numpy notes
        warnings.simplefilter("ignore", RuntimeWarning)
        if a_.std() == 0 and b_.std() == 0:
            return 1.0 if a_.mean() == b_.mean() else math.nan
        return float(stats.ttest_ind(a_, b_, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order; NaN stays NaN and is not counted).

    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    idx = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def welch_ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of ``mean(a) - mean(b)`` (Welch-Satterthwaite degrees of freedom).

    ``(nan, nan)`` when undefined (fewer than 2 values, non-finite or overflowing values);
    no numpy/scipy RuntimeWarning escapes.

    >>> [round(v, 3) for v in welch_ci([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])]
    [-2.267, 2.267]
    """
    from scipy import stats

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    if len(a_) < 2 or len(b_) < 2 or not (np.isfinite(a_).all() and np.isfinite(b_).all()):
        return (math.nan, math.nan)
    with warnings.catch_warnings():  # overflow on extreme values: an undefined (nan) interval
        warnings.simplefilter("ignore", RuntimeWarning)
        va, vb = a_.var(ddof=1) / len(a_), b_.var(ddof=1) / len(b_)
        diff = float(a_.mean() - b_.mean())
        se = math.sqrt(va + vb) if math.isfinite(va + vb) else math.nan
        if se == 0:
            return (diff, diff)
        if not (math.isfinite(se) and math.isfinite(diff)):
            return (math.nan, math.nan)
        df = (va + vb) ** 2 / (va**2 / (len(a_) - 1) + vb**2 / (len(b_) - 1))
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return (diff - half, diff + half)


def against_best(
    values: dict[str, list[float]], others: list[str], learned: list[str]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Each of ``learned`` against the best of ``others`` (lowest mean: the strictest
    comparison): delta, Welch p, Holm p over these comparisons, and the verdict.

    >>> best, out = against_best({"sce": [0.21, 0.22], "gce": [0.3, 0.31], "a": [0.2, 0.21]},
    ...                          ["sce", "gce"], ["a"])
    >>> best, round(out["a"]["delta"], 3), out["a"]["verdict"]
    ('sce', -0.01, 'tie')
    """
    best = min(others, key=lambda m: float(np.mean(values[m])))
    p_values = [welch_p(values[m], values[best]) for m in learned]
    out = {}
    for method, p, ph in zip(learned, p_values, holm(p_values)):
        delta = float(np.mean(values[method]) - np.mean(values[best]))
        significant = not math.isnan(ph) and ph < 0.05
        verdict = ("better" if delta < 0 else "worse") if significant else "tie"
        out[method] = {"delta": delta, "p_value": p, "p_holm": ph, "verdict": verdict}
    return best, out


def best_baseline_sentence(
    best: str,
    best_mean: float,
    base: str,
    compared: dict[str, dict[str, Any]],
    beats: list[str],
    tuned: bool = True,
) -> str:
    """The sentence that reports :func:`against_best` under a table."""
    t = "tuned " if tuned else ""
    parts = []
    for method, vs in compared.items():  # values may come back from JSON (NaN as null)
        ph = json_float(vs["p_holm"])
        p_text = "n/a" if math.isnan(ph) else f"{ph:.3f}"
        parts.append(f"{method} {json_float(vs['delta']):+.4f} ({vs['verdict']}, Holm p {p_text})")
    if beats:
        verb = "beats" if len(beats) == 1 else "beat"
        verdict = f"**{', '.join(beats)} {verb} both {t}{base} and {best} significantly.**"
    else:
        verdict = f"No learned row beats both {t}{base} and {best} significantly."
    return (
        f"Against the best {t}hand-made baseline ({best}, {best_mean:.4f}, the lowest test "
        f"mean): {'; '.join(parts)}. {verdict}"
    )


@dataclass
class EvalRow:
    """Test metric of one loss over several seeds (at its tuned learning rate, if tuned)."""

    name: str
    values: list[float]
    val_values: list[float]
    seconds: float
    p_value: float = math.nan
    delta: float = math.nan
    p_holm: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    lr: float | None = None
    tuning: dict[str, Any] | None = None
    diagnostic: dict[str, Any] | None = None
    collapsed: int = 0  # reporting runs that collapsed to chance level (finite outputs)
    hand_made: bool = False  # a baseline loss (CE, SCE, focal, ...), not a learned one
    vs_best: dict[str, Any] | None = None  # against the table's best other hand-made row

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` (Holm-corrected p < 0.05 vs the baseline) or ``tie``."""
        if math.isnan(self.p_holm) or self.p_holm >= 0.05:
            return "tie"
        return "better" if self.delta < 0 else "worse"

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
            "p_holm": self.p_holm,
            "ci95_delta": list(self.ci),
            "verdict": self.verdict,
            "lr": self.lr,
            "collapsed": self.collapsed,
            **({"tuning": self.tuning} if self.tuning else {}),
            **({"diagnostic": self.diagnostic} if self.diagnostic else {}),
            **({"vs_best_baseline": self.vs_best} if self.vs_best else {}),
        }


@dataclass
class EvalReport:
    """Mean +- std of the test metric per loss, with Welch's t-test against the baseline."""

    task: str
    metric: str
    steps: int
    seeds: list[int]
    rows: list[EvalRow]
    tuned: bool = False
    notes: list[str] = field(default_factory=list)
    best_baseline: str | None = None  # the best other hand-made row, when there are learned rows
    beats_both: list[str] = field(default_factory=list)
    compared_with: str = ""  # the row every delta is measured against (set by compare)

    def compare(self, baseline: str | None = None) -> None:
        """Fill delta, Welch p, Holm-corrected p and 95 % CI of every row against ``baseline``.

        The baseline is the row named ``baseline`` (default: the first row); Holm's
        correction runs over all comparisons of this table. When other hand-made rows sit
        beside learned ones, each learned row is also compared with the best of them
        (:func:`against_best`; ``best_baseline``, ``beats_both``, each row's ``vs_best``).
        """
        base = next((r for r in self.rows if r.name == baseline), self.rows[0])
        self.compared_with = base.name
        for r in self.rows:
            r.delta = r.mean - base.mean
            r.p_value = welch_p(r.values, base.values) if r is not base else math.nan
            r.ci = welch_ci(r.values, base.values) if r is not base else (math.nan, math.nan)
        for r, p in zip(self.rows, holm([r.p_value for r in self.rows])):
            r.p_holm = p
        others = [str(i) for i, r in enumerate(self.rows) if r.hand_made and r is not base]
        learned = [str(i) for i, r in enumerate(self.rows) if not r.hand_made]
        self.best_baseline, self.beats_both = None, []
        for r in self.rows:
            r.vs_best = None
        if others and learned:
            values = {str(i): r.values for i, r in enumerate(self.rows)}
            best, compared = against_best(values, others, learned)
            self.best_baseline = self.rows[int(best)].name
            for key, vs in compared.items():
                r = self.rows[int(key)]
                r.vs_best = vs
                if vs["verdict"] == "better" and r.verdict == "better":
                    self.beats_both.append(r.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metric": self.metric,
            "steps": self.steps,
            "seeds": self.seeds,
            "tuned": self.tuned,
            "notes": self.notes,
            "rows": [r.to_dict() for r in self.rows],
            **(
                {"best_baseline": self.best_baseline, "beats_both": self.beats_both}
                if self.best_baseline
                else {}
            ),  # fmt: skip
        }

    def markdown(self) -> str:
        """The table; a cell is bold only when Holm-corrected p < 0.05 and better."""
        head = (
            f"| loss | lr | test {self.metric} (mean ± std) | Δ vs baseline [95 % CI] "
            "| p (Welch) | p (Holm) | time/run |"
        )
        lines = [head, "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            first = r is self.rows[0] or math.isnan(r.delta)
            d = "" if first else f"{r.delta:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]"
            p = "" if math.isnan(r.p_value) else f"{r.p_value:.3f}"
            ph = "" if math.isnan(r.p_holm) else f"{r.p_holm:.3f}"
            cell = f"{r.mean:.4f} ± {r.std:.4f}"
            if r.verdict == "better":
                cell = f"**{cell}**"
            elif r.verdict == "worse":
                cell += " (worse)"
            lr = "" if r.lr is None else f"{r.lr:g}"
            t = r.seconds / max(1, len(r.values))
            lines.append(f"| {r.name} | {lr} | {cell} | {d} | {p} | {ph} | {t:.1f} s |")
        for note in self.notes:
            lines.append(f"\n- {note}")
        if self.best_baseline_note:
            lines.append(f"\n- {self.best_baseline_note}")
        return "\n".join(lines)

    @property
    def best_baseline_note(self) -> str:
        """The sentence comparing the learned rows with the best other hand-made row ("" when
        :meth:`compare` found none)."""
        if self.best_baseline is None:
            return ""
        best = next(r for r in self.rows if r.name == self.best_baseline and r.hand_made)
        compared = {r.name: r.vs_best for r in self.rows if r.vs_best is not None}
        base = self.compared_with or self.rows[0].name
        return best_baseline_sentence(
            best.name, best.mean, base, compared, self.beats_both, tuned=self.tuned
        )
