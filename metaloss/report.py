"""Self-contained reports of a run directory or a benchmark folder (HTML + markdown).

``write_report`` reads what :meth:`metaloss.results.LearnResult.save` or
:func:`metaloss.suite.run_suite` wrote and renders it as ``report.html`` (figures embedded
as base64 PNG, inline CSS, no scripts or external assets: it opens offline and can be
mailed as one file) and ``report.md`` (the same text and tables, figures left to the HTML).

A run report shows the method, task and time, the configuration, the learned loss (formula,
LaTeX, architecture), its shape against cross-entropy (MSE for regression), the
meta-training curves, AdaLFL's loss snapshots, the hall of fame and the info fields. A
bench report shows the per-task tables (mean +- std, delta to the baseline, Welch's p,
meta-training time), a bar chart per task and the list of cells.

Example:
    >>> import tempfile, metaloss as ml
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> run = ml.io.save_loss(tempfile.mkdtemp(), TaylorLoss([0.1] * 8), meta={"method": "demo"})
    >>> html = write_report(run)
    >>> html.name, html.with_suffix(".md").exists()
    ('report.html', True)
"""

from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from metaloss import io  # noqa: E402
from metaloss.errors import ArtifactError, MetalossError  # noqa: E402

HTML_FILE, MD_FILE = "report.html", "report.md"
GENERATIONS_FILE, EXTRA_FILE = "generations.jsonl", "extra.safetensors"

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff;
       box-shadow: 0 0 12px rgba(0,0,0,.06); }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid #e3e6eb; padding-bottom: 4px; }
