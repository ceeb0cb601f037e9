"""A bench folder's summary and markdown table: per task and method, mean +- std of the test
metric, Welch's test and Holm-corrected p against the baseline row, the tuned learning rates.

When a table holds other hand-made baselines (robust or shaped losses such as symmetric CE,
GCE, focal) beside learned rows, every learned row is also compared with the best of them
(lowest mean test metric: the strictest comparison), Holm over those comparisons, and a line
under the table says which learned rows beat both tuned cross-entropy and that baseline
significantly, or that none does.

Re-exported by :mod:`metaloss.suite` (``summarise``, ``markdown``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from metaloss.io import json_float
from metaloss.results import against_best, best_baseline_sentence, holm, welch_ci, welch_p

# The hand-made rows of a suite (everything else is a learned loss or a learned-step control).
BASELINES = (
    "ce", "mse", "focal", "label_smoothing", "mae", "gce", "sce", "poly1",
    "logit_adjusted", "class_balanced",
)  # fmt: skip

_FLAGGED_RUNS = (  # (row field, the sentence that names the rows under a table)
    ("collapsed", "Runs collapsed to chance level (validation metric no better than a constant "
     "predictor)"),
    ("diverged", "Runs diverged (non-finite loss, outputs or weights; counted as error 1.0 or "
     "MSE inf)"),
)  # fmt: skip


def _diverged(cell: dict[str, Any]) -> bool:
    """Whether a cell's reporting run diverged. Cells record it; for cells written before
    they did, a diverged run is recognised by its recorded value: a classification error of
    exactly 1.0 (chance is at most 1 - 1/classes) or a non-finite metric."""
    if "diverged" in cell:
        return bool(cell["diverged"])
    test = float(cell["test"])
    return not math.isfinite(test) or (cell.get("metric") == "error" and test >= 1.0)


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task and method: mean, std, chosen lrs, delta, Welch p, Holm p and 95 % CI.

    The baseline is tuned cross-entropy (``ce``; MSE for regression). Holm-Bonferroni
    runs over all comparisons with it within a task.
    """
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for c in cells:
        by.setdefault(c["task"], {}).setdefault(c["method"], []).append(c)
    tasks_out = {}
    for task, methods in by.items():
        base_name = "ce" if "ce" in methods else next(iter(methods))
        base = [float(c["test"]) for c in methods[base_name]]
        rows = {}
        for method, cs in methods.items():
            vals = [float(c["test"]) for c in cs]
            diags = [c["diagnostic"] for c in cs if isinstance(c.get("diagnostic"), dict)]
            lrs = sorted({float(c["lr"]) for c in cs if c.get("lr") is not None})
            rows[method] = {
                "n": len(vals),
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "delta": float(np.mean(vals) - np.mean(base)),
                "p_value": math.nan if method == base_name else welch_p(vals, base),
                "ci95": [math.nan, math.nan] if method == base_name else list(welch_ci(vals, base)),
                "lrs": lrs,
                "tuned": all(c.get("tuned", False) for c in cs),
                "collapsed": sum(bool(c.get("collapsed", False)) for c in cs),
                "diverged": sum(_diverged(c) for c in cs),
                "meta_seconds": float(np.mean([c["meta_seconds"] for c in cs])),
                "tune_seconds": float(np.mean([c.get("tune_seconds", 0.0) for c in cs])),
                "metric": cs[0]["metric"],
                "formula": cs[0].get("formula", ""),
                "preset": cs[0].get("preset"),
                "grad_ratio": float(np.mean([d["grad_norm_ratio"] for d in diags]))
                if diags
                else math.nan,
                "cosine": float(np.mean([d["cosine"] for d in diags])) if diags else math.nan,
                "cosine_trained": float(np.mean([d.get("cosine_trained", math.nan) for d in diags]))
                if diags
                else math.nan,
                "rescaled": bool(diags) and all(d.get("rescaled", False) for d in diags),
            }
        names = list(rows)
        for name, ph in zip(names, holm([rows[n]["p_value"] for n in names])):
            r = rows[name]
            r["p_holm"] = ph
            significant = not math.isnan(ph) and ph < 0.05
            r["verdict"] = ("better" if r["delta"] < 0 else "worse") if significant else "tie"
        block = {"baseline": base_name, "rows": rows}
        block.update(_against_best_baseline(methods, rows, base_name))
        tasks_out[task] = block
    return {"tasks": tasks_out}


CONTROLS = ("ce-step-ml3", "ce-step-adalfl", "ce-step-search")  # learned-step controls


def _is_hand_made(method: str) -> bool:
    """A hand-made row: a baseline loss, possibly tagged (``ce@old-lr``, ``sce@paper``)."""
    return method.split("@")[0] in BASELINES


def other_hand_made(rows: Iterable[str], base_name: str) -> list[str]:
    """The hand-made rows other than the reference ``base_name`` (and its tagged variants):
    the candidates for a table's best hand-made baseline.

    >>> other_hand_made(["ce", "ce@old-lr", "sce", "adalfl"], "ce")
    ['sce']
    """
    base = base_name.split("@")[0]
    return [m for m in rows if _is_hand_made(m) and m.split("@")[0] != base]


