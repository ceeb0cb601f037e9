"""Merge the cells of several suite runs (e.g. methods run at different times) into one table.

    python bench/merge_tables.py runs/bench-mnist-lenet5 runs/bench-mnist-lenet5-gp
    python bench/merge_tables.py A B --methods ce ml3 adalfl --out merged/
    python bench/merge_tables.py A B::@h2000 --methods ce gce taylorglo taylorglo@h2000

``FOLDER::SUFFIX`` appends SUFFIX to the method of every cell read from FOLDER (two runs of
one method under different settings, side by side). Later folders win for a (task, method,
seed) present in several. Prints the markdown table (mean ± std, Δ vs cross-entropy / MSE,
Welch p, meta-train time) and with ``--out`` writes ``cells.jsonl``, ``summary.json`` and
``table.md`` there.

A table compares like with like, so the merge is refused (one line, exit status 2) when a
row would mix cells of another preset, source task (``learned_on``), tuning or metric, when
a task's rows ran for different numbers of training steps (as the folders' ``suite.json``
record them), or when ``--methods`` leaves out the cross-entropy row every row is compared
with. ``--allow-mixed-steps`` accepts the last (e.g. a documented change of protocol).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from metaloss import io
from metaloss.suite import markdown, summarise

ROW_FIELDS = ("preset", "learned_on", "tuned", "metric")  # equal in every cell of a row


class MergeError(ValueError):
    """Cells that would not make one fair table."""


def _steps(folder: Path) -> dict[str, Any]:
    """Per task, the training steps a folder's cells ran (``None``: not recorded)."""
    path = folder / "suite.json"
    if not path.exists():
        return {}
    spec = io.read_json(path)
    train = spec.get("train") if isinstance(spec.get("train"), dict) else {}
    out = {t: p.get("steps") for t, p in train.items() if isinstance(p, dict)}
    return {"*": spec.get("steps"), **out}


def merge(
    folders: list[str], methods: list[str] | None = None, allow_mixed_steps: bool = False
) -> list[dict[str, Any]]:
    """The cells of ``folders`` (``FOLDER::SUFFIX`` tags methods), later folders winning,
    kept to ``methods`` in that order; :class:`MergeError` when they are no fair table."""
    cells: dict[tuple[str, str, int], dict[str, Any]] = {}
    steps: dict[int, Any] = {}  # id(cell) -> the steps its folder recorded for its task
    for arg in folders:
        folder, _, suffix = arg.partition("::")
        recorded = _steps(Path(folder))
        for c in io.read_jsonl(Path(folder) / "cells.jsonl"):
            c["method"] += suffix
            cells[c["task"], c["method"], c["seed"]] = c
            steps[id(c)] = recorded.get(c["task"], recorded.get("*"))
    rows = list(cells.values())
    if methods:
        had_ce = {c["task"] for c in rows if c["method"] == "ce"}
        if had_ce and "ce" not in methods:
            raise MergeError(
                "--methods leaves out ce, the tuned cross-entropy row every row is compared "
                f"with ({', '.join(sorted(had_ce))})"
            )
        order = {m: i for i, m in enumerate(methods)}
        rows = sorted((c for c in rows if c["method"] in order), key=lambda c: order[c["method"]])
    by_row: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in rows:
        by_row.setdefault((c["task"], c["method"]), []).append(c)
    for (task, method), cs in by_row.items():
        for field in ROW_FIELDS:
            seen: dict[str, list[int]] = {}
            for c in cs:
                seen.setdefault(repr(c.get(field)), []).append(c["seed"])
            if len(seen) > 1:
                shown = "; ".join(f"{v} (seeds {s})" for v, s in seen.items())
                raise MergeError(
                    f"{task} {method}: its cells differ in {field!r}: {shown}; tag one "
                    "folder's methods with FOLDER::@TAG to show them as two rows"
                )
    for task in sorted({c["task"] for c in rows}):
        known: dict[Any, set[str]] = {}
        for c in rows:
            if c["task"] == task and steps[id(c)] is not None:
                known.setdefault(steps[id(c)], set()).add(c["method"])
        if len(known) > 1 and not allow_mixed_steps:
            shown = "; ".join(f"{n} steps: {', '.join(sorted(m))}" for n, m in known.items())
            raise MergeError(
                f"{task}: the rows ran for different numbers of training steps ({shown}); "
                "--allow-mixed-steps merges them anyway"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folders", nargs="+", help="suite folders; FOLDER::SUFFIX tags methods")
    ap.add_argument("--methods", nargs="*", help="keep these methods, in this order")
    ap.add_argument("--allow-mixed-steps", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        rows = merge(args.folders, args.methods, args.allow_mixed_steps)
    except MergeError as exc:
        print(f"merge_tables: {exc}", file=sys.stderr)
        sys.exit(2)
    summary = summarise(rows)
    table = markdown(summary)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cells.jsonl").write_text("")
        io.append_jsonl(args.out / "cells.jsonl", rows)
        io.write_json(args.out / "summary.json", summary)
        (args.out / "table.md").write_text(table)


if __name__ == "__main__":
    main()
