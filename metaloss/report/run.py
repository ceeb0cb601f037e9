"""The report of one run directory (what :meth:`metaloss.results.LearnResult.save` wrote):
method, task and time, the learned loss (formula, LaTeX, architecture) drawn against
cross-entropy (MSE for regression), meta-training curves, AdaLFL's loss snapshots, the
hall of fame, diagnostics, info and configuration.

Example:
    >>> import tempfile, metaloss as ml
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> run = ml.io.save_loss(tempfile.mkdtemp(), TaylorLoss([0.1] * 8), meta={"method": "x"})
    >>> run_report(run).title
    'metaloss run: x on ?'
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaloss import io, plots, rundir
from metaloss.errors import ArtifactError
from metaloss.report.document import Doc, _num, _safe_figure, _seconds


def _task_shape(spec: Mapping[str, Any]) -> tuple[bool, int]:
    """(classification?, number of classes) of a run's task (metaloss.plots.run_task_shape;
    10 classes when unknown), without loading its data."""
    from metaloss.plots import run_task_shape

    regression, classes = run_task_shape(spec)
    return not regression, classes or 10


def _snapshot_losses(spec: Mapping[str, Any], run_dir: Path) -> dict[str, nn.Module]:
    """AdaLFL's loss snapshots (``snapshot.<step>.<param>`` in extra.safetensors), by step."""
    from metaloss.losses.base import build_loss

    path = run_dir / rundir.EXTRA
    if not path.exists():
        return {}
    groups: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in io.load_tensors(path).items():
        parts = key.split(".", 2)
        if len(parts) == 3 and parts[0] == "snapshot" and parts[1].isdigit():
            groups.setdefault(int(parts[1]), {})[parts[2]] = value
    out: dict[str, nn.Module] = {}
    for step in sorted(groups):
        loss = build_loss(spec["loss"])
        try:
            loss.load_state_dict(groups[step], strict=True)
        except RuntimeError as exc:
            msg = str(exc).splitlines()[0]
            raise ArtifactError(
                f"{path}: snapshot {step} does not match the loss ({msg})"
            ) from None
        out[f"step {step}"] = loss.eval()
    return out


def _generation_rows(run_dir: Path, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        r["summary"]
        for r in io.read_jsonl(run_dir / rundir.GENERATIONS)
        if r.get("type") == "generation" and isinstance(r.get("summary"), dict)
    ]
    return rows or [r for r in history if "best" in r and "median" in r]


def _training_section(
    doc: Doc, run_dir: Path, history: list[dict[str, Any]], title: str = "search"
) -> None:
    meta = [r for r in history if "meta_loss" in r and "meta_step" in r]
    online = [r for r in history if "train_loss" in r and "step" in r]
    gens = _generation_rows(run_dir, history)
    if not (meta or online or gens):
        return
    doc.heading("Meta-training")
    if meta:
        ys = [_num(r["meta_loss"]) for r in meta]
        finite = [y for y in ys if math.isfinite(y)]
        doc.para(
            f"{len(meta)} meta steps; first meta-loss {ys[0]:.4g}, last {ys[-1]:.4g}"
            + (f", lowest {min(finite):.4g}." if finite else ".")
        )
        label = "offline phase (ML3 initialisation)" if online else "ML3 meta-training"
        series = {"meta-loss": ([r["meta_step"] for r in meta], ys)}
        _safe_figure(
            doc,
            lambda: plots.figure_curves(series, "meta step", "meta-loss", label, logy=None),
            f"{label}: meta-loss (task loss after the inner steps) per meta step",
            half=True,
        )
    if online:
        curve = {
            "learned loss": ([r["step"] for r in online], [_num(r["train_loss"]) for r in online])
        }
        _safe_figure(
            doc,
            lambda: plots.figure_curves(curve, "step", "training loss", "online phase", logy=None),
            "online phase: mean learned-loss value on the training batches",
            half=True,
        )
    if gens:
        g = [r.get("generation", i) for i, r in enumerate(gens)]
        best, median = [_num(r.get("best")) for r in gens], [_num(r.get("median")) for r in gens]
        _safe_figure(
            doc,
            lambda: plots.figure_search(g, best, title=title, median=median),
            "best fitness so far, with each generation's best and median (faint)",
            half=True,
        )
        rows = [
            (
                r.get("generation", i),
                _num(r.get("best")),
                _num(r.get("median")),
                r.get("rejects", ""),
                r.get("candidates", ""),
                _num(r.get("seconds")),
                r.get("reasons") or "",
            )
            for i, r in enumerate(gens)
        ]
        doc.table(
            ("generation", "best", "median", "rejects", "candidates", "seconds", "reasons"),
            rows,
            numeric=(0, 1, 2, 3, 4, 5),
            collapsed=f"per-generation summary ({len(rows)} generations)",
        )


