"""Merge the cells of several suite runs (e.g. methods run at different times) into one table.

    python bench/merge_tables.py runs/bench-mnist-lenet5 runs/bench-mnist-lenet5-gp
    python bench/merge_tables.py A B --methods ce ml3 adalfl --out merged/
    python bench/merge_tables.py A B::@h2000 --methods ce gce taylorglo taylorglo@h2000

``FOLDER::SUFFIX`` appends SUFFIX to the method of every cell read from FOLDER (two runs of
one method under different settings, side by side). Later folders win for a (task, method,
seed) present in several. Prints the markdown table (mean ± std, Δ vs cross-entropy / MSE,
Welch p, meta-train time) and with ``--out`` writes ``cells.jsonl``, ``summary.json`` and
``table.md`` there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from metaloss import io
from metaloss.suite import markdown, summarise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folders", nargs="+", help="suite folders; FOLDER::SUFFIX tags methods")
    ap.add_argument("--methods", nargs="*", help="keep these methods, in this order")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cells: dict[tuple[str, str, int], dict] = {}
    for arg in args.folders:
        folder, _, suffix = arg.partition("::")
        for c in io.read_jsonl(Path(folder) / "cells.jsonl"):
            c["method"] += suffix
            cells[c["task"], c["method"], c["seed"]] = c
    rows = list(cells.values())
    if args.methods:
        order = {m: i for i, m in enumerate(args.methods)}
        rows = sorted((c for c in rows if c["method"] in order), key=lambda c: order[c["method"]])
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