h3 { font-size: 1.08em; margin-top: 1.5em; }
.sub { color: #667085; margin: 0 0 1em; font-size: .92em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #dde1e7; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font-family: 'SFMono-Regular', Menlo, Consolas, monospace; font-size: .88em; }
pre { background: #f3f4f6; padding: 8px 12px; border-radius: 4px; white-space: pre-wrap;
      word-break: break-word; }
.formula { font-size: 1.05em; background: #eef6ee; border-left: 4px solid #4c9a52; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #e3e6eb; }
figure.half { display: inline-block; width: 48%; margin-right: 1.5%; vertical-align: top; }
figcaption { color: #667085; font-size: .88em; }
.note { color: #8a5a00; background: #fff7e0; padding: 6px 10px; border-radius: 4px; }
details summary { cursor: pointer; color: #344054; margin: .5em 0; }
"""


# --------------------------------------------------------------------------- document model


@dataclass
class _Doc:
    """A report under construction: every block goes to the HTML and the markdown."""

    title: str
    subtitle: str = ""
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{_esc(text)}</h{level}>")
        self.md += [f"{'#' * level} {text}", ""]

    def para(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.html.append(f"<p{cls}>{_esc(text)}</p>")
        self.md += [f"> {text}" if note else text, ""]

    def code(self, text: str, formula: bool = False) -> None:
        cls = ' class="formula"' if formula else ""
        self.html.append(f"<pre{cls}>{_esc(text)}</pre>")
        self.md += ["```", text, "```", ""]

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        numeric: Sequence[int] = (),
        collapsed: str | None = None,
    ) -> None:
        """A table; ``numeric`` column indices are right-aligned; ``collapsed`` folds it."""
        cells = [[_cell(v) for v in row] for row in rows]
        head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>"
                for i, v in enumerate(row)
            )
            + "</tr>"
            for row in cells
        )
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if collapsed is not None:
            table = f"<details><summary>{_esc(collapsed)}</summary>{table}</details>"
        self.html.append(table)
        self.md.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
        self.md.append("|" + "---|" * len(headers))
        self.md += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in cells]
        self.md.append("")

    def mapping(
        self, items: Mapping[str, Any], headers: Sequence[str] = ("field", "value")
    ) -> None:
        self.table(headers, [(k, v) for k, v in items.items()])

    def figure(self, png: bytes | None, caption: str, half: bool = False) -> None:
        """An embedded PNG; ``half`` figures sit two to a row."""
        if png is None:
            return
        data = base64.b64encode(png).decode("ascii")
        cls = ' class="half"' if half else ""
        self.html.append(
            f'<figure{cls}><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
        self.md += [f"*Figure: {caption} (embedded in {HTML_FILE}).*", ""]

    def render_html(self) -> str:
        body = "\n".join(self.html)
        sub = f'<p class="sub">{_esc(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{_esc(self.title)}</h1>\n{sub}\n{body}\n</main>\n</body>\n</html>\n"
        )

    def render_md(self) -> str:
        head = [f"# {self.title}", ""] + ([f"*{self.subtitle}*", ""] if self.subtitle else [])
        return "\n".join(head + self.md).rstrip() + "\n"


def _esc(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _num(value: Any) -> float:
    """A float from a JSON value (``"inf"`` strings and ``null`` as written by io.write_json)."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: Any) -> str:
    s = _num(value)
    if math.isnan(s):
        return "?"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


# --------------------------------------------------------------------------- figures


def _fig_png(fig: Any) -> bytes:
    buf = BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _file_png(draw: Callable[[Path], Any]) -> bytes:
    """PNG bytes of a plotting function that writes to a path (metaloss.plots)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


def _regression_landscape(losses: Mapping[str, nn.Module], title: str = "") -> bytes:
    """Loss against the prediction for targets 0 and 1 (standardised regression targets);
    the second row min-max scales every curve so that shapes of any magnitude compare."""
    x = torch.linspace(-3.0, 4.0, 200)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for col, target in enumerate((0.0, 1.0)):
        y = torch.tensor([target])
        for name, loss in losses.items():
            with torch.no_grad():
                v = np.array([float(loss(x[i].view(1, 1), y)) for i in range(len(x))])
            axes[0, col].plot(x.numpy(), v, label=name)
            span = np.ptp(v) if np.isfinite(v).all() and np.ptp(v) > 0 else 1.0
            axes[1, col].plot(x.numpy(), (v - np.min(v)) / span, label=name)
        axes[0, col].set(ylabel="loss", title=f"target y = {target:g}")
        axes[1, col].set(xlabel="prediction", ylabel="scaled loss", title="min-max scaled")
    for ax, target in zip(axes.flat, (0.0, 1.0, 0.0, 1.0)):
        ax.axvline(target, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _fig_png(fig)


def _landscape(
    losses: Mapping[str, nn.Module], classification: bool, num_classes: int, title: str = ""
) -> bytes:
    from metaloss.losses import get_baseline
    from metaloss.plots import plot_losses

    if classification:
        named = {**losses, "cross_entropy": get_baseline("ce")}
        return _file_png(lambda p: plot_losses(named, p, num_classes=num_classes, title=title))
    return _regression_landscape({**losses, "mse": get_baseline("mse")}, title)


def _curve_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
) -> bytes:
    from metaloss.plots import plot_curves

    ys = np.asarray([v for _, y in series.values() for v in y], dtype=float)
    ys = ys[np.isfinite(ys)]
    logy = bool(len(ys)) and bool((ys > 0).all()) and ys.max() / ys.min() > 50
    return _file_png(lambda p: plot_curves(series, p, xlabel, ylabel, title=title, logy=logy))


def _latex_png(latex: str) -> bytes | None:
    """The formula typeset by matplotlib's mathtext (None when mathtext cannot parse it)."""
    if not latex or len(latex) > 600:
        return None
    fig = plt.figure(figsize=(10, 0.9))
    try:
        fig.text(0.02, 0.5, f"${latex}$", fontsize=16, va="center")
        buf = BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.1)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - mathtext raises several types on unsupported LaTeX
        return None
    finally:
        plt.close(fig)


def _bar_png(task: str, block: Mapping[str, Any]) -> bytes:
    rows = block["rows"]
    names = list(rows)
    means = [_num(rows[m].get("mean")) for m in names]
    stds = [_num(rows[m].get("std")) for m in names]
    metric = next(iter(rows.values())).get("metric", "metric")
    base = block.get("baseline")
    colors = ["#9aa5b1" if m == base else "#3b7dd8" for m in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.8))
    bars = ax.bar(names, means, yerr=stds, capsize=4, color=colors)
    ax.bar_label(bars, labels=[f"{m:.4f}" for m in means], padding=2, fontsize=8)
    if base in rows:
        ax.axhline(_num(rows[base].get("mean")), color="#555", lw=0.8, ls="--")
    ax.set(ylabel=f"test {metric} (mean ± std)", title=task)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="x", rotation=20 if len(names) > 5 else 0)
    return _fig_png(fig)


def _safe_figure(
    doc: _Doc, draw: Callable[[], bytes | None], caption: str, half: bool = False
) -> None:
    """Add a figure; a loss that cannot be evaluated gives a note instead of no report."""
    try:
        png = draw()
    except Exception as exc:  # noqa: BLE001 - a figure must never take the report down
        doc.para(f"{caption}: could not be drawn ({type(exc).__name__}: {exc})", note=True)
        return
    doc.figure(png, caption, half)


# --------------------------------------------------------------------------- run report


def _task_shape(spec: Mapping[str, Any]) -> tuple[bool, int]:
    """(classification?, number of classes) of a run's task (metaloss.plots.run_task_shape;
    10 classes when unknown), without loading its data."""
    from metaloss.plots import run_task_shape

    regression, classes = run_task_shape(spec)
    return not regression, classes or 10


def _snapshot_losses(spec: Mapping[str, Any], run_dir: Path) -> dict[str, nn.Module]:
    """AdaLFL's loss snapshots (``snapshot.<step>.<param>`` in extra.safetensors), by step."""
    from metaloss.losses.base import build_loss

    path = run_dir / EXTRA_FILE
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
        for r in io.read_jsonl(run_dir / GENERATIONS_FILE)
        if r.get("type") == "generation" and isinstance(r.get("summary"), dict)
    ]
    return rows or [r for r in history if "best" in r and "median" in r]


def _training_section(
    doc: _Doc, run_dir: Path, history: list[dict[str, Any]], title: str = "search"
) -> None:
    meta = [r for r in history if "meta_loss" in r and "meta_step" in r]
    online = [r for r in history if "train_loss" in r and "step" in r]
    gens = _generation_rows(run_dir, history)
    from metaloss.plots import plot_search

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
            lambda: _curve_png(series, "meta step", "meta-loss", label),
            f"{label}: meta-loss (task loss after the inner steps) per meta step",
            half=True,
        )
    if online:
        curve = {
            "learned loss": ([r["step"] for r in online], [_num(r["train_loss"]) for r in online])
        }
        _safe_figure(
            doc,
            lambda: _curve_png(curve, "step", "training loss", "online phase"),
            "online phase: mean learned-loss value on the training batches",
            half=True,
        )
    if gens:
        g = [r.get("generation", i) for i, r in enumerate(gens)]
        best, median = [_num(r.get("best")) for r in gens], [_num(r.get("median")) for r in gens]
        _safe_figure(
            doc,
            lambda: _file_png(lambda p: plot_search(g, best, p, title=title, median=median)),
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


def _run_report(path: Path) -> _Doc:
    spec, run_dir = io.read_spec(path)
    loss = io.load(run_dir)
    method, task = str(spec.get("method", "?")), str(spec.get("task", "?"))
    config = spec.get("config") or {}
    info = spec.get("info") or {}
    history = io.read_jsonl(run_dir / io.HISTORY_FILE)
    classification, num_classes = _task_shape(spec)
    doc = _Doc(
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
            doc.figure(_latex_png(latex), "the formula typeset (matplotlib mathtext)")
    loss_spec = spec["loss"] if isinstance(spec.get("loss"), dict) else {}
    if loss_spec.get("config"):
        doc.heading("Loss configuration", 3)
        doc.mapping(loss_spec["config"])
    what = "the predicted probability of the true class" if classification else "the prediction"
    _safe_figure(
        doc,
        lambda: _landscape({"learned": loss}, classification, num_classes, f"{method} · {task}"),
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
            lambda: _landscape(snaps, classification, num_classes, "AdaLFL snapshots"),
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


# --------------------------------------------------------------------------- bench report


def _bench_report(folder: Path) -> _Doc:
    from metaloss.suite import summarise

    cells = io.read_jsonl(folder / "cells.jsonl")
    if (folder / "summary.json").exists():
        summary = io.read_json(folder / "summary.json")
    elif cells:
        try:
            summary = summarise(cells)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{folder / 'cells.jsonl'}: malformed cell ({exc})") from None
    else:
        raise ArtifactError(f"{folder}: cells.jsonl holds no cells and there is no summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("tasks"), dict):
        raise ArtifactError(f"{folder / 'summary.json'}: expected an object with a 'tasks' field")
    suite = io.read_json(folder / "suite.json") if (folder / "suite.json").exists() else {}
    name = suite.get("suite", folder.name) if isinstance(suite, dict) else folder.name
    doc = _Doc(
        f"metaloss bench: {name}",
        f"{folder.resolve()} · {len(summary['tasks'])} tasks · {len(cells)} cells · "
        f"report written {_dt.datetime.now().isoformat(timespec='seconds')}",
    )
    if isinstance(suite, dict) and suite:
        doc.heading("Suite")
        doc.mapping(suite, ("setting", "value"))
    doc.heading("Results")
    for task, block in summary["tasks"].items():
        rows = block.get("rows") if isinstance(block, dict) else None
        if not isinstance(rows, dict) or not rows:
            doc.para(f"{task}: no rows", note=True)
            continue
        base = block.get("baseline", "")
        metric = next(iter(rows.values())).get("metric", "metric")
        doc.heading(f"{task} (test {metric})", 3)
        table, rescaled = [], []
        for method, r in rows.items():
            is_base = method == base
            p = _num(r.get("p_holm", r.get("p_value")))
            ci = r.get("ci95") if isinstance(r.get("ci95"), list) else [math.nan, math.nan]
            cell = f"{_num(r.get('mean')):.4f} ± {_num(r.get('std')):.4f}"
            verdict = r.get("verdict", "tie")
            cell += {"better": " (better)", "worse": " (worse)"}.get(verdict, "")
            lrs = r.get("lrs") if isinstance(r.get("lrs"), list) else []
            lr = "-".join(f"{_num(v):g}" for v in (lrs[:1] + lrs[-1:] if len(lrs) > 1 else lrs))
            lr += "" if r.get("tuned", False) or not lr else " (untuned)"
            ratio, cos = _num(r.get("grad_ratio")), _num(r.get("cosine"))
            if r.get("rescaled", not math.isnan(cos) and cos > 0.98):
                rescaled.append(method)
            table.append(
                (
                    method,
                    lr,
                    cell,
                    r.get("n", ""),
                    ""
                    if is_base
                    else f"{_num(r.get('delta')):+.4f} [{_num(ci[0]):+.4f}, {_num(ci[1]):+.4f}]",
                    "" if is_base or math.isnan(p) else f"{p:.3f}",
                    "" if math.isnan(ratio) else f"x{ratio:.3g}, {cos:.3f}",
                    "" if is_base else _seconds(r.get("meta_seconds")),
                    r.get("formula", ""),
                )
            )
        doc.table(
            (
                "method",
                "lr",
                f"test {metric} (mean ± std)",
                "n",
                f"Δ vs {base} [95 % CI]",
                "p (Holm)",
                "step vs CE (ratio, cos)",
                "meta-train time",
                "formula (first seed)",
            ),
            table,
            numeric=(2, 3, 4, 5),
        )
        collapsed = [f"{m} ({r.get('collapsed')} of {r.get('n')})" for m, r in rows.items()
                     if isinstance(r, dict) and r.get("collapsed")]  # fmt: skip
        if collapsed:
            doc.para(
                "Runs collapsed to chance level (validation metric no better than a constant "
                "predictor): " + ", ".join(collapsed) + ".",
                note=True,
            )
        if rescaled:
            doc.para(
                "Essentially a rescaled cross-entropy (gradient cosine > 0.98 at init and after "
                "100 CE steps): " + ", ".join(rescaled) + ".",
                note=True,
            )
        _safe_figure(
            doc,
            lambda task=task, block=block: _bar_png(task, block),
            f"{task}: test {metric} per method (mean ± std over seeds; grey: {base})",
        )
    if cells:
        doc.heading("Cells")
        doc.table(
            ("task", "method", "seed", "lr", "test", "val", "meta time", "train time", "formula"),
            [
                (
                    c.get("task"),
                    c.get("method"),
                    c.get("seed"),
                    _num(c.get("lr")),
                    _num(c.get("test")),
                    _num(c.get("val")),
                    _seconds(c.get("meta_seconds")),
                    _seconds(c.get("train_seconds")),
                    c.get("formula", ""),
                )
                for c in cells
            ],
            numeric=(2, 3, 4, 5, 6, 7),
        )
    return doc


# --------------------------------------------------------------------------- entry point


def _detect(path: Path) -> tuple[str, Path]:
    if not path.exists():
        raise ArtifactError(f"{path}: no such run directory or bench folder")
    if path.is_file():
        if path.name == io.SPEC_FILE:
            return "run", path.parent
        if path.name in ("summary.json", "cells.jsonl", "suite.json"):
            return "bench", path.parent
        raise ArtifactError(f"{path}: expected a run directory or a bench folder, not a file")
    if (path / io.SPEC_FILE).exists():
        return "run", path
    if (path / "summary.json").exists() or (path / "cells.jsonl").exists():
        return "bench", path
    raise ArtifactError(
        f"{path}: neither a run directory (spec.json) nor a bench folder "
        "(summary.json / cells.jsonl)"
    )


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` and ``report.md`` for a run directory or a bench folder.

    ``out`` is the folder to write into (default: the input folder). Returns the HTML path;
    the markdown lies beside it. Unreadable input raises :class:`ArtifactError`.

    Example:
        >>> write_report("runs/iris-linear-ml3")  # doctest: +SKIP
        PosixPath('runs/iris-linear-ml3/report.html')
    """
    kind, folder = _detect(Path(path))
    try:
        doc = _run_report(folder) if kind == "run" else _bench_report(folder)
    except MetalossError as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{folder}: {exc}") from None
    target = Path(out) if out is not None else folder
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target}: --out must be a folder")
    target.mkdir(parents=True, exist_ok=True)
    io.atomic_write_bytes(target / HTML_FILE, doc.render_html().encode("utf-8"))
    io.atomic_write_bytes(target / MD_FILE, doc.render_md().encode("utf-8"))
    return target / HTML_FILE


__all__ = ["write_report"]