def _data_summary(spec: Mapping[str, Any]) -> dict[str, str]:
    """The run's recorded data (tasks.provenance) as report rows; none for older runs."""
    rec = spec.get("data")
    if not isinstance(rec, dict):
        return {}
    files = [f for f in rec.get("files") or [] if isinstance(f, dict)]
    if not files:
        return {"data": str(rec.get("source") or "built in")}
    return {
        "data": "; ".join(
            f"{f.get('path')} (sha256 {str(f.get('sha256', '?'))[:16]}…"
            f"{' of the file list and sizes' if f.get('hashed') == 'manifest' else ''})"
            for f in files
        )
    }


def run_report(path: Path) -> Doc:
    spec, run_dir = io.read_spec(path)
    loss = io.load(run_dir)
    method, task = str(spec.get("method", "?")), str(spec.get("task", "?"))
    config = spec.get("config") or {}
    info = spec.get("info") or {}
    history = io.read_jsonl(run_dir / rundir.HISTORY)
    classification, num_classes = _task_shape(spec)
    doc = Doc(
        f"metaloss run: {method} on {task}",
        f"{run_dir.resolve()} · metaloss {spec.get('metaloss_version', '?')} · "
        f"report written {_dt.datetime.now().isoformat(timespec='seconds')}",
    )
    doc.heading("Summary")
    doc.mapping(
        {
            "method": method,
            "task": f"{task} ({'classification' if classification else 'regression'})",
            "time": _seconds(spec.get("seconds")),
            "loss kind": loss.kind,
            "formula": spec.get("formula") or loss.describe(),
            **_data_summary(spec),
        }
    )

    doc.heading("Learned loss")
    if loss.kind == "neural":
        n_params = sum(p.numel() for p in loss.parameters())
        doc.para(f"Neural loss, architecture: {loss.describe()} ({n_params:,} parameters).")
    else:
        doc.para("Formula:")
        doc.code(spec.get("formula") or loss.describe(), formula=True)
    if hasattr(loss, "to_latex"):
        try:
            latex = str(loss.to_latex())
        except Exception:  # noqa: BLE001 - LaTeX export is a nicety
            latex = ""
        if latex:
            doc.para("LaTeX:")
            doc.code(latex)
            doc.figure(plots.latex_png(latex), "the formula typeset (matplotlib mathtext)")
    loss_spec = spec["loss"] if isinstance(spec.get("loss"), dict) else {}
    if loss_spec.get("config"):
        doc.heading("Loss configuration", 3)
        doc.mapping(loss_spec["config"])
    what = "the predicted probability of the true class" if classification else "the prediction"
    _safe_figure(
        doc,
        lambda: plots.figure_landscape(
            {"learned": loss}, classification, num_classes, f"{method} · {task}"
        ),
        f"the learned loss against {'cross-entropy' if classification else 'MSE'} over {what}"
        + (
            f" ({num_classes} classes, the rest of the mass spread evenly)"
            if classification
            else ""
        ),
    )

    _training_section(doc, run_dir, history, f"{method} · {task}")

    snaps = _snapshot_losses(spec, run_dir)
    if snaps:
        doc.heading("Loss snapshots during online adaptation")
        doc.para(
            f"{len(snaps)} snapshots ({', '.join(snaps)}); step 0 is the loss after the offline "
            "initialisation, the last one the loss at the end of training."
        )
        _safe_figure(
            doc,
            lambda: plots.figure_landscape(snaps, classification, num_classes, "AdaLFL snapshots"),
            "the learned loss at each snapshot",
        )

    hof = spec.get("hall_of_fame") or []
    if hof:
        doc.heading("Hall of fame")
        doc.table(
            ("#", "fitness", "complexity", "formula"),
            [
                (i, _num(r.get("fitness")), r.get("complexity", ""), r.get("formula", ""))
                for i, r in enumerate(hof)
            ],
            numeric=(0, 1, 2),
        )
    if isinstance(info, dict) and isinstance(info.get("step_diagnostic"), dict):
        from metaloss.diagnostics import describe

        diag = info["step_diagnostic"]
        doc.heading("Step diagnostic")
        doc.para(describe(diag) + ".")
        if diag.get("message"):
            doc.para(f"This loss is {diag['message']}.", note=True)
    if isinstance(info, dict) and isinstance(info.get("sanity"), dict):
        doc.heading("Sanity check against a tuned cross-entropy")
        doc.para(str(info["sanity"].get("message", "")), note=bool(info["sanity"].get("worse")))
    rest = {k: v for k, v in info.items() if k not in ("step_diagnostic", "sanity")}
    if rest:
        doc.heading("Info")
        doc.mapping(rest)
    if config:
        doc.heading("Configuration")
        doc.mapping(config, ("option", "value"))
    return doc
