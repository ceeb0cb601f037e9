"""The report of a bench folder (what :func:`metaloss.suite.run_suite` wrote): per-task
tables (mean +- std, delta to the baseline with its CI, Holm-corrected p, meta-training
time), a bar chart per task and the list of cells.

Example:
    >>> bench_report("runs/bench-quick").title  # doctest: +SKIP
    'metaloss bench: quick'
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

from metaloss import io, plots, rundir
from metaloss.errors import ArtifactError
from metaloss.report.document import Doc, _num, _safe_figure, _seconds


def bench_report(folder: Path) -> Doc:
    from metaloss.suite import summarise
    from metaloss.suite_table import table_notes

    cells = io.read_jsonl(folder / rundir.CELLS)
    if (folder / rundir.SUMMARY).exists():
        summary = io.read_json(folder / rundir.SUMMARY)
    elif cells:
        try:
            summary = summarise(cells)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{folder / rundir.CELLS}: malformed cell ({exc})") from None
    else:
        raise ArtifactError(f"{folder}: cells.jsonl holds no cells and there is no summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("tasks"), dict):
        raise ArtifactError(f"{folder / rundir.SUMMARY}: expected an object with a 'tasks' field")
    suite = io.read_json(folder / rundir.SUITE) if (folder / rundir.SUITE).exists() else {}
    name = suite.get("suite", folder.name) if isinstance(suite, dict) else folder.name
    doc = Doc(
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
        table = []
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
        try:  # a summary.json from an untrusted folder may be malformed
            notes = table_notes(block)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            notes = [f"{folder / rundir.SUMMARY}: malformed notes for {task} (not shown)"]
        for note in notes:
            doc.para(note.replace("**", ""), note=True)
        _safe_figure(
            doc,
            lambda task=task, block=block: plots.figure_bench_bars(
                task, block["rows"], block.get("baseline")
            ),
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