def is_control(method: str) -> bool:
    """A learned-step control (one of :data:`CONTROLS`, possibly tagged)."""
    return method.split("@")[0] in CONTROLS


def _against_best_baseline(
    methods: dict[str, list[dict[str, Any]]], rows: dict[str, dict[str, Any]], base_name: str
) -> dict[str, Any]:
    """Each row that is not hand-made (the learned losses, their tagged variants and the
    learned-step controls: every comparison the line under the table prints) against the
    best other hand-made row (Welch, Holm over all of those rows), and which learned losses
    (not the controls, which are CE with a learned step) beat both that row and
    ``base_name`` significantly. Empty when the table has no other hand-made row or no
    learned row."""
    others = other_hand_made(rows, base_name)
    learned = [m for m in rows if not _is_hand_made(m)]
    if not others or not learned:
        return {}
    values = {m: [float(c["test"]) for c in cs] for m, cs in methods.items()}
    best, compared = against_best(values, others, learned)
    for method, vs in compared.items():
        rows[method]["vs_best_baseline"] = vs
    beats = [m for m, vs in compared.items() if not is_control(m)
             and vs["verdict"] == "better" and rows[m]["verdict"] == "better"]  # fmt: skip
    return {"best_baseline": best, "beats_both": beats}


def _best_baseline_line(block: dict[str, Any]) -> str:
    """The sentence under a table that compares the learned rows with its best baseline."""
    best, rows = block["best_baseline"], block["rows"]
    compared = {m: r["vs_best_baseline"] for m, r in rows.items() if "vs_best_baseline" in r}
    tuned = bool(rows[best].get("tuned", False))
    return best_baseline_sentence(
        best, rows[best]["mean"], block["baseline"], compared, block["beats_both"], tuned
    )


def table_notes(block: dict[str, Any]) -> list[str]:
    """The sentences under a task's table: flagged runs (collapsed, diverged), the
    comparison with the best hand-made baseline, and the rows that are rescaled CEs."""
    notes = []
    for key, what in _FLAGGED_RUNS:
        flagged = [f"{m} ({r[key]} of {r['n']})" for m, r in block["rows"].items()
                   if r.get(key)]  # fmt: skip
        if flagged:
            notes.append(f"{what}: {', '.join(flagged)}.")
    if block.get("best_baseline"):
        notes.append(_best_baseline_line(block))
    rescaled = [m for m, r in block["rows"].items()
                if r.get("rescaled", json_float(r.get("cosine")) > 0.98)]  # fmt: skip
    if rescaled:
        notes.append(
            "Essentially a rescaled cross-entropy (gradient cosine > 0.98 at init and after "
            f"100 CE steps, every seed): {', '.join(rescaled)}."
        )
    return notes


def _lr_text(lrs: list[float]) -> str:
    if not lrs:
        return ""
    if len(lrs) == 1:
        return f"{lrs[0]:g}"
    return f"{lrs[0]:g}-{lrs[-1]:g}"


def markdown(summary: dict[str, Any]) -> str:
    """The suite table: one block per task. Bold: Holm-corrected p < 0.05 and better."""
    lines = []
    for task, block in summary["tasks"].items():
        metric = next(iter(block["rows"].values()))["metric"]
        lines += [
            f"### {task} (test {metric})",
            "",
            f"| method | lr | test {metric} (mean ± std) | n | Δ vs {block['baseline']} [95 % CI] "
            "| p (Holm) | step vs CE (ratio, cos at init / after 100 CE steps) | meta-train time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, r in block["rows"].items():
            base = method == block["baseline"]
            ci = r.get("ci95", [math.nan, math.nan])
            delta = "" if base else f"{r['delta']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
            ph = r.get("p_holm", r.get("p_value", math.nan))
            p = "" if base or math.isnan(ph) else f"{ph:.3f}"
            cell = f"{r['mean']:.4f} ± {r['std']:.4f}"
            verdict = r.get("verdict", "tie")
            cell = f"**{cell}**" if verdict == "better" else cell
            cell = f"{cell} (worse)" if verdict == "worse" else cell
            ratio, cos = r.get("grad_ratio", math.nan), r.get("cosine", math.nan)
            cos_t = r.get("cosine_trained", math.nan)
            step = "" if math.isnan(ratio) else f"x{ratio:.3g}, {cos:.3f}"
            step += "" if math.isnan(ratio) or math.isnan(cos_t) else f" / {cos_t:.3f}"
            meta = f"{r['meta_seconds']:.0f} s" if r["meta_seconds"] else ""
            lr = _lr_text(r.get("lrs", []))
            lr = lr if r.get("tuned", False) or not lr else f"{lr} (untuned)"
            preset = r.get("preset")
            # a merged table may already tag the method with its preset (merge_tables ::@paper)
            tagged = preset in (None, "default") or method.endswith(f"@{preset}")
            shown = method if tagged else f"{method} ({preset})"
            lines.append(
                f"| {shown} | {lr} | {cell} | {r['n']} | {delta} | {p} | {step} | {meta} |"
            )
        for note in table_notes(block):
            lines += ["", note]
        lines.append("")
    return "\n".join(lines)
